"""nbops's own drift engine against alibi-detect's detectors on the same data (run by `make test-alibi`, in the
.venv-alibi environment that has the optional extra; skipped where alibi-detect is not installed).

alibi-detect returns its statistics and p-values as float32, so the 1e-9 agreement is checked against the exact
scipy calls its detectors make (``ks_2samp(..., mode="asymp")``, ``cramervonmises_2samp(method="auto")``,
``chi2_contingency`` on the union of categories), and its float32 outputs and verdicts are checked as they come.
"""
import numpy as np
import pandas as pd
import pytest

alibi_detect = pytest.importorskip("alibi_detect", reason="alibi-detect is the optional extra: make test-alibi")

import nbops  # noqa: E402
from nbops.drift import alibi, stats  # noqa: E402


def _frames(rng, n, m, shift):
    ref = pd.DataFrame({"x": rng.normal(size=n), "t": np.round(rng.gamma(2, size=n), 1),
                        "c": rng.choice(5, size=n, p=[0.4, 0.25, 0.15, 0.1, 0.1])})
    cur = pd.DataFrame({"x": rng.normal(shift, 1, size=m), "t": np.round(rng.gamma(2, size=m), 1),
                        "c": rng.choice(6, size=m, p=[0.35, 0.25, 0.15, 0.1, 0.1, 0.05])})
    return ref, cur


@pytest.mark.parametrize("n,m", [(30_000, 12_000), (12_000, 11_000), (200_000, 50_000)])
@pytest.mark.parametrize("shift", [0.0, 0.03, 0.3])
def test_ks_and_chi2_agree_with_alibi_to_1e9(n, m, shift):
    from scipy.stats import chi2_contingency, ks_2samp

    rng = np.random.default_rng(n + int(100 * shift))
    ref, cur = _frames(rng, n, m, shift)
    ours = nbops.check_drift(ref, cur, log=False, plots=False)
    stock = nbops.check_drift(ref, cur, log=False, plots=False, engine="alibi")
    for col in ("x", "t"):  # above 10,000 values per side both use the asymptotic p-value
        exact = ks_2samp(ref[col], cur[col], method="asymp")
        assert ours[col].statistic == pytest.approx(exact.statistic, rel=1e-9, abs=1e-12)
        assert ours[col].p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)
    labels = sorted(set(ref.c) | set(cur.c))
    table = np.array([[np.sum(ref.c == v) for v in labels], [np.sum(cur.c == v) for v in labels]])
    chi = chi2_contingency(table)
    assert (ours["c"].statistic, ours["c"].p_value) == pytest.approx((chi[0], chi[1]), rel=1e-9, abs=1e-300)
    for f, g in zip(ours, stock):  # alibi-detect's own outputs (float32) and the verdicts
        assert f.feature == g.feature and f.drifted == g.drifted
        assert f.statistic == pytest.approx(g.statistic, rel=2e-7, abs=1e-7)
        assert f.p_value == pytest.approx(g.p_value, rel=2e-6, abs=1e-30)
    assert ours.drifted == stock.drifted


def test_small_samples_same_statistic_exact_pvalue():
    """Below 10,000 values per side nbops uses scipy's exact KS p-value (alibi-detect's stays asymptotic)."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(13)
    ref, cur = rng.normal(size=300), rng.normal(0.3, 1, size=200)
    d, p = alibi.univariate("ks", np.sort(ref), cur, 0.05)
    res = stats.ks_merge(np.sort(ref), np.sort(cur))
    assert res.statistic == pytest.approx(d, rel=2e-7)
    assert res.p_value == pytest.approx(ks_2samp(ref, cur, method="exact").pvalue, rel=1e-12)


@pytest.mark.parametrize("n,m", [(8, 6), (300, 200), (4000, 3000)])
def test_cvm_agrees_with_alibi(n, m):
    from scipy.stats import cramervonmises_2samp

    rng = np.random.default_rng(n)
    ref, cur = rng.normal(size=n), rng.normal(0.4, 1, size=m)
    exact = cramervonmises_2samp(ref, cur, method="auto")
    ours = stats.cvm_sorted(np.sort(ref), np.sort(cur))
    assert ours == pytest.approx((exact.statistic, exact.pvalue), rel=1e-9)
    stock = alibi.univariate("cvm", ref, cur, 0.05)
    assert ours == pytest.approx(stock, rel=2e-6, abs=1e-30)


def test_fdr_agrees_with_alibi_fdr():
    from alibi_detect.utils.statstest import fdr

    rng = np.random.default_rng(5)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=8) ** 2
        assert bool((stats.adjust(p, "fdr") < 0.05).any()) == bool(fdr(p, q_val=0.05)[0])


def test_alibi_engine_through_the_api_flags_the_shift():
    df = pd.DataFrame({"a": np.arange(500.0)})
    r = nbops.check_drift(df, df + 100, engine="alibi", log=False)
    assert r.is_drift and r.engine == "alibi" and r.drifted == ["a"]

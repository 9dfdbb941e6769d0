"""nbops's own drift statistics: the same numbers as scipy, corrections, the rule (alibi-detect agreement:
tests/alibi/)."""
import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from nbops.drift import stats


@pytest.mark.parametrize("n,m,ties", [(200, 150, False), (1000, 1000, True), (37, 5000, True), (3, 2, False),
                                      (20000, 12000, False), (15000, 15000, True)])
def test_ks_merge_matches_scipy(n, m, ties):
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.normal(0.2, 1.3, size=m)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    res = stats.ks_merge(np.sort(a), np.sort(b))
    # scipy's own rule: exact p-values up to 10,000 values per side, asymptotic above
    ref = ks_2samp(a, b, method="exact" if max(n, m) <= stats.EXACT_MAX_N else "asymp")
    assert res.statistic == ref.statistic
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)
    assert res.wasserstein == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_cvm_matches_scipy():
    from scipy.stats import cramervonmises_2samp

    rng = np.random.default_rng(6)
    for n, m in [(8, 6), (300, 200), (5000, 4000)]:
        a, b = rng.normal(size=n), rng.normal(0.3, 1, size=m)
        res = cramervonmises_2samp(a, b)
        assert stats.cvm_sorted(np.sort(a), np.sort(b)) == pytest.approx((res.statistic, res.pvalue), rel=1e-12)


def test_chi2_counts_matches_scipy_contingency_and_drops_empty_categories():
    ref, cur = np.array([400, 300, 0, 100]), np.array([350, 330, 0, 20])
    stat, p = stats.chi2_counts(ref, cur)
    exp = chi2_contingency(np.vstack([ref, cur])[:, [0, 1, 3]])
    assert (stat, p) == pytest.approx((exp[0], exp[1]), rel=1e-12)
    assert stats.chi2_counts(np.array([5, 0]), np.array([7, 0])) == (0.0, 1.0)  # one category: nothing to test


def test_adjust_bonferroni_and_fdr():
    p = np.array([0.001, 0.01, 0.02, 0.04, 0.5])
    assert stats.adjust(p, "bonferroni").tolist() == pytest.approx([0.005, 0.05, 0.1, 0.2, 1.0])
    bh = stats.adjust(p, "fdr")
    # Benjamini-Hochberg by hand: p_(i) * k / i, made monotone from the top
    assert bh.tolist() == pytest.approx([0.005, 0.025, 0.0333333, 0.05, 0.5], rel=1e-5)
    assert stats.adjust(p, "none").tolist() == p.tolist()


def test_decide_needs_both_significance_and_effect():
    adj, flags = stats.decide([1e-10, 1e-10, 0.2], [0.01, 0.3, 0.9], p_val=0.05, min_effect=0.05)
    assert flags.tolist() == [False, True, False]
    assert adj[0] == pytest.approx(3e-10)


def test_missing_test_and_effects():
    stat, p, eff = stats.missing_test(0, 20000, 8000, 20000)
    assert p < 1e-100 and eff == pytest.approx(0.4)
    assert stats.missing_test(0, 100, 0, 100)[1] == 1.0
    assert stats.tvd([50, 50], [50, 50]) == 0.0
    assert stats.tvd([100, 0], [0, 100]) == 1.0
    assert stats.psi([50, 50], [50, 50]) == 0.0 and stats.psi([80, 20], [20, 80]) > 0.5
    ct = chi2_contingency([[30, 70], [50, 50]])
    assert stats.chi2_counts([30, 70], [50, 50])[1] == pytest.approx(ct[1])


def test_ks_critical_is_the_detection_threshold():
    d = stats.ks_critical(0.01, 100, 100)
    assert stats.ks_pvalue(d * 1.001, 100, 100) < 0.01 < stats.ks_pvalue(d * 0.98, 100, 100)

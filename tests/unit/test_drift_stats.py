"""The statistics nbops puts around alibi-detect: same numbers as alibi-detect/scipy, corrections, the rule."""
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


def test_sorted_ks_detector_matches_stock_alibi_ksdrift():
    KSDrift, Sorted = stats.alibi_class("KSDrift"), stats.alibi_class("SortedKSDrift")
    rng = np.random.default_rng(3)
    ref = rng.normal(size=30000)  # above 10,000 values both use the asymptotic p-value
    det = Sorted(np.sort(ref), p_val=0.05)
    for shift in (0.0, 0.02, 0.3):
        cur = rng.normal(shift, 1, size=12000)
        ours = det.predict(cur.reshape(-1, 1))["data"]
        stock = KSDrift(ref.reshape(-1, 1), p_val=0.05).predict(cur.reshape(-1, 1))["data"]
        assert ours["is_drift"] == stock["is_drift"]
        assert ours["distance"][0] == pytest.approx(stock["distance"][0], rel=1e-6)
        assert ours["p_val"][0] == pytest.approx(stock["p_val"][0], rel=1e-5, abs=1e-30)


def test_small_samples_get_exact_pvalues_with_the_same_statistic():
    KSDrift, Sorted = stats.alibi_class("KSDrift"), stats.alibi_class("SortedKSDrift")
    rng = np.random.default_rng(13)
    ref, cur = rng.normal(size=300), rng.normal(0.3, 1, size=200)
    ours = Sorted(np.sort(ref)).predict(cur.reshape(-1, 1))["data"]
    stock = KSDrift(ref.reshape(-1, 1)).predict(cur.reshape(-1, 1))["data"]
    assert ours["distance"][0] == pytest.approx(stock["distance"][0], rel=1e-6)
    assert ours["p_val"][0] == pytest.approx(ks_2samp(ref, cur, method="exact").pvalue, rel=1e-12)


def test_counts_chisquare_matches_stock_alibi():
    Chi, Counts = stats.alibi_class("ChiSquareDrift"), stats.alibi_class("CountsChiSquareDrift")
    rng = np.random.default_rng(4)
    ref = rng.choice(4, size=2000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(5, size=1500, p=[0.35, 0.3, 0.2, 0.1, 0.05])  # code 4 unseen in the reference
    ours = Counts(np.bincount(ref), p_val=0.05).predict(cur.reshape(-1, 1))["data"]
    stock = Chi(ref.reshape(-1, 1), p_val=0.05).predict(cur.reshape(-1, 1))["data"]
    assert ours["is_drift"] == stock["is_drift"] == 1
    assert ours["distance"][0] == pytest.approx(stock["distance"][0], rel=1e-5)
    assert ours["p_val"][0] == pytest.approx(stock["p_val"][0], rel=1e-4, abs=1e-30)


def test_adjust_bonferroni_and_fdr():
    p = np.array([0.001, 0.01, 0.02, 0.04, 0.5])
    assert stats.adjust(p, "bonferroni").tolist() == pytest.approx([0.005, 0.05, 0.1, 0.2, 1.0])
    bh = stats.adjust(p, "fdr")
    # Benjamini-Hochberg by hand: p_(i) * k / i, made monotone from the top
    assert bh.tolist() == pytest.approx([0.005, 0.025, 0.0333333, 0.05, 0.5], rel=1e-5)
    assert stats.adjust(p, "none").tolist() == p.tolist()


def test_fdr_agrees_with_alibi_fdr():
    from alibi_detect.utils.statstest import fdr

    rng = np.random.default_rng(5)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=8) ** 2
        ours = bool((stats.adjust(p, "fdr") < 0.05).any())
        assert ours == bool(fdr(p, q_val=0.05)[0])


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

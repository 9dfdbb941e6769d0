"""Calibration: when both samples come from the same distribution, the share of false dataset-level alarms stays
at or below the chosen p-value, from 100 to 1,000,000 rows, for numeric and categorical columns.

Two halves. (1) The decision rule (``stats.decide`` on p-values from ``stats.ks_pvalue`` / ``stats.chi2_counts``)
over 200 trials per size with the test statistics simulated exactly: under the null hypothesis the KS statistic
of continuous data depends only on how the two samples interleave, which is a uniformly random shuffle of n + m
labels, and category counts are multinomial draws. (2) Trials through ``nbops.check_drift`` itself on real
arrays (200 per size up to 1,000 rows, fewer above, where each check costs up to seconds).

What "at or below the p-value" can mean for 200 trials: Bonferroni over k independent tests has a family-wise
error rate just under ``p_val`` (1 - (1 - p_val/k)^k), so at sizes where the significance test decides (up to
about 2,000 rows; measured over 4,000 simulated trials: 4.9% at 100 rows, 4.7% at 1,000) the observed share of
200 trials scatters around 5% with a standard error of 1.5 points. There the test asserts that the observed
share is consistent with a rate at or below ``p_val`` (one-sided exact binomial test at the 1% level). From
10,000 rows on, the effect floor decides and the share must be at or below ``p_val`` outright (it is 0).
"""
import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.drift import stats

ALPHA = 0.05
TRIALS = 200
LITERAL_FROM = 10_000
CAT_P = [np.array([0.4, 0.3, 0.15, 0.1, 0.05]), np.array([0.5, 0.3, 0.2])]


def null_ks(rng, n, m):
    labels = np.zeros(n + m, dtype=bool)
    labels[:n] = True
    rng.shuffle(labels)
    if max(n, m) <= stats.EXACT_MAX_N:  # the ranks are data: the same code path as check_drift
        res = stats.ks_merge(np.flatnonzero(labels).astype(float), np.flatnonzero(~labels).astype(float))
        return res.statistic, res.p_value
    c_ref = np.cumsum(labels)
    c_cur = np.arange(1, n + m + 1) - c_ref
    diffs = c_ref / n - c_cur / m
    d = max(float(diffs.max()), float(np.clip(-diffs.min(), 0, 1)))
    return d, stats.ks_pvalue(d, n, m)


def assert_calibrated(alarms: int, trials: int, n: int, what: str) -> None:
    from scipy.stats import binomtest

    share = alarms / trials
    if n >= LITERAL_FROM:
        assert share <= ALPHA, f"{what}: {alarms} false alarms in {trials} trials at n={n}"
    else:
        p = binomtest(alarms, trials, ALPHA, alternative="greater").pvalue
        assert p >= 0.01, f"{what}: {alarms} false alarms in {trials} trials at n={n} (rate above {ALPHA}, p={p:.3g})"


def null_chi2(rng, n, m, p):
    a, b = rng.multinomial(n, p), rng.multinomial(m, p)
    return stats.tvd(a, b), stats.chi2_counts(a, b)[1]


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 1_000, 10_000, 100_000, 1_000_000])
def test_decision_rule_false_alarm_share_at_most_p_val(n):
    rng = np.random.default_rng(n)
    n_numeric = 3 if n < 1_000_000 else 1  # at 1M each simulated KS statistic shuffles 2M labels
    alarms = {"bonferroni": 0, "fdr": 0}
    alarms_no_floor = 0
    for _ in range(TRIALS):
        m = n if rng.random() < 0.5 else max(50, n // 2)  # equal and unequal sizes
        tests = [null_ks(rng, n, m) for _ in range(n_numeric)] + [null_chi2(rng, n, m, p) for p in CAT_P]
        effects, pvals = zip(*tests)
        for corr in alarms:
            _, flags = stats.decide(pvals, effects, p_val=ALPHA, correction=corr)
            alarms[corr] += bool(flags.any())
        _, flags = stats.decide(pvals, effects, p_val=ALPHA, min_effect=0.0)
        alarms_no_floor += bool(flags.any())
    for corr, k in alarms.items():
        assert_calibrated(k, TRIALS, n, corr)
    # without the effect floor the correction alone is calibrated too (the floor only adds margin)
    assert_calibrated(alarms_no_floor, TRIALS, min(n, LITERAL_FROM - 1), "bonferroni without floor")


def null_frames(rng, n):
    def frame(size):
        df = pd.DataFrame({"x1": rng.normal(size=size), "x2": rng.exponential(size=size),
                           "x3": rng.standard_t(3, size=size),
                           "c1": rng.choice(list("abcde"), size=size, p=CAT_P[0]),
                           "c2": rng.choice(3, size=size, p=CAT_P[1])})
        df.loc[rng.random(size) < 0.1, "x2"] = np.nan  # same missing share on both sides
        return df
    return frame(n), frame(n)


@pytest.mark.parametrize("n,trials", [(100, TRIALS), (1_000, TRIALS), (10_000, 40)])
def test_check_drift_false_alarm_share_at_most_p_val(n, trials):
    rng = np.random.default_rng(100 + n)
    alarms = 0
    for _ in range(trials):
        ref, cur = null_frames(rng, n)
        r = nbops.check_drift(ref, cur, log=False, plots=False)
        assert r.n_tests == 6  # 5 distribution tests + the missing-values test of x2
        alarms += r.is_drift
    assert_calibrated(alarms, trials, n, "check_drift")


@pytest.mark.slow
@pytest.mark.parametrize("n,trials", [(100_000, 8), (1_000_000, 2)])
def test_check_drift_large_samples_no_false_alarm(n, trials):
    rng = np.random.default_rng(200 + n)
    for _ in range(trials):
        ref, cur = null_frames(rng, n)
        r = nbops.check_drift(ref, cur, log=False, plots=False)
        assert not r.is_drift, repr(r)
        assert max(f.effect for f in r) < 0.01  # the effects sit far below the floor at this size

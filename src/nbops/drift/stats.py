"""The statistics of nbops's own drift engine (scipy/numpy), effect sizes, multiple-testing correction, the rule.

Numbers: the two-sample Kolmogorov-Smirnov test (:func:`ks_merge`: one linear merge of the sorted reference,
prepared once, with the sorted batch gives the KS distance, scipy's p-value -- exact up to ``EXACT_MAX_N`` values
per side, where scipy's own ``ks_2samp`` would use it, asymptotic above -- and the Wasserstein distance) or
Cramer-von Mises (:func:`cvm_sorted`, scipy's ``cramervonmises_2samp``). Categories: the chi-squared test of
homogeneity on count vectors (:func:`chi2_counts`, scipy's ``chi2_contingency``); the reference's counts are kept
and the batch is counted with ``bincount``. These are the statistics alibi-detect's ``KSDrift`` / ``CVMDrift`` /
``ChiSquareDrift`` compute; ``tests/alibi/`` checks the agreement to 1e-9 where alibi-detect is installed.
``engine="alibi"`` runs alibi-detect's stock detectors instead (:mod:`nbops.drift.alibi`, optional extra).

The decision rule (:func:`decide`) is a pure function of p-values and effects so the calibration tests can
drive it with simulated statistics as well as through :func:`nbops.check_drift`.

Heavy imports (numpy, scipy) happen inside functions: this module is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass

# Effect sizes all read as "a share of rows": the KS distance (largest difference, over every threshold, in
# the share of rows below it), the total variation distance for categories (share of rows that would have to
# change category) and the change in the share of missing values. 0.05 = five percent of rows.
DEFAULT_MIN_EFFECT = 0.05
DEFAULT_P_VAL = 0.05
EXACT_MAX_N = 10_000          # exact KS p-values up to this many values per side (scipy's own default rule)
LOW_POWER_EFFECT = 0.2      # warn when only changes larger than this can be detected at the sample size
CORRECTIONS = ("bonferroni", "fdr", "none")


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# -- kernels ---------------------------------------------------------------------------------------------------
@dataclass
class KSMerge:
    statistic: float        # KS distance D
    p_value: float          # scipy's two-sided p-value (exact up to EXACT_MAX_N values per side)
    wasserstein: float      # W1 between the two empirical distributions (data units)


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided asymptotic KS p-value exactly as ``scipy.stats.ks_2samp(method="asymp")`` computes it."""
    import numpy as np
    from scipy.stats import distributions

    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    return float(np.clip(distributions.kstwo.sf(d, np.round(en)), 0, 1))


def ks_critical(alpha: float, n: int, m: int) -> float:
    """The smallest KS distance that reaches ``alpha`` at these sample sizes (for the low-power warning)."""
    import numpy as np
    from scipy.stats import distributions

    en = n * m / (n + m)
    return float(distributions.kstwo.isf(alpha, max(1, np.round(en))))


def ks_merge(ref_sorted, cur_sorted) -> KSMerge:
    """KS distance, p-value and Wasserstein-1 from two sorted samples with one stable merge.

    The ECDFs are evaluated (right-continuous, ties grouped) at every distinct value of the union, which is
    where scipy's ``ks_2samp`` evaluates them, with the same float arithmetic (``count / n``)."""
    import numpy as np

    n, m = len(ref_sorted), len(cur_sorted)
    both = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(both, kind="stable")  # timsort: two sorted runs -> a linear merge
    vals = both[order]
    c_ref = np.cumsum(order < n)
    last = np.empty(n + m, dtype=bool)
    np.not_equal(vals[1:], vals[:-1], out=last[:-1])
    last[-1] = True
    c_ref = c_ref[last]
    c_cur = np.flatnonzero(last) + 1 - c_ref
    diffs = c_ref / n - c_cur / m
    max_s = float(diffs.max())
    min_s = float(np.clip(-diffs.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    v = vals[last]
    with np.errstate(invalid="ignore", over="ignore"):
        w1 = float(np.sum(np.abs(diffs[:-1]) * np.diff(v))) if len(v) > 1 else 0.0
    if max(n, m) <= EXACT_MAX_N:
        import warnings

        from scipy.stats import ks_2samp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy falls back to asymp itself when exact does not converge
            res = ks_2samp(ref_sorted, cur_sorted, method="exact")
        d, p = float(res.statistic), float(res.pvalue)  # scipy rounds D onto the n*m lattice here
    else:
        p = ks_pvalue(d, n, m)
    return KSMerge(statistic=d, p_value=p, wasserstein=w1)


def cvm_sorted(ref_sorted, cur_sorted) -> tuple[float, float]:
    """Two-sample Cramer-von Mises statistic and p-value, as ``scipy.stats.cramervonmises_2samp`` gives them
    (scipy's ``auto`` rule: exact for small samples, asymptotic otherwise)."""
    from scipy.stats import cramervonmises_2samp

    res = cramervonmises_2samp(ref_sorted, cur_sorted)
    return float(res.statistic), float(min(1.0, max(0.0, res.pvalue)))


def chi2_counts(ref_counts, cur_counts) -> tuple[float, float]:
    """Chi-squared test of homogeneity on two count vectors (categories seen on neither side dropped), with
    ``scipy.stats.chi2_contingency`` (as alibi-detect's ChiSquareDrift computes it)."""
    import numpy as np
    from scipy.stats import chi2_contingency

    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    stat, p, _, _ = chi2_contingency(table)
    return float(stat), float(p)


def tvd(ref_counts, cur_counts) -> float:
    """Total variation distance between two count vectors: the share of rows that changed category."""
    import numpy as np

    p = np.asarray(ref_counts, float) / max(1, np.sum(ref_counts))
    q = np.asarray(cur_counts, float) / max(1, np.sum(cur_counts))
    return float(0.5 * np.abs(p - q).sum())


def psi(ref_counts, cur_counts, eps: float = 1e-4) -> float:
    """Population stability index (shares floored at ``eps`` so an empty category does not make it infinite)."""
    import numpy as np

    p = np.maximum(np.asarray(ref_counts, float) / max(1, np.sum(ref_counts)), eps)
    q = np.maximum(np.asarray(cur_counts, float) / max(1, np.sum(cur_counts)), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def missing_test(miss_ref: int, n_ref: int, miss_cur: int, n_cur: int) -> tuple[float, float, float]:
    """Did the share of missing values change? ``(chi2, p_value, |share difference|)``; 2x2 chi-squared with
    Yates' continuity correction."""
    effect = abs(miss_cur / n_cur - miss_ref / n_ref)
    if miss_ref + miss_cur == 0 or (miss_ref == n_ref and miss_cur == n_cur):
        return 0.0, 1.0, effect
    stat, p = chi2_counts([miss_ref, n_ref - miss_ref], [miss_cur, n_cur - miss_cur])
    return stat, p, effect


# -- the rule ---------------------------------------------------------------------------------------------------
def adjust(p_values, correction: str = "bonferroni"):
    """Adjusted p-values over the family: Bonferroni (``p * k``), Benjamini-Hochberg (``fdr``) or none."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    k = len(p)
    if k == 0 or correction == "none":
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(1.0, p * k)
    if correction == "fdr":
        order = np.argsort(p)
        ranked = p[order] * k / np.arange(1, k + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty(k)
        out[order] = np.minimum(1.0, ranked)
        return out
    raise ValueError(correction)


def decide(p_values, effects, p_val: float = DEFAULT_P_VAL, correction: str = "bonferroni",
           min_effect: float = DEFAULT_MIN_EFFECT):
    """The decision for every test of a family: ``(adjusted p-values, drifted flags)``. A test flags drift when
    its adjusted p-value is below ``p_val`` and its effect size is at least ``min_effect``."""
    import numpy as np

    adj = adjust(p_values, correction)
    flags = (adj < p_val) & (np.asarray(effects, dtype=float) >= min_effect)
    return adj, flags

"""The checks nbops adds to pandera (registered once, on first use), so a contract is a plain pandera schema:
``pandera.DataFrameSchema.from_yaml`` reads a contract file once this module is imported.

- ``nbops_kind(kind)``: the logical type (integer, float, bool, string, datetime), not the exact dtype: an int
  column read back as float because it gained a missing value still holds integers; ``str`` (pandas 3) and
  ``object`` (pandas 2) are both strings. Element-wise, so the offending values are the failure cases.
- ``nbops_missing_share(max_share, ref_rows)``: the missing share of a batch is not significantly above
  ``max_share`` (one-sided binomial test at 0.1%, so a 10-row batch with one missing value is not a violation of
  a 2% bound); ``max_share: 0`` (the reference had none) tolerates what :func:`rare_by_chance` allows.
- ``nbops_range(min_value, max_value, ref_rows)``: like pandera's ``in_range``, but a handful of values beyond the
  bound is tolerated when a sample of ``ref_rows`` rows from the same source would show as many by chance
  (:func:`rare_by_chance`); a negative value in a non-negative range, or one further out than ten range widths,
  never is.
- ``nbops_categories(allowed, ref_rows, singletons, doubletons)``: like pandera's ``isin``, but rows of unseen
  categories are tolerated as far as the reference's own rarity allows: ``singletons`` of its ``ref_rows`` rows
  held a category seen once, so about that share of the source's rows belong to categories a sample misses
  (Good-Turing, :func:`unseen_by_chance`; ``doubletons`` sizes the chance spread), or as far as a random split
  of reference and batch explains (at 1%); see :func:`category_mask`. Leave ``ref_rows`` out (or use pandera's own
  ``in_range`` / ``isin``) for a bound with no tolerance.
- ``nbops_row_count(min_rows, max_rows)``: the row-count band.
"""
from __future__ import annotations

import math

ALPHA = 0.001          # significance of the missing-share test and of rare_by_chance
SPLIT_ALPHA = 0.01     # unseen rows a random split of the pooled rows puts all in the batch this often: chance
HARD_WIDTHS = 10       # a value further out than this many range widths is never "rare by chance"
KINDS = ("integer", "float", "bool", "string", "datetime", "any")
_registered = False


def kind_of(series) -> str:
    """The logical kind of a pandas Series."""
    import pandas as pd
    from pandas.api import types as t

    d = series.dtype
    if t.is_bool_dtype(d):
        return "bool"
    if t.is_integer_dtype(d):
        return "integer"
    if t.is_float_dtype(d):
        return "float"
    if t.is_datetime64_any_dtype(d):
        return "datetime"
    if isinstance(d, pd.CategoricalDtype):
        return kind_of(pd.Series(d.categories)) if len(d.categories) else "string"
    if t.is_string_dtype(d) or d == object:
        vals = series.dropna()
        if len(vals) and all(isinstance(v, bool) for v in vals.iloc[:1000]):
            return "bool"
        return "string"
    return "any"


def kind_mask(series, kind: str):
    """Boolean Series: True where the value fits ``kind`` (nulls are handled by nullability, not here)."""
    import numpy as np
    import pandas as pd
    from pandas.api import types as t

    s = series
    d = s.dtype
    if isinstance(d, pd.CategoricalDtype):
        s = s.astype(object)
        d = s.dtype
    if kind == "any":
        return pd.Series(True, index=s.index)
    if kind == "integer":
        if t.is_bool_dtype(d):
            return pd.Series(False, index=s.index)
        if t.is_integer_dtype(d):
            return pd.Series(True, index=s.index)
        if t.is_float_dtype(d):
            v = s.to_numpy(dtype="float64", na_value=np.nan)
            return pd.Series(np.isnan(v) | (np.isfinite(v) & (np.floor(v) == v)), index=s.index)
        return s.map(lambda v: v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)))
                     or (isinstance(v, float) and (v != v or v.is_integer())))
    if kind == "float":
        if t.is_bool_dtype(d):
            return pd.Series(False, index=s.index)
        if t.is_numeric_dtype(d):
            return pd.Series(True, index=s.index)
        return s.map(lambda v: v is None or (isinstance(v, (int, float, np.integer, np.floating))
                                             and not isinstance(v, (bool, np.bool_))))
    if kind == "bool":
        if t.is_bool_dtype(d):
            return pd.Series(True, index=s.index)
        return s.map(lambda v: v is None or isinstance(v, (bool, np.bool_)) or (isinstance(v, float) and v != v))
    if kind == "string":
        if t.is_string_dtype(d) and d != object:
            return pd.Series(True, index=s.index)
        if d == object:
            return s.map(lambda v: v is None or isinstance(v, str) or (isinstance(v, float) and v != v))
        return pd.Series(False, index=s.index)
    if kind == "datetime":
        if t.is_datetime64_any_dtype(d):
            return pd.Series(True, index=s.index)
        return s.map(lambda v: v is None or isinstance(v, (pd.Timestamp, np.datetime64))
                     or (isinstance(v, float) and v != v))
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


def missing_share_ok(n_missing: int, n: int, max_share: float, ref_rows: int | None = None) -> bool:
    """False when ``n_missing`` of ``n`` is significantly more than ``max_share`` (one-sided, ALPHA). A share of
    0 (the reference had none) tolerates only what :func:`rare_by_chance` allows against ``ref_rows``."""
    if n == 0 or n_missing == 0:
        return True
    if max_share <= 0:
        return rare_by_chance(n_missing, n, ref_rows)
    if max_share >= 1:
        return True
    from scipy.special import bdtrc  # binom.sf(k - 1, n, p) without importing scipy.stats

    return bool(bdtrc(n_missing - 1, n, max_share) >= ALPHA)


def rare_by_chance(k: int, m: int, n: int | None, alpha: float = ALPHA) -> bool:
    """True when ``k`` of a batch of ``m`` rows falling outside what ``n`` reference rows showed is what chance
    alone gives often enough (p >= ``alpha``). Exchangeability makes this distribution-free: the chance that the ``k``
    most extreme (or only) values of the pooled ``n + m`` rows all sit in the batch is C(m,k) / C(n+m,k).
    ``n`` None (a hand-written bound) tolerates nothing."""
    if k <= 0:
        return True
    if not n or n <= 0 or k > m:
        return False
    log_p = 0.0
    for i in range(k):
        log_p += math.log((m - i) / (n + m - i))
        if log_p < math.log(alpha):
            return False
    return True


def range_mask(series, min_value, max_value, ref_rows):
    """True where a value is in range -- or out of it on a side where so few values are out that a sample of the
    reference's own source would show as many (a storm day beyond every day of the reference). Never tolerated:
    a negative value where the bound is non-negative, a value further out than ten times the range's width."""
    import numpy as np
    import pandas as pd

    v = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ok = np.ones(len(v), dtype=bool)
    lo = -np.inf if min_value is None else float(min_value)
    hi = np.inf if max_value is None else float(max_value)
    width = hi - lo if np.isfinite(hi - lo) and hi > lo else np.inf  # a constant column has no width to go by
    with np.errstate(invalid="ignore"):
        below, above = v < lo, v > hi
        hard = (v < lo - HARD_WIDTHS * width) | (v > hi + HARD_WIDTHS * width)
        if lo >= 0:
            hard |= v < 0
    m = int(np.count_nonzero(~np.isnan(v)))
    for side, bad in zip((below, above), range_sides_bad(int(below.sum()), int(above.sum()), m, ref_rows)):
        if bad:
            ok &= ~side
    ok &= ~hard
    return pd.Series(ok, index=series.index)


def range_sides_bad(k_below: int, k_above: int, m: int, ref_rows) -> tuple[bool, bool]:
    """Are the ``k_below`` / ``k_above`` values (of ``m``) beyond each bound violations, or few enough to be chance?
    (The values beyond the hard limits are violations either way: :func:`range_mask`.)"""
    return tuple(bool(k) and not rare_by_chance(k, m, ref_rows) for k in (k_below, k_above))


def hard_limits(min_value, max_value) -> tuple[float, float, bool]:
    """``(low, high, non_negative)``: values below ``low`` or above ``high`` (or negative where ``non_negative``)
    are never chance (:func:`range_mask`)."""
    lo = -math.inf if min_value is None else float(min_value)
    hi = math.inf if max_value is None else float(max_value)
    width = hi - lo if math.isfinite(hi - lo) and hi > lo else math.inf
    return lo - HARD_WIDTHS * width, hi + HARD_WIDTHS * width, lo >= 0


def unseen_by_chance(k: int, m: int, n: int | None, singletons: int | None, doubletons: int = 0) -> bool:
    """True when ``k`` rows of unseen categories in a batch of ``m`` are what a random sample of the reference's
    source gives often enough (p >= ALPHA).

    Good-Turing: of ``n`` reference rows, ``singletons`` (N1) held a category seen exactly once; about N1/n of the
    source's rows then belong to categories the reference missed, so a batch of ``m = t * n`` rows holds about
    ``t * N1`` of them. They come in clumps (a missed category brings all its rows), and N1 itself is a sample:
    with the reference's ``doubletons`` (N2) the variance is about ``t * N1 + t**2 * (N1 + 2 * N2)``
    (Poisson-mixture moments); the tail is read from the negative binomial with that mean and variance. A
    reference without singletons but with doubletons still shows a rare tail (N2 stands in for N1); one with
    neither allows nothing."""
    if k <= 0:
        return True
    if not n or n <= 0 or k > m:
        return False
    rare = singletons if singletons and singletons > 0 else doubletons
    if not rare or rare <= 0:
        return False
    from scipy.special import betainc  # the negative binomial's tail without importing scipy.stats

    t = m / n
    mean = t * rare
    var = mean + t * t * (rare + 2 * max(0, doubletons or 0))
    p = mean / var
    r = mean * p / (1 - p)          # NB(r, p): mean r(1-p)/p, variance r(1-p)/p**2
    return bool(betainc(k, r, 1 - p) >= ALPHA)   # P(X >= k)


def category_mask(series, allowed, ref_rows, singletons=None, doubletons=None):
    """True where a value is a known category -- or an unseen one that chance explains. The unseen rows together
    are chance when the reference's own rarity allows as many (:func:`unseen_by_chance`: none for a reference
    without rare values) or when a random split of the pooled reference and batch rows would put them all in the
    batch at least 1% of the time (:func:`rare_by_chance` at SPLIT_ALPHA: exact and distribution-free, so a value
    as rare as 3 hours of heavy rain in two years of hourly data, which a random half can miss, is not flagged);
    each unseen category must also be that rare on its own (:func:`rare_by_chance`, corrected for the number of
    categories). A contract without ``singletons`` (written by an earlier nbops) judges the unseen rows by
    :func:`rare_by_chance` at ALPHA alone."""
    import pandas as pd

    known = series.isin(list(allowed))
    unseen = ~known & series.notna()
    k_all = int(unseen.sum())
    if not k_all:
        return pd.Series(True, index=series.index)
    m = int(series.notna().sum())
    counts = series[unseen].astype(object).value_counts()
    bad = unseen_bad(dict(counts.items()), k_all, m, len(allowed), ref_rows, singletons, doubletons)
    if bad is None:
        return ~unseen
    return ~(unseen & series.isin(bad)) if bad else pd.Series(True, index=series.index)


def unseen_bad(counts: dict, k_all: int, m: int, n_allowed: int, ref_rows, singletons=None, doubletons=None):
    """Which unseen categories are violations, from their row counts (``counts``: value -> rows; ``k_all`` rows of
    unseen categories in a batch of ``m`` present values): ``None`` when the unseen rows together are more than
    chance explains (every one is a violation), else the list of values too frequent on their own (see
    :func:`category_mask`)."""
    if singletons is None:
        together, alpha = rare_by_chance(k_all, m, ref_rows), ALPHA
    else:
        together = unseen_by_chance(k_all, m, ref_rows, int(singletons), int(doubletons or 0)) \
            or rare_by_chance(k_all, m, ref_rows, SPLIT_ALPHA)
        alpha = ALPHA / (n_allowed + len(counts))   # the rarest of many categories: one test per category
    if not together:
        return None
    return [v for v, k in counts.items() if not rare_by_chance(int(k), m, ref_rows, alpha)]


def register() -> None:
    """Register nbops's checks with pandera (idempotent)."""
    global _registered
    if _registered:
        return
    import pandas as pd
    from pandera import extensions

    try:
        @extensions.register_check_method(statistics=["kind"], supported_types=pd.Series)
        def nbops_kind(series, *, kind):
            return kind_mask(series, kind)

        @extensions.register_check_method(statistics=["max_share", "ref_rows"], supported_types=pd.Series)
        def nbops_missing_share(series, *, max_share, ref_rows=None):
            return missing_share_ok(int(series.isna().sum()), len(series), float(max_share), ref_rows)

        @extensions.register_check_method(statistics=["min_value", "max_value", "ref_rows"],
                                          supported_types=pd.Series)
        def nbops_range(series, *, min_value, max_value, ref_rows=None):
            return range_mask(series, min_value, max_value, ref_rows)

        @extensions.register_check_method(statistics=["allowed", "ref_rows", "singletons", "doubletons"],
                                          supported_types=pd.Series)
        def nbops_categories(series, *, allowed, ref_rows=None, singletons=None, doubletons=None):
            return category_mask(series, allowed, ref_rows, singletons, doubletons)

        @extensions.register_check_method(statistics=["min_rows", "max_rows"], supported_types=pd.DataFrame)
        def nbops_row_count(df, *, min_rows, max_rows):
            n = len(df)
            return (min_rows is None or n >= min_rows) and (max_rows is None or n <= max_rows)
    except ValueError as exc:  # registered by an earlier import of this module (a reload)
        if "already" not in str(exc):
            raise
    _registered = True

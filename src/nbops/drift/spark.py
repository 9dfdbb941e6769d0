"""Drift checks on Spark DataFrames (classic and Spark Connect): the statistics are computed where the data lives.

The Spark engine produces the same :class:`~nbops.drift.report.DriftReport` as the pandas engine, with the same
column typing rules (:mod:`nbops.drift.columns`), the same tests, effect sizes, multiple-testing correction and
effect rule (:func:`nbops.drift.check.finish`). Only counts, sketches and small samples reach the driver.

- **One scan per side** for the column figures. The reference's aggregate also types the columns (counts,
  missing values, min/max, mean/std, approximate distinct counts; exact distinct counts only for the integer
  columns that may be identifiers or small sets of codes), then one ``groupBy`` counts its categories. The
  current side's aggregate holds only what the tests read: missing values, min/max, and in the same scan the
  counts of the reference's labels (a ``groupBy`` only for columns where new labels appear). In sketch mode both
  are code-generated: the reference's approximate distinct counts (HyperLogLog++, which Spark does not
  code-generate) go with its sketches into a second job (see below).
- **Exact mode** (default): numbers get the exact two-sample KS distance, with Spark SQL only (no Python
  workers). Both sides' values go into one long frame (column, value, side), cut per column into equal-width
  value ranges between the two sides' min and max (equal values share a range); a window over each range, ordered by value
  with a RANGE frame (ties together), gives both sides' cumulative counts, and one aggregate per range keeps its
  counts and the cumulative counts where the ECDF difference is largest and smallest. The driver chains the
  ranges in value order and evaluates the ECDFs there with the pandas engine's arithmetic (``count / n``), so D is
  the one ``scipy.stats.ks_2samp`` gives on the collected data. The p-value is scipy's asymptotic one (as the
  pandas engine above ``EXACT_MAX_N`` values per side; up to that, the column's values are small enough to
  collect and go through :func:`stats.ks_merge`).
- **Sketch mode** (``sketch=True``): an Apache DataSketches KLL sketch per number column and side (the current
  side: only the tested ones), built per partition and merged by Spark's own aggregate (``kll_sketch_agg_double``,
  Spark 4.1+; on an older Spark, built in Python with mapInPandas and merged on the driver), in a job of its own
  per side: a KLL aggregate is an ObjectHashAggregate, which Spark does not code-generate, and in one aggregate
  with the other figures it made all of them as slow (apart they cost less, although each side is read twice:
  ``benchmarks/spark.py --kll-paths``). The driver reads them with ``datasketches`` and takes the KS distance
  between the two sketches' CDFs over the union of their retained items. The sketches' normalized rank errors
  ``eps_ref + eps_cur`` (99% confidence) bound how far that distance can be from the exact one: the report
  shows ``statistic`` with ``statistic_error``, and the decision uses the least distance the sketches allow,
  ``D - eps_ref - eps_cur``, as the effect and for the p-value. A difference within the sketches' error is never
  called drift.
- **Categories** (both modes): exact counts per value (see above), chi-squared and total variation distance as in
  the pandas engine.
- **Plots** use a small random sample per side (at most ``PLOT_ROWS`` rows); ``plots=False`` reads nothing for
  them.

pyspark and datasketches are imported inside the functions (``%load_ext nbops`` imports neither).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ..errors import DriftError
from ..sparkframes import FLOAT, INTEGRAL, TEXT
from .columns import DEFAULT_MAX_CATEGORIES, MIN_ID_ROWS, ColumnSpec, _id_named
from .report import FeatureDrift

log = logging.getLogger("nbops")
SKETCH_K = 1000          # KLL accuracy parameter: about 0.3% normalized rank error per sketch
FOLDED_LABELS = 200     # up to this many reference labels in all, the current side counts them in its one scan
PLOT_ROWS = 20_000       # rows per side drawn for the plots
ID_CANDIDATE = 0.8       # approximate distinct share (5% error) above which a distinct count is made exact

_DATETIME = ("DateType", "TimestampType", "TimestampNTZType", "DayTimeIntervalType", "YearMonthIntervalType")


def family_of(dtype) -> str:
    """The dtype family of a Spark type (``number | text | bool | datetime``), as :func:`columns.family` names
    pandas ones; ``""`` for types no drift test reads (arrays, maps, structs, binary)."""
    name = type(dtype).__name__
    if name in INTEGRAL or name in FLOAT or name == "DecimalType":
        return "number"
    if name in TEXT:
        return "text"
    if name == "BooleanType":
        return "bool"
    if name in _DATETIME:
        return "datetime"
    return ""


@dataclass
class _Side:
    """One side's aggregates: rows, and per column missing, present, min, max, mean, std, distinct (approx)."""
    n: int
    cols: dict


def _col(sdf, name):
    return sdf[name]


def _aggregate(sdf, names, fams, types, *, reference: bool, mean: bool = True,
               labels: dict | None = None, sketch: bool = False) -> _Side:
    """One Spark job (one scan of ``sdf``): row count and, per column, missing values (null, and NaN for floats);
    min / max of numbers. ``reference``: the typing figures too (population std and mean, non-integral values of
    floats, approximate distinct counts of text and integers); else the mean only if ``mean`` (for the plots).
    ``labels``: ``{column: [label, ...]}`` counted in the same scan (with the count of every present label, so
    labels outside the list show as ``others``) instead of a ``groupBy``. ``sketch`` (a reference in sketch mode):
    a second job builds the KLL sketches of the number columns (``"sketch"``) and takes the approximate distinct
    counts there. Neither a sketch nor a distinct count (HyperLogLog++) is code-generated, and either one in an
    aggregate makes Spark run all of it without code generation: apart, the figures stay fast."""
    from pyspark.sql import functions as F

    labels = labels or {}
    exprs = [F.count(F.lit(1)).alias("__n")]
    for i, name in enumerate(names):
        c = _col(sdf, name)
        t = type(types[name]).__name__
        miss = c.isNull() | F.isnan(c) if t in FLOAT else c.isNull()
        exprs.append(F.sum(F.when(miss, 1).otherwise(0)).alias(f"m{i}"))
        if fams[name] in ("number", "bool"):
            x = c.cast("double")
            x = F.when(~F.isnan(x), x) if t in FLOAT else x
            exprs += [F.min(x).alias(f"lo{i}"), F.max(x).alias(f"hi{i}")]
            if reference or mean:
                exprs.append(F.avg(x).alias(f"mu{i}"))
            if reference:
                exprs.append(F.stddev_pop(x).alias(f"sd{i}"))
                if t in FLOAT or t == "DecimalType":
                    exprs.append(F.sum(F.when(x != F.floor(x), 1).otherwise(0)).alias(f"fr{i}"))
        if reference and not sketch and (fams[name] == "text" or t in INTEGRAL):
            exprs.append(F.approx_count_distinct(c).alias(f"d{i}"))   # 5% error: a screen for exact counts
        if name in labels:
            lab = _as_label(sdf, name, types[name])
            exprs.append(F.count(lab).alias(f"lt{i}"))
            exprs += [F.sum(F.when(lab == F.lit(v), 1).otherwise(0)).alias(f"l{i}_{j}")
                      for j, v in enumerate(labels[name])]
    row = sdf.agg(*exprs).collect()[0].asDict()
    n = int(row["__n"])
    cols = {}
    for i, name in enumerate(names):
        get = lambda k: row.get(f"{k}{i}")  # noqa: E731
        c = cols[name] = {"missing": int(get("m") or 0), "min": get("lo"), "max": get("hi"), "mean": get("mu"),
                          "std": get("sd"), "fractional": get("fr"), "distinct": get("d")}
        c["present"] = n - c["missing"]
        if name in labels:
            counts = [int(row[f"l{i}_{j}"] or 0) for j in range(len(labels[name]))]
            c["labels"] = {v: k for v, k in zip(labels[name], counts) if k}
            c["others"] = int(get("lt") or 0) - sum(counts)
    if sketch:
        distinct = [n for n in names if fams[n] == "text" or type(types[n]).__name__ in INTEGRAL] if reference else []
        numbers = [n for n in names if fams[n] == "number"]
        sk, d = _sketch_job(sdf, numbers, distinct) if numbers or distinct else ({}, {})
        for name in names:
            cols[name].update(sketch=sk.get(name), distinct=d.get(name, cols[name]["distinct"]))
    return _Side(n, cols)


def _exact_distinct(sdf, names) -> dict:
    from pyspark.sql import functions as F

    if not names:
        return {}
    row = sdf.agg(*[F.countDistinct(_col(sdf, n)).alias(f"d{i}") for i, n in enumerate(names)]).collect()[0]
    return {n: int(row[f"d{i}"]) for i, n in enumerate(names)}


def classify(sdf, names, roles, types, fams, side: _Side, categorical=(), numeric=(),
             max_categories: int = DEFAULT_MAX_CATEGORIES) -> dict[str, ColumnSpec]:
    """Each column's :class:`ColumnSpec`, by the rules of :func:`nbops.drift.columns.infer_spec`, read from the
    schema and the reference side's aggregates. One difference: Spark rows have no order, so an integer column is
    an identifier when all its values are distinct and they fill their range or it is named like one."""
    role_of = dict(roles)
    specs: dict[str, ColumnSpec] = {}
    exact_needed = []
    floats = [n for n in names if n not in categorical and n not in numeric and fams[n] == "number"
              and side.cols[n]["fractional"] == 0 and side.cols[n]["present"]]
    if floats:   # integral values in a float column: a few codes (categories) or a quantity?
        from pyspark.sql import functions as F

        row = sdf.agg(*[F.approx_count_distinct(sdf[n]).alias(f"d{i}") for i, n in enumerate(floats)]).collect()[0]
        for i, n in enumerate(floats):
            side.cols[n]["distinct"] = int(row[f"d{i}"])
    for name in names:
        fam, c = fams[name], side.cols[name]
        integral = type(types[name]).__name__ in INTEGRAL
        approx = c["distinct"] or 0
        if name not in categorical and name not in numeric and fam == "number" and c["present"] and (
                (integral and approx >= ID_CANDIDATE * c["present"]) or
                ((integral or c["fractional"] == 0) and approx <= 2 * max_categories)):
            exact_needed.append(name)
        if name not in categorical and name not in numeric and fam == "text" and _id_named(name) \
                and approx >= ID_CANDIDATE * c["present"]:
            exact_needed.append(name)
    exact = _exact_distinct(sdf, exact_needed)
    for name in names:
        role, fam, c = role_of[name], fams[name], side.cols[name]
        n_ref = c["present"]
        distinct = exact.get(name, c["distinct"] or 0)
        if name in numeric:
            if fam not in ("number", "bool"):
                raise DriftError(f"Column {name!r} is {fam} ({types[name].simpleString()}); it cannot be tested as "
                                 f"numeric.", column=name)
            specs[name] = ColumnSpec(name, "numeric", role, fam)
        elif name in categorical:
            specs[name] = ColumnSpec(name, "categorical", role, fam)
        elif fam == "datetime":
            specs[name] = ColumnSpec(name, "datetime", role, fam, "datetime column skipped (compare derived features "
                                                                  "such as hour or weekday instead)")
        elif fam == "text":
            if (n_ref > 50 and distinct > 0.5 * n_ref and distinct > 100) or \
                    (n_ref > MIN_ID_ROWS and distinct == n_ref and _id_named(name)):
                specs[name] = ColumnSpec(name, "identifier", role, fam, f"skipped: {distinct:,} distinct values in "
                                         f"{n_ref:,} rows looks like an identifier (pass categorical=[{name!r}] to "
                                         f"test it anyway)")
            else:
                specs[name] = ColumnSpec(name, "categorical", role, fam)
        elif fam == "bool":
            specs[name] = ColumnSpec(name, "categorical", role, fam)
        else:
            integral = type(types[name]).__name__ in INTEGRAL
            spec = ColumnSpec(name, "numeric", role, fam)
            if integral or (c["fractional"] == 0 and n_ref):
                why = ""
                if integral and n_ref > MIN_ID_ROWS and distinct == n_ref:
                    lo, hi = c["min"], c["max"]
                    if hi - lo + 1 <= 2 * n_ref:
                        why = f"{n_ref:,} distinct integers filling {lo:.0f}..{hi:.0f}"
                    elif _id_named(name):
                        why = f"{n_ref:,} distinct integers in a column named {name!r}"
                if why:
                    spec = ColumnSpec(name, "identifier", role, fam, f"skipped: {why} looks like an identifier "
                                                                     f"(pass numeric=[{name!r}] to test it anyway)")
                elif name in exact and distinct <= max_categories:
                    spec = ColumnSpec(name, "categorical", role, fam,
                                      f"{distinct} integer values: tested as categories")
            specs[name] = spec
    return specs


def _spark_of(sdf):
    return sdf.sparkSession


def as_spark(obj, like, side: str):
    """``obj`` as a Spark DataFrame: itself, or a pandas frame (a reference snapshot, a small batch) put into
    ``like``'s session."""
    from ..sparkframes import is_spark

    if is_spark(obj):
        return obj
    from .columns import as_frame

    df = as_frame(obj, side)
    return _spark_of(like).createDataFrame(df)


def _check_names(sdf, side: str) -> None:
    cols = list(sdf.columns)
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise DriftError(f"The {side} frame has duplicated column names {dup}; rename them first.", side=side)


def compare(ref_sdf, cur_sdf, *, features=None, categorical=None, numeric=None, target=None, prediction=None,
            p_val, correction, min_effect, sketch: bool = False, max_categories=None, plots: bool = True,
            seed: int = 0):
    """The Spark engine: ``(DriftReport, n_ref_rows, n_cur_rows)``. Raises a DriftError for every bad input before
    any test runs."""
    from .check import finish
    from .columns import select_columns
    from .reference import forced_types

    _check_names(ref_sdf, "reference")
    _check_names(cur_sdf, "current")
    roles = select_columns(ref_sdf, cur_sdf, features=features, target=target, prediction=prediction)
    categorical, numeric = forced_types(roles, categorical, numeric)
    names = [c for c, _ in roles]
    rtypes = {f.name: f.dataType for f in ref_sdf.schema.fields}
    ctypes = {f.name: f.dataType for f in cur_sdf.schema.fields}
    rfam = {n: family_of(rtypes[n]) for n in names}
    cfam = {n: family_of(ctypes[n]) for n in names}
    odd = [f"{n} ({t.simpleString()})" for n, t in ((n, rtypes[n]) for n in names) if not rfam[n]] + \
        [f"{n} ({t.simpleString()})" for n, t in ((n, ctypes[n]) for n in names) if not cfam[n] and rfam[n]]
    if odd:
        raise DriftError(f"Columns {odd} hold values no drift test reads; leave them out with features=[...] "
                         f"(--features).", columns=odd)
    ref = _aggregate(ref_sdf, names, rfam, rtypes, reference=True, sketch=sketch)
    if ref.n < 2:
        raise DriftError(f"The reference frame has {ref.n} row(s); a drift check needs at least 2 rows on both "
                         f"sides (a few hundred for a useful test).", side="reference")
    all_missing = [n for n in names if ref.cols[n]["present"] == 0]
    if all_missing:
        raise DriftError(f"Columns {all_missing} have no values at all in the reference; there is no distribution "
                         f"to compare with. Leave them out (features=[...]) or fix the reference.",
                         columns=all_missing)
    specs = classify(ref_sdf, names, roles, rtypes, rfam, ref, categorical, numeric,
                     max_categories or DEFAULT_MAX_CATEGORIES)
    num = [n for n in names if specs[n].kind == "numeric"]
    cat = [n for n in names if specs[n].kind == "categorical"]
    rc = category_counts(ref_sdf, cat, rtypes) if cat else {}
    # the current side in one scan: its figures and its counts of the reference's labels
    folded = {n: sorted(rc[n]) for n in cat} if sum(len(rc[n]) for n in cat) <= FOLDED_LABELS else {}
    cur = _aggregate(cur_sdf, names, cfam, ctypes, reference=False, mean=plots,
                     labels=folded)
    if cur.n < 2:
        raise DriftError(f"The current frame has {cur.n} row(s); a drift check needs at least 2 rows on both "
                         f"sides (a few hundred for a useful test).", side="current")
    from .columns import _COMPATIBLE, _DESC

    for n in names:
        if cur.cols[n]["present"] and frozenset({rfam[n], cfam[n]}) not in _COMPATIBLE:
            raise DriftError(f"Column {n!r} is {_DESC[rfam[n]]} ({rtypes[n].simpleString()}) in the reference but "
                             f"{_DESC[cfam[n]]} ({ctypes[n].simpleString()}) in the current batch; cast one side or "
                             f"leave the column out.", column=n)
    rows = {n: FeatureDrift(n, role=r, kind=specs[n].kind, note=specs[n].note) for n, r in roles}
    distinct: dict[str, int] = {}
    if num:
        small = [n for n in num if max(ref.cols[n]["present"], cur.cols[n]["present"]) <= _exact_max_n()]
        big = [n for n in num if n not in small]
        if small:
            _numeric_collected(ref_sdf, cur_sdf, small, rows)
        if big:
            (_numeric_sketch if sketch else _numeric_exact)(ref_sdf, cur_sdf, big, ref, cur, rows)
        for n in num:
            distinct[n] = 1 if ref.cols[n]["min"] == ref.cols[n]["max"] else 2
    if cat:
        unfolded = [n for n in cat if n not in folded or cur.cols[n]["others"]]  # new labels: counted by a groupBy
        cc = {n: cur.cols[n]["labels"] for n in cat if n not in unfolded}
        cc.update(category_counts(cur_sdf, unfolded, ctypes) if unfolded else {})
        distinct.update(_categorical(rc, cc, cat, rows, plots))
    from .stats import missing_test

    for n in names:
        row, r, c = rows[n], ref.cols[n], cur.cols[n]
        if row.kind in ("datetime", "identifier"):
            continue
        row.missing_ref, row.missing_cur = r["missing"] / ref.n, c["missing"] / cur.n
        row.n_ref, row.n_cur = r["present"], c["present"]
        if row.n_cur == 0:
            row.test, row.note = "", (row.note + "; " if row.note else "") + "no values in the current batch"
        if r["missing"] or c["missing"]:
            _, row.missing_p, row.missing_effect = missing_test(r["missing"], ref.n, c["missing"], cur.n)
    if plots and num:
        _numeric_plots(ref_sdf, cur_sdf, num, ref, cur, rows, seed)
    report = finish([rows[n] for n in names], distinct, p_val=p_val, correction=correction,
                    min_effect=min_effect, test="ks", engine="nbops")
    report.mode = "sketch" if sketch else "exact"
    return report, ref.n, cur.n


def _exact_max_n() -> int:
    from .stats import EXACT_MAX_N

    return EXACT_MAX_N


# -- numbers ---------------------------------------------------------------------------------------------------
def _long(sdf, cols, side: int):
    """(c: column index, v: value as double, s: side) for every present value of ``cols``."""
    from pyspark.sql import functions as F

    arr = F.array(*[F.struct(F.lit(i).alias("c"), _col(sdf, n).cast("double").alias("v")) for i, n in cols])
    out = sdf.select(F.explode(arr).alias("x")).select(F.col("x.c").alias("c"), F.col("x.v").alias("v"),
                                                       F.lit(side).alias("s"))
    return out.where(F.col("v").isNotNull() & ~F.isnan(F.col("v")))


def _numeric_collected(ref_sdf, cur_sdf, cols, rows) -> None:
    """Columns of at most EXACT_MAX_N values per side: the values are a small sample; the pandas kernel runs."""
    import numpy as np

    from .stats import ks_merge

    def values(sdf, n):
        pdf = sdf.select(_col(sdf, n).cast("double").alias("v")).toPandas()
        x = pdf["v"].to_numpy(dtype="float64", na_value=np.nan)
        return np.sort(x[~np.isnan(x)])

    for n in cols:
        r, c = values(ref_sdf, n), values(cur_sdf, n)
        row = rows[n]
        row.effect_name, row.test = "KS distance", "KS"
        if len(r) and len(c):
            m = ks_merge(r, c)
            row.statistic, row.p_value, row.effect = m.statistic, m.p_value, m.statistic
            sd = float(r.std())
            row.wasserstein_norm = m.wasserstein / sd if sd > 0 else (0.0 if m.wasserstein == 0 else float("inf"))


BUCKETS = 64   # equal-width value ranges per column in exact mode (between both sides' min and max)


def _numeric_exact(ref_sdf, cur_sdf, cols, ref, cur, rows) -> None:
    """Exact KS distances of ``cols`` with Spark SQL only (see the module docs): the long frame of both sides is
    cut into value ranges per column (buckets: equal values share one); a window over each bucket, ordered by
    value with a RANGE frame (ties included), gives the cumulative counts per side -- the ECDFs -- and one
    aggregate per bucket keeps its counts and the cumulative counts where the ECDF difference is largest and
    smallest. The driver chains the buckets in value order."""
    import numpy as np
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from .stats import ks_pvalue

    idx = list(enumerate(cols))
    totals = {i: (ref.cols[n]["present"], cur.cols[n]["present"]) for i, n in idx}
    live = [(i, n) for i, n in idx if all(totals[i])]
    seg = {}
    if live:
        c, v, s = F.col("c"), F.col("v"), F.col("s")

        def per_col(values):
            e = None
            for i, _ in live:
                e = (F.when(c == i, values[i]) if e is None else e.when(c == i, values[i]))
            return e

        lo = {i: min(ref.cols[n]["min"], cur.cols[n]["min"]) for i, n in live}
        width = {i: max(ref.cols[n]["max"], cur.cols[n]["max"]) - lo[i] for i, n in live}
        scale = {i: F.lit(BUCKETS / width[i] if width[i] > 0 and math.isfinite(width[i]) else 0.0) for i, _ in live}
        bucket = F.least(F.lit(BUCKETS - 1), F.floor((v - per_col({i: F.lit(lo[i]) for i, _ in live}))
                                                     * per_col(scale)).cast("int"))
        both = _long(ref_sdf, live, 0).unionByName(_long(cur_sdf, live, 1))
        both = both.withColumn("k", bucket)
        w = Window.partitionBy("c", "k").orderBy("v").rangeBetween(Window.unboundedPreceding, Window.currentRow)
        both = both.withColumn("ca", F.sum(1 - s).over(w)).withColumn("cb", F.sum(s).over(w))
        d = F.col("ca") / per_col({i: F.lit(float(totals[i][0])) for i, _ in live}) - \
            F.col("cb") / per_col({i: F.lit(float(totals[i][1])) for i, _ in live})
        both = both.withColumn("d", d)
        for r in both.groupBy("c", "k").agg(
                F.min("v").alias("first"), F.sum(1 - s).alias("a"), F.sum(s).alias("b"),
                F.max_by(F.struct("ca", "cb"), "d").alias("hi"), F.min_by(F.struct("ca", "cb"), "d").alias("lo")
        ).collect():
            seg.setdefault(int(r["c"]), []).append((r["first"], int(r["a"]), int(r["b"]), int(r["hi"]["ca"]),
                                                    int(r["hi"]["cb"]), int(r["lo"]["ca"]), int(r["lo"]["cb"])))
    for i, name in idx:
        row = rows[name]
        row.effect_name, row.test = "KS distance", "KS"
        n, m = totals[i]
        if not (n and m):
            continue
        parts = np.array(sorted(seg[i]), dtype=np.float64)
        first, a, b, hi_a, hi_b, lo_a, lo_b = parts.T
        pa = np.concatenate([[0], np.cumsum(a)[:-1]])
        pb = np.concatenate([[0], np.cumsum(b)[:-1]])
        # cumulative counts within a bucket are counted from the bucket's start: add the earlier buckets'
        hi = (pa + hi_a) / n - (pb + hi_b) / m
        lo = (pa + lo_a) / n - (pb + lo_b) / m
        max_s, min_s = float(hi.max()), float(np.clip(-lo.min(), 0, 1))
        dd = min_s if min_s > max_s else max_s
        row.statistic, row.effect, row.p_value = dd, dd, ks_pvalue(dd, n, m)


def _sketch_partition(cols: list[int], k: int):
    def run(batches):
        import numpy as np
        import pandas as pd
        from datasketches import kll_doubles_sketch

        sk = {c: kll_doubles_sketch(k) for c in cols}
        for pdf in batches:
            for c in cols:
                x = pdf[f"c{c}"].to_numpy(dtype="float64", na_value=np.nan)
                x = x[~np.isnan(x)]
                if len(x):
                    sk[c].update(x)
        yield pd.DataFrame({"c": list(sk), "sk": [sk[c].serialize() for c in sk]})

    return run


def sketches(sdf, cols, k: int = SKETCH_K) -> dict:
    """``{column: merged kll_doubles_sketch}`` of ``cols``: Spark's own KLL aggregate (``kll_sketch_agg_double``,
    Spark 4.1+: built per partition, merged by Spark, Apache DataSketches' format) read with ``datasketches``; on
    an older Spark, one sketch per partition built in Python (mapInPandas) and merged on the driver."""
    return _sketch_job(sdf, cols, (), k)[0]


def _sketch_job(sdf, cols, distinct=(), k: int = SKETCH_K) -> tuple[dict, dict]:
    """:func:`sketches` of ``cols`` and ``{column: approximate distinct count}`` of ``distinct``, in one job where
    Spark has the KLL aggregate."""
    from datasketches import kll_doubles_sketch
    from pyspark.sql import functions as F

    idx = list(enumerate(cols))

    def x(n):
        v = sdf[n].cast("double")
        return F.when(~F.isnan(v), v)

    out = {n: kll_doubles_sketch(k) for n in cols}
    counts = [F.approx_count_distinct(_col(sdf, n)).alias(f"d{i}") for i, n in enumerate(distinct)]
    if hasattr(F, "kll_sketch_agg_double"):
        row = sdf.agg(*[F.kll_sketch_agg_double(x(n), F.lit(k)).alias(f"k{i}") for i, n in idx], *counts).collect()[0]
        for i, n in idx:
            if row[f"k{i}"] is not None:
                out[n].merge(kll_doubles_sketch.deserialize(bytes(row[f"k{i}"])))
    else:
        if idx:
            proj = sdf.select(*[x(n).alias(f"c{i}") for i, n in idx])
            got = proj.mapInPandas(_sketch_partition([i for i, _ in idx], k), "c int, sk binary").collect()
            for r in got:
                out[cols[r["c"]]].merge(kll_doubles_sketch.deserialize(bytes(r["sk"])))
        row = sdf.agg(*counts).collect()[0] if counts else {}
    return out, {n: int(row[f"d{i}"]) for i, n in enumerate(distinct)}


def sketch_ks(a, b) -> tuple[float, float]:
    """``(D, error)``: the KS distance between two KLL sketches' CDFs, over the union of their retained items, and
    the sum of their normalized rank errors (0 for a sketch that still holds every value)."""
    import numpy as np

    pts = np.unique(np.concatenate([np.fromiter((it for it, _ in a), float), np.fromiter((it for it, _ in b), float)]))
    ca = np.asarray(a.get_cdf(pts, True))[:-1]
    cb = np.asarray(b.get_cdf(pts, True))[:-1]
    d = float(np.max(np.abs(ca - cb))) if len(pts) else 0.0
    err = sum(s.normalized_rank_error(False) if s.is_estimation_mode() else 0.0 for s in (a, b))
    return d, float(err)


def _numeric_sketch(ref_sdf, cur_sdf, cols, ref, cur, rows) -> None:
    import numpy as np

    from .stats import ks_pvalue

    rs = {n: ref.cols[n].get("sketch") for n in cols}
    rs = rs if all(v is not None for v in rs.values()) else sketches(ref_sdf, cols)
    cs = sketches(cur_sdf, cols)
    probs = np.linspace(0, 1, 1001)
    for name in cols:
        row = rows[name]
        row.effect_name, row.test = "KS distance (least the sketches allow)", "KS"
        a, b = rs[name], cs[name]
        if a.is_empty() or b.is_empty():
            continue
        d, err = sketch_ks(a, b)
        low = max(0.0, d - err)
        row.statistic, row.statistic_error, row.effect = d, err, low
        row.p_value = ks_pvalue(low, a.n, b.n) if low > 0 else 1.0
        sd = ref.cols[name]["std"] or 0.0
        w1 = float(np.mean(np.abs(np.asarray(a.get_quantiles(probs)) - np.asarray(b.get_quantiles(probs)))))
        row.wasserstein_norm = w1 / sd if sd > 0 else (0.0 if w1 == 0 else float("inf"))


def _numeric_plots(ref_sdf, cur_sdf, cols, ref, cur, rows, seed) -> None:
    """Histograms and quantiles from a small sample per side (also the Wasserstein estimate where missing)."""
    import numpy as np

    from .check import _numeric_plot_data

    def sample(sdf, n, s):
        frac = min(1.0, 1.2 * PLOT_ROWS / max(1, n))
        pdf = sdf.select(*[_col(sdf, c).cast("double").alias(c) for c in cols])
        pdf = (pdf.sample(fraction=frac, seed=s) if frac < 1 else pdf).limit(PLOT_ROWS).toPandas()
        return {c: np.sort(v[~np.isnan(v)]) for c in cols
                for v in [pdf[c].to_numpy(dtype="float64", na_value=np.nan)]}

    rsm, csm = sample(ref_sdf, ref.n, seed), sample(cur_sdf, cur.n, seed + 1)
    for c in cols:
        r, k = rsm[c], csm[c]
        if not (len(r) and len(k)):
            continue
        rows[c].plot_data = _numeric_plot_data(r, k, ref.cols[c]["mean"], cur.cols[c]["mean"] or float(k.mean()))
        if math.isnan(rows[c].wasserstein_norm):
            probs = np.linspace(0, 1, 1001)
            w1 = float(np.mean(np.abs(np.quantile(r, probs) - np.quantile(k, probs))))
            sd = ref.cols[c]["std"] or 0.0
            rows[c].wasserstein_norm = w1 / sd if sd > 0 else (0.0 if w1 == 0 else float("inf"))


# -- categories ------------------------------------------------------------------------------------------------
def _as_label(sdf, name, dtype):
    """A column as the label text the pandas engine shows: 'True'/'False' for booleans, '3' for integral floats."""
    from pyspark.sql import functions as F

    c = _col(sdf, name)
    t = type(dtype).__name__
    if t == "BooleanType":
        return F.when(c, F.lit("True")).when(~c, F.lit("False"))
    if t in FLOAT or t == "DecimalType":
        x = c.cast("double")
        return F.when(x == F.floor(x), x.cast("long").cast("string")).otherwise(x.cast("string"))
    return c.cast("string")


def category_counts(sdf, cols, types) -> dict:
    """``{column: {label: count}}``: one groupBy over a long frame of (column, label) pairs."""
    from pyspark.sql import functions as F

    arr = F.array(*[F.struct(F.lit(i).alias("c"), _as_label(sdf, n, types[n]).alias("v")) for i, n in enumerate(cols)])
    long = sdf.select(F.explode(arr).alias("x")).select("x.c", "x.v").where(F.col("v").isNotNull())
    out: dict = {n: {} for n in cols}
    for r in long.groupBy("c", "v").count().collect():
        out[cols[r["c"]]][r["v"]] = int(r["count"])
    return out


def _categorical(rc, cc, cols, rows, plots) -> dict:
    """Chi-squared, total variation distance and PSI of each column from both sides' ``{label: count}``."""
    import numpy as np

    from .stats import chi2_counts, psi, tvd

    distinct = {}
    for name in cols:
        row = rows[name]
        row.effect_name = "TV distance"
        labels = sorted(rc[name])
        new = sorted(v for v in cc[name] if v not in rc[name])
        row.new_categories = new
        distinct[name] = len(labels)
        if not cc[name]:
            continue
        allv = labels + new
        ref_counts = np.array([rc[name].get(v, 0) for v in allv], dtype=np.int64)
        cur_counts = np.array([cc[name].get(v, 0) for v in allv], dtype=np.int64)
        row.test = "Chi2"
        row.statistic, row.p_value = chi2_counts(ref_counts, cur_counts)
        row.effect = tvd(ref_counts, cur_counts)
        row.psi = psi(ref_counts, cur_counts)
        if plots:
            order = np.argsort(-(ref_counts + cur_counts), kind="stable")[:30]
            row.plot_data = {"kind": "categorical", "labels": [allv[i] for i in order],
                             "ref": (ref_counts[order] / max(1, ref_counts.sum())).tolist(),
                             "cur": (cur_counts[order] / max(1, cur_counts.sum())).tolist()}
    return distinct


def is_spark_frame(obj) -> bool:
    from ..sparkframes import is_spark

    return is_spark(obj)

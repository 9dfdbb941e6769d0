"""Data contracts on Spark DataFrames: checked and inferred with Spark SQL aggregates, never collecting the frame.

:func:`violations` reads a contract (the pandera schema of :mod:`nbops.validation.contract`) and checks a Spark
frame with one aggregate job for every per-row check (missing values, kinds, values beyond a range), one
``groupBy`` per category set and per key, and ``limit(5)`` queries for the examples. The decisions are the pandas
path's own (:mod:`nbops.validation.checks`: :func:`~nbops.validation.checks.missing_share_ok`,
:func:`~nbops.validation.checks.range_sides_bad`, :func:`~nbops.validation.checks.unseen_bad` -- the Good-Turing
rule for unseen categories), taken on counts. Checks a hand-edited contract may add beyond nbops's own and
pandera's ``in_range`` / ``isin`` are listed in the notes as not checked on Spark.

:func:`infer_contract_spark` builds a contract from aggregates (counts, nulls, min/max, an approximate threshold
for each tail and the values beyond it, category counts when few), by the rules of
:func:`nbops.validation.contract.infer` (``%dataversion`` of a Spark frame can store it with the version).
"""
from __future__ import annotations

import math

from ..errors import DataError
from ..sparkframes import FLOAT, INTEGRAL, TEXT

MAX_EXAMPLES = 5
MAX_UNSEEN = 10_000          # distinct unseen categories counted one by one (the rest: like the least frequent)
TAIL_ACCURACY = 100_000      # percentile_approx accuracy for the tail thresholds (rank error 1e-5)



def kind_of_type(dtype) -> str:
    """The contract kind of a Spark type (as :func:`nbops.validation.checks.kind_of` names pandas dtypes)."""
    t = type(dtype).__name__
    if t in INTEGRAL:
        return "integer"
    if t in FLOAT or t == "DecimalType":
        return "float"
    if t == "BooleanType":
        return "bool"
    if t in TEXT:
        return "string"
    if t in ("DateType", "TimestampType", "TimestampNTZType"):
        return "datetime"
    return "any"


def _missing(c, dtype):
    from pyspark.sql import functions as F

    return c.isNull() | F.isnan(c) if type(dtype).__name__ in FLOAT else c.isNull()


def _kind_bad(c, dtype, kind: str):
    """A condition true on present values that do not fit ``kind`` (None: every value fits)."""
    from pyspark.sql import functions as F

    have = kind_of_type(dtype)
    if kind in ("any", have) or (kind == "float" and have == "integer"):
        return None
    if kind == "integer" and have == "float":
        x = c.cast("double")
        return ~F.isnan(x) & ((x != F.floor(x)) | (F.abs(x) == float("inf")))
    return F.lit(True)


def _checks(col) -> dict:
    return {c.name: dict(c.statistics or {}) for c in col.checks}


def _examples(sdf, name, cond) -> list:
    c = sdf[name]
    rows = sdf.where(cond).groupBy(c.alias("v")).count().orderBy("count", ascending=False).limit(MAX_EXAMPLES)
    return [_plain(r["v"]) for r in rows.collect()]


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def violations(sdf, contract) -> tuple[list[dict], list[str], int]:
    """``(violations, notes, rows)`` of Spark frame ``sdf`` against ``contract``; violations as
    :func:`nbops.validation.api.violations` gives them (column, check, count, examples, detail)."""
    from pyspark.sql import functions as F

    from .api import _detail
    from .checks import hard_limits, missing_share_ok, range_sides_bad

    schema = contract.schema
    types = {f.name: f.dataType for f in sdf.schema.fields}
    out: list[dict] = []
    notes: list[str] = []
    present = [n for n in schema.columns if n in types]
    exprs = [F.count(F.lit(1)).alias("__n")]
    plan = {}
    for i, name in enumerate(present):
        col, c, dt = schema.columns[name], sdf[name], types[name]
        st = _checks(col)
        p = plan[name] = {"st": st, "i": i}
        exprs.append(F.sum(F.when(_missing(c, dt), 1).otherwise(0)).alias(f"m{i}"))
        kind = (st.get("nbops_kind") or {}).get("kind")
        p["kind_bad"] = _kind_bad(c, dt, kind) if kind else None
        if p["kind_bad"] is not None:
            exprs.append(F.sum(F.when(~_missing(c, dt) & p["kind_bad"], 1).otherwise(0)).alias(f"k{i}"))
            continue  # a range or a category set cannot be compared on values of the wrong kind
        rng = st.get("nbops_range") or st.get("in_range")
        if rng is not None and kind_of_type(dt) in ("integer", "float"):
            x = c.cast("double")
            lo = rng.get("min_value")
            hi = rng.get("max_value")
            lo = -math.inf if lo is None else float(lo)
            hi = math.inf if hi is None else float(hi)
            hard_lo, hard_hi, nonneg = hard_limits(lo, hi)
            p["range"] = (lo, hi, hard_lo, hard_hi, nonneg)
            ok = ~F.isnan(x) if type(dt).__name__ in FLOAT else F.lit(True)
            hard_below = (x < hard_lo) | ((x < 0) if nonneg else F.lit(False))
            exprs += [F.sum(F.when(ok & (x < lo), 1).otherwise(0)).alias(f"rb{i}"),
                      F.sum(F.when(ok & (x > hi), 1).otherwise(0)).alias(f"ra{i}"),
                      F.sum(F.when(ok & (x < lo) & hard_below, 1).otherwise(0)).alias(f"hb{i}"),
                      F.sum(F.when(ok & (x > hard_hi), 1).otherwise(0)).alias(f"ha{i}")]
        cats = st.get("nbops_categories")
        if cats is None and st.get("isin") is not None:
            cats = {"allowed": st["isin"].get("allowed_values") or []}
        if cats is not None:
            p["cats"] = cats
            exprs.append(F.sum(F.when(~_missing(c, dt) & ~c.isin(list(cats.get("allowed") or [])), 1)
                               .otherwise(0)).alias(f"u{i}"))
        known = {"nbops_kind", "nbops_range", "in_range", "nbops_categories", "isin", "nbops_missing_share"}
        other = [k for k in st if k not in known]
        if other:
            notes.append(f"{name}: not checked on Spark: {', '.join(other)}")
    row = sdf.agg(*exprs).collect()[0].asDict()
    n = int(row["__n"])
    # columns and frame
    for name, col in schema.columns.items():
        if name not in types and getattr(col, "required", True):
            out.append({"column": name, "check": "missing column", "count": n, "examples": [],
                        "detail": _detail("missing column", name, None, contract, {})})
    if schema.strict:
        for name in types:
            if name not in schema.columns:
                out.append({"column": name, "check": "unexpected column", "count": n, "examples": [],
                            "detail": _detail("unexpected column", name, None, contract, {})})
    for check in schema.checks or []:
        st = dict(check.statistics or {})
        if check.name == "nbops_row_count":
            lo, hi = st.get("min_rows"), st.get("max_rows")
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                out.append({"column": "(rows)", "check": "row count", "count": n, "examples": [],
                            "detail": f"{n:,} rows; allowed {lo} .. {hi}"})
        else:
            notes.append(f"frame check not checked on Spark: {check.name}")
    for name in present:
        col, c, dt, p = schema.columns[name], sdf[name], types[name], plan[name]
        i, st = p["i"], p["st"]
        nulls = int(row[f"m{i}"] or 0)
        m = n - nulls
        if p["kind_bad"] is not None:
            k = int(row[f"k{i}"] or 0)
            if k:
                out.append({"column": name, "check": "dtype", "count": k,
                            "examples": _examples(sdf, name, ~_missing(c, dt) & p["kind_bad"]),
                            "detail": f"expected {st['nbops_kind'].get('kind')}, got {dt.simpleString()}"})
        if nulls and not col.nullable:
            out.append({"column": name, "check": "missing values", "count": nulls, "examples": [],
                        "detail": _detail("missing values", name, None, contract, {})})
        share = st.get("nbops_missing_share")
        if share is not None and col.nullable and nulls:
            ms = float(share.get("max_share") or 0)
            if not missing_share_ok(nulls, n, ms, share.get("ref_rows")):
                label = "missing share" if ms else "missing values"
                out.append({"column": name, "check": label, "count": nulls, "examples": [],
                            "detail": f"{nulls / max(n, 1):.2%} missing; the contract allows {share.get('max_share')}"
                            if ms else _detail("missing values", name, None, contract, {})})
            elif not ms:
                notes.append(f"{name}: {nulls:,} missing value(s) where the reference had none (few enough to be "
                             f"chance)")
        if "range" in p:
            lo, hi, hard_lo, hard_hi, nonneg = p["range"]
            rstats = st.get("nbops_range") or st.get("in_range") or {}
            ref_rows = rstats.get("ref_rows") if "nbops_range" in st else None
            kb, ka, hb, ha = (int(row[f"{k}{i}"] or 0) for k in ("rb", "ra", "hb", "ha"))
            bad_b, bad_a = range_sides_bad(kb, ka, m, ref_rows)
            count = (kb if bad_b else hb) + (ka if bad_a else ha)
            x = c.cast("double")
            if count:
                hard_below = (x < hard_lo) | ((x < 0) if nonneg else F.lit(False))
                cond = ((x < lo) if bad_b else ((x < lo) & hard_below)) | ((x > hi) if bad_a else (x > hard_hi))
                out.append({"column": name, "check": "out of range", "count": count,
                            "examples": _examples(sdf, name, cond),
                            "detail": _detail("out of range", name, None, contract, rstats)})
            if kb + ka > count:
                ex = ", ".join(map(str, _examples(sdf, name, ((x < lo) | (x > hi)))[:3]))
                notes.append(f"{name}: {kb + ka - count:,} value(s) beyond {rstats.get('min_value')} .. "
                             f"{rstats.get('max_value')} (e.g. {ex}; few enough to be chance)")
        if "cats" in p:
            k_all = int(row[f"u{i}"] or 0)
            if k_all:
                _categories(sdf, name, dt, p["cats"], k_all, m, out, notes, contract, "nbops_categories" in st)
    for name, col in schema.columns.items():
        if name in types and col.unique:
            _duplicates(sdf, [name], name, out)
    if schema.unique:
        keys = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        if all(k in types for k in keys):
            _duplicates(sdf, keys, ", ".join(keys), out)
    order = {"missing column": 0, "unexpected column": 1, "dtype": 2, "missing values": 3, "missing share": 4,
             "unseen category": 5, "out of range": 6, "duplicate key": 7, "row count": 8}
    cols = list(types)
    out.sort(key=lambda v: (cols.index(v["column"]) if v["column"] in cols else -1, order.get(v["check"], 9)))
    return out, notes, n


def _categories(sdf, name, dt, cats, k_all, m, out, notes, contract, tolerant) -> None:
    from pyspark.sql import functions as F

    from .api import _detail
    from .checks import unseen_bad

    c = sdf[name]
    allowed = list(cats.get("allowed") or [])
    unseen = ~_missing(c, dt) & ~c.isin(allowed)
    got = (sdf.where(unseen).groupBy(c.alias("v")).count().orderBy(F.col("count").desc())
           .limit(MAX_UNSEEN).collect())
    counts = {_plain(r["v"]): int(r["count"]) for r in got}
    ref_rows = cats.get("ref_rows") if tolerant else None
    bad = unseen_bad(counts, k_all, m, len(allowed), ref_rows, cats.get("singletons") if tolerant else None,
                     cats.get("doubletons") if tolerant else None)
    if bad is None:
        bad, count = list(counts), k_all
    else:
        count = sum(counts[v] for v in bad)
    if count:
        out.append({"column": name, "check": "unseen category", "count": count, "examples": bad[:MAX_EXAMPLES],
                    "detail": _detail("unseen category", name, None, contract, cats)})
    if k_all > count:
        ex = ", ".join(map(str, [v for v in counts if v not in set(bad)][:3]))
        notes.append(f"{name}: {k_all - count:,} value(s) of unseen categories ({ex}; few enough to be chance)")


def _duplicates(sdf, keys, label, out) -> None:
    from pyspark.sql import functions as F

    cols = [sdf[k] for k in keys]
    dup = sdf.where(F.greatest(*[c.isNotNull().cast("int") for c in cols]) == 1) if len(cols) > 1 else \
        sdf.where(cols[0].isNotNull())
    groups = dup.groupBy(*cols).count().where(F.col("count") > 1)
    agg = groups.agg(F.sum("count").alias("rows")).collect()[0]
    rows = int(agg["rows"] or 0)
    if rows:
        ex = groups.orderBy(F.col("count").desc()).limit(MAX_EXAMPLES).collect()
        examples = [_plain(r[0]) if len(keys) == 1 else tuple(_plain(r[k]) for k in keys) for r in ex]
        out.append({"column": label, "check": "duplicate key", "count": rows, "examples": examples,
                    "detail": "declared unique"})


# -- inference ---------------------------------------------------------------------------------------------------
def infer_contract_spark(sdf, *, keys=None, source: str = ""):
    """A :class:`~nbops.validation.contract.Contract` inferred from Spark frame ``sdf`` by the rules of
    :func:`nbops.validation.contract.infer`, from aggregates only: one job for counts, nulls, min/max and approximate
    distinct counts; exact distinct counts for identifier candidates; per numeric column an approximate threshold
    for each tail (the (k+1)-th most extreme value, k = 1% of the rows, at least 10) and the mean (on the log
    scale) of the values beyond it; category counts for string / bool columns with at most 1,000 distinct values.

    One difference from pandas: Spark rows have no order, so an unnamed integer column is a key when its values
    are distinct and fill their range exactly (pandas: distinct and increasing in row order)."""
    from pyspark.sql import functions as F

    from ..tracking.redact import is_secret_name
    from .contract import MAX_CATEGORIES, ID_NAME, Contract, _category_set, _column, _extrapolate, _pa, _schema

    pa = _pa()
    cols = list(sdf.columns)
    if len(set(cols)) != len(cols):
        raise DataError("The reference has duplicate column names: a contract needs one name per column.")
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    missing = [k for k in keys if k not in cols]
    if missing:
        raise DataError(f"keys: no column {', '.join(map(repr, missing))} in the reference.")
    types = {f.name: f.dataType for f in sdf.schema.fields}
    kinds = {n: kind_of_type(types[n]) for n in cols}
    exprs = [F.count(F.lit(1)).alias("__n")]
    for i, n in enumerate(cols):
        c = sdf[n]
        exprs.append(F.sum(F.when(_missing(c, types[n]), 1).otherwise(0)).alias(f"m{i}"))
        if kinds[n] in ("integer", "float"):
            x = c.cast("double")
            x = F.when(~F.isnan(x), x)
            exprs += [F.min(x).alias(f"lo{i}"), F.max(x).alias(f"hi{i}")]
        if kinds[n] in ("integer", "string", "bool"):
            exprs.append(F.approx_count_distinct(c, 0.01).alias(f"d{i}"))
    agg = sdf.agg(*exprs).collect()[0].asDict()
    n = int(agg["__n"])
    tail_k = max(10, math.ceil(0.01 * n))
    nulls = {c: int(agg[f"m{i}"] or 0) for i, c in enumerate(cols)}
    approx = {c: agg.get(f"d{i}") for i, c in enumerate(cols)}
    # identifiers: named (or an integer range filled exactly), never missing, all distinct
    cand = []
    for i, c in enumerate(cols):
        if keys or kinds[c] not in ("integer", "string") or n < 2 or nulls[c] or (approx[c] or 0) < 0.97 * n:
            continue
        fills = kinds[c] == "integer" and n >= 20 and agg[f"hi{i}"] - agg[f"lo{i}"] + 1 == n
        if ID_NAME.search(str(c)) or fills:
            cand.append(c)
    distinct = {}
    if cand:
        r = sdf.agg(*[F.countDistinct(sdf[c]).alias(f"d{j}") for j, c in enumerate(cand)]).collect()[0]
        distinct = {c: int(r[f"d{j}"]) for j, c in enumerate(cand)}
    ident = {c: c in keys or (not keys and distinct.get(c) == n) for c in cols}
    bounds = _tails(sdf, [c for c in cols if kinds[c] in ("integer", "float") and not ident[c]
                          and n - nulls[c] > 0], types, agg, cols, tail_k, _extrapolate)
    cat_cols = [c for c in cols if kinds[c] in ("string", "bool") and not ident[c] and n - nulls[c] > 0
                and (approx[c] or 0) <= 1.05 * MAX_CATEGORIES + 10
                and not (kinds[c] == "string" and is_secret_name(str(c)))]
    counts = _value_counts(sdf, cat_cols) if cat_cols else {}
    columns = {}
    for c in cols:
        n_vals = n - nulls[c]
        cats = _category_set(counts[c], n_vals) if c in counts else None
        columns[c] = _column(pa, kind=kinds[c], n=n, nulls=nulls[c], ident=ident[c], bounds=bounds.get(c),
                             cats=cats, single_key=len(keys) <= 1)
    schema = _schema(pa, columns, n, keys, source)
    return Contract(schema, source or f"inferred from {n:,} rows x {len(cols)} columns (Spark)")


def _value_counts(sdf, cols) -> dict:
    from .contract import MAX_CATEGORIES

    out = {}
    for c in cols:   # one small groupBy each: the values keep their type (bool stays bool)
        rows = sdf.where(sdf[c].isNotNull()).groupBy(sdf[c].alias("v")).count().limit(MAX_CATEGORIES + 1).collect()
        out[c] = {_plain(r["v"]): int(r["count"]) for r in rows}
    return out


def _tails(sdf, cols, types, agg, all_cols, tail_k, extrapolate) -> dict:
    """``{column: (low, high, present values)}`` for numeric columns, from an approximate threshold per tail and
    aggregates beyond it (see :func:`infer_contract_spark`)."""
    from pyspark.sql import functions as F

    if not cols:
        return {}
    idx = {c: all_cols.index(c) for c in cols}
    row = sdf.agg(*[F.count(F.when(~F.isnan(sdf[c].cast("double")), sdf[c])).alias(f"n{idx[c]}") for c in cols]) \
        .collect()[0]
    cnt = {c: row[f"n{idx[c]}"] for c in cols}
    qs = []
    for c in cols:
        m = int(cnt[c])
        k = max(2, min(tail_k, m // 4)) if m >= 4 else 0
        p = k / max(m - 1, 1)
        x = sdf[c].cast("double")
        qs.append(F.percentile_approx(F.when(~F.isnan(x), x), [p, 1 - p], TAIL_ACCURACY).alias(f"q{idx[c]}"))
    row = sdf.agg(*qs).collect()[0]
    th = {c: row[f"q{idx[c]}"] for c in cols}

    def g(x):
        return F.signum(x) * F.log1p(F.abs(x))

    ex = []
    for c in cols:
        x = sdf[c].cast("double")
        lo_t, hi_t = th[c] or (None, None)
        if lo_t is None:
            continue
        ex += [F.count(F.when(x > hi_t, x)).alias(f"t{idx[c]}ka"), F.avg(F.when(x > hi_t, g(x))).alias(f"t{idx[c]}ga"),
               F.count(F.when(x < lo_t, x)).alias(f"t{idx[c]}kb"), F.avg(F.when(x < lo_t, g(x))).alias(f"t{idx[c]}gb")]
    tail = sdf.agg(*ex).collect()[0].asDict() if ex else {}
    out = {}
    for c in cols:
        i, m = idx[c], int(cnt[c])
        lo, hi = agg[f"lo{i}"], agg[f"hi{i}"]
        if lo is None:
            continue
        if m < 4 or not th.get(c):
            out[c] = (float(lo), float(hi), m)
            continue
        lo_t, hi_t = th[c]

        def gv(v):
            return math.copysign(math.log1p(abs(v)), v)

        ka, kb = int(tail[f"t{idx[c]}ka"]), int(tail[f"t{idx[c]}kb"])
        top = (ka, gv(hi_t), (tail[f"t{idx[c]}ga"] - gv(hi_t)) if ka else 0.0)
        bot = (kb, gv(lo_t), (gv(lo_t) - tail[f"t{idx[c]}gb"]) if kb else 0.0)
        low, high = extrapolate(float(lo), float(hi), top, bot)
        out[c] = (low, high, m)
    return out

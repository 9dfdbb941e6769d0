"""Column typing and input validation: what each column is, and every bad input named before any work.

Kinds: ``numeric`` (KS / CvM), ``categorical`` (Chi-squared: strings, pandas categoricals, booleans and
integer-valued columns with at most ``max_categories`` distinct values), ``datetime`` and ``identifier``
(skipped with a note: text columns of mostly distinct values, integer-dtype columns of all-distinct values that
run in row order or fill their range, and all-distinct columns named like ids). ``categorical=[...]`` / ``numeric=[...]`` override the inference.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DriftError

DEFAULT_MAX_CATEGORIES = 25     # integer columns with at most this many distinct values are categories
ROLES = ("feature", "target", "prediction")


@dataclass
class ColumnSpec:
    name: str
    kind: str               # numeric | categorical | datetime | identifier
    role: str = "feature"   # feature | target | prediction
    family: str = "number"  # number | text | bool | datetime (the dtype family, for mismatch checks)
    note: str = ""


def as_frame(obj, side: str):
    """A DataFrame from a DataFrame, Series, dict or 2-D array; a clear error for anything else."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        df = obj
    elif isinstance(obj, pd.Series):
        df = obj.to_frame(name=obj.name if obj.name is not None else "value")
    elif isinstance(obj, dict):
        df = pd.DataFrame(obj)
    elif isinstance(obj, np.ndarray) and obj.ndim in (1, 2):
        df = pd.DataFrame(obj.reshape(len(obj), -1))
    else:
        raise DriftError(f"The {side} data is a {type(obj).__name__}; pass a pandas DataFrame (or a run:<id> / "
                         f"models:/<name>@<alias> reference for the reference side).", side=side)
    if df.columns.duplicated().any():
        dup = sorted(map(str, df.columns[df.columns.duplicated()].unique()))
        raise DriftError(f"The {side} frame has duplicated column names {dup}; rename them first.", side=side)
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise DriftError(f"The {side} frame is empty ({df.shape[0]} rows x {df.shape[1]} columns); a drift check "
                         f"needs rows on both sides.", side=side)
    if df.shape[0] < 2:
        raise DriftError(f"The {side} frame has a single row; a distribution needs at least 2 rows (a few hundred "
                         f"for a useful test).", side=side)
    if not all(isinstance(c, str) for c in df.columns):
        # never relabel the caller's frame: a shallow copy (no data copied) gets the string labels
        # (MultiIndex ('x', 'a') -> 'x|a', as data versions name them; 0 -> '0')
        from ..data.fingerprinting import column_label

        df = df.copy(deep=False)
        df.columns = [column_label(c) for c in df.columns]
    return df


def family(s) -> str:
    import pandas as pd
    from pandas.api import types as t

    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        cats = dt.categories
        return "number" if t.is_numeric_dtype(cats.dtype) else "text"
    if t.is_bool_dtype(dt):
        return "bool"
    if t.is_numeric_dtype(dt):
        return "number"
    if t.is_datetime64_any_dtype(dt) or t.is_timedelta64_dtype(dt) or isinstance(dt, pd.PeriodDtype):
        return "datetime"
    inferred = pd.api.types.infer_dtype(s.iloc[:2000], skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    if inferred == "boolean":
        return "bool"
    if inferred in ("datetime", "datetime64", "date", "timedelta", "period"):
        return "datetime"
    return "text"


_COMPATIBLE = {frozenset({"number"}), frozenset({"text"}), frozenset({"bool"}), frozenset({"datetime"}),
               frozenset({"bool", "number"})}


def select_columns(ref, cur, features=None, target=None, prediction=None) -> list[tuple[str, str]]:
    """``[(column, role)]`` to check: features first, then target and prediction columns. Errors list every
    missing or mismatched column at once."""
    target = column_list(target)
    prediction = column_list(prediction)
    outputs = target + prediction
    if features is not None:
        features = column_list(features)
        wanted = list(dict.fromkeys(features + outputs))
        missing_ref = [c for c in wanted if c not in ref.columns]
        missing_cur = [c for c in wanted if c not in cur.columns]
        if missing_ref or missing_cur:
            parts = [f"not in the reference: {missing_ref}" if missing_ref else "",
                     f"not in the current batch: {missing_cur}" if missing_cur else ""]
            raise DriftError("Columns asked for are missing -- " + "; ".join(p for p in parts if p) +
                             ". Check the names (features=, --features, --target).",
                             missing_reference=missing_ref, missing_current=missing_cur)
    else:
        only_ref = [c for c in ref.columns if c not in set(cur.columns)]
        only_cur = [c for c in cur.columns if c not in set(ref.columns)]
        if only_ref or only_cur:
            parts = [f"only in the reference: {only_ref}" if only_ref else "",
                     f"only in the current batch: {only_cur}" if only_cur else ""]
            raise DriftError("The two frames have different columns -- " + "; ".join(p for p in parts if p) +
                             ". Align them, or name the columns to compare with features=[...] (--features).",
                             only_reference=only_ref, only_current=only_cur)
        missing = [c for c in outputs if c not in ref.columns]
        if missing:
            raise DriftError(f"Target/prediction columns {missing} are in neither frame; check the names.")
        features = [c for c in ref.columns if c not in set(outputs)]
    roles = [(c, "feature") for c in features if c not in set(outputs)]
    roles += [(c, "target") for c in target] + [(c, "prediction") for c in prediction]
    return roles


def column_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    from ..data.fingerprinting import column_label

    if isinstance(v, tuple):  # one MultiIndex label
        return [column_label(v)]
    return [column_label(s) for s in v]


def infer_spec(name: str, role: str, r, categorical=(), numeric=(),
               max_categories: int = DEFAULT_MAX_CATEGORIES) -> ColumnSpec:
    """The kind of one column, decided on the reference side (so a prepared reference can be reused)."""
    import numpy as np
    import pandas as pd

    fam = family(r)
    if name in numeric:
        if fam not in ("number", "bool"):
            raise DriftError(f"Column {name!r} is {_describe(fam, r)}; it cannot be tested as numeric.",
                             column=name)
        return ColumnSpec(name, "numeric", role, fam)
    if name in categorical:
        return ColumnSpec(name, "categorical", role, fam)
    if fam == "datetime":
        return ColumnSpec(name, "datetime", role, fam, "datetime column skipped (compare derived features "
                                                       "such as hour or weekday instead)")
    if fam in ("text", "bool") or isinstance(r.dtype, pd.CategoricalDtype):
        if fam == "text" and not isinstance(r.dtype, pd.CategoricalDtype):
            n_ref = int(r.notna().sum())
            distinct = r.nunique(dropna=True)
            if (n_ref > 50 and distinct > 0.5 * n_ref and distinct > 100) or \
                    (n_ref > MIN_ID_ROWS and distinct == n_ref and _id_named(name)):
                return ColumnSpec(name, "identifier", role, fam, f"skipped: {distinct:,} distinct values in "
                                  f"{n_ref:,} rows looks like an identifier (pass categorical=[{name!r}] to test "
                                  f"it anyway)")
        return ColumnSpec(name, "categorical", role, fam)
    rv = float_values(r)
    if _integral(rv):
        why = _integer_identifier(name, rv) if pd.api.types.is_integer_dtype(r.dtype) else ""
        if why:
            return ColumnSpec(name, "identifier", role, fam, f"skipped: {why} looks like an identifier (pass "
                                                             f"numeric=[{name!r}] to test it anyway)")
        distinct = pd.unique(rv[~np.isnan(rv)])
        if len(distinct) <= max_categories:
            return ColumnSpec(name, "categorical", role, fam,
                              f"{len(distinct)} integer values: tested as categories")
    return ColumnSpec(name, "numeric", role, fam)


MIN_ID_ROWS = 50   # fewer rows: all-distinct values are no evidence of an identifier


def _id_named(name: str) -> bool:
    from ..validation.contract import ID_NAME  # the names data contracts treat as keys

    return bool(ID_NAME.search(str(name)))


def _integer_identifier(name: str, x) -> str:
    """Why an integer column is an identifier rather than a quantity, or "": every value distinct and either a
    running sequence (monotonic in row order, or filling most of its range: 0..n, n..2n, a shuffled row number)
    or named like one (id, *_id, key, uuid). A new batch's ids lie beyond the reference's: testing them would
    call every batch drifted."""
    import numpy as np

    v = x[~np.isnan(x)]
    n = len(v)
    if n <= MIN_ID_ROWS:
        return ""
    s = np.sort(v)
    if not np.all(np.diff(s) > 0):
        return ""   # a repeated value: a quantity (or a key with duplicates), not an identifier
    d = np.diff(v)
    if np.all(d > 0) or np.all(d < 0):
        return f"{n:,} distinct integers in row order ({s[0]:.0f}..{s[-1]:.0f})"
    if s[-1] - s[0] + 1 <= 2 * n:
        return f"{n:,} distinct integers filling {s[0]:.0f}..{s[-1]:.0f}"
    if _id_named(name):
        return f"{n:,} distinct integers in a column named {name!r}"
    return ""


def check_current(spec: ColumnSpec, ref_family: str, c) -> None:
    """The current side must hold the same kind of values as the reference."""
    if c.notna().sum() == 0:
        return  # all missing: the missing-values test speaks for it
    fc = family(c)
    if frozenset({ref_family, fc}) not in _COMPATIBLE:
        raise DriftError(f"Column {spec.name!r} is {_DESC[ref_family]} in the reference but {_describe(fc, c)} in "
                         f"the current batch; convert one side (e.g. pd.to_numeric) or leave the column out.",
                         column=spec.name)


_DESC = {"number": "numeric", "text": "text", "bool": "boolean", "datetime": "a datetime"}


def _describe(fam: str, s) -> str:
    return {"number": "numeric", "text": "text", "bool": "boolean", "datetime": "a datetime"}[fam] + \
        f" ({s.dtype})"


def float_values(s):
    import numpy as np
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if s.dtype == object:
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _integral(x) -> bool:
    import numpy as np

    head = x[:1000]
    head = head[~np.isnan(head)]
    if len(head) and not np.all(head == np.floor(head)):
        return False
    with np.errstate(invalid="ignore"):
        body = x[~np.isnan(x)]
        return bool(np.all(body == np.floor(body))) if len(body) else False

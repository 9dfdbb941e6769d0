"""Data contracts: what a frame must look like, inferred from reference data and kept as a pandera schema.

:func:`infer` reads a reference frame and writes down, per column, what an i.i.d. sample of the same source
satisfies -- and nothing tighter:

- **columns** are required and no others are expected (``strict``); **kind** is the logical type
  (:func:`nbops.validation.checks.kind_of`), so pandas 2's ``object`` and pandas 3's ``str`` agree;
- **missing values**: a column the reference never had missing gets ``max_share: 0`` (missing values are a
  violation unless so few that chance explains them -- they are then listed as notes: a model fitted on the
  reference never saw one); otherwise the missing share is bounded by the 99.9% upper confidence bound of the
  reference's share, tested against a batch with a one-sided binomial test (small batches are not punished);
  identifier keys are ``nullable: false``;
- **numeric ranges** get a margin from the reference's own tail: the distance from the extreme to the k-th
  most extreme value (k = 1% of the rows, at least 10) is added beyond it, on a log scale for non-negative
  columns (whose bound then never goes below 0). Identifier columns and datetimes get no range (new ids and new
  dates are expected);
- **category sets** for string / bool columns whose values look like a closed set (at most 1,000 distinct
  values and hardly any seen only once, by the Good-Turing reading of singletons; not date strings): an unseen
  category is a violation;
- a **handful** of values beyond a range is not a violation when a random sample of the reference's own source
  would show as many (the storm day that only one half of a random split holds):
  :func:`nbops.validation.checks.rare_by_chance` decides, distribution-free, at 0.1%. Rows of unseen categories
  are allowed as far as the reference's own rarity goes (Good-Turing: about N1/N of a batch, N1 the reference
  rows whose category occurs once; :func:`nbops.validation.checks.category_mask`): a reference without rare
  values allows only what a random split of reference and batch explains (all of them on the batch's side at
  least 1% of the time: 7 unseen rows against an equal reference are a violation);
- **keys** (declared with ``keys=``, or identifier-like columns: unique, never missing and named ``id``,
  ``*_id``, ``key``, ``uuid``, or an integer sequence) must stay unique;
- **row count** between 1 and 10x the reference (an empty extract or an exploded join); edit it for the batch
  sizes you expect.

The contract is a pandera ``DataFrameSchema`` (built-in checks ``isin``, ``in_range``, ``unique``, ``nullable``,
``strict`` plus the three in :mod:`~nbops.validation.checks`), so ``to_yaml()`` gives pandera's own YAML and a
hand-edited file is read back with :meth:`Contract.from_yaml`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import DataError

MAX_CATEGORIES = 1000
ROW_FACTOR = 10
TAIL_ALPHA = 0.001
ID_NAME = re.compile(  # names of identifier columns (drift's typing reads it too)
    r"(^|[_\W])(id|key|uuid|guid)$|^(id|key|uuid|guid)([_\W]|$)|[a-z0-9]Id$|[a-z0-9]ID$",
                      re.IGNORECASE)


def _pa():
    import pandera.pandas as pa

    from .checks import register

    register()
    return pa


@dataclass
class Contract:
    """A data contract: a pandera ``DataFrameSchema`` and where it came from (``source``)."""

    schema: object
    source: str = ""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.columns)

    def to_yaml(self) -> str:
        head = ("# nbops data contract (a pandera DataFrameSchema; edit it and pass the file to %validate --against)\n"
                + (f"# {self.source}\n" if self.source else ""))
        return head + self.schema.to_yaml()

    def save(self, path) -> None:
        from pathlib import Path

        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_yaml(cls, text: str, source: str = "") -> "Contract":
        pa = _pa()
        try:
            schema = pa.DataFrameSchema.from_yaml(text)
        except Exception as exc:  # noqa: BLE001 - pandera's reasons, in one line
            raise DataError(f"The contract {source or 'YAML'} is not a pandera schema pandera can read "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}). Start from `nbops data contract NAME > "
                            f"contract.yaml` and edit that.", path=source) from exc
        return cls(schema, source or "contract YAML")

    @classmethod
    def load(cls, path) -> "Contract":
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise DataError(f"No contract file {path}: write one with `nbops data contract NAME > {p.name}`.",
                            path=str(path))
        return cls.from_yaml(p.read_text(encoding="utf-8"), str(p))

    def without(self, columns) -> "Contract":
        cols = [c for c in columns if c in self.schema.columns]
        return Contract(self.schema.remove_columns(cols) if cols else self.schema, self.source)

    def to_frame(self):
        """One row per column: kind, nullable, missing bound, range, categories, unique."""
        import pandas as pd

        rows = []
        for name, col in self.schema.columns.items():
            st = {c.name: c.statistics for c in col.checks}
            rng = st.get("nbops_range") or st.get("in_range") or {}
            cats = (st.get("nbops_categories") or {}).get("allowed") or (st.get("isin") or {}).get("allowed_values")
            rows.append({"column": name, "kind": (st.get("nbops_kind") or {}).get("kind"),
                         "nullable": col.nullable, "max_missing_share": (st.get("nbops_missing_share") or {})
                         .get("max_share"), "min": rng.get("min_value"), "max": rng.get("max_value"),
                         "categories": None if cats is None else len(cats), "unique": col.unique})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Contract ({len(self.schema.columns)} columns; {self.source})\n" + self.to_frame().to_string(index=False)

    def _repr_html_(self) -> str:
        import html

        return (f"<div><b>Contract</b> {html.escape(self.source)}</div>"
                + self.to_frame().to_html(index=False, na_rep="", border=0))


# -- inference ---------------------------------------------------------------------------------------------------
def _is_identifier(name, s, kind: str) -> bool:
    if kind not in ("integer", "string") or len(s) < 2:
        return False
    named = bool(ID_NAME.search(str(name)))
    if not named and not (kind == "integer" and len(s) >= 20 and s.is_monotonic_increasing):
        return False
    return not s.isna().any() and s.is_unique


def _g(x):
    import numpy as np

    return np.sign(x) * np.log1p(np.abs(x))


def _g_inv(y: float) -> float:
    return math.copysign(math.expm1(min(abs(y), 700.0)), y)


def _tail_bounds(values, k: int):
    """(low, high): beyond each extreme by an exponential-tail extrapolation (see the module docs)."""
    import numpy as np

    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return None, None
    lo, hi = float(v.min()), float(v.max())
    if n < 4:
        return lo, hi
    k = max(2, min(k, n // 4))
    part = np.partition(v, [k, n - 1 - k])   # the k+1 extremes on each side (g is monotonic: transform only them)
    top, bot = _g(part[n - 1 - k:]), _g(part[:k + 1])
    top_u, bot_u = float(top.min()), float(bot.max())
    top_scale = float(np.sort(top)[1:].mean() - top_u)   # mean excess of the k largest over the (k+1)-th
    bot_scale = float(bot_u - np.sort(bot)[:-1].mean())
    return _extrapolate(lo, hi, (k, top_u, top_scale), (k, bot_u, bot_scale))


def _extrapolate(lo: float, hi: float, top: tuple, bottom: tuple):
    """(low, high) from each tail's ``(k, threshold, scale)`` on the g scale: the threshold is the (k+1)-th most
    extreme value, the scale the mean excess of the k beyond it (pandas: :func:`_tail_bounds`; Spark: from
    aggregates above an approximate threshold)."""
    def reach(k):   # P(a batch of ROW_FACTOR x n rows passes a bound) ~ 1 - alpha
        return math.log(ROW_FACTOR * max(k, 1) / TAIL_ALPHA)

    high = _g_inv(top[1] + reach(top[0]) * top[2])
    low = _g_inv(bottom[1] - reach(bottom[0]) * bottom[2])
    if lo >= 0:
        low = max(low, 0.0)  # a column that never was negative stays non-negative
    return min(low, lo), max(high, hi)


def _closed_set(counts, n: int) -> bool:
    d = len(counts)
    if d == 0 or d > MAX_CATEGORIES or d > max(2, n // 5):
        return False
    singletons = int((counts == 1).sum())
    return singletons <= max(1, 0.001 * n)


def _date_like(values) -> bool:
    """Strings that are dates ('2011-01-01'): new ones are expected, so they get no category set."""
    import pandas as pd

    sample = [v for v in list(values)[:200] if isinstance(v, str)]
    if not sample or not any(ch.isdigit() for ch in sample[0]):
        return False
    try:
        parsed = pd.to_datetime(pd.Series(sample), errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return False
    return bool(parsed.notna().mean() >= 0.95)


def _nice(x: float, up: bool) -> float | int:
    """Round a bound outwards to 4 significant digits (readable YAML, never tighter)."""
    if not math.isfinite(x) or x == 0:
        return x
    mag = 10 ** (math.floor(math.log10(abs(x))) - 3)
    q = round(x / mag, 6)  # 1799.9999999 is 1800: float noise must not move a bound by a step
    r = (math.ceil(q) if up else math.floor(q)) * mag
    r = float(f"{r:.12g}")
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


def _category_set(counts: dict, n_vals: int):
    """``(allowed, n_vals, singletons, doubletons)`` when ``counts`` (value -> rows) look like a closed set (see
    the module docs), else None."""
    import numpy as np

    freq = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    if not _closed_set(freq, n_vals) or _date_like(list(counts)):
        return None
    return (sorted(counts, key=str), n_vals, int((freq == 1).sum()), int((freq == 2).sum()))


def _column(pa, *, kind: str, n: int, nulls: int, ident: bool, bounds=None, cats=None, single_key=True):
    """One column of a contract from its summary (any engine): ``bounds`` = (low, high, present values) before
    rounding, ``cats`` = :func:`_category_set`'s answer."""
    from scipy.special import betaincinv  # scipy.stats' beta.ppf without importing scipy.stats (seconds)

    checks = [pa.Check.nbops_kind(kind=kind)]
    nullable = not ident   # keys never missing; otherwise the share is bounded (0: none, up to chance)
    if nulls:
        upper = float(betaincinv(nulls + 1, max(n - nulls, 1), 0.999))
        checks.append(pa.Check.nbops_missing_share(max_share=_nice(min(upper, 1.0), True), ignore_na=False))
    elif not ident:
        checks.append(pa.Check.nbops_missing_share(max_share=0, ref_rows=n, ignore_na=False))
    if bounds is not None:
        lo, hi, n_vals = bounds
        if lo is not None and math.isfinite(lo) and math.isfinite(hi):
            lo, hi = _nice(lo, False), _nice(hi, True)
            if kind == "integer":
                lo, hi = math.floor(round(lo, 6)), math.ceil(round(hi, 6))
            checks.append(pa.Check.nbops_range(min_value=lo, max_value=hi, ref_rows=n_vals))
    if cats is not None:
        allowed, n_vals, singletons, doubletons = cats
        checks.append(pa.Check.nbops_categories(allowed=allowed, ref_rows=n_vals, singletons=singletons,
                                                doubletons=doubletons))
    return pa.Column(None, checks=checks, nullable=nullable, unique=ident and single_key, required=True)


def _schema(pa, columns: dict, n: int, keys: list, source: str):
    frame_checks = [pa.Check.nbops_row_count(min_rows=1, max_rows=int(max(n, 1) * ROW_FACTOR))]
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=True, unique=keys if len(keys) > 1 else None,
                              title="nbops data contract", description=source or f"inferred from {n:,} rows")


def infer(df, *, keys=None, source: str = "") -> Contract:
    """Infer a :class:`Contract` from the reference frame ``df`` (see the module docs for the rules)."""
    import numpy as np
    import pandas as pd

    from ..tracking.redact import is_secret_name
    from .checks import kind_of

    pa = _pa()
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"A contract is inferred from a pandas DataFrame, not a {type(df).__name__}.")
    if df.columns.duplicated().any():
        raise DataError("The reference has duplicate column names: a contract needs one name per column.")
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(f"keys: no column {', '.join(map(repr, missing))} in the reference.")
    n = len(df)
    tail_k = max(10, math.ceil(0.01 * n))
    columns = {}
    for name in df.columns:
        s = df[name]
        kind = kind_of(s)
        ident = name in keys or (not keys and _is_identifier(name, s, kind))
        vals = s.dropna()
        bounds = cats = None
        if not ident and kind in ("integer", "float") and len(vals):
            lo, hi = _tail_bounds(vals.to_numpy(dtype="float64"), tail_k)
            bounds = (lo, hi, len(vals))
        elif not ident and kind in ("string", "bool") and len(vals) \
                and not (kind == "string" and is_secret_name(str(name))):  # never list secret values in a contract
            counts = vals.value_counts()
            cats = _category_set(dict(zip((v.item() if isinstance(v, np.generic) else v for v in counts.index),
                                          counts.to_numpy())), len(vals))
        columns[name] = _column(pa, kind=kind, n=n, nulls=int(s.isna().sum()), ident=ident, bounds=bounds,
                                cats=cats, single_key=len(keys) <= 1)
    schema = _schema(pa, columns, n, keys, source)
    return Contract(schema, source or f"inferred from {n:,} rows x {df.shape[1]} columns")

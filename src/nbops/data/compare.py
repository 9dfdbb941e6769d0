"""``diff(old, new)``: what changed between two versions of a dataset.

Two versions whose digests were made by different digest schemes (a version recorded before scheme v2 and one
made now) cannot be compared by digest: the diff then says "digest scheme changed" and reports only what the
names and row counts show, never a content change it cannot know about.

From two :class:`DataVersion` s (for instance the previous version recorded in MLflow and the current one) the
diff says: the row count change, columns added / removed / retyped, which columns' content changed (each column
has its own digest) and how their profile moved (nulls, min, max, mean, distinct values). Given the frames
themselves (or a stored snapshot of the old one), it also counts exactly how many rows were added and removed:
rows are compared as a multiset of row hashes over the columns both frames share, so a changed row counts as
one removed and one added, and a pure reordering as no change.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .._lazy import loaded
from .version import DataVersion, format_value

STATS = ("nulls", "nan", "min", "max", "mean", "distinct")


@dataclass
class DataDiff:
    old: DataVersion
    new: DataVersion
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: list[tuple[str, str, str]] = field(default_factory=list)
    columns_changed: list[str] = field(default_factory=list)      # same name and dtype, different content
    changes: list[dict] = field(default_factory=list)             # {column, stat, old, new}
    rows_added: int | None = None                                 # exact, when the data of both was at hand
    rows_removed: int | None = None
    scheme_changed: bool = False                                  # digests by different schemes: not comparable

    @property
    def identical(self) -> bool:
        return self.old.digest == self.new.digest

    @property
    def row_delta(self) -> int | None:
        if self.old.rows is None or self.new.rows is None:
            return None
        return self.new.rows - self.old.rows

    def summary(self) -> str:
        if self.identical:
            return f"identical to {self.old.short}"
        bits = []
        if self.scheme_changed:
            bits.append(f"digest scheme changed (v{self.old.scheme} -> v{self.new.scheme}): the digests cannot be "
                        f"compared, so no content change is reported")
        if self.rows_added is not None:
            bits.append(f"+{self.rows_added:,} / -{self.rows_removed:,} rows")
        elif self.row_delta:
            bits.append(f"{self.row_delta:+,} rows ({self.old.rows:,} -> {self.new.rows:,})")
        if self.columns_added:
            bits.append("columns added: " + ", ".join(self.columns_added))
        if self.columns_removed:
            bits.append("columns removed: " + ", ".join(self.columns_removed))
        if self.columns_retyped:
            bits.append("retyped: " + ", ".join(f"{c} {a}->{b}" for c, a, b in self.columns_retyped))
        if self.columns_changed:
            bits.append("content changed in: " + ", ".join(self.columns_changed))
        if self.scheme_changed and self.rows_added is None and not self.row_delta and len(bits) == 1:
            bits.append("same row count and columns")
        if not bits:
            bits.append("content changed")
        return f"vs {self.old.short}: " + "; ".join(bits)

    def to_frame(self):
        """One row per column that differs: status and the profile figures before and after."""
        import pandas as pd

        rows = [{"column": c, "status": "added", "stat": None, "old": None, "new": self.new.dtypes.get(c)}
                for c in self.columns_added]
        rows += [{"column": c, "status": "removed", "stat": None, "old": self.old.dtypes.get(c), "new": None}
                 for c in self.columns_removed]
        rows += [{"column": c, "status": "retyped", "stat": "dtype", "old": a, "new": b}
                 for c, a, b in self.columns_retyped]
        changed = set(self.columns_changed)
        for ch in self.changes:
            rows.append({"column": ch["column"], "status": "changed" if ch["column"] in changed else "profile",
                         "stat": ch["stat"], "old": ch["old"], "new": ch["new"]})
        listed = {r["column"] for r in rows}
        rows += [{"column": c, "status": "changed", "stat": None, "old": None, "new": None}
                 for c in self.columns_changed if c not in listed]
        if self.scheme_changed:
            rows.insert(0, {"column": None, "status": "scheme changed", "stat": "digest scheme",
                            "old": f"v{self.old.scheme}", "new": f"v{self.new.scheme}"})
        return pd.DataFrame(rows, columns=["column", "status", "stat", "old", "new"])

    def __repr__(self) -> str:
        lines = [f"DataDiff {self.old.name or ''} {self.old.short} -> {self.new.short}: {self.summary()}"]
        for ch in self.changes[:40]:
            old, new = format_value(ch["old"]), format_value(ch["new"])
            lines.append(f"  {ch['column']!s:<20} {ch['stat']:<9} {old} -> {new}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = f"<div class='nbops-datadiff'><b>Diff</b> {html.escape(self.summary())}</div>"
        df = self.to_frame()
        return head if not len(df) else head + df.to_html(index=False, na_rep="", border=0)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def compare(old: DataVersion, new: DataVersion) -> DataDiff:
    """The diff of two versions from their schemas and profiles (no data needed)."""
    d = DataDiff(old, new)
    if d.identical:
        return d
    if not old.comparable(new):
        d.scheme_changed = True
        d.columns_added = [c for c in new.columns if c not in set(old.columns)]
        d.columns_removed = [c for c in old.columns if c not in set(new.columns)]
        return d
    od, nd = old.types, new.types
    d.columns_added = [c for c in new.columns if c not in od]
    d.columns_removed = [c for c in old.columns if c not in nd]
    d.columns_retyped = [(c, od[c], nd[c]) for c in new.columns if c in od and od[c] != nd[c]]
    oprof = {c["name"]: c for c in old.profile.get("columns", [])}
    nprof = {c["name"]: c for c in new.profile.get("columns", [])}
    for c in new.columns:
        if c not in oprof or c not in nprof:
            continue
        a, b = oprof[c], nprof[c]
        if a.get("digest") and b.get("digest") and a["digest"] != b["digest"] and od.get(c) == nd.get(c):
            d.columns_changed.append(c)
        for stat in STATS:
            x, y = a.get(stat), b.get(stat)
            if x != y and not (x is None and y in (0, None)) and not (y is None and x in (0, None)):
                d.changes.append({"column": c, "stat": stat, "old": x, "new": y})
        if (a.get("top") or []) != (b.get("top") or []):
            fmt = lambda t: ", ".join(f"{v} ({n:,})" for v, n in t or [])  # noqa: E731
            d.changes.append({"column": c, "stat": "top", "old": fmt(a.get("top")), "new": fmt(b.get("top"))})
    return d


def row_changes(old_df, new_df) -> tuple[int, int] | None:
    """``(rows_added, rows_removed)`` between two pandas frames, over their shared columns (multiset of row
    hashes); None when the frames cannot be hashed row-wise."""
    import numpy as np
    import pandas as pd

    common = [c for c in new_df.columns if c in set(old_df.columns)]
    if not common or not old_df.columns.is_unique or not new_df.columns.is_unique:
        return None
    try:
        old_part, new_part = old_df[common], new_df[common]
        differ = [c for c in common if old_part[c].dtype != new_part[c].dtype]
        if differ:  # the same values in other containers (a snapshot read back by another pandas, say)
            old_part = old_part.assign(**{c: _row_canonical(old_part[c]) for c in differ})
            new_part = new_part.assign(**{c: _row_canonical(new_part[c]) for c in differ})
        ha = pd.util.hash_pandas_object(old_part, index=False).to_numpy()
        hb = pd.util.hash_pandas_object(new_part, index=False).to_numpy()
    except (TypeError, ValueError):
        return None
    ua, ca = np.unique(ha, return_counts=True)
    ub, cb = np.unique(hb, return_counts=True)
    a = pd.Series(ca, index=ua)
    b = pd.Series(cb, index=ub)
    both = a.index.union(b.index)
    a, b = a.reindex(both, fill_value=0), b.reindex(both, fill_value=0)
    return int((b - a).clip(lower=0).sum()), int((a - b).clip(lower=0).sum())


def _row_canonical(ser):
    """One representation per logical type for row hashing: datetimes as UTC/naive nanoseconds, text as Python
    objects with None for missing, nullable / arrow numbers as numpy (float64 when something is missing)."""
    import numpy as np
    import pandas as pd

    dt = ser.dtype
    try:
        if pd.api.types.is_datetime64_any_dtype(dt) and not isinstance(dt, pd.ArrowDtype):
            tz = getattr(dt, "tz", None)
            return ser.dt.tz_convert("UTC").astype("datetime64[ns, UTC]") if tz is not None else \
                ser.astype("datetime64[ns]")
        if isinstance(dt, pd.ArrowDtype) and pd.api.types.is_datetime64_any_dtype(dt):
            return _row_canonical(ser.astype(f"datetime64[ns, {dt.pyarrow_dtype.tz}]" if dt.pyarrow_dtype.tz
                                             else "datetime64[ns]"))
        if pd.api.types.is_string_dtype(dt) and not isinstance(dt, pd.CategoricalDtype):
            out = ser.astype(object)
            return out.where(ser.notna(), None)
        if pd.api.types.is_numeric_dtype(dt) and not isinstance(dt, np.dtype):
            has_na = bool(ser.isna().any())
            if pd.api.types.is_bool_dtype(dt) and not has_na:
                return pd.Series(ser.to_numpy(dtype=bool), index=ser.index, name=ser.name)
            target = "float64" if has_na or pd.api.types.is_float_dtype(dt) else "int64"
            return pd.Series(ser.to_numpy(dtype=target, na_value=np.nan), index=ser.index, name=ser.name)
    except (TypeError, ValueError, OverflowError):
        pass
    return ser


def pandas_frame(obj: Any):
    """The pandas frame of a pandas DataFrame or Series or a polars DataFrame; None for anything else."""
    pd = loaded("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        return obj
    if pd is not None and isinstance(obj, pd.Series):
        return obj.to_frame()
    pl = loaded("polars")
    if pl is not None and isinstance(obj, pl.DataFrame):
        return obj.to_pandas()
    return None


def diff(old: Any, new: Any) -> DataDiff:
    """What changed from ``old`` to ``new``: each a :class:`DataVersion`, or the data itself (a pandas / polars
    frame, a Series), in which case rows added and removed are counted exactly."""
    from .fingerprinting import fingerprint

    ov = old if isinstance(old, DataVersion) else fingerprint(old)
    nv = new if isinstance(new, DataVersion) else fingerprint(new)
    d = compare(ov, nv)
    of, nf = pandas_frame(old), pandas_frame(new)
    if of is not None and nf is not None and not d.identical:
        rc = row_changes(of, nf)
        if rc is not None:
            d.rows_added, d.rows_removed = rc
    elif d.identical and ov.rows is not None:
        d.rows_added = d.rows_removed = 0
    return d

"""``ValidationResult``: what ``%validate`` / :func:`nbops.validate` returns -- violations first."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

# pandera's check names -> the name a person reads
_CHECKS = [(r"^column_in_dataframe", "missing column"), (r"^column_in_schema", "unexpected column"),
           (r"^not_nullable", "missing values"), (r"^field_uniqueness", "duplicate key"),
           (r"^multiple_fields_uniqueness", "duplicate key"), (r"^nbops_kind", "dtype"),
           (r"^isin", "unseen category"), (r"^in_range", "out of range"),
           (r"^nbops_categories", "unseen category"), (r"^nbops_range", "out of range"),
           (r"^nbops_missing_share", "missing share"), (r"^nbops_row_count", "row count"),
           (r"^dtype", "dtype"), (r"^coerce", "dtype")]


def check_label(name: str) -> str:
    for pat, label in _CHECKS:
        if re.match(pat, str(name)):
            return label
    return str(name)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@dataclass
class ValidationResult:
    """The outcome of validating ``data`` against a contract. ``ok`` is True when nothing is violated;
    ``violations`` holds one dict per (column, check): ``column``, ``check``, ``count``, ``examples``,
    ``detail`` (what the contract allows)."""

    data: str
    against: str
    rows: int
    columns: int
    violations: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    run_id: str | None = None
    contract: object = None
    notes: list[str] = field(default_factory=list)   # differences rare enough to be chance: shown, not failed

    @property
    def ok(self) -> bool:
        return not self.violations

    def __bool__(self) -> bool:  # a result is "truthy" when it passed
        return self.ok

    def to_frame(self):
        """One row per violation: column, check, count, examples, detail."""
        import pandas as pd

        return pd.DataFrame([{k: v.get(k) for k in ("column", "check", "count", "examples", "detail")}
                             for v in self.violations], columns=["column", "check", "count", "examples", "detail"])

    def headline(self) -> str:
        shape = f"{self.rows:,} rows x {self.columns} columns"
        if self.ok:
            return f"Validation passed: {self.data} ({shape}) meets the contract ({self.against})."
        cols = sorted({str(v["column"]) for v in self.violations})
        return (f"Validation FAILED: {self.data} ({shape}) breaks the contract ({self.against}): "
                f"{len(self.violations)} violation(s) in {', '.join(cols)}.")

    def _tail(self) -> list[str]:
        out = [f"note: {n}" for n in self.notes]
        if self.ignored:
            out.append(f"ignored: {', '.join(self.ignored)}")
        if self.run_id:
            out.append(f"recorded in run {self.run_id}")
        return out

    def __repr__(self) -> str:
        lines = [self.headline()]
        for v in self.violations:
            ex = ", ".join(_fmt(x) for x in v.get("examples") or [])
            lines.append(f"  {str(v['column']):<20} {v['check']:<18} {v['count']:>8,}  "
                         + (f"e.g. {ex}" if ex else "") + (f"  ({v['detail']})" if v.get("detail") else ""))
        lines += ["  " + t for t in self._tail()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        color = "#1a7f37" if self.ok else "#c62828"
        parts = [f"<div class='nbops-validation'><b style='color:{color}'>{e(self.headline())}</b></div>"]
        if self.violations:
            rows = "".join(
                f"<tr><td>{e(str(v['column']))}</td><td>{e(v['check'])}</td><td style='text-align:right'>"
                f"{v['count']:,}</td><td>{e(', '.join(_fmt(x) for x in v.get('examples') or []))}</td>"
                f"<td>{e(v.get('detail') or '')}</td></tr>" for v in self.violations)
            parts.append("<table class='nbops'><tr><th>column</th><th>check</th><th>count</th><th>examples</th>"
                         f"<th>contract</th></tr>{rows}</table>")
        parts += [f"<div>{e(t)}</div>" for t in self._tail()]
        return "".join(parts)

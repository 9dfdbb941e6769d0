"""``EvaluationResult``: metrics, slices and latency of one evaluation; shows itself."""
from __future__ import annotations

import html
from dataclasses import dataclass, field


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class EvaluationResult:
    model: str
    data: str
    task: str
    rows: int
    target: str
    metrics: dict
    slice_tables: dict = field(default_factory=dict)      # column -> DataFrame (group, metrics..., rows)
    slice_summary: dict = field(default_factory=dict)     # (column, metric) -> worst_group, worst, gap
    latency: dict = field(default_factory=dict)
    run_id: str | None = None
    prefix: str = "eval_"
    logged_to: str | None = None
    notes: list = field(default_factory=list)

    def logged_metrics(self) -> dict:
        """The metric names and values written to MLflow (see :mod:`nbops.evaluation.api`)."""
        out = {f"{self.prefix}{k}": v for k, v in self.metrics.items()}
        worst: dict[str, tuple] = {}
        for (col, metric), s in self.slice_summary.items():
            out[f"{metric}_slice_gap.{col}"] = s["gap"]
            if metric not in worst or s["gap"] > worst[metric][1]["gap"]:
                worst[metric] = (col, s)
        for metric, (col, s) in worst.items():
            out[f"{metric}_worst_slice"] = s["worst"]
            out[f"{metric}_slice_gap"] = s["gap"]
        for k in ("latency_p50_ms", "latency_p95_ms", "batch_rows_per_s"):
            if k in self.latency:
                out[k] = self.latency[k]
        return {k: float(v) for k, v in out.items()}

    def to_frame(self):
        """One row per (scope, metric): scope is ``all`` or ``<column>=<group>``; slices and latency included."""
        import pandas as pd

        rows = [{"scope": "all", "metric": k, "value": v, "rows": self.rows} for k, v in self.metrics.items()]
        for col, table in self.slice_tables.items():
            for _, r in table.iterrows():
                for k in self.metrics:
                    rows.append({"scope": f"{col}={r[col]}", "metric": k, "value": float(r[k]), "rows": int(r["rows"])})
        for k in ("latency_p50_ms", "latency_p95_ms", "batch_rows_per_s"):
            if k in self.latency:
                rows.append({"scope": "latency", "metric": k, "value": self.latency[k], "rows": None})
        return pd.DataFrame(rows, columns=["scope", "metric", "value", "rows"])

    def as_dict(self) -> dict:
        return {"model": self.model, "data": self.data, "task": self.task, "rows": self.rows, "target": self.target,
                "metrics": self.metrics, "logged": self.logged_metrics(), "latency": self.latency,
                "slices": {c: t.to_dict(orient="records") for c, t in self.slice_tables.items()}}

    def headline(self) -> str:
        m = ", ".join(f"{k}={_fmt(v)}" for k, v in self.metrics.items())
        return f"Evaluation of {self.model} on {self.data} ({self.rows:,} rows, {self.task}, target {self.target}): {m}"

    def _lines(self) -> list[str]:
        out = []
        for (col, metric), s in self.slice_summary.items():
            out.append(f"slice {col}: {metric} worst {_fmt(s['worst'])} in {col}={s['worst_group']}, gap "
                       f"{_fmt(s['gap'])}")
        if self.latency:
            out.append(f"latency: p50 {_fmt(self.latency['latency_p50_ms'])} ms, p95 "
                       f"{_fmt(self.latency['latency_p95_ms'])} ms (single row, {self.latency['latency_samples']} "
                       f"calls after warm-up); batch {self.latency['batch_rows_per_s']:,.0f} rows/s")
        if self.run_id and self.logged_to:
            out.append(f"logged on run {self.run_id} ({self.logged_to})")
        out += [f"note: {n}" for n in self.notes]
        return out

    def __repr__(self) -> str:
        return "\n".join([self.headline()] + ["  " + x for x in self._lines()])

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [f"<div class='nbops-evaluation'><b>{e(self.headline())}</b></div>"]
        parts += [f"<div>{e(x)}</div>" for x in self._lines()]
        for col, table in self.slice_tables.items():
            parts.append(f"<div>by {e(str(col))}</div>" + table.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                                       border=0))
        return "".join(parts)

"""The compact run summary shown under a tracked cell."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def table_html(rows: list[tuple[str, str]], title: str | None = None, css_class: str = "nbops") -> str:
    """A two-column key/value table: the house style for small results."""
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{v}</td></tr>" for k, v in rows)
    cap = f"<caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>" if title else ""
    return f"<table class='{css_class}'>{cap}{body}</table>"


@dataclass
class RunSummary:
    run_id: str
    run_name: str | None
    experiment: str
    status: str
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    duration_s: float | None = None
    peak_rss_mb: float | None = None
    url: str | None = None
    spooled: bool = False
    spool_reason: str | None = None
    store: str | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_tracker(cls, t, wall_s: float | None = None, peak_rss: int | None = None) -> "RunSummary":
        metrics = {k: v for k, v in t.metrics_logged.items() if not k.startswith("nbops.")}
        return cls(run_id=t.run_id, run_name=t.run_name, experiment=t.experiment, status=t.status or "RUNNING",
                   params=dict(t.params_logged), metrics=metrics,
                   data=[f"{v.name} {v.short}" if hasattr(v, "short") else str(v) for v in t.data_versions],
                   models=list(t.run.model_uris) if t.run else [], figures=list(t.figures),
                   duration_s=wall_s if wall_s is not None else ((t.ended or 0) - (t.started or 0)),
                   peak_rss_mb=peak_rss / 2**20 if peak_rss else None, url=t.writer.run_url(t.run),
                   spooled=bool(t.run and t.run.spooled), spool_reason=t.run.spool_reason if t.run else None,
                   store=t.settings.tracking_uri, warnings=list(t.warnings))

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("run", f"{self.run_name or ''} ({self.run_id})"), ("experiment", self.experiment),
                ("status", self.status + ("  [spooled: run `nbops sync` later]" if self.spooled else ""))]
        if self.params:
            rows.append(("params", ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())))
        if self.metrics:
            rows.append(("metrics", ", ".join(f"{k}={_fmt(v)}" for k, v in self.metrics.items())))
        if self.data:
            rows.append(("data", ", ".join(self.data)))
        if self.models:
            rows.append(("model", ", ".join(self.models)))
        if self.figures:
            rows.append(("figures", str(len(self.figures))))
        if self.duration_s is not None:
            extra = f", peak RSS {self.peak_rss_mb:.0f} MB" if self.peak_rss_mb else ""
            rows.append(("duration", f"{self.duration_s:.2f} s{extra}"))
        rows.append(("store", self.url or self.store or ""))
        rows += [("warning", w) for w in self.warnings]
        return rows

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self._rows())
        return "nbops run\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in self._rows())

    def _repr_html_(self) -> str:
        rows = [(k, html.escape(v)) for k, v in self._rows()]
        if self.url:
            rows = [(k, f"<a href='{html.escape(self.url)}' target='_blank'>{html.escape(self.url)}</a>")
                    if k == "store" else (k, v) for k, v in rows]
        color = {"FINISHED": "#1a7f37", "FAILED": "#cf222e", "KILLED": "#9a6700"}.get(self.status, "#57606a")
        return (f"<div class='nbops-run-summary' data-run-id='{html.escape(self.run_id or '')}' "
                f"style='border-left:4px solid {color};padding-left:8px'>"
                + table_html(rows, "nbops run") + "</div>")

    def widget(self):
        """The summary as a widget: the same table, plus collapsed params / metrics tables when there are many."""
        import ipywidgets as w

        parts = [w.HTML(self._repr_html_())]
        sections = [(name, values) for name, values in (("params", self.params), ("metrics", self.metrics))
                    if len(values) > 3]
        if sections:
            import pandas as pd
            from .views import frame_widget

            acc = w.Accordion(children=[frame_widget(pd.DataFrame({"name": list(v), "value": [_fmt(x) for x in v.values()]}))
                                        for _, v in sections], selected_index=None)
            for i, (name, v) in enumerate(sections):
                acc.set_title(i, f"{name} ({len(v)})")
            parts.append(acc)
        box = w.VBox(parts)
        box.add_class("nbops-run-summary-widget")
        return box

"""What a tracked run looks like under its cell (:class:`RunSummary`) and the recent-runs table
(:class:`RunsTable`, ``%nbops runs``): plain HTML + text built from :mod:`nbops.display`'s renderers, so
JupyterLab, papermill outputs and nbconvert exports all show the same thing, with run ids linked to the UI."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..display import links
from ..display.views import frame_html, frame_text, frame_widget, kv_html, kv_text

STATUS_COLOR = {"FINISHED": "#1a7f37", "FAILED": "#cf222e", "KILLED": "#9a6700"}


SHOWN = 10          # params / metrics listed by name under a cell; the rest are counted
VALUE_CHARS = 80    # a value longer than this is cut in the summary (the run keeps it)


def _fmt(v: Any) -> str:
    text = f"{v:.6g}" if isinstance(v, float) else str(v)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


def first_few(values: dict, noun: str, n: int = SHOWN) -> str:
    """``k=v, ...`` for the first ``n`` items and a count of the rest (``… and 9,990 more metrics``): a summary
    stays a few lines whatever a run logged (the run itself keeps everything)."""
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(values.items())[:n])
    more = len(values) - n
    return shown + (f" … and {more:,} more {noun}" if more > 0 else "")


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
    peak_rss_mb: float | None = None      # the process's peak while the cell ran
    cell_rss_mb: float | None = None      # what the cell added to it (peak - before the cell)
    url: str | None = None
    spooled: bool = False
    spool_reason: str | None = None
    store: str | None = None
    warnings: list[str] = field(default_factory=list)
    experiment_id: str | None = None
    error: str | None = None              # "ZeroDivisionError: division by zero" for a FAILED run
    writing: bool = False                 # background mode: durable in the spool, the store not written yet

    @classmethod
    def from_tracker(cls, t, wall_s: float | None = None, peak_rss: int | None = None,
                     base_rss: int | None = None) -> "RunSummary":
        metrics = {k: v for k, v in t.metrics_logged.items() if not k.startswith("nbops.")}
        err = getattr(t, "error", None)
        run = t.run
        writing = bool(run and run.in_flight)
        spooled = bool(run and run.spooled) and not writing
        url = None if spooled or writing else (t.writer.run_url(run) if run else None) or links.run_url(
            t.run_id, getattr(run, "experiment_id", None), t.settings)
        return cls(run_id=t.run_id, run_name=t.run_name, experiment=t.experiment, status=t.status or "RUNNING",
                   params=dict(t.params_logged), metrics=metrics,
                   data=[f"{v.name} {v.short}" if hasattr(v, "short") else str(v) for v in t.data_versions],
                   models=list(run.model_uris) if run else [], figures=list(t.figures),
                   duration_s=wall_s if wall_s is not None else ((t.ended or 0) - (t.started or 0)),
                   peak_rss_mb=peak_rss / 2**20 if peak_rss else None,
                   cell_rss_mb=max(0, peak_rss - base_rss) / 2**20 if peak_rss and base_rss else None,
                   url=url, spooled=spooled, spool_reason=run.spool_reason if run else None,
                   store=t.settings.tracking_uri, warnings=list(t.warnings),
                   experiment_id=getattr(run, "experiment_id", None), writing=writing,
                   error=t.masker(f"{type(err).__name__}: {err}")[:300] if err is not None else None)

    def _rows(self, link: bool = False) -> list[tuple[str, str]]:
        """(label, value) rows; with ``link``, values are HTML (escaped, run id linked)."""
        e = html.escape if link else str
        run = (f"{e(self.run_name or '')} (" + (links.a(self.url, self.run_id, "open in the MLflow UI")
                                                if link else self.run_id) + ")")
        status = self.status + ("  [spooled: run `nbops sync` later]" if self.spooled else
                                f"  [spooled: {self.spool_reason}; it is written with the next run, or by `nbops "
                                f"sync`]" if self.writing and self.spool_reason else
                                "  [in the local spool, being written to the store]" if self.writing else "")
        rows = [("run", run), ("experiment", e(self.experiment)), ("status", e(status))]
        if self.error:
            rows.append(("error", f"<b style='color:{STATUS_COLOR['FAILED']}'>{e(self.error)}</b>" if link
                         else self.error))
        for name, values in (("params", self.params), ("metrics", self.metrics)):
            if not values:
                continue
            rows.append((name, e(first_few(values, name))))
        for label, values in (("data", self.data), ("model", self.models)):
            if values:
                rows.append((label, e(", ".join(values))))
        if self.figures:
            rows.append(("figures", str(len(self.figures))))
        if self.duration_s is not None:
            mem = ""
            if self.cell_rss_mb is not None:
                mem = f", memory +{self.cell_rss_mb:.0f} MB (peak {self.peak_rss_mb:.0f} MB)"
            elif self.peak_rss_mb:
                mem = f", peak memory {self.peak_rss_mb:.0f} MB"
            rows.append(("duration", f"{self.duration_s:.2f} s{mem}"))
        rows.append(("store", e(self.store or "")))
        if self.url and not link:
            rows.append(("open", self.url))
        rows += [("warning", e(w)) for w in self.warnings]
        return rows

    def __repr__(self) -> str:
        return kv_text(self._rows(), "nbops run")

    def _repr_html_(self) -> str:
        color = STATUS_COLOR.get(self.status, "#57606a")
        return (f"<div class='nbops-run-summary' data-run-id='{html.escape(self.run_id or '')}' "
                f"style='border-left:4px solid {color};padding-left:8px'>"
                + kv_html(self._rows(link=True), "nbops run") + "</div>")


_FIRST = ["run_name", "run_id", "status", "start_time", "duration"]
KEY_COLUMNS = 6   # params / metrics shown beside the run: those that differ across the runs shown


class RunsTable:
    """Recent runs, newest first: run, status, start, duration and the few params / metrics that tell the runs
    apart (at most :data:`KEY_COLUMNS`: metrics first, then params, those whose values differ across the runs
    shown). ``to_frame()`` is the whole DataFrame ``nbops.api.runs`` returned, every column kept."""

    def __init__(self, df, notebook: str | None = None):
        self.df, self.notebook = df, notebook

    @property
    def title(self) -> str:
        where = f" of {self.notebook}" if self.notebook else ""
        hidden = self._hidden()
        more = "; " + ", ".join(f"… and {n:,} more {k}" for k, n in hidden.items() if n) + \
            " (-o VAR keeps every column)" if any(hidden.values()) else ""
        return f"nbops runs{where} ({len(self.df)}{more})"

    def _keys(self) -> list[str]:
        """The params / metrics shown: those that differ across the runs (all of them for a single run), by name,
        metrics first but at most two thirds of the columns while params that differ are left."""
        df = self.df

        def shown(prefix: str) -> list[str]:
            cols = sorted(c for c in df.columns if c.startswith(prefix) and df[c].notna().any())
            return [c for c in cols if len(df) <= 1 or df[c].astype(str).nunique(dropna=False) > 1]

        metrics, params = shown("metrics."), shown("params.")
        m = min(len(metrics), max(KEY_COLUMNS * 2 // 3, KEY_COLUMNS - len(params)))
        keys = metrics[:m] + params[:KEY_COLUMNS - m]
        return keys + metrics[m:m + KEY_COLUMNS - len(keys)]

    def _hidden(self) -> dict:
        """How many params / metrics columns the table leaves out, per kind."""
        keys = self._keys() if len(self.df) else []
        cols = [str(c) for c in getattr(self.df, "columns", [])]
        return {k: sum(c.startswith(k + ".") and c not in keys for c in cols) for k in ("params", "metrics")}

    def _view(self):
        df = self.df
        if not len(df):
            return df
        view = df.copy()
        if "start_time" in view.columns and "end_time" in view.columns:
            secs = (view["end_time"] - view["start_time"]).dt.total_seconds()
            view["duration"] = [f"{v:.1f} s" if v == v else "" for v in secs]
        if "start_time" in view.columns:
            view["start_time"] = view["start_time"].astype(str).str.slice(0, 19)
        extra = [c for c in ("incidents",) if c in view.columns and view[c].notna().any()]
        cols = [c for c in _FIRST if c in view.columns] + self._keys() + extra
        view = view[cols].rename(columns={"start_time": "start"})
        short = {c: c.split(".", 1)[1] for c in view.columns if c.startswith(("params.", "metrics."))}
        clash = {v for v in short.values() if list(short.values()).count(v) > 1 or v in view.columns}
        return view.rename(columns={c: v for c, v in short.items() if v not in clash})

    def _links(self) -> dict:
        exp = self.df["experiment_id"] if "experiment_id" in self.df.columns else [None] * len(self.df)
        return {"run_id": {r: links.run_url(r, e) for r, e in zip(self.df.get("run_id", []), exp)}}

    def to_frame(self):
        return self.df

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return frame_text(self._view(), self.title)

    def _repr_html_(self) -> str:
        return frame_html(self._view(), self.title, css_class="nbops-runs", links=self._links())

    def widget(self):
        return frame_widget(self._view(), self.title, css_class="nbops-runs", links=self._links())

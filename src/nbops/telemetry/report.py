"""TelemetryReport: the scored frame and its incidents, shown as a multi-panel figure and an incident table."""
from __future__ import annotations

import base64
import html
import io
import logging

log = logging.getLogger("nbops")
MAX_PANELS = 12


class TelemetryReport:
    """What ``%telemetry`` and :func:`nbops.telemetry.analyze` return.

    ``frame``: tidy frame plus ``score`` and ``anomaly``; ``incidents``: list of
    :class:`~nbops.telemetry.grouping.Incident`. ``plot()`` draws one panel per series (anomalous points marked,
    incident spans shaded), ``to_frame()`` returns the scored frame, ``incidents_frame()`` the incident table,
    ``log()`` records all of it to MLflow.
    """

    def __init__(self, frame, incidents, *, source="frame", query=None, detector="auto", sensitivity="medium",
                 direction="both", gap=None):
        self.frame = frame
        self.incidents = list(incidents)
        self.source, self.query = source, query
        self.detector, self.sensitivity, self.direction = detector, sensitivity, direction
        self.gap = gap  # seconds, or None: 5 steps of each series (when an incident is over, see lifecycle)
        self.run_id: str | None = None
        self._png: bytes | None = None
        # filled by nbops.telemetry.respond: ledger keys, first detections, new incidents, alert and runbooks
        self.keys: dict = {}
        self.detections: dict = {}
        self.new: list = []
        self.alerts = None
        self.runbooks: list = []

    # -- numbers ------------------------------------------------------------------------------------------------
    @property
    def series(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(zip(self.frame["metric"], self.frame["labels"])))

    @property
    def anomalous_points(self) -> int:
        return int(self.frame["anomaly"].sum()) if len(self.frame) else 0

    @property
    def reduction(self) -> float:
        """Anomalous points per incident (how many raw alerts each incident stands for)."""
        return self.anomalous_points / len(self.incidents) if self.incidents else 0.0

    def kpis(self) -> dict:
        """Alert-volume reduction, incidents per day, mean time to detect, mean duration of resolved incidents
        (see :func:`nbops.telemetry.lifecycle.kpis`)."""
        from .lifecycle import kpis

        return kpis(self)

    def to_frame(self):
        return self.frame

    def incidents_frame(self):
        from .grouping import to_frame

        return to_frame(self.incidents)

    def summary(self) -> str:
        return (f"{len(self.series)} series, {len(self.frame)} points from {self.source} "
                f"(detector {self.detector}, sensitivity {self.sensitivity}, direction {self.direction}): "
                f"{self.anomalous_points} anomalous points -> {len(self.incidents)} incidents")

    # -- pictures -----------------------------------------------------------------------------------------------
    def plot(self, max_panels: int = MAX_PANELS, figsize=None):
        """A matplotlib Figure: one panel per series (first ``max_panels``), anomalies in red, incidents shaded."""
        from matplotlib.figure import Figure
        import pandas as pd

        from .grouping import series_name

        keys = self.series[:max_panels]
        n = max(len(keys), 1)
        fig = Figure(figsize=figsize or (11, 1.9 * n + 0.6), layout="constrained")
        axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        groups = {k: g for k, g in self.frame.groupby(["metric", "labels"], sort=False)}
        for ax, key in zip(axes, keys):
            g = groups[key].sort_values("timestamp")
            name = series_name(*key)
            ax.plot(g["timestamp"], g["value"], lw=0.9, color="#1f77b4")
            bad = g[g["anomaly"]]
            if len(bad):
                ax.scatter(bad["timestamp"], bad["value"], s=18, color="#d62728", zorder=3, label="anomaly")
            for inc in self.incidents:
                if name in inc.series:
                    pad = pd.Timedelta(seconds=max(inc.duration_s * 0.02, 1))
                    ax.axvspan(inc.start - pad, inc.end + pad, color="#ff7f0e", alpha=0.18, lw=0)
                    ax.annotate(f"#{inc.id}", (inc.start, 1), xycoords=("data", "axes fraction"), fontsize=7,
                                va="top", color="#b35900")
            ax.set_title(name if len(name) < 110 else name[:107] + "...", fontsize=8, loc="left")
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        if not keys:
            axes[0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0].transAxes)
        more = len(self.series) - len(keys)
        fig.suptitle(f"{self.anomalous_points} anomalous points -> {len(self.incidents)} incidents"
                     + (f" ({more} more series not drawn)" if more > 0 else ""), fontsize=9)
        return fig

    def png(self) -> bytes:
        if self._png is None:
            buf = io.BytesIO()
            self.plot().savefig(buf, format="png", dpi=90)
            self._png = buf.getvalue()
        return self._png

    # -- display ------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .lifecycle import kpi_line

        lines = [f"TelemetryReport: {self.summary()}"]
        if self.incidents:
            lines.append(f"  KPIs: {kpi_line(self.kpis())}")
        for inc in self.incidents[:20]:
            lines.append(f"  #{inc.id} {inc.start} .. {inc.end}  lead={inc.lead}  metrics={', '.join(inc.metrics)}"
                         f"  points={inc.points}  peak={inc.peak_score:.2f}")
        if len(self.incidents) > 20:
            lines.append(f"  ... {len(self.incidents) - 20} more")
        if self.run_id:
            lines.append(f"  logged to run {self.run_id}")
        lines += [f"  {x!r}" for x in self._actions()]
        return "\n".join(lines)

    def _actions(self) -> list:
        return ([self.alerts] if self.alerts is not None else []) + list(self.runbooks)

    def _table_html(self, limit: int = 30) -> str:
        if not self.incidents:
            return "<p>No incidents.</p>"
        head = "".join(f"<th>{h}</th>" for h in ("#", "start", "end", "lead (first abnormal)", "metrics", "points",
                                                 "peak score"))
        rows = []
        for inc in self.incidents[:limit]:
            cells = (inc.id, inc.start, inc.end, inc.lead, ", ".join(inc.metrics), inc.points, f"{inc.peak_score:.2f}")
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        more = f"<p>{len(self.incidents) - limit} more incidents: report.incidents_frame()</p>" \
            if len(self.incidents) > limit else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"

    def _repr_html_(self) -> str:
        img = base64.b64encode(self.png()).decode()
        from .lifecycle import kpi_line

        run = f"<p>Logged to run <code>{html.escape(self.run_id)}</code></p>" if self.run_id else ""
        kpi = f"<p>KPIs: {html.escape(kpi_line(self.kpis()))}</p>" if self.incidents else ""
        acts = "".join(x._repr_html_() for x in self._actions())
        return (f"<div class='nbops-telemetry'><p><b>Telemetry</b>: {html.escape(self.summary())}</p>{kpi}"
                f"<img src='data:image/png;base64,{img}' style='max-width:100%'/>{self._table_html()}{run}{acts}</div>")

    def widget(self):
        import ipywidgets as w

        return w.HTML(self._repr_html_())

    # -- recording ----------------------------------------------------------------------------------------------
    def log(self, tracker=None, experiment: str | None = None, run_name: str | None = None) -> str | None:
        """Record the frame (parquet artifact), incidents (JSON), figure and counts to MLflow: into ``tracker``,
        else the current tracked run, else a new run ``kind="telemetry"``. Returns the run id."""
        from ..tracking import current
        from ..tracking.run import track

        t = tracker or current()
        if t is not None:
            self._log_into(t)
            self.run_id = t.run_id
            return self.run_id
        with track(experiment, run_name or f"telemetry-{self.source}", kind="telemetry") as t:
            self._log_into(t)
        self.run_id = t.run_id
        return self.run_id

    def _log_into(self, t) -> None:
        import json

        t.log_params({"telemetry.source": self.source, "telemetry.detector": self.detector,
                      "telemetry.sensitivity": self.sensitivity, "telemetry.direction": self.direction,
                      "telemetry.query": json.dumps(self.query) if self.query is not None else ""})
        t.log_metrics({"telemetry.series": len(self.series), "telemetry.points": len(self.frame),
                       "telemetry.anomalous_points": self.anomalous_points,
                       "telemetry.incidents": len(self.incidents)})
        kpis = self.kpis()
        t.log_metrics({f"telemetry.kpi.{k}": v for k, v in kpis.items()
                       if v is not None and k not in ("anomalous_points", "incidents")})
        if self.incidents:
            from .lifecycle import kpi_line

            log.info("nbops: telemetry KPIs: %s", kpi_line(kpis))
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="nbops-telemetry-") as tmp:
            path = Path(tmp) / "frame.parquet"
            self.frame.to_parquet(path, index=False)
            t.log_artifact(str(path), "telemetry")
        t.log_dict({"incidents": [{**i.as_dict(), "key": self.keys.get(i.id)} for i in self.incidents],
                    "summary": self.summary(), "kpis": kpis}, "telemetry/incidents.json")
        t.log_figure(self.plot(), "telemetry/figure.png")

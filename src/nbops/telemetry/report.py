"""TelemetryReport: the scored frame and its incidents, shown as a multi-panel figure and an incident table."""
from __future__ import annotations

import html
import logging

log = logging.getLogger("nbops")
MAX_PANELS = 6


def _is_percentage(metric: str) -> bool:
    m = metric.lower()
    return m.endswith(("percentage", "_percent", "_pct", "_ratio_percent")) or "percent" in m


def _when(t) -> str:
    try:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    except AttributeError:
        return str(t)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


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
        self.notes: list[str] = []   # e.g. the local sampler holds less than --last asked for

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

    @property
    def window_s(self) -> float:
        """The span of the data, first to last sample (seconds)."""
        if not len(self.frame):
            return 0.0
        return float((self.frame["timestamp"].max() - self.frame["timestamp"].min()).total_seconds())

    def alert_count(self, sensitivity: str | None = None) -> int:
        """Alerts (pages, all series) over the window that ``sensitivity`` (default: the one used) would have
        raised: anomalous points, one per the detector's refractory period (``Detector.alerts``, as in the NAB
        benchmark the thresholds were chosen on)."""
        from .detectors import get, names

        if not len(self.frame) or self.detector not in names():
            return 0
        det = get(self.detector)
        sensitivity = sensitivity or self.sensitivity
        return sum(int(det.alerts(g["score"].to_numpy(float), sensitivity).sum())
                   for _, g in self.frame.groupby(["metric", "labels"], sort=False))

    def alerts_per_day(self, sensitivity: str | None = None) -> float:
        """:meth:`alert_count` per day of the window."""
        return float(self.alert_count(sensitivity)) / (max(self.window_s, 1.0) / 86400)

    def alerts_line(self) -> str:
        """``sensitivity medium: 1.2 alerts/day here (low 0.4, high 3.0)``; over a window shorter than
        :data:`~nbops.telemetry.lifecycle.MIN_RATE_WINDOW_S` the counts themselves (a rate extrapolated from
        seconds of data says nothing)."""
        from .lifecycle import MIN_RATE_WINDOW_S, _dur

        levels = [k for k in ("low", "medium", "high") if k != self.sensitivity]
        if self.window_s < MIN_RATE_WINDOW_S:
            others = ", ".join(f"{k} {self.alert_count(k)}" for k in levels)
            return (f"sensitivity {self.sensitivity}: {self.alert_count()} alerts in {_dur(self.window_s)} of data "
                    f"({others}; per-day rates from {MIN_RATE_WINDOW_S / 3600:g}h of data)")
        others = ", ".join(f"{k} {self.alerts_per_day(k):.3g}" for k in levels)
        return f"sensitivity {self.sensitivity}: {self.alerts_per_day():.3g} alerts/day here ({others})"

    def summary(self) -> str:
        return (f"{len(self.series)} series, {len(self.frame)} points from {self.source} "
                f"(detector {self.detector}, sensitivity {self.sensitivity}, direction {self.direction}): "
                f"{self.anomalous_points} anomalous points -> {len(self.incidents)} incidents; {self.alerts_line()}")

    # -- pictures -----------------------------------------------------------------------------------------------
    def ranked_series(self) -> list[tuple[str, str]]:
        """Series with anomalies first (most anomalous points first), then the rest in their order."""
        if not len(self.frame):
            return []
        counts = self.frame.groupby(["metric", "labels"], sort=False)["anomaly"].sum()
        return sorted(self.series, key=lambda k: -int(counts.get(k, 0)))

    def plot(self, max_panels: int = MAX_PANELS, figsize=None, all_series: bool = False):
        """A matplotlib Figure of the series with anomalies (every series with ``all_series``; at most
        ``max_panels``): anomalous points in red, the span of each incident shaded on the series it touched,
        percentage axes from 0. Its height is capped, so it stays readable under a cell."""
        from matplotlib.figure import Figure
        import pandas as pd

        from .grouping import series_name

        ranked = self.ranked_series()
        flagged = [k for k in ranked if self._anomalies(k)]
        keys = (ranked if all_series or not flagged else flagged)[:max_panels]
        if not flagged and not all_series:
            keys = ranked[:min(max_panels, 4)]
        n = max(len(keys), 1)
        fig = Figure(figsize=figsize or (11, min(1.7 * n + 0.7, 9.0)), layout="constrained")
        axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        groups = {k: g for k, g in self.frame.groupby(["metric", "labels"], sort=False)}
        window = (self.frame["timestamp"].max() - self.frame["timestamp"].min()).total_seconds() if len(self.frame) else 0
        for ax, key in zip(axes, keys):
            g = groups[key].sort_values("timestamp")
            name = series_name(*key)
            ax.plot(g["timestamp"], g["value"], lw=0.9, color="#1f77b4")
            bad = g[g["anomaly"]]
            if len(bad):
                ax.scatter(bad["timestamp"], bad["value"], s=18, color="#d62728", zorder=3, label="anomaly")
            for inc in self.incidents:
                if name not in inc.series:
                    continue
                mine = bad[(bad["timestamp"] >= inc.start) & (bad["timestamp"] <= inc.end)]["timestamp"]
                start, end = (mine.min(), mine.max()) if len(mine) else (inc.start, inc.end)
                pad = pd.Timedelta(seconds=max((end - start).total_seconds() * 0.05, window * 0.006, 1))
                ax.axvspan(start - pad, end + pad, color="#ff7f0e", alpha=0.2, lw=0)
                ax.annotate(f"#{inc.id}", (start, 1), xycoords=("data", "axes fraction"), fontsize=7,
                            va="top", color="#b35900")
            if _is_percentage(key[0]):
                ax.set_ylim(0, max(100.0, float(g["value"].max()) * 1.05))
            ax.set_title(name if len(name) < 110 else name[:107] + "...", fontsize=8, loc="left")
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        if not keys:
            axes[0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0].transAxes)
        more = len(self.series) - len(keys)
        note = ""
        if more > 0:
            note = f" ({more} more series {'without anomalies ' if not all_series and flagged else ''}not drawn: " \
                   f"plot(all_series=True))"
        fig.suptitle(f"{self.anomalous_points} anomalous points -> {len(self.incidents)} incidents{note}", fontsize=9)
        return fig

    def _anomalies(self, key) -> int:
        g = self.frame[(self.frame["metric"] == key[0]) & (self.frame["labels"] == key[1])]
        return int(g["anomaly"].sum())

    def png(self) -> bytes:
        if self._png is None:
            from ..display.views import figure_png

            self._png = figure_png(self.plot(), dpi=90)
        return self._png

    # -- display ------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .lifecycle import kpi_line

        lines = [f"TelemetryReport: {self.summary()}"]
        if self.incidents:
            lines.append(f"  KPIs: {kpi_line(self.kpis())}")
        for inc in self.incidents[:20]:
            lines.append(f"  #{inc.id} {_when(inc.start)} for {_duration(inc.duration_s)}  first abnormal={inc.lead}"
                         f"  metrics={', '.join(inc.metrics)}"
                         f"  points={inc.points}  peak={inc.peak_score:.2f}")
        if len(self.incidents) > 20:
            lines.append(f"  ... {len(self.incidents) - 20} more")
        lines += [f"  note: {n}" for n in self.notes]
        if self.run_id:
            lines.append(f"  logged to run {self.run_id}")
        lines += [f"  {x!r}" for x in self._actions()]
        return "\n".join(lines)

    def _actions(self) -> list:
        return ([self.alerts] if self.alerts is not None else []) + list(self.runbooks)

    def incident_table(self):
        """The incidents as a table a person reads: start to the second, duration in words, no nanoseconds."""
        import pandas as pd

        rows = [{"#": inc.id, "start": _when(inc.start), "duration": _duration(inc.duration_s),
                 "first abnormal": inc.lead, "metrics": ", ".join(inc.metrics), "points": inc.points,
                 "peak score": round(float(inc.peak_score), 2)} for inc in self.incidents]
        return pd.DataFrame(rows, columns=["#", "start", "duration", "first abnormal", "metrics", "points",
                                           "peak score"])

    def _repr_html_(self) -> str:
        from ..display.links import run_link
        from ..display.views import figure_html, frame_html
        from .lifecycle import kpi_line

        run = f"<p>Logged to run {run_link(self.run_id)}</p>" if self.run_id else ""
        kpi = f"<p>KPIs: {html.escape(kpi_line(self.kpis()))}</p>" if self.incidents else ""
        acts = "".join(x._repr_html_() for x in self._actions())
        table = (frame_html(self.incident_table(), "incidents", max_rows=30, css_class="nbops-incidents")
                 if self.incidents else "<p>No incidents.</p>")
        kpi += "".join(f"<p>note: {html.escape(n)}</p>" for n in self.notes)
        return (f"<div class='nbops-telemetry'><p><b>Telemetry</b>: {html.escape(self.summary())}</p>{kpi}"
                f"{table}{figure_html(self.png(), alt='telemetry', css_class='nbops-telemetry-figure')}"
                f"{run}{acts}</div>")

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
        t.log_dict({"incidents": [{**i.as_dict(), "ledger_id": self.keys.get(i.id)} for i in self.incidents],
                    "summary": self.summary(), "kpis": kpis}, "telemetry/incidents.json")
        t.log_figure(self.plot(), "telemetry/figure.png")

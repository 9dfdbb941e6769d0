"""The telemetry API: fetch -> detect -> incidents, and :func:`analyze` doing all three into a report."""
from __future__ import annotations

import logging

from ..errors import TelemetryError

log = logging.getLogger("nbops")


def fetch(source="local", query=None, *, url=None, last=None, start=None, end=None, step=None,
          timeout: float = 30.0, progress: bool | None = None):
    """One tidy frame (timestamp, metric, labels, value).

    ``source``: ``"local"``, ``"prometheus"``, a DataFrame, or a CSV path. ``query``: PromQL (one or a list) for
    Prometheus, metric names/globs for local. Time: ``last="1h"`` or ``start``/``end`` (ISO, unix seconds,
    ``now-2h``); ``step``: ``"15s"`` (Prometheus; default about 500 points per series). ``progress``: a bar over
    Prometheus's chunks -- None only where a person watches (see :mod:`nbops.display.progress`), True always,
    False never.
    """
    from . import sources
    from .timeparse import duration, window

    s, e = window(last, start, end)
    if not isinstance(source, str) or source not in sources.names():
        if isinstance(source, str) and source in ("prom",):
            source = "prometheus"
        else:
            df = sources.tidy(source)
            return _clip(df, s, e)
    if source == "prometheus":
        import time

        e = time.time() if e is None else e
        s = e - 3600 if s is None else s
        step_s = duration(step, "--step") if step is not None else None
        return sources.get("prometheus")(query=query, start=s, end=e, step=step_s, url=url, timeout=timeout,
                                         progress=progress)
    return sources.get(source)(query=query, start=s, end=e)


def _clip(df, s, e):
    import pandas as pd

    if s is not None:
        df = df[df["timestamp"] >= pd.Timestamp(s, unit="s")]
    if e is not None:
        df = df[df["timestamp"] <= pd.Timestamp(e, unit="s")]
    return df.reset_index(drop=True)


def detect(frame, detector: str = "auto", sensitivity: str = "medium", direction: str = "both", skip=()):
    """Score every point of every series; returns the frame plus ``score`` (0..1) and ``anomaly`` (bool): at or
    above the detector's threshold, and moved by at least the floor of the metric's unit
    (:func:`nbops.telemetry.floors.material`). Series of the metrics in ``skip`` are not scored (score NaN, never
    anomalous): shown, not judged."""
    import numpy as np
    import pandas as pd

    from . import detectors
    from .floors import material
    from .sources import COLUMNS

    det = detectors.get(detector)
    thr = det.threshold(sensitivity)
    detectors.check_direction(direction)
    missing = [c for c in COLUMNS if c not in getattr(frame, "columns", [])]
    if missing:
        raise TelemetryError(f"detect() needs a tidy frame with columns {COLUMNS}; missing {missing}. Use "
                             f"nbops.telemetry.fetch(...) or fetch(your_frame) first.")
    parts = []
    for _key, g in frame.groupby(["metric", "labels"], sort=False):
        g = g.sort_values("timestamp", kind="stable").copy()
        if _key[0] in skip:
            g["score"], g["anomaly"] = np.nan, False
            parts.append(g)
            continue
        t = g["timestamp"].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        s = det.score(t, g["value"].to_numpy(float), direction)
        g["score"] = s
        hit = np.nan_to_num(s, nan=0.0) >= thr  # points; pages (Detector.alerts) add a refractory period
        g["anomaly"] = material(str(_key[0]), g["value"].to_numpy(float), hit)  # and a move of the unit's floor
        parts.append(g)
    if not parts:
        out = frame.copy()
        out["score"], out["anomaly"] = pd.Series(dtype=float), pd.Series(dtype=bool)
        return out
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(detector=det.name, sensitivity=sensitivity, direction=direction, threshold=thr)
    return out


def incidents(scored, gap=None):
    """Group the anomalous points of a scored frame into :class:`~nbops.telemetry.grouping.Incident` s."""
    from . import grouping as inc
    from .timeparse import duration

    if "anomaly" not in getattr(scored, "columns", []):
        raise TelemetryError("incidents() needs a scored frame: call nbops.telemetry.detect(frame) first.")
    return inc.group(scored, duration(gap, "gap") if gap is not None else None)


def analyze(source="local", query=None, *, detector: str = "auto", sensitivity: str = "medium",
            direction: str = "both", gap=None, **fetch_kw):
    """fetch + detect + incidents -> :class:`~nbops.telemetry.report.TelemetryReport`."""
    from .report import TelemetryReport

    frame = fetch(source, query, **fetch_kw)
    if len(frame) == 0:
        raise TelemetryError("No samples in that window; widen --last or --start/--end.")
    local = isinstance(source, str) and source == "local"
    skip = ()
    if local:  # judged on what the run did not cause: the run's own series are shown, not scored
        from .local import OWN_SERIES as skip
    scored = detect(frame, detector, sensitivity, direction, skip=skip)
    if local:
        from .local import judge

        judge(scored)
    label = source if isinstance(source, str) else type(source).__name__
    from .timeparse import duration, window

    report = TelemetryReport(scored, incidents(scored, gap), source=label, query=query, detector=detector,
                             sensitivity=sensitivity, direction=direction,
                             gap=duration(gap, "gap") if gap is not None else None)
    if local:
        from .local import coverage_note

        note = coverage_note(window(fetch_kw.get("last"), fetch_kw.get("start"), fetch_kw.get("end"))[0])
        if note:
            report.notes.append(note)
    return report


_HOST: dict = {}


def host_incidents(last: str = "15m") -> dict:
    """The host's incidents in the ``last`` window, judged as ``%telemetry --source local --last 15m`` judges
    them, for a status light: ``{"sampling", "active" (still going on), "items" (newest first)}``. Computed again
    only when the sampler has taken a new sample since the last call."""
    from .lifecycle import ended, epoch, iso, lead_metric, over
    from .local import get_sampler

    s = get_sampler()
    if _HOST.get("key") == (id(s), s.count, last):
        return _HOST["value"]
    key = (id(s), s.count, last)
    try:
        report = analyze("local", last=last)
    except TelemetryError:
        value = {"sampling": s.running, "active": 0, "items": []}
    else:
        items = [{"start": iso(epoch(i.start)), "end": iso(ended(report, i)), "ongoing": not over(report, i),
                  "metrics": list(i.metrics), "lead": lead_metric(i)} for i in report.incidents]
        items.sort(key=lambda x: x["start"], reverse=True)
        value = {"sampling": s.running, "active": sum(x["ongoing"] for x in items), "items": items}
    _HOST.update(key=key, value=value)
    return value

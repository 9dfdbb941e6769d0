"""An incident's life after it is found: a stable identity across analyses, when nbops first saw it, whether it
is over, and the KPIs the field reports (alert-volume reduction, incidents per day, time to detect, duration).

The *ledger* (``<project>/.nbops/incidents.json``) remembers every incident nbops has seen: its stable key,
frozen alert labels, when it was first detected (wall clock), which Alertmanagers it was sent to and how, and
which runbook ran for it. An incident found again (the same span re-analysed, or an ongoing one that grew)
matches its entry when it has the same *scope* (source and host / instance / job labels) and its time span
overlaps; so re-sending it gives Alertmanager the same labels, and its runbook runs once.

An incident is *over* when every series in it has been observed normal again for at least the grouping gap
after its last anomalous point (5 steps of the series by default): the data, not the clock, says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("nbops")
LEDGER_FILE = "incidents.json"
KEEP_DAYS = 30
MAX_ENTRIES = 2000
_LOCK = threading.Lock()


# -- when is an incident over ---------------------------------------------------------------------------------
BASELINE_POINTS = 200   # points before the incident that define its series' normal band
BAND_Z = 4.0            # the band: median +- BAND_Z robust standard deviations (floored like the robust detector)


def _series(frame) -> dict:
    """{series name: (times in unix seconds, values, median step seconds)} of a scored frame (cached)."""
    import numpy as np

    from .grouping import series_name

    out = {}
    for (metric, labels), g in frame.groupby(["metric", "labels"], sort=False):
        g = g.sort_values("timestamp", kind="stable")
        ts = g["timestamp"].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0
        out[series_name(metric, labels)] = (ts, g["value"].to_numpy(float), step)
    return out


def _settle(ts, ys, t0: float, t_end: float, pad: float) -> tuple[bool, float]:
    """``(over, last abnormal time)`` of one series from ``t0`` on: abnormal is a value outside the band of the
    points before ``t0`` (or, with too few of those, the flagged span up to ``t_end``); over once the values
    stay inside the band for ``pad`` seconds. Detectors that flag only the first point of a sustained fault (the
    seasonal one) would otherwise call it over while the host is still down."""
    import numpy as np

    before = ys[(ts < t0) & np.isfinite(ys)][-BASELINE_POINTS:]
    if len(before) >= 10:
        med = float(np.median(before))
        sd = max(1.4826 * float(np.median(np.abs(before - med))), 0.1 * float(np.std(before)), 0.01 * abs(med),
                 1e-9)
        bad = np.abs(ys - med) > BAND_Z * sd
    else:
        bad = np.zeros(len(ys), bool)
    last = t_end
    for i in np.flatnonzero(ts >= t0):
        if ts[i] <= t_end or bad[i]:
            last = max(last, ts[i]) if bad[i] else last
        elif ts[i] - last >= pad:
            return True, last
    return False, last


def lifecycle(report, incident) -> tuple[bool, float]:
    """``(over, end)``: ``end`` is the last abnormal time of the incident's series (unix seconds; a value outside
    its pre-incident band, or a flagged point); ``over`` when each series was then observed normal for at least
    the grouping gap (``report.gap``, default 5 steps of the series)."""
    cache = report.__dict__.setdefault("_lifecycle", {})
    if incident.id in cache and cache[incident.id][0] is incident:
        return cache[incident.id][1]
    series = report.__dict__.get("_series_cache")
    if series is None or series[0] is not report.frame:
        series = report._series_cache = (report.frame, _series(report.frame))
    t0, t_end = epoch(incident.start), epoch(incident.end)
    done, end = True, t_end
    gap = getattr(report, "gap", None)
    for name in incident.series:
        if name not in series[1]:
            done = False
            continue
        ts, ys, step = series[1][name]
        settled, last_bad = _settle(ts, ys, t0, t_end, gap if gap is not None else 5 * max(step, 1e-9))
        end = max(end, last_bad)
        done = done and settled
    cache[incident.id] = (incident, (done, end))
    return done, end


def over(report, incident) -> bool:
    """True when every series of ``incident`` was seen normal for at least the gap after its last abnormal
    value (see :func:`lifecycle`)."""
    return lifecycle(report, incident)[0]


def ended(report, incident) -> float:
    """Unix seconds of the incident's last abnormal value."""
    return lifecycle(report, incident)[1]


def epoch(ts) -> float:
    """Unix seconds of a tz-naive (UTC) or aware pandas Timestamp."""
    return (ts if ts.tzinfo else ts.tz_localize("UTC")).timestamp()


def iso(t: float) -> str:
    """RFC 3339 UTC with milliseconds, as Alertmanager writes times."""
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- KPIs -----------------------------------------------------------------------------------------------------
MIN_RATE_WINDOW_S = 3600.0   # per-day rates only from this much data: 3 alerts in 15 s are not 17,280 a day


def kpis(report) -> dict:
    """The numbers the field reports for a telemetry report (``None`` where there is nothing to measure).

    - ``alert_reduction_pct``: 100 * (1 - incidents / anomalous points), how much alert volume grouping saves;
      ``points_per_incident`` the same as a ratio;
    - ``incidents_per_day``: incidents over the window's span, once it is :data:`MIN_RATE_WINDOW_S` long
      (``window_s`` says how long it is);
    - ``mean_time_to_detect_s``: first detection (wall clock, from the ledger) minus start, over the incidents
      caught while still going on in live data (one found already over says when someone looked, not how
      fast detection is);
    - ``mean_duration_s``: over the incidents that are over (the MTTR input); ``resolved`` how many are.
    """
    pts, n = report.anomalous_points, len(report.incidents)
    out = {"anomalous_points": pts, "incidents": n,
           "alert_reduction_pct": round(100.0 * (1 - n / pts), 2) if pts else None,
           "points_per_incident": round(pts / n, 2) if n else None,
           "incidents_per_day": None, "mean_time_to_detect_s": None, "mean_duration_s": None, "resolved": 0}
    if len(report.frame):
        span = (report.frame["timestamp"].max() - report.frame["timestamp"].min()).total_seconds()
        if span > 0:
            out["window_s"] = round(span, 3)
        if span >= MIN_RATE_WINDOW_S:
            out["incidents_per_day"] = round(n / (span / 86400.0), 3)
    done = [i for i in report.incidents if over(report, i)]
    out["resolved"] = len(done)
    if done:
        out["mean_duration_s"] = round(sum(ended(report, i) - epoch(i.start) for i in done) / len(done), 3)
    ttd = [d["detected_at"] - epoch(i.start) for i in report.incidents
           if (d := getattr(report, "detections", {}).get(i.id)) and d.get("live")]
    if ttd:
        out["mean_time_to_detect_s"] = round(sum(ttd) / len(ttd), 3)
    return out


def kpi_line(k: dict) -> str:
    parts = []
    if k["alert_reduction_pct"] is not None:
        parts.append(f"alert volume reduced {k['alert_reduction_pct']:.1f}% ({k['anomalous_points']} anomalous "
                     f"points -> {k['incidents']} incidents)")
    if k["incidents_per_day"] is not None:
        per = f"{k['incidents_per_day']:.3g} incidents/day"
        if k.get("window_s", 86400) < 86400:  # a short window: say what the rate is extrapolated from
            per += f" ({k['incidents']} in {_dur(k['window_s'])})"
        parts.append(per)
    elif k.get("window_s"):
        parts.append(f"{k['incidents']} incidents in {_dur(k['window_s'])} (per-day rates from "
                     f"{MIN_RATE_WINDOW_S / 3600:g}h of data)")
    if k["mean_time_to_detect_s"] is not None:
        parts.append(f"mean time to detect {_dur(k['mean_time_to_detect_s'])}")
    if k["mean_duration_s"] is not None:
        parts.append(f"{k['resolved']} resolved, mean duration {_dur(k['mean_duration_s'])}")
    return "; ".join(parts)


def _dur(s: float) -> str:
    s = float(s)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.1f}m"
    if s < 2 * 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


# -- the ledger -----------------------------------------------------------------------------------------------
def scope(report, incident) -> str:
    """Where an incident happened: the source and its host / instance / job labels."""
    from .grouping import GROUP_BY

    lab = {k: incident.labels[k] for k in GROUP_BY if k in incident.labels}
    return json.dumps({"source": str(report.source), **lab}, sort_keys=True)


def lead_metric(incident) -> str:
    return incident.lead.split("{", 1)[0]


class Ledger:
    """The incidents nbops has seen in this project (a small JSON file, rewritten atomically)."""

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            from .. import config

            path = config.home() / LEDGER_FILE
        self.path = Path(path)

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"incidents": {}}
        except (OSError, ValueError) as exc:
            log.warning("nbops: the incident ledger %s is unreadable (%s); starting a new one.", self.path, exc)
            return {"incidents": {}}

    def save(self, data: dict) -> None:
        cutoff = time.time() - KEEP_DAYS * 86400
        items = sorted(data["incidents"].items(), key=lambda kv: kv[1].get("last_seen", 0), reverse=True)
        data["incidents"] = {k: v for k, v in items[:MAX_ENTRIES] if v.get("last_seen", 0) >= cutoff}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("nbops: could not write the incident ledger %s: %s", self.path, exc)

    def update(self, fn):
        """Load, let ``fn(data)`` change it, save; returns what ``fn`` returned (one process at a time)."""
        with _LOCK:
            data = self.load()
            out = fn(data)
            self.save(data)
            return out

    def observe(self, report, now: float | None = None) -> dict:
        """Match the report's incidents to known ones (or add them); fills ``report.keys`` (incident id -> key),
        ``report.detections`` (id -> {detected_at, live}) and ``report.new`` (ids first seen now).
        Returns ``{incident id: entry}``."""
        now = time.time() if now is None else now
        live = _is_live(report, now)

        def fn(data):
            entries = data["incidents"]
            found = {}
            for inc in report.incidents:
                sc, s0, s1 = scope(report, inc), epoch(inc.start), epoch(inc.end)
                key = next((k for k, e in entries.items() if e["scope"] == sc and e["start"] <= s1 + 1
                            and s0 <= e["end"] + 1), None)
                if key is None:
                    raw = f"{sc}|{inc.lead}|{s0:.3f}"
                    key = "nbops-" + hashlib.sha1(raw.encode()).hexdigest()[:12]
                    # detection is measured only for incidents caught while going on, in live data: one found
                    # already over says when someone looked, not how fast the detector is
                    entries[key] = {"scope": sc, "start": s0, "end": s1, "lead": inc.lead, "detected_at": now,
                                    "live": live and not over(report, inc), "sent": {}, "runbook": None}
                    report.new.append(inc.id)
                e = entries[key]
                e["start"], e["end"] = min(e["start"], s0), max(e["end"], s1, ended(report, inc))
                e.update(last_seen=now, metrics=inc.metrics, points=inc.points,
                         peak_score=max(e.get("peak_score", 0.0), inc.peak_score))
                report.keys[inc.id] = key
                report.detections[inc.id] = {"detected_at": e["detected_at"], "live": e["live"]}
                found[inc.id] = dict(e)
            return found

        report.keys, report.detections, report.new = {}, {}, []
        return self.update(fn)

    def entry(self, key: str) -> dict | None:
        return self.load()["incidents"].get(key)


def _is_live(report, now: float) -> bool:
    """The data reaches (nearly) now: within 5 steps of the slowest series, and at least a minute."""
    if not len(report.frame):
        return False
    series = _series(report.frame)
    last = max(ts[-1] for ts, _, _ in series.values())
    step = max(st for _, _, st in series.values())
    return bool(now - last <= max(5 * step, 60.0))

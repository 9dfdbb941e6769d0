"""Runs that know the infrastructure failed under them.

When a tracked cell (``%%track``) or an ``nbops run`` overlaps an incident on its own host, found in the samples
of the process's sampler (the kernel's, already running) reduced to what the run did not cause itself
(:func:`others`: CPU, memory and load of the processes outside the run's own -- :class:`nbops.telemetry.local.Own`:
this process, all its descendants and the process that started it --, swap, disk usage, and how starved of CPU
the run's own threads were), the run gets the tag ``nbops.incidents`` (``<incident key>:<lead metric>`` pairs, ``;``-separated;
the keys are the ledger's, the same as the Alertmanager ``incident`` label) and its summary says so in one line.
The samples of the run's window are judged against a baseline before it (:data:`LOOKBACK` seconds, at least 3
times the run's length, as far as the buffer goes) with the robust detector, which flags every point of a
sustained fault, not only its first; a point counts when it is abnormal for :data:`SUSTAINED` samples in a row and
moved by its unit's floor (:mod:`nbops.telemetry.floors`): other processes taking a few percent of a core, or a
core for a second, is not an incident.

A starved host is judged by a limit, not against a baseline (:data:`LIMITS`): a host already saturated before the
run (another job, another test suite) leaves no room for the host CPU to rise, its load average climbs over a
minute and is noisy, and a fault that lasts as long as the buffered history becomes its own baseline. What the
run's threads lost to others (``process_cpu_starved_percentage``, the kernel's scheduler accounting) means the
same on every host: at or above :data:`LIMITS` for :data:`SUSTAINED` samples in a row, the run got at most half
the CPU it could use. A busy host with a core to spare stays near 0.

An ``nbops run`` parent also records the host telemetry of its duration: ``system/<metric>`` series, a
``system/anomalous_metrics`` series (how many metrics were abnormal at each sample: the anomalies marked on the
same time axis), and the scored frame, incidents and figure under ``telemetry/``.
"""
from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("nbops")
CHECK_AFTER = 2.0       # a cell shorter than this is not checked (its window holds a sample or two)
LOOKBACK = 900.0        # seconds of baseline before the run, at least
TAG = "nbops.incidents"


#: what a run is judged on: what it did not cause itself (all "up is bad": judged with direction up)
JUDGED = ("cpu_utilization_by_others_percentage", "load_by_others", "memory_usage_by_others_megabytes",
          "swap_usage_percentage", "disk_usage_percentage", "process_cpu_starved_percentage")
#: metrics with a meaning of their own, judged by a limit instead of a baseline: {metric: limit}
LIMITS = {"process_cpu_starved_percentage": 50.0}
SUSTAINED = 3  # a limit counts when this many consecutive samples reach it (not a blip)


def judge_limits(scored, limits: dict | None = None, sustained: int = SUSTAINED):
    """Re-judge the rows of :data:`LIMITS` metrics in a scored frame (in place; returned): anomalous are the
    stretches of at least ``sustained`` consecutive samples (at most 3 of the series' steps apart) at or above the
    limit; the score maps 0 / the limit / 100 onto 0 / the detector's threshold / 1."""
    import numpy as np

    limits = LIMITS if limits is None else limits
    thr = float(scored.attrs.get("threshold", 0.5))
    for (metric, _labels), g in scored[scored["metric"].isin(list(limits))].groupby(["metric", "labels"]):
        g = g.sort_values("timestamp", kind="stable")
        t = g["timestamp"].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        v = g["value"].to_numpy(float)
        step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        over = v >= limits[metric]
        hit, begun = np.zeros(len(v), bool), 0  # begun: where the current stretch over the limit began
        for i in range(len(v) + 1):
            if i == len(v) or not over[i] or (i > begun and t[i] - t[i - 1] > 3 * step):
                if i - begun >= sustained:
                    hit[begun:i] = True
                begun = i + (i < len(v) and not over[i])
        scored.loc[g.index, "anomaly"] = hit
        scored.loc[g.index, "score"] = np.interp(v, [0.0, limits[metric], 100.0], [0.0, thr, 1.0])
    return scored


def _load_ema(times, cores_busy, tau: float = 60.0):
    """What a process busy on ``cores_busy`` cores adds to the 1-minute load average: the same exponential
    average the kernel keeps (tau 60 s), so the subtraction neither lags nor leads the load it explains."""
    import numpy as np

    out = np.empty(len(times))
    busy = np.nan_to_num(cores_busy)
    e = float(busy[0]) if len(times) else 0.0
    prev = times[0] if len(times) else 0.0
    for i, (t, x) in enumerate(zip(times, busy)):
        a = np.exp(-max(t - prev, 0.0) / tau)
        e = e * a + x * (1 - a)
        out[i], prev = e, t
    return out


def others(frame):
    """The sampler's frame reduced to what the run itself did not cause: ``cpu_utilization_by_others_percentage``,
    ``memory_usage_by_others_megabytes`` and ``load_by_others`` as the sampler recorded them (the host minus the
    run's own processes, :class:`nbops.telemetry.local.Own`, read at the same instant), swap and disk usage, and
    the share of the CPU the run's processes could use that others took (``process_cpu_starved_percentage``,
    judged by :data:`LIMITS`). A training cell that loads every core or fills memory is not an incident under
    itself; another process starving the host is. (I/O rates cannot be split per process from these samples: left
    out.) A frame without the ``*_by_others`` series (another sampler's) has them derived from this process's own
    ``process_cpu_utilization_percentage`` / ``process_rss_megabytes``."""
    import os

    import pandas as pd

    if not len(frame):
        return frame
    labels = frame["labels"].iloc[0]
    wide = frame.pivot_table(index="timestamp", columns="metric", values="value", aggfunc="last")
    out = pd.DataFrame(index=wide.index)
    ncpu = os.cpu_count() or 1
    have = set(wide.columns)
    if "cpu_utilization_by_others_percentage" not in have and {
            "cpu_utilization_percentage", "process_cpu_utilization_percentage"} <= have:
        out["cpu_utilization_by_others_percentage"] = (
            wide["cpu_utilization_percentage"] - wide["process_cpu_utilization_percentage"] / ncpu).clip(lower=0)
    if "load_by_others" not in have and {"load_average_1m", "process_cpu_utilization_percentage"} <= have:
        import numpy as np

        secs = wide.index.to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        own = _load_ema(secs, wide["process_cpu_utilization_percentage"].to_numpy(float) / 100.0)
        out["load_by_others"] = (wide["load_average_1m"] - own).clip(lower=0)
    if "memory_usage_by_others_megabytes" not in have and {
            "system_memory_usage_megabytes", "process_rss_megabytes"} <= have:
        out["memory_usage_by_others_megabytes"] = (
            wide["system_memory_usage_megabytes"] - wide["process_rss_megabytes"]).clip(lower=0)
    for m in JUDGED:
        if m in have:
            out[m] = wide[m]
    out = out[[m for m in JUDGED if m in out.columns]]
    tidy = out.reset_index().melt(id_vars="timestamp", var_name="metric", value_name="value").dropna()
    tidy["labels"] = labels
    return tidy[["timestamp", "metric", "labels", "value"]].reset_index(drop=True)


def sustained(scored, n: int = SUSTAINED):
    """Keep the anomalous rows of a scored frame that belong to a stretch of at least ``n`` consecutive anomalous
    samples of their series (in place; returned): other processes using a core for a second is not an incident
    under a run, using it for several samples in a row is."""
    import numpy as np

    for _key, g in scored.groupby(["metric", "labels"], sort=False):
        g = g.sort_values("timestamp", kind="stable")
        hit = g["anomaly"].to_numpy(bool)
        keep, begun = np.zeros(len(hit), bool), 0
        for i in range(len(hit) + 1):
            if i == len(hit) or not hit[i]:
                if i - begun >= n:
                    keep[begun:i] = True
                begun = i + 1
        scored.loc[g.index, "anomaly"] = keep
    return scored


def incidents_during(sampler, t0: float, t1: float, lookback: float | None = None, detector: str = "robust",
                     sensitivity: str = "medium"):
    """``(report, overlapping incidents)`` for the window ``[t0, t1]`` of ``sampler``'s samples, judged on
    :func:`others` (what the run did not cause); a metric judged against its baseline counts where it was
    abnormal for :data:`SUSTAINED` samples in a row (:func:`sustained`), and by at least its floor
    (:mod:`nbops.telemetry.floors`)."""
    from .api import detect, incidents
    from .lifecycle import ended, epoch
    from .report import TelemetryReport

    back = max(LOOKBACK if lookback is None else lookback, 3 * (t1 - t0))
    frame = others(sampler.frame(since=t0 - back, until=t1 + 2 * sampler.interval))
    if not len(frame):
        return None, []
    scored = judge_limits(sustained(detect(frame, detector, sensitivity, direction="up")))  # no fetch() round trip
    report = TelemetryReport(scored, incidents(scored), source="local", detector=detector, sensitivity=sensitivity,
                             direction="up")
    # an incident is not over until its values were back to normal for the gap (5 samples): one whose last
    # abnormal value came less than that before the run began was still going on under it
    pad = 5 * sampler.interval
    hit = [i for i in report.incidents if epoch(i.start) <= t1 and ended(report, i) + pad >= t0]
    return report, hit


def describe(report, hit) -> tuple[str, str]:
    """``(tag value, one summary line)`` for the overlapping incidents (keys from the ledger when it answers)."""
    from .lifecycle import Ledger, epoch, iso, lead_metric

    try:
        Ledger().observe(report)
    except Exception as exc:  # noqa: BLE001 - the ledger is a courtesy here
        log.debug("nbops: incident ledger unavailable: %s", exc)
    keys = [report.keys.get(i.id) or f"#{i.id}" for i in hit]
    tag = ";".join(dict.fromkeys(f"{k}:{lead_metric(i)}" for k, i in zip(keys, hit)))  # one ledger entry once
    host = hit[0].labels.get("host") or hit[0].labels.get("instance") or "this host"
    first = hit[0]
    more = f" and {len(hit) - 1} more" if len(hit) > 1 else ""
    line = (f"host incident during this run: {lead_metric(first)} abnormal on {host} "
            f"{iso(epoch(first.start))[11:19]}-{iso(epoch(first.end))[11:19]} UTC "
            f"({len(first.metrics)} metric{'s' if len(first.metrics) != 1 else ''}, {keys[0]}){more}; "
            f"tag {TAG}")
    return tag, line


def mark(tracker, sampler, t0: float, t1: float) -> list:
    """Tag ``tracker``'s run with the incidents overlapping ``[t0, t1]``; returns them (and the report on
    ``tracker.telemetry_report``)."""
    report, hit = incidents_during(sampler, t0, t1)
    tracker.telemetry_report = report
    if hit:
        tag, line = describe(report, hit)
        tracker.set_tag(TAG, tag)
        tracker.warnings.append(line)
        log.info("nbops: %s", line)
    return hit


@contextlib.contextmanager
def run_incidents(tracker, cell=None):
    """Cell hook (see :data:`nbops.hooks.CELL_HOOKS`): a tracked cell of :data:`CHECK_AFTER` seconds or
    more that overlapped a host incident gets the ``nbops.incidents`` tag and a line in its summary."""
    from .local import sampler_or_none

    t0 = time.time()
    s = sampler_or_none()
    if s is None:
        yield None
        return
    try:
        yield s
    finally:
        try:
            t1 = time.time()
            if t1 - t0 >= CHECK_AFTER:
                s.sample()
                mark(tracker, s, t0, t1)
        except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their cell
            log.warning("nbops: host incidents were not checked: %s", exc)


@contextlib.contextmanager
def watch_run(tracker):
    """Around an ``nbops run``: the parent records the host telemetry of its duration (series with the
    anomalies marked, scored frame, incidents, figure) and the ``nbops.incidents`` tag when it overlapped one."""
    from .local import log_window, sampler_or_none

    t0 = time.time()
    s = sampler_or_none()
    if s is None:
        yield None
        return
    try:
        yield s  # the sampler's own processes are the runner's tree: the kernel it starts is the run's own work
    finally:
        try:
            t1, _ = s.sample()
            log_window(tracker, s, t0, t1)
            hit = mark(tracker, s, t0, t1)
            report = tracker.telemetry_report
            if report is not None:
                _log_anomalies(tracker, report, t0, t1)
                if hit:
                    _log_evidence(tracker, report)
        except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their run
            log.warning("nbops: the run's host telemetry was not recorded: %s", exc)


def _log_evidence(tracker, report) -> None:
    """The scored frame and incidents under ``telemetry/`` (no params: the run's params are its own). No
    figure: the MLflow UI charts the ``system/`` series and ``system/anomalous_metrics`` already, and drawing one
    (matplotlib) cost about 1 s of CPU in every run of a parallel batch -- which starves the host, so every one
    of them overlaps an incident."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="nbops-telemetry-") as tmp:
        path = Path(tmp) / "frame.parquet"
        report.frame.to_parquet(path, index=False)
        tracker.log_artifact(str(path), "telemetry")
    tracker.log_dict({"incidents": [{**i.as_dict(), "ledger_id": report.keys.get(i.id)} for i in report.incidents],
                      "summary": report.summary(), "kpis": report.kpis()}, "telemetry/incidents.json")


def _log_anomalies(tracker, report, t0: float, t1: float) -> None:
    """``system/anomalous_metrics``: how many metrics were abnormal at each sample time of the run."""
    import pandas as pd

    f = report.frame
    ts = f["timestamp"]
    lo, hi = pd.Timestamp(t0, unit="s"), pd.Timestamp(t1, unit="s")
    win = f[(ts >= lo) & (ts <= hi)]
    counts = win.groupby("timestamp")["anomaly"].sum().sort_index()
    for step, (t, n) in enumerate(counts.items()):
        tracker.log_metric("system/anomalous_metrics", float(n), step=step, timestamp=t.timestamp())

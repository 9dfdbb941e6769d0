"""Runs that know the infrastructure failed under them.

When a tracked cell (``%%track``) or an ``nbops run`` overlaps an incident on its own host, found in the samples
of the process's sampler (the kernel's, already running), the run gets the tag ``nbops.incidents``
(``<incident key>:<lead metric>`` pairs, ``;``-separated; the keys are the ledger's, the same as the Alertmanager
``incident`` label) and its summary says so in one line. The samples of the run's window are judged against a
baseline before it (:data:`LOOKBACK` seconds, at least 3 times the run's length, as far as the buffer goes) with
the robust detector, which flags every point of a sustained fault, not only its first.

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


def incidents_during(sampler, t0: float, t1: float, lookback: float | None = None, detector: str = "robust",
                     sensitivity: str = "medium"):
    """``(report, overlapping incidents)`` for the window ``[t0, t1]`` of ``sampler``'s samples."""
    from .api import analyze
    from .lifecycle import epoch

    back = max(LOOKBACK if lookback is None else lookback, 3 * (t1 - t0))
    frame = sampler.frame(since=t0 - back, until=t1 + 2 * sampler.interval)
    if not len(frame):
        return None, []
    report = analyze(frame, detector=detector, sensitivity=sensitivity)
    report.source = "local"
    hit = [i for i in report.incidents if epoch(i.start) <= t1 and epoch(i.end) >= t0]
    return report, hit


def describe(report, hit) -> tuple[str, str]:
    """``(tag value, one summary line)`` for the overlapping incidents (keys from the ledger when it answers)."""
    from .lifecycle import Ledger, epoch, iso, lead_metric

    try:
        Ledger().observe(report)
    except Exception as exc:  # noqa: BLE001 - the ledger is a courtesy here
        log.debug("nbops: incident ledger unavailable: %s", exc)
    keys = [report.keys.get(i.id) or f"#{i.id}" for i in hit]
    tag = ";".join(f"{k}:{lead_metric(i)}" for k, i in zip(keys, hit))
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
def run_incidents(tracker):
    """Cell hook (see :data:`nbops.tracking.cell.CELL_HOOKS`): a tracked cell of :data:`CHECK_AFTER` seconds or
    more that overlapped a host incident gets the ``nbops.incidents`` tag and a line in its summary."""
    from .local import get_sampler

    t0 = time.time()
    try:
        s = get_sampler()
    except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their cell
        log.debug("nbops: the sampler did not start: %s", exc)
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
    from .local import get_sampler, log_window

    t0 = time.time()
    try:
        s = get_sampler()
    except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their run
        log.debug("nbops: the sampler did not start: %s", exc)
        yield None
        return
    try:
        yield s
    finally:
        try:
            t1, _ = s.sample()
            log_window(tracker, s, t0, t1)
            hit = mark(tracker, s, t0, t1)
            report = tracker.telemetry_report
            if report is not None:
                _log_anomalies(tracker, report, t0, t1)
                if hit:
                    report._log_into(tracker)
        except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their run
            log.warning("nbops: the run's host telemetry was not recorded: %s", exc)


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

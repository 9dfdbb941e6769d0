"""Runs that know the infrastructure failed under them.

When a tracked cell (``%%track``) or an ``nbops run`` overlaps an incident on its own host, found in the samples
of the process's sampler (the kernel's, already running) reduced to what the process did not cause itself
(:func:`others`: CPU and memory used by other processes, swap, disk usage, and how starved of CPU the run's own
threads were), the run gets the tag ``nbops.incidents`` (``<incident key>:<lead metric>`` pairs, ``;``-separated;
the keys are the ledger's, the same as the Alertmanager ``incident`` label) and its summary says so in one line.
The samples of the run's window are judged against a baseline before it (:data:`LOOKBACK` seconds, at least 3
times the run's length, as far as the buffer goes) with the robust detector, which flags every point of a
sustained fault, not only its first.

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


class TreeSampler:
    """CPU and memory of this process *and its children* (an ``nbops run``'s kernel), sampled in a daemon thread
    at the host sampler's interval, so the run's own work can be told from other processes'."""

    def __init__(self, interval: float):
        import threading

        import psutil

        self._psutil, self._me = psutil, psutil.Process()
        self.interval = interval
        self.rows: list[tuple[float, float, float, float]] = []  # (time, cumulative CPU s, RSS MB, starved %)
        self._stop = threading.Event()
        self._dead_cpu = 0.0
        self._seen: dict[int, float] = {}
        self._sched: dict[int, tuple[float, float]] | None = None  # {tid: (run, wait)} of the tree's threads
        self._thread = threading.Thread(target=self._loop, name="nbops-run-tree", daemon=True)

    def _read(self) -> None:
        from .local import cores, sched_delta, sched_threads, starved_percentage

        ps, cpu, rss, seen, sched = self._psutil, 0.0, 0.0, {}, {}
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                with p.oneshot():
                    c = p.cpu_times()
                    seen[p.pid] = c.user + c.system
                    rss += p.memory_info().rss / 2**20
            except ps.Error:
                pass
            sched.update(sched_threads(p.pid) or {})
        # a child that ended keeps the CPU it used (else the cumulative series would drop)
        self._dead_cpu += sum(v for pid, v in self._seen.items() if pid not in seen)
        self._seen = seen
        cpu = self._dead_cpu + sum(seen.values())
        now = time.time()
        starved = float("nan")
        if self._sched is not None and sched and self.rows:
            run, wait = sched_delta(self._sched, sched)
            starved = starved_percentage(run, wait, now - self.rows[-1][0], cores())
        self._sched = sched or None
        self.rows.append((now, cpu, rss, starved))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except Exception as exc:  # noqa: BLE001 - never kill the run over a sample
                log.debug("nbops: tree sample failed: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def frame(self):
        """``timestamp`` (UTC, naive), ``tree_cpu_percent`` (of one core), ``tree_rss_megabytes``,
        ``tree_cpu_starved_percentage`` (:func:`nbops.telemetry.local.starved_percentage` of the tree's threads)."""
        import numpy as np
        import pandas as pd

        cols = ["timestamp", "tree_cpu_percent", "tree_rss_megabytes", "tree_cpu_starved_percentage"]
        if len(self.rows) < 2:
            return pd.DataFrame(columns=cols)
        a = np.array(self.rows)
        dt = np.diff(a[:, 0])
        cpu = np.r_[np.nan, 100.0 * np.diff(a[:, 1]) / np.where(dt > 0, dt, np.nan)]
        return pd.DataFrame(dict(zip(cols, (pd.to_datetime(a[:, 0], unit="s"), cpu, a[:, 2], a[:, 3]))))


def others(frame, tree=None):
    """The sampler's frame reduced to what the process itself did not cause: host CPU minus this process's
    share (``cpu_utilization_by_others_percentage``), used memory minus its RSS
    (``memory_usage_by_others_megabytes``), the 1-minute load average minus what the process's CPU adds to it
    (``load_by_others``), swap and disk usage, and the share of the CPU the process could use that others took
    (``process_cpu_starved_percentage``, judged by :data:`LIMITS`). A training cell that loads every core or fills
    memory is not an incident under itself; another process starving the host is. (I/O rates cannot be split per
    process from these samples: left out.) With ``tree``, the process is the process tree (an ``nbops run``)."""
    import os

    import pandas as pd

    if not len(frame):
        return frame
    labels = frame["labels"].iloc[0]
    wide = frame.pivot_table(index="timestamp", columns="metric", values="value", aggfunc="last")
    out = pd.DataFrame(index=wide.index)
    ncpu = os.cpu_count() or 1
    if tree is not None and len(tf := tree.frame()):  # the process and its children, not the process alone
        tf = tf.set_index("timestamp").sort_index()
        grid = tf.reindex(tf.index.union(wide.index)).interpolate(method="time", limit_area="inside")
        wide = wide.copy()
        wide["process_cpu_utilization_percentage"] = grid["tree_cpu_percent"].reindex(wide.index)
        wide["process_rss_megabytes"] = grid["tree_rss_megabytes"].reindex(wide.index)
        wide["process_cpu_starved_percentage"] = grid["tree_cpu_starved_percentage"].reindex(wide.index)
    if {"cpu_utilization_percentage", "process_cpu_utilization_percentage"} <= set(wide.columns):
        out["cpu_utilization_by_others_percentage"] = (
            wide["cpu_utilization_percentage"] - wide["process_cpu_utilization_percentage"] / ncpu).clip(lower=0)
    if {"load_average_1m", "process_cpu_utilization_percentage"} <= set(wide.columns):
        import numpy as np

        secs = wide.index.to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        own = _load_ema(secs, wide["process_cpu_utilization_percentage"].to_numpy(float) / 100.0)
        out["load_by_others"] = (wide["load_average_1m"] - own).clip(lower=0)
    if {"system_memory_usage_megabytes", "process_rss_megabytes"} <= set(wide.columns):
        out["memory_usage_by_others_megabytes"] = (
            wide["system_memory_usage_megabytes"] - wide["process_rss_megabytes"]).clip(lower=0)
    for m in ("swap_usage_percentage", "disk_usage_percentage", "process_cpu_starved_percentage"):
        if m in wide.columns:
            out[m] = wide[m]
    tidy = out.reset_index().melt(id_vars="timestamp", var_name="metric", value_name="value").dropna()
    tidy["labels"] = labels
    return tidy[["timestamp", "metric", "labels", "value"]].reset_index(drop=True)


def incidents_during(sampler, t0: float, t1: float, lookback: float | None = None, detector: str = "robust",
                     sensitivity: str = "medium", tree: TreeSampler | None = None):
    """``(report, overlapping incidents)`` for the window ``[t0, t1]`` of ``sampler``'s samples, judged on
    :func:`others` (what the process did not cause)."""
    from .api import detect, incidents
    from .lifecycle import ended, epoch
    from .report import TelemetryReport

    back = max(LOOKBACK if lookback is None else lookback, 3 * (t1 - t0))
    frame = others(sampler.frame(since=t0 - back, until=t1 + 2 * sampler.interval), tree)
    if not len(frame):
        return None, []
    scored = judge_limits(detect(frame, detector, sensitivity, direction="up"))  # tidy: no fetch() round trip
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
    tag = ";".join(f"{k}:{lead_metric(i)}" for k, i in zip(keys, hit))
    host = hit[0].labels.get("host") or hit[0].labels.get("instance") or "this host"
    first = hit[0]
    more = f" and {len(hit) - 1} more" if len(hit) > 1 else ""
    line = (f"host incident during this run: {lead_metric(first)} abnormal on {host} "
            f"{iso(epoch(first.start))[11:19]}-{iso(epoch(first.end))[11:19]} UTC "
            f"({len(first.metrics)} metric{'s' if len(first.metrics) != 1 else ''}, {keys[0]}){more}; "
            f"tag {TAG}")
    return tag, line


def mark(tracker, sampler, t0: float, t1: float, tree: TreeSampler | None = None) -> list:
    """Tag ``tracker``'s run with the incidents overlapping ``[t0, t1]``; returns them (and the report on
    ``tracker.telemetry_report``)."""
    report, hit = incidents_during(sampler, t0, t1, tree=tree)
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
    tree = None
    try:
        tree = TreeSampler(s.interval).start()  # the kernel this run starts is the run's own work
    except Exception as exc:  # noqa: BLE001
        log.debug("nbops: the run's process tree is not sampled: %s", exc)
    try:
        yield s
    finally:
        try:
            if tree is not None:
                tree.stop()
            t1, _ = s.sample()
            log_window(tracker, s, t0, t1)
            hit = mark(tracker, s, t0, t1, tree)
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

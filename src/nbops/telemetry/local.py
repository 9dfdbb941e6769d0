"""The ``local`` source: a sampler of this host and this kernel (psutil), kept in a bounded ring buffer.

One module-level :class:`Sampler` starts on first use (:func:`get_sampler`), samples every ``interval`` seconds
(``NBOPS_TELEMETRY_INTERVAL``, default 1 s) in a daemon thread, and keeps the last ``capacity`` samples
(``NBOPS_TELEMETRY_CAPACITY``, default 3600) in preallocated arrays: memory is fixed however long the kernel lives.
One sample costs well under a millisecond, so the thread uses far less than 1% of a core.

Metric names follow MLflow's system metrics (``cpu_utilization_percentage``, ``system_memory_usage_megabytes``,
...); ``%%track`` logs the samples of a cell's time window under ``system/`` (:func:`system_metrics`).

``process_cpu_starved_percentage`` is what a starved host does to this process, from the kernel's scheduler
accounting (``/proc/self/task/*/schedstat``: time each thread ran and time it sat runnable, waiting for a CPU):
of the CPU time the process could have used on this host in the interval (the time its threads were runnable,
at most the usable cores), the share it did not get, counted up to the CPU the rest of the host used meanwhile
(:func:`starved_percentage`: what it lost beyond that, its threads lost to each other). It needs no baseline: a
busy host with a free core gives about 0, a host whose run queue is longer than its cores gives the share lost,
and a process that asks for more threads than there are cores, all at once or in bursts, is not starved by it on
a quiet host. NaN while the process wants
less than :data:`MIN_DEMAND` of a core or gets less than :data:`MIN_RUN` (an idle kernel is not starved, however
long its rare wake-ups wait on a busy host) and where the kernel has no schedstat.
The "process" there is the run's own processes (:class:`Own`).

What the host does apart from this run: :class:`Own` is "us" -- this process, every process it started and
theirs (a kernel's subprocesses and joblib workers; an ``nbops run``'s kernel and what it starts), and the process
that started this one (the Jupyter server or the ``nbops run`` that runs this kernel; the shell of a script), by
its own CPU and memory only: the server's other kernels are other work. Each sample reads them at the same instant
as the host, and records what the rest of the host used: ``cpu_utilization_by_others_percentage`` (host CPU minus
ours, on the host's scale), ``memory_usage_by_others_megabytes`` (used memory minus our RSS) and
``load_by_others`` (the 1-minute load average minus our runnable threads, averaged as the kernel averages them).
A child that ended between two samples still counts as ours: its CPU shows in its parent's reaped-children time.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time

log = logging.getLogger("nbops")

BASE_METRICS = [
    "cpu_utilization_percentage",
    "system_memory_usage_megabytes",
    "system_memory_usage_percentage",
    "swap_usage_percentage",
    "disk_usage_percentage",
    "disk_read_megabytes_per_second",
    "disk_write_megabytes_per_second",
    "network_receive_megabytes_per_second",
    "network_transmit_megabytes_per_second",
    "load_average_1m",
    "process_rss_megabytes",
    "process_cpu_utilization_percentage",
    "process_cpu_starved_percentage",
    "cpu_utilization_by_others_percentage",
    "memory_usage_by_others_megabytes",
    "load_by_others",
]
MB = 1024.0 * 1024.0
#: a %%track cell shorter than this logs no system/ series (its window holds at most one sample)
START_THREAD_AFTER = 2.0
#: cores of demand (runnable thread time per second) below which a process is not judged starved or not
MIN_DEMAND = 0.1
#: cores of CPU a process must have got to be judged: below, it was idle, and what its threads waited when they
#: woke (a sampler, a heartbeat, a polling loop on a busy host) is latency, not a run starved of CPU
MIN_RUN = 0.02
#: seconds: the 1-minute load average is an exponential average with this time constant
LOAD_TAU = 60.0


def cores() -> int:
    """The CPUs this process may run on (its affinity; else the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def sched_threads(pid="self") -> dict | None:
    """``{tid: (run, wait)}`` seconds per thread of ``pid``: time on a CPU and time runnable but waiting for one
    (``/proc/<pid>/task/<tid>/schedstat``, Linux); None where the kernel does not keep them."""
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    out = {}
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                r, w = f.read().split()[:2]
        except (OSError, ValueError):
            continue  # a thread that ended between listdir and open
        out[int(tid)] = (int(r) / 1e9, int(w) / 1e9)
    return out or None


def sched_delta(before: dict, after: dict) -> tuple[float, float]:
    """``(run, wait)`` seconds the threads of ``after`` added since ``before`` (a thread new since then counts
    from 0; one that ended is left out: its counters are gone, never negative)."""
    run = wait = 0.0
    for tid, (r, w) in after.items():
        r0, w0 = before.get(tid, (0.0, 0.0))
        if r >= r0 and w >= w0:  # a reused id starts again from 0: skip it
            run, wait = run + r - r0, wait + w - w0
    return run, wait


def starved_percentage(run: float, wait: float, seconds: float, ncpu: int | None = None,
                       others: float | None = None) -> float:
    """Of the CPU time a process could have used in ``seconds`` (its threads' runnable time ``run + wait``, at
    most ``ncpu`` cores' worth), the percentage others took from it. ``run``/``wait``: CPU seconds its threads ran /
    waited in that span; ``others``: CPU seconds the rest of the host used in it -- the most the process can have
    lost to others: the rest of its waiting is its own threads waiting for each other (a burst of more threads
    than cores within the interval). NaN when it wanted less than :data:`MIN_DEMAND` of a core or got less than
    :data:`MIN_RUN` (idle). Alone on the host it is ~0 however many threads it runs, whenever they run; 4 busy
    processes on 2 cores leave a one-thread training loop 2/5 of a core: 60."""
    ncpu = ncpu or cores()
    demand = run + wait
    if seconds <= 0 or demand < MIN_DEMAND * seconds or run < MIN_RUN * seconds:
        return float("nan")
    could = min(demand, ncpu * seconds)
    lost = could - run if others is None else min(could - run, max(others, 0.0))
    return min(100.0, max(0.0, 100.0 * lost / could))


def _children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from ``/proc/<pid>/task/*/children`` (Linux, about 20 us for a small tree);
    None where the kernel does not keep those files."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return None if tid == str(pid) else out
        except OSError:
            continue  # a thread that ended meanwhile
    return out


class Own:
    """"Us": the processes whose work is this run's own (see the module's docstring). :meth:`read` returns
    ``(cpu, rss, sched)``: CPU seconds they used since the first read (a process that ended between two reads
    included, through its parent's reaped-children time), their RSS in MB now, and ``{tid: (run, wait)}`` of
    their threads (:func:`sched_threads`). ``pid``: the root (default: this process); ``parent``: count the
    process that started it too. A kernel that ``nbops run`` started counts the run's whole tree (its root is the
    runner, ``NBOPS_RUN_PID``): the runner's sampler and the kernel's see the same "us"."""

    def __init__(self, pid: int | None = None, parent: bool = True):
        import psutil

        from ..config import ENV_RUN_PID

        self._ps = psutil
        run = os.environ.get(ENV_RUN_PID, "")
        if pid is None and run.isdigit() and int(run) == os.getppid():
            pid = int(run)
        self.root = pid or os.getpid()
        ppid = psutil.Process(self.root).ppid()
        self.parent = ppid if parent and ppid > 1 else None
        self._procs: dict[int, object] = {}
        self._last: dict[int, tuple[int, float]] = {}  # pid -> (ppid, CPU incl. reaped children) at the last read
        self._parent_cpu: float | None = None
        self.cpu = 0.0
        self._fast = _children(self.root) is not None

    def pids(self) -> list[int]:
        """The root and all its descendants now."""
        if not self._fast:
            try:
                root = self._ps.Process(self.root)
                return [self.root, *(p.pid for p in root.children(recursive=True))]
            except self._ps.Error:
                return []
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += _children(pid) or []
        return out

    def _proc(self, pid: int):
        p = self._procs.get(pid)
        if p is None:
            p = self._procs[pid] = self._ps.Process(pid)
        return p

    def read(self) -> tuple[float, float, dict]:
        ps = self._ps
        cur, rss, sched = {}, 0.0, {}
        for pid in self.pids():
            try:
                p = self._proc(pid)
                with p.oneshot():
                    c = p.cpu_times()
                    cur[pid] = (p.ppid(), c.user + c.system + c.children_user + c.children_system)
                    rss += p.memory_info().rss / MB
            except ps.Error:
                continue
            sched.update(sched_threads(pid) or {})
        delta = 0.0
        for pid, (_pp, c) in cur.items():
            c0 = self._last.get(pid, (0, 0.0))[1]
            delta += c - c0 if c >= c0 else c  # new since the last read: all of its CPU is new
        for pid, (pp, c) in self._last.items():  # gone, and reaped inside the tree: its parent's reaped time
            if pid in cur or ps.pid_exists(pid):  # now holds what was counted already (left the tree: kept)
                continue
            while pp in self._last and pp not in cur:
                pp = self._last[pp][0]
            if pp in cur:
                delta -= c
        if self.parent is not None:
            try:
                p = self._proc(self.parent)
                with p.oneshot():
                    c = p.cpu_times()
                    rss += p.memory_info().rss / MB
                pc = c.user + c.system
                delta += max(pc - self._parent_cpu, 0.0) if self._parent_cpu is not None else 0.0
                self._parent_cpu = pc
                sched.update(sched_threads(self.parent) or {})
            except ps.Error:
                self.parent = None
        if self._last:
            self.cpu += max(delta, 0.0)
        self._last = cur
        self._procs = {pid: p for pid, p in self._procs.items() if pid in cur or pid == self.parent}
        return self.cpu, rss, sched


def _gpus():
    """pynvml handles of the GPUs, or [] (no pynvml, no driver, no GPU)."""
    try:
        import pynvml  # type: ignore

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # noqa: BLE001 - no GPU is the common case
        return []


class Sampler:
    """Samples the host into a ring buffer; ``frame()`` returns the tidy frame (timestamp, metric, labels, value)."""

    def __init__(self, interval: float | None = None, capacity: int | None = None, disk_path: str | None = None,
                 own: Own | None = None):
        import numpy as np
        import psutil

        self._psutil = psutil
        self.interval = float(interval or os.environ.get("NBOPS_TELEMETRY_INTERVAL", 1.0))
        self.capacity = int(capacity or os.environ.get("NBOPS_TELEMETRY_CAPACITY", 3600))
        if self.interval <= 0 or self.capacity < 2:
            from ..errors import TelemetryError

            raise TelemetryError("The sampler needs interval > 0 seconds and capacity >= 2 samples "
                                 "(NBOPS_TELEMETRY_INTERVAL / NBOPS_TELEMETRY_CAPACITY).")
        self.disk_path = disk_path or os.path.abspath(os.sep)
        self._proc = psutil.Process()
        self._own = own or Own()
        self._own_load: float | None = None  # our runnable threads, averaged as the load average is
        self._cores = cores()
        self._gpu = _gpus()
        self.metrics = list(BASE_METRICS)
        for i in range(len(self._gpu)):
            self.metrics += [f"gpu_{i}_utilization_percentage", f"gpu_{i}_memory_usage_percentage"]
        self.host = os.uname().nodename if hasattr(os, "uname") else "localhost"
        self._t = np.zeros(self.capacity)
        self._v = np.full((self.capacity, len(self.metrics)), np.nan)
        self.count = 0  # samples ever taken; the buffer holds the last min(count, capacity)
        self.cost_seconds = 0.0  # CPU time spent sampling (thread time of the sampling calls)
        self._lock = threading.Lock()
        self._prev = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- sampling ---------------------------------------------------------------------------------------------
    def _read(self):
        ps = self._psutil
        now = time.time()
        cpu = ps.cpu_times()
        vm = ps.virtual_memory()
        disk_io = ps.disk_io_counters()
        net = ps.net_io_counters()
        pcpu = self._proc.cpu_times()
        raw = {"t": now, "cpu_busy": sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0), "cpu_total": sum(cpu),
               "disk_r": disk_io.read_bytes if disk_io else None, "disk_w": disk_io.write_bytes if disk_io else None,
               "net_r": net.bytes_recv if net else None, "net_w": net.bytes_sent if net else None,
               "proc": pcpu.user + pcpu.system}
        raw["own"], own_rss, raw["sched"] = self._own.read()
        # the host again after the tree, which takes milliseconds to read (more on a busy host): its CPU counters
        # as the mean of the two reads, and the memory others use at the lower of the two (a process that ended
        # or started meanwhile is not counted as others' in the host's reading and missing from ours)
        cpu2, vm2 = ps.cpu_times(), ps.virtual_memory()
        now = raw["t"] = (now + time.time()) / 2
        raw["cpu_busy"] = (raw["cpu_busy"] + sum(cpu2) - cpu2.idle - getattr(cpu2, "iowait", 0.0)) / 2
        raw["cpu_total"] = (raw["cpu_total"] + sum(cpu2)) / 2
        try:
            du = ps.disk_usage(self.disk_path).percent
        except OSError:
            du = float("nan")
        try:
            load1 = os.getloadavg()[0]
        except (OSError, AttributeError):
            load1 = float("nan")
        vals = {"system_memory_usage_megabytes": vm.used / MB, "system_memory_usage_percentage": vm.percent,
                "swap_usage_percentage": ps.swap_memory().percent, "disk_usage_percentage": du,
                "load_average_1m": load1, "process_rss_megabytes": self._proc.memory_info().rss / MB,
                "memory_usage_by_others_megabytes": max(min(vm.used, vm2.used) / MB - own_rss, 0.0)}
        prev = self._prev
        nan = float("nan")
        fresh = prev is None or now - prev["t"] >= 0.05  # rates over a shorter span are noise: keep the old base
        if prev is not None and fresh:
            dt = now - prev["t"]
            dtot = raw["cpu_total"] - prev["cpu_total"]
            busy = 100.0 * (raw["cpu_busy"] - prev["cpu_busy"]) / dtot if dtot > 0 else 0.0
            vals["cpu_utilization_percentage"] = min(100.0, max(0.0, busy))  # counters tick apart: keep it a share
            vals["process_cpu_utilization_percentage"] = 100.0 * (raw["proc"] - prev["proc"]) / dt
            own = raw["own"] - prev["own"]  # CPU seconds, the unit of the host's counters
            vals["cpu_utilization_by_others_percentage"] = (
                min(100.0, max(0.0, busy - 100.0 * own / dtot)) if dtot > 0 else 0.0)
            runnable = own / dt  # our threads' average run queue: what we add to the load average
            if raw["sched"] and prev["sched"]:
                run, wait = sched_delta(prev["sched"], raw["sched"])
                vals["process_cpu_starved_percentage"] = starved_percentage(
                    run, wait, dt, self._cores, others=raw["cpu_busy"] - prev["cpu_busy"] - own)
                runnable = max(runnable, (run + wait) / dt)
            a = math.exp(-dt / LOAD_TAU)
            self._own_load = runnable if self._own_load is None else self._own_load * a + runnable * (1 - a)
            vals["load_by_others"] = nan if math.isnan(load1) else max(load1 - self._own_load, 0.0)
            for key, name in (("disk_r", "disk_read_megabytes_per_second"), ("disk_w", "disk_write_megabytes_per_second"),
                              ("net_r", "network_receive_megabytes_per_second"),
                              ("net_w", "network_transmit_megabytes_per_second")):
                if raw[key] is not None and prev[key] is not None:
                    vals[name] = max(raw[key] - prev[key], 0) / MB / dt
        for i, h in enumerate(self._gpu):
            try:
                import pynvml  # type: ignore

                u = pynvml.nvmlDeviceGetUtilizationRates(h)
                m = pynvml.nvmlDeviceGetMemoryInfo(h)
                vals[f"gpu_{i}_utilization_percentage"] = float(u.gpu)
                vals[f"gpu_{i}_memory_usage_percentage"] = 100.0 * m.used / m.total if m.total else nan
            except Exception:  # noqa: BLE001 - a GPU that stops answering gives NaN, not an error
                pass
        if fresh:
            self._prev = raw
        return now, [vals.get(name, nan) for name in self.metrics]

    def sample(self) -> tuple[float, dict]:
        """Take one sample now (any thread); returns ``(unix_time, {metric: value})``."""
        c0 = time.thread_time()
        with self._lock:
            t, row = self._read()
            i = self.count % self.capacity
            self._t[i] = t
            self._v[i] = row
            self.count += 1
        self.cost_seconds += time.thread_time() - c0
        return t, dict(zip(self.metrics, row))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - the sampler must never die on a transient read error
                log.debug("nbops: sampling failed: %s", exc)
            self._stop.wait(self.interval)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Sampler":
        """Start the background thread (idempotent)."""
        with self._lock:
            if self.running:
                return self
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="nbops-telemetry-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout)
        self._thread = None

    # -- reading ----------------------------------------------------------------------------------------------
    def arrays(self, since: float | None = None, until: float | None = None):
        """``(times, values[n, metrics])`` of the buffered samples in time order, optionally within a window."""
        import numpy as np

        with self._lock:
            n = min(self.count, self.capacity)
            start = self.count % self.capacity if self.count > self.capacity else 0
            order = (np.arange(n) + start) % self.capacity
            t, v = self._t[order].copy(), self._v[order].copy()
        keep = np.ones(len(t), bool)
        if since is not None:
            keep &= t >= since
        if until is not None:
            keep &= t <= until
        return t[keep], v[keep]

    def frame(self, since=None, until=None, metrics=None):
        """The tidy frame: one row per (sample, metric) with a finite value. ``since``/``until``: unix seconds
        or anything ``pandas.Timestamp`` takes; ``metrics``: names or glob patterns to keep."""
        import fnmatch

        import numpy as np
        import pandas as pd

        def secs(x):
            if x is None or isinstance(x, (int, float)):
                return x
            ts = pd.Timestamp(x)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
            return ts.timestamp()

        t, v = self.arrays(secs(since), secs(until))
        cols = [i for i, m in enumerate(self.metrics)
                if not metrics or any(fnmatch.fnmatch(m, p) for p in metrics)]
        labels = f'host="{self.host}"'
        parts = []
        for i in cols:
            ok = np.isfinite(v[:, i])
            parts.append(pd.DataFrame({"timestamp": t[ok], "metric": self.metrics[i], "labels": labels,
                                       "value": v[ok, i]}))
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {"timestamp": [], "metric": [], "labels": [], "value": []})
        df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s", utc=True).dt.tz_localize(None)
        df["value"] = df["value"].astype(float)
        return df.sort_values(["metric", "timestamp"], kind="stable").reset_index(drop=True)

    def nbytes(self) -> int:
        return int(self._t.nbytes + self._v.nbytes)


_SAMPLER: Sampler | None = None
_GUARD = threading.Lock()


def get_sampler(start: bool = True) -> Sampler:
    """The kernel's sampler, created on first use; ``start=True`` also starts its thread (taking one sample
    first, so the buffer is never empty)."""
    global _SAMPLER
    with _GUARD:
        if _SAMPLER is None:
            _SAMPLER = Sampler()
            _SAMPLER.sample()
        s = _SAMPLER
    if start and not s.running:
        s.start()
    return s


def shutdown() -> None:
    """Stop the sampler thread and drop the buffer (``%unload_ext nbops`` calls this)."""
    global _SAMPLER
    with _GUARD:
        s, _SAMPLER = _SAMPLER, None
    if s is not None:
        s.stop()


#: series of the run itself, or host totals that include its work where a ``*_by_others`` series says the rest:
#: the local source shows and scores them, but an incident is judged on what the run did not cause (:func:`judge`).
#: Disk and network rates are host totals that cannot be split per process from these counters: the run's own
#: model saves and downloads are in them, so they are shown, not judged (as under a tracked cell)
OWN_SERIES = ("process_rss_megabytes", "process_cpu_utilization_percentage", "cpu_utilization_percentage",
              "system_memory_usage_megabytes", "system_memory_usage_percentage", "load_average_1m",
              "disk_read_megabytes_per_second", "disk_write_megabytes_per_second",
              "network_receive_megabytes_per_second", "network_transmit_megabytes_per_second")


def judge(scored):
    """The local source's verdict on a scored frame (in place; returned), the one a tracked cell's or an ``nbops
    run``'s window gets (:func:`nbops.telemetry.overlap.incidents_during`): the run's own series
    (:data:`OWN_SERIES`) are never anomalous -- a training cell loading every core is the run's work, its
    ``*_by_others`` counterparts say what the rest of the host did --, the others count where their move lasted
    :data:`~nbops.telemetry.overlap.SUSTAINED` samples (:func:`nbops.telemetry.floors.lasting`: another process
    taking a core for a second is no incident, whichever detector flagged it) and how starved the run was is
    judged by its limit (:func:`nbops.telemetry.overlap.judge_limits`)."""
    from .floors import lasting
    from .overlap import SUSTAINED, judge_limits

    if "anomaly" in scored.columns and len(scored):
        scored.loc[scored["metric"].isin(OWN_SERIES), "anomaly"] = False
        for (metric, _labels), g in scored.groupby(["metric", "labels"], sort=False):
            if g["anomaly"].any():
                g = g.sort_values("timestamp", kind="stable")
                scored.loc[g.index, "anomaly"] = lasting(str(metric), g["value"].to_numpy(float),
                                                         g["anomaly"].to_numpy(bool), SUSTAINED)
        judge_limits(scored)
    return scored


def fetch(query=None, start=None, end=None, **_ignored):
    """The ``local`` source: the buffered samples (``query``: metric names or globs; a pattern that names no
    metric of this host is a one-line error listing the ones there are)."""
    import fnmatch

    s = get_sampler()
    if isinstance(query, str):
        query = [query]
    unknown = [p for p in query or [] if not any(fnmatch.fnmatch(m, p) for m in s.metrics)]
    if unknown:
        from ..errors import TelemetryError

        raise TelemetryError(f"--query {' '.join(unknown)}: no local metric matches; the local sampler records "
                             f"{', '.join(s.metrics)} (globs such as 'cpu*' work).", query=unknown)
    return s.frame(since=start, until=end, metrics=query or None)


def coverage_note(start: float | None) -> str | None:
    """When a window starts before the local sampler's first buffered sample: how long it has been sampling
    (or how much its ring buffer holds), so a short report is not read as a quiet hour."""
    s = get_sampler(start=False)
    t, _ = s.arrays()
    if start is None or not len(t) or start >= t[0]:
        return None
    from .lifecycle import _dur

    held = _dur(time.time() - t[0])
    if s.count > s.capacity:
        return (f"the local sampler keeps its last {s.capacity:,} samples ({held}; NBOPS_TELEMETRY_CAPACITY): "
                f"the window asked for is longer")
    return f"the local sampler has been running for {held}: the window asked for starts before its first sample"


def sampler_or_none():
    """The kernel's sampler, started if need be; None (logged at debug) when it cannot start: the cell hooks
    around tracked cells and runs use it, and telemetry must never cost the user their cell or run."""
    try:
        return get_sampler()
    except Exception as exc:  # noqa: BLE001
        log.debug("nbops: the sampler did not start: %s", exc)
        return None


@contextlib.contextmanager
def system_metrics(tracker, cell=None):
    """Around a ``%%track`` cell. The first tracked cell starts the background sampler (well under 1% of a
    core), so the kernel's history is there when ``%telemetry`` is asked for later. On exit, a cell that ran at
    least :data:`START_THREAD_AFTER` seconds gets one more sample and every sample of its window logged as
    ``system/<metric>`` series (step = sample index, timestamp = sample time). Shorter cells log nothing: a
    two-point series says little and would clutter every quick run's metrics."""
    t0 = time.time()
    s = sampler_or_none()
    if s is None:
        yield None
        return
    try:
        yield s
    finally:
        try:
            if time.time() - t0 >= START_THREAD_AFTER:
                t1, _ = s.sample()
                log_window(tracker, s, t0, t1)
        except Exception as exc:  # noqa: BLE001 - telemetry must never cost the user their cell
            log.warning("nbops: system metrics were not recorded: %s", exc)


def log_window(tracker, sampler: Sampler, t0: float, t1: float, prefix: str = "system/") -> int:
    """Log the sampler's samples in ``[t0, t1]`` into ``tracker`` as metric series; returns the points logged."""
    times, values = sampler.arrays(t0, t1)
    n = 0
    for j, name in enumerate(sampler.metrics):
        step = 0
        for t, v in zip(times, values[:, j]):
            if math.isfinite(v):
                tracker.log_metric(f"{prefix}{name}", float(v), step=step, timestamp=float(t))
                step += 1
                n += 1
    return n

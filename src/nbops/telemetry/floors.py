"""Material change: the smallest move of a metric that can be an anomaly, by the unit its name ends with.

A detector judges a series against its own past, so on a quiet series it finds news in noise: other processes'
CPU going from 0.1% to 3% of the host is a huge move relative to its usual spread and means nothing to an
operator. :func:`material` keeps a flagged point only where it moved at least the floor of its unit away from
the series' normal level before it (the median of the last :data:`BASELINE` points the detector did not flag;
with none before it, of all the series' unflagged points). The floors are in the metric's own unit, one per kind
(:data:`FLOORS`, matched on the end of the name, Prometheus / MLflow naming); a metric of another unit has no
floor: its detector alone decides. They are general, not fitted to any data set: a change smaller than these is
within what an idle host does in a minute.
"""
from __future__ import annotations

import functools

import numpy as np

#: (pattern the metric name must end with, floor in that unit), first match wins
FLOORS = (
    (r"_percentage|_percent", 10.0),          # percentage points of a share (host CPU, memory, disk, swap, GPU)
    (r"_ratio", 0.10),                        # the same share as a fraction
    (r"_megabytes_per_second", 10.0),         # I/O and network rates: a model saved, a package read
    (r"_bytes_per_second", 10.0 * 2**20),
    (r"_megabytes", 100.0),                   # memory
    (r"_bytes", 100.0 * 2**20),
    (r"(^|_)load(\d+|_average_\d+m|_by_others)", 1.0),  # run queue: less than one more task is not news
)
BASELINE = 100
#: the local sampler's measures of this host whose precision scales with it: {metric: share of the host's memory}.
#: Memory others use (used memory minus the run's RSS) moves with the kernel's own memory and with pages that
#: processes share (counted in each one's RSS) by a few hundred MB on a busy 24 GB host within seconds: a move
#: counts from 2% of the host's memory (and never less than the unit's floor)
HOST_SHARE = {"memory_usage_by_others_megabytes": 0.02}


def floor(metric: str) -> float:
    """The floor of ``metric``'s unit (0: none); for :data:`HOST_SHARE` metrics, at least that share of this
    host's memory."""
    import re

    base = 0.0
    for end, value in FLOORS:
        if re.search(f"(?:{end})$", metric):
            base = value
            break
    if metric in HOST_SHARE:
        base = max(base, HOST_SHARE[metric] * _host_memory_mb())
    return base


@functools.lru_cache(maxsize=1)
def _host_memory_mb() -> float:
    """This host's memory in MB (0 without psutil: the unit's floor alone)."""
    try:
        import psutil

        return psutil.virtual_memory().total / 2**20
    except Exception:  # noqa: BLE001
        return 0.0


def material(metric: str, values: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """``hit`` (the detector's flags on one series, time order) kept where ``values`` moved at least
    :func:`floor` away from the normal level before the point."""
    hit, judged = _judged(metric, values, hit)
    if judged is None:
        return hit
    v, base, f = judged
    return hit & (np.abs(v - base) >= f)


def _judged(metric: str, values, hit):
    """``(hit as bools, (values, normal level, floor))``, or ``(hit, None)`` where the detector alone decides:
    no floor for the metric, nothing flagged, or no normal point to compare with."""
    hit = np.asarray(hit, dtype=bool)
    f = floor(metric)
    if f <= 0 or not hit.any():
        return hit, None
    v = np.asarray(values, dtype=float)
    base = _normal_level(v, hit)
    return hit, (None if base is None else (v, base, f))


def _normal_level(v: np.ndarray, hit: np.ndarray):
    """The series' normal level before each point (see :func:`material`); None when no point is normal."""
    normal = np.flatnonzero(~hit & np.isfinite(v))
    if not len(normal):
        return None
    import pandas as pd

    level = pd.Series(v[normal]).rolling(BASELINE, min_periods=1).median().to_numpy()
    before = np.searchsorted(normal, np.arange(len(v))) - 1  # the last normal point before each point
    return np.where(before >= 0, level[np.maximum(before, 0)], np.median(v[normal]))


def lasting(metric: str, values: np.ndarray, hit: np.ndarray, n: int) -> np.ndarray:
    """``hit`` kept where the move lasts: the point and the ``n - 1`` samples after it all stay at least
    :func:`floor` away from the normal level before the point, on the same side. Whatever the detector flags
    (a step's onset only, or every point of it), a blip of fewer than ``n`` samples is not kept; a metric with
    no floor is left to its detector."""
    hit, judged = _judged(metric, values, hit)
    if judged is None:
        return hit
    v, base, f = judged
    keep = np.zeros(len(v), bool)
    for i in np.flatnonzero(hit):
        d = v[i:i + n] - base[i]
        keep[i] = len(d) == n and (bool((d >= f).all()) or bool((d <= -f).all()))
    return keep

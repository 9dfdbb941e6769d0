"""Incidents on a case labelled by hand: five series of one host, two injected faults, noise everywhere.

Fault A (day 2.5): the disk saturates first, request latency follows two samples later, CPU (iowait) three.
Fault B (day 3.4): memory jumps first (a leak that hits a limit), CPU follows three samples later, latency four.
The detector (``auto``, low sensitivity: the one to page with) sees each series alone; grouping must give exactly two incidents,
each led by the series that went wrong first, and far fewer incidents than anomalous points.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.telemetry import api
from nbops.telemetry.report import TelemetryReport

STEP = pd.Timedelta(minutes=5)
N = 4 * 288  # four days of 5-minute samples
START = pd.Timestamp("2026-03-02")
A, B = int(2.5 * 288), int(3.4 * 288)


def host_frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = np.arange(N)
    day = np.sin(2 * np.pi * k / 288)
    base = {
        "cpu_utilization_percentage": 35 + 15 * day + rng.normal(0, 3, N),
        "memory_usage_percentage": 60 + 2 * day + rng.normal(0, 0.8, N),
        "disk_io_megabytes_per_second": 20 + 8 * day + rng.normal(0, 2.5, N),
        "request_latency_ms": 120 + 20 * day + rng.normal(0, 6, N),
        "network_in_megabytes_per_second": 50 + 25 * day + rng.normal(0, 5, N),
    }
    # fault A: disk saturates, then latency, then CPU (iowait); all stay up for an hour
    base["disk_io_megabytes_per_second"][A:A + 12] += 60
    base["request_latency_ms"][A + 2:A + 14] += 150
    base["cpu_utilization_percentage"][A + 3:A + 12] += 40
    # fault B: memory jumps, then CPU (garbage collection), then latency
    base["memory_usage_percentage"][B:B + 24] += 30
    base["cpu_utilization_percentage"][B + 3:B + 20] += 45
    base["request_latency_ms"][B + 4:B + 20] += 200
    ts = START + STEP * k
    rows = [pd.DataFrame({"timestamp": ts, "metric": m, "labels": 'host="db-1",job="node"', "value": v})
            for m, v in base.items()]
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_injected_faults_become_two_incidents_with_the_right_lead(seed):
    frame = host_frame(seed)
    scored = api.detect(frame, "auto", "low")
    found = api.incidents(scored)
    assert len(found) == 2, [(str(i.start), i.lead, i.metrics) for i in found]
    first, second = found
    assert first.lead == 'disk_io_megabytes_per_second{host="db-1",job="node"}'
    assert second.lead == 'memory_usage_percentage{host="db-1",job="node"}'
    assert first.start == START + A * STEP and second.start == START + B * STEP
    assert set(first.metrics) == {"disk_io_megabytes_per_second", "request_latency_ms", "cpu_utilization_percentage"}
    # fault B's followers move as much as fault A's did less than a day before in the same series: at this
    # sensitivity only the lead (new for its series) is sure to be flagged
    assert "memory_usage_percentage" in second.metrics and "network_in_megabytes_per_second" not in second.metrics
    # alert-volume reduction: every anomalous point belongs to one of the two incidents
    report = TelemetryReport(scored, found, detector="auto", sensitivity="medium")
    points = report.anomalous_points
    assert points == sum(i.points for i in found) and points >= 4 and report.reduction == points / 2
    # the report says how often each sensitivity would have paged over these four days
    days = (N - 1) / 288
    # pages: anomalous points, one per series per refractory period (the frame was scored at low)
    pages = report.alerts_per_day("low") * days
    hit_series = scored[scored.anomaly].groupby(["metric", "labels"]).ngroups
    assert pages == pytest.approx(round(pages)) and hit_series <= round(pages) <= points
    assert report.alerts_per_day("low") <= report.alerts_per_day() <= report.alerts_per_day("high")
    assert "alerts/day here" in report.summary()


def test_without_the_faults_the_same_host_raises_no_incident():
    frame = host_frame(1)
    rng = np.random.default_rng(7)
    k = np.arange(N)
    for metric, sd in (("disk_io_megabytes_per_second", 2.5), ("memory_usage_percentage", 0.8),
                       ("request_latency_ms", 6), ("cpu_utilization_percentage", 3)):
        m = frame.metric == metric
        centre = frame.loc[m, "value"].to_numpy()
        calm = centre.copy()
        for lo, hi in ((A, A + 14), (B, B + 24)):
            calm[lo:hi] = np.median(centre[lo - 50:lo]) + rng.normal(0, sd, hi - lo)
        frame.loc[m, "value"] = calm
    assert api.incidents(api.detect(frame, "auto", "low")) == []


def lagged_fault_frame(seed: int, lags=(0, 3, 7)) -> pd.DataFrame:
    """One fault seen in three metrics of a service, each later than the one before: CPU saturates at ``F``,
    request latency climbs ``lags[1]`` samples later (requests queue), errors follow ``lags[2]`` samples after
    the CPU (timeouts). Two days of 5-minute samples with a daily cycle and noise everywhere."""
    rng = np.random.default_rng(seed)
    n, k = 2 * 288, np.arange(2 * 288)
    day = np.sin(2 * np.pi * k / 288)
    f = int(1.6 * 288)
    base = {
        "cpu_utilization_percentage": 30 + 10 * day + rng.normal(0, 3, n),
        "request_latency_ms": 80 + 10 * day + rng.normal(0, 5, n),
        "http_errors_per_second": 0.5 + rng.gamma(2.0, 0.25, n),
    }
    base["cpu_utilization_percentage"][f + lags[0]:f + 30] += 55
    base["request_latency_ms"][f + lags[1]:f + 30] += 300
    base["http_errors_per_second"][f + lags[2]:f + 30] += 12
    ts = START + STEP * k
    return pd.concat([pd.DataFrame({"timestamp": ts, "metric": m, "labels": 'service="api",host="web-1"',
                                    "value": v}) for m, v in base.items()], ignore_index=True), START + f * STEP


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lags", [(0, 3, 7), (0, 6, 12)])
def test_one_fault_in_three_lagged_metrics_is_one_incident_led_by_the_first(seed, lags):
    frame, fault = lagged_fault_frame(seed, lags)
    found = api.incidents(api.detect(frame, "auto", "medium"))
    # the incidents during the fault (the default sensitivity pages for a noise point or two elsewhere in two days)
    during = [i for i in found if i.end >= fault and i.start <= fault + 30 * STEP]
    assert len(during) == 1, [(str(i.start), i.lead, i.metrics) for i in found]
    (inc,) = during
    assert set(inc.metrics) == {"cpu_utilization_percentage", "request_latency_ms", "http_errors_per_second"}
    assert inc.lead == 'cpu_utilization_percentage{service="api",host="web-1"}'
    assert inc.start == fault


def scraped_fault_frame(seed: int, steps: tuple, lags: tuple):
    """The same fault seen in three metrics scraped at different intervals (``steps`` seconds: CPU, latency,
    errors): each goes wrong ``lags[i]`` of its own samples after the one before, and all stay wrong for half an
    hour. One day of samples with a daily cycle and noise."""
    rng = np.random.default_rng(seed)
    span, fault = 86400, START + pd.Timedelta(hours=19)
    start, parts = fault, []
    for (metric, level, sd, jump), step, lag in zip((("cpu_utilization_percentage", 30, 3, 55),
                                                     ("request_latency_ms", 80, 5, 300),
                                                     ("http_errors_per_second", 0.5, 0.2, 12)), steps, lags):
        k = np.arange(span // step)
        t = START + pd.to_timedelta(k * step, unit="s")
        v = level * (1 + np.sin(2 * np.pi * k * step / span) / 3) + rng.normal(0, sd, len(k))
        start = start + pd.Timedelta(seconds=lag * step)
        v[(t >= start) & (t < fault + pd.Timedelta(minutes=30))] += jump
        parts.append(pd.DataFrame({"timestamp": t, "metric": metric, "labels": 'service="api"', "value": v}))
    return pd.concat(parts, ignore_index=True), fault


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("steps, lags", [((15, 30, 60), (0, 3, 3)), ((60, 30, 15), (0, 3, 6))])
def test_one_fault_scraped_at_three_intervals_is_one_incident_led_by_the_first(seed, steps, lags):
    """The grouping windows are each series' own steps: a lag of a few samples of a slow scrape is minutes."""
    frame, fault = scraped_fault_frame(seed, steps, lags)
    found = api.incidents(api.detect(frame, "auto", "medium"))
    during = [i for i in found if i.end >= fault and i.start <= fault + pd.Timedelta(minutes=30)]
    assert len(during) == 1, [(str(i.start), i.lead, i.metrics) for i in found]
    (inc,) = during
    assert set(inc.metrics) == {"cpu_utilization_percentage", "request_latency_ms", "http_errors_per_second"}
    assert inc.lead == 'cpu_utilization_percentage{service="api"}' and inc.start == fault

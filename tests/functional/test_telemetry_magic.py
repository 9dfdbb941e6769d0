"""The local sampler on this machine, %%track's system/ metrics, and %telemetry in a real IPython shell."""
from __future__ import annotations

import sys
import time

import pandas as pd
import pytest

from nbops_testing import DATASETS, all_artifacts
from nbops.errors import NbopsError, TelemetryError


def test_sampler_values_are_sane_and_memory_is_bounded():
    from nbops.telemetry.local import Sampler

    s = Sampler(interval=0.01, capacity=50)
    size = s.nbytes()
    for _ in range(120):
        s.sample()
    assert s.count == 120 and s.nbytes() == size  # fixed arrays: more samples never grow memory
    t, v = s.arrays()
    assert len(t) == 50 and (pd.Series(t).diff().dropna() >= 0).all()  # the last 50, in time order
    df = s.frame()
    last = df.groupby("metric")["value"].last()
    while "cpu_utilization_percentage" not in last:  # rates need 50 ms between their two readings: sample on
        s.sample()
        df = s.frame()
        last = df.groupby("metric")["value"].last()
    assert 0 <= last["cpu_utilization_percentage"] <= 100
    assert 0 < last["system_memory_usage_percentage"] <= 100
    assert last["process_rss_megabytes"] > 10 and last["system_memory_usage_megabytes"] > last["process_rss_megabytes"]
    assert 0 <= last["disk_usage_percentage"] <= 100 and last["load_average_1m"] >= 0
    assert set(df.columns) == {"timestamp", "metric", "labels", "value"} and df.labels.str.startswith('host="').all()
    # well under 1% of a core at the default 1 s interval: CPU time per sample far below 10 ms
    assert s.cost_seconds / s.count < 0.01


def test_sampler_thread_stops_on_unload(ip):
    from nbops.telemetry import local

    s = local.get_sampler()
    assert s.running and s._thread.daemon
    ip.run_line_magic("unload_ext", "nbops")
    assert not s.running and local._SAMPLER is None
    ip.run_line_magic("load_ext", "nbops")


def test_track_attaches_system_metrics_of_long_cells_only(ip, client):
    from nbops.telemetry import local

    local.shutdown()
    ip.run_cell("%%track -n quick\nx = 1")
    quick = ip.user_ns["_nbops_last_run"].run_id
    assert local.get_sampler(start=False).running  # the first tracked cell starts the kernel's sampler
    assert not [k for k in client.get_run(quick).data.metrics if k.startswith("system/")]  # too short to log
    ip.run_cell("%%track -n slow\nimport time\nfor _ in range(35):\n    time.sleep(0.1)")
    slow = ip.user_ns["_nbops_last_run"].run_id
    hist = client.get_metric_history(slow, "system/cpu_utilization_percentage")
    run = client.get_run(slow)
    assert len(hist) >= 2 and all(0 <= m.value <= 100 for m in hist)
    assert [m.step for m in hist] == list(range(len(hist)))
    start, end = run.info.start_time, run.info.end_time
    assert all(start - 1000 <= m.timestamp <= end for m in hist)
    assert client.get_metric_history(slow, "system/process_rss_megabytes")[-1].value > 10
    local.shutdown()


def nab_frame(name="realKnownCause/machine_temperature_system_failure.csv"):
    return pd.read_csv(DATASETS / "nab" / "data" / name)


def test_telemetry_magic_on_a_user_frame_logs_to_mlflow(ip, client):
    ip.user_ns["temps"] = nab_frame()
    ip.run_line_magic("telemetry", "--source temps --detector seasonal --sensitivity medium --log -e telem -o rep")
    rep = ip.user_ns["rep"]
    assert rep.anomalous_points >= len(rep.incidents) >= 2
    assert "incidents" in repr(rep) and "src='data:image/png;base64," in rep._repr_html_()
    inc = rep.incidents_frame()
    assert list(inc.columns[:5]) == ["id", "start", "end", "duration_s", "lead"]
    run = client.get_run(rep.run_id)
    assert run.data.tags["nbops.kind"] == "telemetry" and run.data.params["telemetry.detector"] == "seasonal"
    assert run.data.metrics["telemetry.incidents"] == len(rep.incidents)
    arts = set(all_artifacts(client, rep.run_id))
    assert {"telemetry/frame.parquet", "telemetry/incidents.json", "telemetry/figure.png"} <= arts
    import mlflow

    back = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=rep.run_id,
                                                               artifact_path="telemetry/frame.parquet"))
    assert len(back) == len(rep.frame) and int(back["anomaly"].sum()) == rep.anomalous_points


def test_telemetry_log_inside_a_tracked_cell_uses_that_run(ip, client):
    ip.user_ns["temps"] = nab_frame("realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv")
    ip.run_cell("%%track -n with-telemetry\n%telemetry --source temps --log -o rep2")
    run_id = ip.user_ns["_nbops_last_run"].run_id
    assert ip.user_ns["rep2"].run_id == run_id
    assert "telemetry/incidents.json" in all_artifacts(client, run_id)


def test_bad_options_say_what_to_do(ip):
    with pytest.raises(NbopsError, match="neither a variable"):
        ip.run_line_magic("telemetry", "--source nothing_here")
    ip.user_ns["temps"] = nab_frame()
    with pytest.raises(TelemetryError, match="unknown; choose one of"):
        ip.run_line_magic("telemetry", "--source temps --detector nope")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="invalid choice: 'extreme'"):
        ip.run_line_magic("telemetry", "--sensitivity extreme")
    with pytest.raises(TelemetryError, match="either --last or --start"):
        ip.run_line_magic("telemetry", "--last 1h --start now-2h")


def test_local_source_and_live_refresh_stop(ip):
    from nbops.telemetry import live, local

    s = local.get_sampler()
    for _ in range(3):
        s.sample()
        time.sleep(0.05)
    ip.run_line_magic("telemetry", "--query cpu_* process_* --live 0.2 -o refresher")
    r = ip.user_ns["refresher"]
    while r.refreshes < 2:  # polled: as long as a loaded machine needs
        time.sleep(0.05)
    assert r.refreshes >= 2 and r.running and r.report.series
    assert {m for m, _ in r.report.series} <= {"cpu_utilization_percentage", "cpu_utilization_by_others_percentage",
                                              "process_rss_megabytes", "process_cpu_utilization_percentage",
                                              "process_cpu_starved_percentage"}
    ip.run_line_magic("telemetry", "--stop")
    assert not r.running and live.running() == []
    ip.run_line_magic("telemetry", "--live 0.2 -o r2")
    r2 = ip.user_ns["r2"]
    ip.run_line_magic("unload_ext", "nbops")  # unload stops refreshers and the sampler
    assert not r2.running and not s.running
    ip.run_line_magic("load_ext", "nbops")


def test_import_is_light():
    import subprocess

    code = ("import sys, nbops.telemetry, nbops.telemetry.magics; "
            "print([m for m in ('pandas', 'matplotlib', 'alibi_detect', 'mlflow', 'requests') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_per_day_figures_need_an_hour_of_data(ip):
    """15 s of data with a spike is not 2.94e+04 alerts/day: counts and the span until the window is an hour."""
    import numpy as np

    from nbops.telemetry.lifecycle import kpi_line

    def frame(seconds: int):
        t = pd.date_range("2026-01-01", periods=seconds, freq="s")
        v = np.sin(np.arange(seconds) / 5.0)
        v[seconds // 2] = 50.0
        return pd.DataFrame({"timestamp": t, "value": v})

    ip.user_ns["short"] = frame(15)
    ip.run_line_magic("telemetry", "--source short -o rep")
    rep = ip.user_ns["rep"]
    assert "/day" not in rep.summary() and "in 14s of data" in rep.summary(), rep.summary()
    k = rep.kpis()
    assert k["incidents_per_day"] is None and k["window_s"] == 14
    assert "/day" not in kpi_line(k) and "incidents in 14s" in kpi_line(k)
    ip.user_ns["long"] = frame(3601)
    ip.run_line_magic("telemetry", "--source long -o rep")
    rep = ip.user_ns["rep"]
    assert "alerts/day here" in rep.summary() and rep.kpis()["incidents_per_day"] is not None


def test_last_longer_than_the_local_sampler_has_run_says_so(ip):
    from nbops.telemetry import local

    local.shutdown()
    s = local.get_sampler()
    while s.count < 3:  # polled: a few samples in
        s.sample()
    ip.run_line_magic("telemetry", "--last 1h -o rep")
    notes = ip.user_ns["rep"].notes
    assert len(notes) == 1 and notes[0].startswith("the local sampler has been running for "), notes
    assert "the window asked for starts before its first sample" in repr(ip.user_ns["rep"])

"""From anomaly to action, without Alertmanager: KPIs, the incident ledger's stable keys, an unreachable
Alertmanager, runbooks run by a real kernel (papermill) once per new incident, and runs that know the host was
starved under them (a real CPU hog process started and stopped here, a real kernel, a real MLflow store)."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops_testing import ROOT, FakeSampler, Hog, all_artifacts, free_port, write_notebook
from nbops.errors import NbopsError

RUNBOOK = ROOT / "notebooks" / "runbook.ipynb"


def host_frame(start: float, n: int, faults: dict[str, list[tuple[int, int]]], step: float = 1.0) -> pd.DataFrame:
    """cpu per host, one sample per ``step`` from ``start``; ``faults``: host -> [(from, to)) spans of +60."""
    t = pd.to_datetime(start + np.arange(n) * step, unit="s")
    rng = np.random.default_rng(1)
    parts = []
    for host, spans in faults.items():
        y = 20 + rng.normal(0, 1.0, n)
        for a, b in spans:
            y[a:b] += 60
        parts.append(pd.DataFrame({"timestamp": t, "metric": "cpu_utilization_percentage",
                                   "labels": f'host="{host}"', "value": y}))
    return pd.concat(parts, ignore_index=True)


# -- KPIs and the ledger --------------------------------------------------------------------------------------
def test_kpis_are_computed_shown_and_logged(ip, client):
    day = 86400.0
    # two days of 1-minute samples, three faults of 10 points on one host: 30 points -> 3 incidents
    ip.user_ns["cpu"] = host_frame(time.time() - 2 * day, 2880, {"a": [(500, 510), (1500, 1510), (2500, 2510)]},
                                   step=60.0)
    ip.run_line_magic("telemetry", "--source cpu --detector robust --log -e kpi -o rep")
    rep = ip.user_ns["rep"]
    k = rep.kpis()
    assert k["anomalous_points"] == 30 and k["incidents"] == 3
    assert k["alert_reduction_pct"] == pytest.approx(90.0) and k["points_per_incident"] == 10
    assert k["incidents_per_day"] == pytest.approx(3 / (2879 * 60 / day), rel=1e-3)
    assert k["resolved"] == 3 and k["mean_duration_s"] == pytest.approx(9 * 60)
    assert k["mean_time_to_detect_s"] is None  # history: first seen long after the fact
    assert "alert volume reduced 90.0% (30 anomalous points -> 3 incidents)" in repr(rep)
    assert "KPIs:" in rep._repr_html_()
    m = client.get_run(rep.run_id).data.metrics
    assert m["telemetry.kpi.alert_reduction_pct"] == pytest.approx(90.0)
    assert m["telemetry.kpi.mean_duration_s"] == pytest.approx(540.0)
    assert m["telemetry.kpi.resolved"] == 3 and "telemetry.kpi.mean_time_to_detect_s" not in m


def test_time_to_detect_is_measured_on_live_data(ip):
    now = time.time()
    ip.user_ns["cpu"] = host_frame(now - 299, 300, {"a": [(280, 300)]})  # abnormal for the last 20 s
    ip.run_line_magic("telemetry", "--source cpu --detector robust -o rep")
    k = ip.user_ns["rep"].kpis()
    assert k["resolved"] == 0 and k["mean_duration_s"] is None  # still going on: no MTTR input yet
    assert 19 <= k["mean_time_to_detect_s"] < 19 + (time.time() - now) + 1


def test_ledger_keys_are_stable_and_scoped(ip, tmp_path):
    from nbops.telemetry import analyze
    from nbops.telemetry.lifecycle import Ledger

    ledger = Ledger(tmp_path / "ledger.json")
    start = time.time() - 400
    first = analyze(host_frame(start, 300, {"a": [(290, 300)], "b": [(290, 300)]}), detector="robust")
    ledger.observe(first)
    assert len(first.incidents) == 2 and sorted(first.new) == [1, 2] and len(set(first.keys.values())) == 2
    # later: the same incidents, grown and then over, plus a new one on host a
    later = analyze(host_frame(start, 400, {"a": [(290, 305), (380, 390)], "b": [(290, 303)]}), detector="robust")
    ledger.observe(later)
    assert len(later.incidents) == 3
    old = {later.keys[i.id] for i in later.incidents if i.id not in later.new}
    assert old == set(first.keys.values()) and len(later.new) == 1
    assert len(json.loads((tmp_path / "ledger.json").read_text())["incidents"]) == 3


def test_a_sustained_fault_is_over_only_when_its_values_are_back_to_normal():
    """The seasonal detector flags the first point of a plateau only; the incident still lasts as long as the
    values stay outside the band they kept before it, and is over once they are back for 5 steps."""
    from nbops.telemetry import analyze
    from nbops.telemetry.lifecycle import epoch, lifecycle

    start = time.time() - 1000
    going = analyze(host_frame(start, 700, {"a": [(600, 700)]}), detector="seasonal")
    (inc,) = going.incidents
    assert inc.points < 10  # the detector flagged the plateau's start only
    assert lifecycle(going, inc) == (False, start + 699)  # still abnormal at the last sample
    back = analyze(host_frame(start, 720, {"a": [(600, 700)]}), detector="seasonal")
    (inc,) = [i for i in back.incidents if epoch(i.start) < start + 650]
    assert lifecycle(back, inc) == (True, start + 699)
    assert back.kpis()["mean_duration_s"] == pytest.approx(699 - (epoch(inc.start) - start))


# -- Alertmanager that does not answer ------------------------------------------------------------------------
def test_unreachable_alertmanager_is_one_line_and_the_incident_is_still_logged(ip, client):
    url = f"http://127.0.0.1:{free_port()}"
    ip.user_ns["cpu"] = host_frame(time.time() - 299, 300, {"a": [(100, 110)]})
    r = ip.run_cell(f"%telemetry --source cpu --detector robust --alert {url} -o rep")
    assert r.success  # the magic does not fail
    rep = ip.user_ns["rep"]
    assert not rep.alerts.ok and "\n" not in rep.alerts.error
    assert rep.alerts.error.startswith(f"Cannot reach Alertmanager at {url}")
    assert rep.alerts.error in repr(rep) and "Cannot reach Alertmanager" in rep._repr_html_()
    saved = json.loads(Path(client.download_artifacts(rep.run_id, "telemetry/incidents.json")).read_text())
    assert [i["ledger_id"] for i in saved["incidents"]] == list(rep.keys.values())


def test_alert_without_a_url_says_what_to_do(ip, monkeypatch):
    monkeypatch.delenv("NBOPS_ALERTMANAGER_URL", raising=False)
    ip.user_ns["cpu"] = host_frame(time.time() - 299, 300, {"a": [(100, 110)]})
    with pytest.raises(NbopsError, match="NBOPS_ALERTMANAGER_URL"):
        ip.run_line_magic("telemetry", "--source cpu --alert")


# -- runbooks in a real kernel --------------------------------------------------------------------------------
@pytest.mark.slow
def test_runbook_runs_once_per_new_incident_as_a_child_run_and_failures_are_recorded(ip, client, tmp_path):
    start = time.time() - 600
    ip.user_ns["cpu"] = host_frame(start, 300, {"a": [(100, 110)]})
    ip.run_line_magic("telemetry", f"--source cpu --detector robust --on-incident {RUNBOOK} -e ops -o rep")
    rep = ip.user_ns["rep"]
    assert len(rep.runbooks) == 1, repr(rep)
    rb = rep.runbooks[0]
    assert rb.ok, rb.line()
    key = rep.keys[rep.incidents[0].id]
    parent = client.get_run(rb.run_id)  # the runbook's nbops run: child of the telemetry run, linked by tag
    assert parent.data.tags["nbops.incident.id"] == key and parent.data.tags["mlflow.parentRunId"] == rep.run_id
    assert parent.data.params["incident_id"] == key and parent.data.params["incident_lead"].startswith("cpu_")
    assert parent.info.status == "FINISHED" and f"runbook runbook.ipynb for incident {key}: FINISHED" in repr(rep)
    # the showcase runbook recorded the host's processes and disks into its tracked child run
    exp = parent.info.experiment_id
    diag = client.search_runs([exp], f"tags.mlflow.parentRunId = '{rb.run_id}'")
    assert len(diag) == 1 and diag[0].data.tags["incident"] == key
    arts = set(all_artifacts(client, diag[0].info.run_id))
    assert {"runbook/top_cpu_processes.csv", "runbook/disk_usage.csv"} <= arts
    top = pd.read_csv(client.download_artifacts(diag[0].info.run_id, "runbook/top_cpu_processes.csv"))
    assert len(top) >= 1 and {"pid", "name", "cpu_percent", "rss_mb"} <= set(top.columns)
    assert diag[0].data.metrics["processes"] >= len(top) and 0 < diag[0].data.metrics["max_disk_used_percent"] <= 100
    # found again: no second runbook for the same incident
    ip.run_line_magic("telemetry", f"--source cpu --detector robust --on-incident {RUNBOOK} -e ops -o rep2")
    assert ip.user_ns["rep2"].runbooks == [] and ip.user_ns["rep2"].keys == rep.keys
    # a runbook that fails, on a new incident: FAILED, recorded and shown
    bad = write_notebook(tmp_path / "bad_runbook.ipynb", ["raise RuntimeError(f'cannot fix {incident_id}')"],
                         parameters={"incident_id": "", "incident_lead": ""})
    ip.user_ns["cpu"] = host_frame(start, 300, {"a": [(100, 110)], "b": [(200, 210)]})
    ip.run_line_magic("telemetry", f"--source cpu --detector robust --on-incident {bad} -e ops -o rep3")
    rep3 = ip.user_ns["rep3"]
    assert [r.status for r in rep3.runbooks] == ["FAILED"]
    failed = rep3.runbooks[0]
    assert "RuntimeError: cannot fix nbops-" in failed.error and failed.error in repr(rep3)
    run = client.get_run(failed.run_id)
    assert run.info.status == "FAILED" and run.data.tags["nbops.error.ename"] == "RuntimeError"
    from nbops.telemetry.lifecycle import Ledger

    assert Ledger().entry(failed.incident)["runbook"]["status"] == "FAILED"


def test_runbook_that_does_not_exist_is_one_line(ip):
    ip.user_ns["cpu"] = host_frame(time.time() - 299, 300, {"a": [(100, 110)]})
    with pytest.raises(NbopsError, match="--on-incident nope.ipynb: no such notebook"):
        ip.run_line_magic("telemetry", "--source cpu --on-incident nope.ipynb")


# -- runs that know -------------------------------------------------------------------------------------------
def sampler_frame(start: float, n: int, fault: tuple[int, int], own: bool) -> pd.DataFrame:
    """Host CPU with a +60 fault, and this process's CPU: quiet, or (``own``) the cause of the fault."""
    host = host_frame(start, n, {"gpu-box": [fault]})
    proc = host.copy()
    proc["metric"] = "process_cpu_utilization_percentage"
    proc["value"] = 2.0
    if own:  # percent of one core: the whole rise of the host's percentage, times the cores
        proc.loc[fault[0]:fault[1] - 1, "value"] += 60.0 * (os.cpu_count() or 1)
    return pd.concat([host, proc], ignore_index=True)


def test_overlap_tags_only_runs_that_overlapped_an_incident(store):
    from nbops.telemetry.overlap import TAG, mark
    from nbops.tracking.run import track

    start = time.time() - 600
    s = FakeSampler(sampler_frame(start, 600, (400, 430), own=False))
    with track("overlap", "during") as during:
        assert len(mark(during, s, start + 410, start + 420)) == 1
    with track("overlap", "before") as before:
        assert mark(before, s, start + 300, start + 350) == []
    from mlflow.tracking import MlflowClient

    c = MlflowClient(store)
    tag = c.get_run(during.run_id).data.tags[TAG]
    assert tag.startswith("nbops-") and tag.endswith(":cpu_utilization_by_others_percentage")
    assert TAG not in c.get_run(before.run_id).data.tags
    line = during.summary().warnings[-1]
    assert line.startswith("host incident during this run: cpu_utilization_by_others_percentage abnormal on gpu-box")
    assert "host incident" in repr(during.summary())
    # the same host CPU, but this process caused the rise itself (a training cell on every core): no incident
    mine = FakeSampler(sampler_frame(start, 600, (400, 430), own=True))
    with track("overlap", "own work") as own:
        assert mark(own, mine, start + 410, start + 420) == []
    assert TAG not in c.get_run(own.run_id).data.tags


STARVED = "process_cpu_starved_percentage"


class Kernel:
    """A real Jupyter kernel (jupyter_client), cells executed one at a time from the test."""

    def __init__(self, cwd, env):
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env={**os.environ, **env})

    def run(self, code: str) -> str:
        out = []

        def hook(msg):
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                out.append(c["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                out.append("\n".join(c["traceback"]))

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=None)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text

    def value(self, expr: str):
        return json.loads(self.run(f"import json as _j; print(_j.dumps({expr}))").strip().splitlines()[-1])

    def wait_until(self, expr: str, what: str):
        """Poll ``expr`` in the kernel until it is truthy (``what`` names the state; pytest-timeout ends a
        broken test)."""
        while not (v := self.value(expr)):
            time.sleep(0.5)
        return v

    def stop(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_training_cell_run_while_a_cpu_hog_starves_the_host_carries_the_incident(store, tmp_path):
    from mlflow.tracking import MlflowClient

    k = Kernel(tmp_path, {"MLFLOW_TRACKING_URI": store, "NBOPS_TELEMETRY_INTERVAL": "0.5"})
    hog = None
    try:
        k.run("%load_ext nbops\nimport time, nbops\nfrom nbops.telemetry.overlap import incidents_during\n"
              "s = nbops.telemetry.get_sampler()\n"
              "def starved(since):  # incidents going on since `since` in which this kernel was starved of CPU\n"
              f"    return [i.id for i in incidents_during(s, since, time.time())[1] if {STARVED!r} in i.metrics]")
        k.run("from sklearn.linear_model import LogisticRegression\nfrom sklearn.datasets import make_classification\n"
              "X, y = make_classification(n_samples=2000, n_features=20, random_state=0)")
        k.wait_until("s.count >= 20", "some samples of the host before the hog")
        hog = Hog()
        k.run("""
%%track -e training -n train
t_cell, n0 = time.time(), s.count
# train until the sampler has seen this cell (six samples, not a duration) and seen it starved by the hog
while s.count < n0 + 6 or not starved(t_cell):
    model = LogisticRegression(max_iter=200).fit(X, y)
accuracy = model.score(X, y)""")
        hog.stop()
        hog_t0, hog = hog.started, None
        summary = k.run("print(repr(_nbops_last_run))")
        runs = k.run("%nbops runs --all -e training")
    finally:
        if hog is not None:
            hog.stop()
        k.stop()
    c = MlflowClient(store)
    (run,) = c.search_runs([c.get_experiment_by_name("training").experiment_id])
    assert run.data.tags["nbops.kind"] == "track" and "accuracy" in run.data.metrics
    tag = run.data.tags["nbops.incidents"]
    pairs = [p.split(":") for p in tag.split(";")]
    assert all(key.startswith("nbops-") and metric for key, metric in pairs)
    from nbops.telemetry.lifecycle import Ledger

    ledger = Ledger(tmp_path / ".nbops" / "incidents.json")
    starving = [key for key, _ in pairs if STARVED in ledger.entry(key)["metrics"]
                and ledger.entry(key)["end"] >= hog_t0]  # the kernel starved while the hog ran
    assert starving, (tag, [ledger.entry(key) for key, _ in pairs])
    assert "host incident during this run:" in summary
    assert "incidents" in runs and pairs[0][0] in runs


@pytest.mark.slow
def test_nbops_run_parent_records_host_telemetry_and_the_incident_it_ran_into(store, tmp_path, monkeypatch):
    import threading

    from mlflow.tracking import MlflowClient

    from nbops.runner import run_notebook
    from nbops.telemetry import local
    from nbops.telemetry.overlap import LIMITS, SUSTAINED

    monkeypatch.setenv("NBOPS_TELEMETRY_INTERVAL", "0.5")
    local.shutdown()
    s = local.get_sampler()  # this process runs `nbops run`: its sampler watches the host
    started, release = tmp_path / "started", tmp_path / "release"
    nb = write_notebook(tmp_path / "job.ipynb", [  # a job that computes until it is told to stop
        f"import os\nopen({str(started)!r}, 'w').close()\n"
        f"while not os.path.exists({str(release)!r}):\n    sum(range(100_000))"])
    result, hog = {}, None
    job = threading.Thread(target=lambda: result.update(r=run_notebook(nb, tmp_path / "job.out.ipynb",
                                                                       experiment="jobs")))
    try:
        while s.count < 20:  # some samples of the host before the run
            time.sleep(0.2)
        job.start()
        while not started.exists() and job.is_alive():  # the run's kernel is in its cell
            time.sleep(0.1)
        hog = Hog()
        # until the run's processes (the sampler's own: this process and the kernel it started) have been
        # starved for twice the samples the limit needs (a state, polled)
        col = s.metrics.index(STARVED)
        while not ((last := s.arrays()[1][-2 * SUSTAINED:, col]).size == 2 * SUSTAINED
                   and (last >= LIMITS[STARVED]).all()):
            time.sleep(0.5)
        release.touch()
        job.join()
        hog.stop()
        hog = None
    finally:
        release.touch()
        if hog is not None:
            hog.stop()
        job.join() if job.is_alive() else None
        local.shutdown()
    res = result["r"]
    assert res.ok, repr(res)
    assert any(w.startswith("host incident during this run:") for w in res.warnings)
    assert "host incident during this run" in repr(res)
    c = MlflowClient(store)
    run = c.get_run(res.run_id)
    assert run.data.tags["nbops.incidents"].startswith("nbops-")
    assert run.data.params == {}  # the notebook has none; the host telemetry adds none
    cpu = c.get_metric_history(res.run_id, "system/cpu_utilization_percentage")
    marks = c.get_metric_history(res.run_id, "system/anomalous_metrics")
    assert len(cpu) >= 2 and len(marks) >= 2 and max(m.value for m in marks) >= 1  # anomalies marked in time
    assert {"telemetry/frame.parquet", "telemetry/incidents.json"} <= set(all_artifacts(c, res.run_id))
    saved = json.loads(Path(c.download_artifacts(res.run_id, "telemetry/incidents.json")).read_text())
    assert any(STARVED in i["metrics"] for i in saved["incidents"])  # the run's kernel was starved by the hog


def test_the_load_a_process_adds_itself_is_not_counted_against_it():
    from nbops.telemetry.overlap import _load_ema, others

    n, start = 600, time.time() - 600
    t = start + np.arange(n)
    busy = np.where(np.arange(n) >= 300, 1.0, 0.0)  # this process busy on one core from the 300th second
    load = 0.5 + _load_ema(t, busy)                  # what the kernel's load average then shows
    ts = pd.to_datetime(t, unit="s")
    frame = pd.concat([pd.DataFrame({"timestamp": ts, "metric": m, "labels": 'host="h"', "value": v}) for m, v in
                       (("load_average_1m", load), ("process_cpu_utilization_percentage", 100 * busy))])
    mine = others(frame)
    assert set(mine["metric"]) == {"load_by_others"}
    assert np.allclose(mine["value"], 0.5)  # the rise is the process's own: others stay at 0.5


def test_starved_is_the_cpu_a_process_could_use_and_did_not_get():
    from nbops.telemetry.local import starved_percentage

    assert starved_percentage(0.4, 0.6, 1.0, 2) == pytest.approx(60.0)  # 1 thread + 4 hogs on 2 cores
    assert starved_percentage(2.0, 2.0, 1.0, 2) == pytest.approx(0.0)   # 4 threads of its own on 2 cores, alone
    assert starved_percentage(1.0, 3.0, 1.0, 2) == pytest.approx(50.0)  # same threads, half the cores taken
    assert np.isnan(starved_percentage(0.01, 0.05, 1.0, 2))             # an idle kernel: not judged
    # what others took is at most the CPU they used: the rest of the waiting is the run's own threads waiting for
    # each other (4 threads for half of the second on 2 cores: 1 s run, 1 s waited)
    assert starved_percentage(1.0, 1.0, 1.0, 2, others=0.0) == pytest.approx(0.0)   # a quiet host
    assert starved_percentage(1.0, 1.0, 1.0, 2, others=0.5) == pytest.approx(25.0)  # others used half a core
    assert starved_percentage(0.4, 0.6, 1.0, 2, others=1.6) == pytest.approx(60.0)  # the hogs: all of it theirs


def test_the_sampler_reads_how_starved_its_process_was():
    import threading

    from nbops.telemetry.local import Sampler

    s = Sampler(interval=1.0)
    s.sample()
    # idle for one sampling interval, as between two real samples: the process asks for no CPU (a loaded host
    # only lengthens the stretch, which leaves its demand near 0; the bar is a tenth of a core over it)
    time.sleep(s.interval)
    assert np.isnan(s.sample()[1][STARVED])
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    busy.start()
    try:
        n = 0
        while not np.isfinite(v := s.sample()[1][STARVED]):  # busy: judged once 50 ms have passed
            n += 1
            time.sleep(0.1)
    finally:
        stop.set()
        busy.join()
    assert 0.0 <= v <= 100.0


def starved_frame(values, step: float = 1.0) -> pd.DataFrame:
    t = pd.to_datetime(time.time() - 600 + step * np.arange(len(values)), unit="s")
    return pd.DataFrame({"timestamp": t, "metric": STARVED, "labels": 'host="h"', "value": values})


@pytest.mark.parametrize("values, flagged", [
    ([5.0] * 100 + [30.0] * 50, 0),                  # a busy host with a core to spare: not starved
    ([5.0] * 100 + [95.0, 90.0] + [5.0] * 50, 0),    # a blip of two samples: not an incident
    ([70.0] * 150, 150),                             # starved since before the window: no baseline needed
    ([5.0] * 100 + [65.0] * 20 + [5.0] * 30, 20),    # starved for 20 samples in a row
    ([5.0] * 100 + [65.0, 40.0] * 10 + [5.0] * 30, 0),  # never 3 samples in a row
])
def test_starvation_is_judged_by_its_limit_not_a_baseline(values, flagged):
    from nbops.telemetry.api import detect
    from nbops.telemetry.overlap import judge_limits

    scored = judge_limits(detect(starved_frame(values), "robust", direction="up"))
    assert int(scored["anomaly"].sum()) == flagged
    if flagged:
        assert scored.loc[scored["anomaly"], "score"].min() >= scored.attrs["threshold"]


# -- an `nbops run`'s whole process tree is its own ------------------------------------------------------------
# a server as `os.system('mlflow server ... &')` starts one: its shell exits at once (the server is an orphan) and it forks a
# worker that works (here: burns CPU) until it is killed; it writes "<its pid> <the worker's pid>" to argv[1]
SERVER = """import os, subprocess, sys
w = subprocess.Popen([sys.executable, "-c", "while True: pass"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {w.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
w.wait()
"""
# a child that keeps running short-lived grandchildren, each burning 0.4 s of CPU (a job runner's tasks)
TASKS = """import subprocess, sys
code = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.4: pass"
while True:
    subprocess.run([sys.executable, "-c", code])
"""
RUN_CELLS = [
    "import os, signal, subprocess, sys, time\nfrom pathlib import Path\nimport nbops\n"
    "from nbops.telemetry.overlap import incidents_during\n"
    "s = nbops.telemetry.get_sampler()\n"
    "def samples(n):  # wait for n more samples of the host: a count, not a duration\n"
    "    c = s.count\n    while s.count < c + n:\n        time.sleep(s.interval / 2)\n"
    "samples(n)  # the host before the work",
    "%load_ext nbops",
    "%%track -e jobs -n work\n"
    "flags = Path(flags)\n"
    "os.system(f'{sys.executable} {flags / \"server.py\"} {flags / \"server.pids\"} >/dev/null 2>&1 &')\n"
    "tasks = subprocess.Popen([sys.executable, str(flags / 'tasks.py')])\n"
    "while not (flags / 'server.pids').exists():\n    time.sleep(0.05)\n"
    "from nbops.telemetry.local import Own  # the kernel's \"us\" is the run's tree: the runner adopted the server\n"
    "assert {int(p) for p in (flags / 'server.pids').read_text().split()} <= set(Own().pids())\n"
    "samples(n)  # the run's own work on the host\n"
    "(flags / 'busy').touch()  # an outside load may start now\n"
    "while not (flags / 'go').exists():\n    time.sleep(0.05)\n"
    "t_go = time.time()\n"
    "samples(n)\n"
    "while outside and not incidents_during(s, t_go, time.time())[1]:  # until the kernel saw it too (a state)\n"
    "    samples(1)\n"
    "(flags / 'done').touch()\n"
    "tasks.kill()\n"
    "for pid in (flags / 'server.pids').read_text().split():\n    os.kill(int(pid), signal.SIGKILL)\n"
    "workers = 2",
]


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants (their reaped children included)."""
    import psutil

    total = 0.0
    top = psutil.Process(root)
    for p in [top, *top.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


def _kill_started(flags: Path) -> None:
    """Kill what the test's notebook started and may have left running (a failed run): the server, its worker and
    the tasks (their pids in the flags folder; the scripts' paths in their command lines)."""
    import psutil

    pids = {int(p) for p in (flags / "server.pids").read_text().split()} if (flags / "server.pids").exists() else set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] in pids or any(str(flags) in a for a in p.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error):
                p.kill()


@pytest.mark.slow
@pytest.mark.parametrize("outside", [False, True], ids=["own work only", "outside hog"])
def test_nbops_run_counts_its_whole_tree_as_its_own_and_an_outside_load_is_an_incident(store, tmp_path, outside):
    """A real ``nbops run`` (the CLI, its own process) of a notebook whose tracked cell starts a server in the
    background through the shell (an orphan: adopted by the runner, not by init) that forks a CPU-busy worker,
    and a child that keeps running short-lived busy tasks: all of it the run's own work. Read back from the store:
    the parent run and the tracked cell's run carry no ``nbops.incidents`` tag when nothing outside the run's tree
    loaded the host meanwhile (an oracle sums the CPU of every process outside it; on a shared machine that was
    busy, the no-incident verdict is not asked), and the sampler counted the tree's CPU as the run's own. A
    :class:`Hog` started outside the tree while the run works is an incident on both runs, with its evidence."""
    import psutil
    from mlflow.tracking import MlflowClient

    from nbops_testing import outside_cpu, outside_share

    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "server.py").write_text(SERVER)
    (flags / "tasks.py").write_text(TASKS)
    nb = write_notebook(tmp_path / "job.ipynb", RUN_CELLS, parameters={"flags": "", "outside": False, "n": 12})
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "NBOPS_TELEMETRY_INTERVAL": "0.25"}
    nbops = str(Path(sys.executable).with_name("nbops"))
    proc = subprocess.Popen([nbops, "run", str(nb), "-o", str(tmp_path / "job.out.ipynb"), "-e", "jobs",
                             "-r", "flags", str(flags), "-p", "outside", str(outside)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hog, t0, before = None, time.time(), outside_cpu(proc.pid)
    try:
        while not (flags / "busy").exists() and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        tree = psutil.Process(proc.pid).children(recursive=True)
        server, worker = (int(p) for p in (flags / "server.pids").read_text().split())
        assert {server, worker} <= {p.pid for p in tree}  # the orphaned server and its worker: the runner's
        hog = Hog() if outside else None
        go, tree0 = time.time(), tree_cpu(proc.pid)
        (flags / "go").touch()
        while not (flags / "done").exists() and proc.poll() is None:
            time.sleep(0.1)
        done, tree1 = time.time(), tree_cpu(proc.pid)
        share = outside_share(before, outside_cpu(proc.pid), time.time() - t0)
        output, _ = proc.communicate()
    finally:
        if hog is not None:
            hog.stop()
        if proc.poll() is None:  # a test that failed half-way: stop the run's whole tree
            for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.wait()
        _kill_started(flags)
    assert proc.returncode == 0, output
    c = MlflowClient(store)
    runs = c.search_runs([c.get_experiment_by_name("jobs").experiment_id])
    (parent,) = [r for r in runs if r.data.tags["nbops.kind"] == "notebook"]
    (cell,) = [r for r in runs if r.data.tags["nbops.kind"] == "track"]
    assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id and cell.data.params["workers"] == "2"
    pid = parent.info.run_id
    # what the runner's sampler took off the host as the run's own while it worked: most of what its tree used
    host = {m.timestamp: m.value for m in c.get_metric_history(pid, "system/cpu_utilization_percentage")}
    others = {m.timestamp: m.value for m in c.get_metric_history(pid, "system/cpu_utilization_by_others_percentage")}
    ours = [host[t] - v for t, v in others.items() if go * 1000 <= t <= done * 1000 and t in host]
    used = 100.0 * (tree1 - tree0) / ((done - go) * (psutil.cpu_count() or 1))
    assert used > 5 and np.mean(ours) >= 0.5 * used, (ours, used)
    if outside:
        for run in (parent, cell):
            assert run.data.tags["nbops.incidents"].startswith("nbops-"), run.data.tags
        saved = json.loads(Path(c.download_artifacts(pid, "telemetry/incidents.json")).read_text())
        assert saved["incidents"] and "host incident during this run" in output
        return
    if share >= 5:
        pytest.skip(f"the host was not quiet: processes outside the run's tree used {share:.0f}% of it")
    for run in (parent, cell):
        assert "nbops.incidents" not in run.data.tags, (run.data.tags["nbops.incidents"], output)
    assert "host incident" not in output

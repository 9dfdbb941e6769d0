"""The issue's real test: a real `mlflow server`, `nbops run` on a notebook, the server killed mid-notebook (or
down from the start), the notebook finishes anyway, the server comes back, `nbops sync` three times, and the
server then holds exactly what the notebook logged, once."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops_testing import all_artifacts, write_notebook
from services import mlflow_server  # noqa: F401

pytestmark = [pytest.mark.services, pytest.mark.slow]
NBOPS = str(Path(sys.executable).with_name("nbops"))

CELLS = [
    "%load_ext nbops",
    "%%track -n before\nlr = 0.1\naccuracy = 0.7\nimport nbops\n"
    "for s in range(3):\n    nbops.tracking.current().log_metric('loss', 1.0 / (s + 1), step=s)",
    # the test kills the server while the kernel waits here
    "import pathlib, time\npathlib.Path(signals, 'ready').touch()\n"
    "while not pathlib.Path(signals, 'go').exists():\n    time.sleep(0.1)",
    "%%track -n after1\nlr = 0.2\naccuracy = 0.8\nimport nbops\n"
    "for s in range(3):\n    nbops.tracking.current().log_metric('loss', 2.0 / (s + 1), step=s)",
    "%%track -n after2\nlr = 0.3\naccuracy = 0.9\nwith open('table.csv', 'w') as f:\n    f.write('a,b\\n1,2\\n')",
    "print('notebook done')",
]
# what the notebook logs, run by run: params, metric histories (step, value), artifacts that must be there
EXPECTED = {
    "before": ({"lr": "0.1"}, {"accuracy": [(0, 0.7)], "loss": [(0, 1.0), (1, 0.5), (2, 1 / 3)]}),
    "after1": ({"lr": "0.2"}, {"accuracy": [(0, 0.8)], "loss": [(0, 2.0), (1, 1.0), (2, 2 / 3)]}),
    "after2": ({"lr": "0.3"}, {"accuracy": [(0, 0.9)]}),
}


def _env(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    env.update(server.env(), NBOPS_SPOOL_DIR=str(tmp_path / "spool"), NBOPS_DOWN_GRACE_S="30")
    return env


def _snapshot(client):
    """Everything on the server, by run name: status, params, metric histories, parent name, artifacts."""
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    names = {r.info.run_id: r.info.run_name for r in runs}
    out = {}
    for r in runs:
        assert r.info.run_name not in out, f"duplicate run {r.info.run_name}"
        hist = {k: sorted((m.step, round(m.value, 9)) for m in client.get_metric_history(r.info.run_id, k))
                for k in r.data.metrics}
        out[r.info.run_name] = {"status": r.info.status, "params": r.data.params, "metrics": hist,
                                "parent": names.get(r.data.tags.get("mlflow.parentRunId")),
                                "artifacts": set(all_artifacts(client, r.info.run_id)), "run": r}
    return out


def _check(snap, nb_name, signals):
    assert sorted(snap) == ["after1", "after2", "before", nb_name]
    parent = snap[nb_name]
    assert parent["status"] == "FINISHED" and parent["parent"] is None
    assert parent["params"] == {"signals": signals}
    assert {f"notebook/{nb_name}.out.ipynb", f"notebook/{nb_name}.out.html"} <= parent["artifacts"]
    assert parent["metrics"]["nbops.cells_executed"] == [(0, 8.0)]  # parameters, injected, 6 cells
    for name, (params, metrics) in EXPECTED.items():
        got = snap[name]
        assert got["status"] == "FINISHED", name
        assert got["parent"] == nb_name, name
        # the cell's own parameters and papermill's injected one
        assert {k: got["params"].get(k) for k in [*params, "signals"]} == {**params, "signals": signals}, name
        for key, points in metrics.items():
            assert got["metrics"][key] == [(s, round(v, 9)) for s, v in points], (name, key)  # no duplicates
        assert "cell/source.py" in got["artifacts"], name


def _sync_three_times(env, cwd):
    reports = []
    for _ in range(3):
        r = subprocess.run([NBOPS, "sync"], cwd=cwd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        reports.append(r.stdout)
    assert "0 records pushed, 0 runs created, 0 runs updated" in reports[1]
    assert "0 records pushed, 0 runs created, 0 runs updated" in reports[2]
    return reports


def test_server_killed_mid_notebook_then_synced_three_times(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    signals = tmp_path / "signals"
    signals.mkdir()
    write_notebook(tmp_path / "job.ipynb", CELLS, parameters={"signals": ""})
    env = _env(mlflow_server, tmp_path)
    proc = subprocess.Popen([NBOPS, "run", "job.ipynb", "-p", "signals", str(signals), "-e", "etl"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (signals / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    client = MlflowClient(mlflow_server.url)
    before_kill = _snapshot(client)
    assert sorted(before_kill) == ["before", "job"]  # the parent and the first child reached the server
    mlflow_server.kill()
    (signals / "go").touch()
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err  # the server being down never fails the notebook
    assert "spooled" in out
    executed = json.loads((tmp_path / "job.out.ipynb").read_text())
    assert "spooled" in json.dumps(executed)  # the cells' summaries say so too
    assert "notebook done" in json.dumps(executed)

    mlflow_server.start()
    reports = _sync_three_times(env, tmp_path)
    assert "2 runs created" in reports[0] and "1 runs updated" in reports[0]  # after1/after2 new; parent resumed
    _check(_snapshot(client), "job", str(signals))


def test_server_down_from_the_start_then_synced_three_times(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    signals = tmp_path / "signals"
    signals.mkdir()
    (signals / "go").touch()
    write_notebook(tmp_path / "nightly.ipynb", CELLS, parameters={"signals": ""})
    env = _env(mlflow_server, tmp_path)
    mlflow_server.kill()
    r = subprocess.run([NBOPS, "run", "nightly.ipynb", "-p", "signals", str(signals), "-e", "etl"], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spooled" in r.stdout
    mlflow_server.start()
    client = MlflowClient(mlflow_server.url)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    reports = _sync_three_times(env, tmp_path)
    assert "4 runs created" in reports[0]
    _check(_snapshot(client), "nightly", str(signals))


def test_spooled_for_a_dead_server_waits_for_it_and_never_lands_in_the_embedded_store(mlflow_server, tmp_path):
    """Two real stores: the project's embedded SQLite store and an `mlflow server`. A run spooled while
    MLFLOW_TRACKING_URI named the (dead) server is not pushed into the embedded store by a plain `nbops sync`;
    the dead server is one line; once it is back, `nbops sync` delivers the run there, and only there."""
    from mlflow.tracking import MlflowClient

    proj = tmp_path / "proj"
    (proj / ".nbops").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    cell = ("import nbops\nwith nbops.track('remote-exp', '{name}') as t:\n    t.log_metric('accuracy', 0.77)\n"
            "    t.log_text('hello', 'notes/a.txt')\n")
    mlflow_server.kill()
    r = subprocess.run([sys.executable, "-c", cell.format(name="meant-for-server")], cwd=proj,
                       env=dict(env, **mlflow_server.env()), capture_output=True, text=True)
    assert r.returncode == 0 and "spooled" in r.stderr, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", cell.format(name="meant-for-embedded")], cwd=proj,
                       env=dict(env, NBOPS_OFFLINE="1"), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

    r = subprocess.run([NBOPS, "sync"], cwd=proj, env=env, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    waiting = [x for x in out.splitlines() if mlflow_server.url in x]
    assert len(waiting) == 1 and "does not answer" in waiting[0], out  # one line for the dead store
    assert "Traceback" not in out and "Retrying" not in out and len(out.splitlines()) <= 3, out
    embedded = MlflowClient(f"sqlite:///{proj / '.nbops' / 'mlflow.db'}")
    ids = [e.experiment_id for e in embedded.search_experiments()]
    assert sorted(x.info.run_name for x in embedded.search_runs(ids)) == ["meant-for-embedded"]

    mlflow_server.start()
    r = subprocess.run([NBOPS, "sync"], cwd=proj, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "1 runs created" in r.stdout and "1 already synced" in r.stdout, r.stdout + r.stderr
    server = MlflowClient(mlflow_server.url)
    got = server.search_runs([e.experiment_id for e in server.search_experiments()])
    assert [x.info.run_name for x in got] == ["meant-for-server"]
    assert got[0].data.metrics == {"accuracy": 0.77} and all_artifacts(server, got[0].info.run_id) == ["notes/a.txt"]
    assert sorted(x.info.run_name for x in embedded.search_runs(ids)) == ["meant-for-embedded"]
    r = subprocess.run([NBOPS, "sync"], cwd=proj, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "0 records pushed" in r.stdout and "2 already synced" in r.stdout, r.stdout

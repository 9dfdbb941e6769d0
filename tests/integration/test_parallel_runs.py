"""Scheduled notebooks run in parallel: 8 `nbops run` at once on the embedded SQLite store (MLflow issues #6490,
#4123: "database is locked", racing first runs) and 32 at once against a real `mlflow server` on PostgreSQL.
Every run, parameter, metric point and artifact must be on the store afterwards, and nothing left in the spool."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops_testing import all_artifacts, write_notebook
from services import mlflow_pg_server, pg_cluster, postgres  # noqa: F401

NBOPS = str(Path(sys.executable).with_name("nbops"))
CELLS = [
    "%load_ext nbops",
    "%%track -n train --params lr\nlr = 0.01 * (k + 1)\naccuracy = 0.5 + k / 100\nimport nbops\n"
    "for s in range(20):\n    nbops.tracking.current().log_metric('loss', k + 1.0 / (s + 1), step=s)\n"
    "nbops.tracking.current().log_text(f'report {k}', 'report.txt')",
    "%%track -n evaluate\nrmse = 1.0 + k",
]


def _start(n, cwd, env):
    write_notebook(Path(cwd) / "job.ipynb", CELLS, parameters={"k": 0})
    return [subprocess.Popen([NBOPS, "run", "job.ipynb", "-o", f"out{i}.ipynb", "-p", "k", str(i), "-e", "par",
                              "-n", f"job-{i}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for i in range(n)]


def _check_all_there(client, n, spool):
    outs = []
    exp = client.get_experiment_by_name("par")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    by_name = {}
    for r in runs:
        by_name.setdefault(r.info.run_name, []).append(r)
    parents = {f"job-{i}": by_name.get(f"job-{i}", []) for i in range(n)}
    assert all(len(v) == 1 for v in parents.values()), {k: len(v) for k, v in parents.items()}
    assert len(by_name["train"]) == n and len(by_name["evaluate"]) == n and len(runs) == 3 * n
    for i in range(n):
        parent = parents[f"job-{i}"][0]
        assert parent.info.status == "FINISHED" and parent.data.params == {"k": str(i)}
        assert "notebook/out%d.ipynb" % i in all_artifacts(client, parent.info.run_id)
        kids = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        train, ev = kids["train"], kids["evaluate"]
        assert train.info.status == ev.info.status == "FINISHED"
        assert train.data.params["k"] == str(i) and float(train.data.params["lr"]) == pytest.approx(0.01 * (i + 1))
        assert train.data.metrics["accuracy"] == pytest.approx(0.5 + i / 100)
        hist = sorted((m.step, m.value) for m in client.get_metric_history(train.info.run_id, "loss"))
        assert hist == [(s, pytest.approx(i + 1.0 / (s + 1))) for s in range(20)]
        assert "report.txt" in all_artifacts(client, train.info.run_id)
        assert ev.data.metrics["rmse"] == 1.0 + i
        outs.append(parent)
    spooled = [p for p in Path(spool).glob("*/meta.json")] if Path(spool).exists() else []
    assert spooled == [], "records went to the spool instead of the store"
    return outs


@pytest.mark.slow
def test_eight_parallel_runs_on_the_embedded_sqlite_store(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    env["NBOPS_HOME"] = str(tmp_path / ".nbops")  # the embedded store: .nbops/mlflow.db, created by the race
    procs = _start(8, tmp_path, env)
    results = [(p.returncode, out) for p in procs for out in [p.communicate()[0]]]
    assert [c for c, _ in results] == [0] * 8, "\n".join(o for c, o in results if c)
    assert not any("spooled" in o for _, o in results)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / '.nbops' / 'mlflow.db'}")
    _check_all_there(client, 8, tmp_path / ".nbops" / "spool")


@pytest.mark.slow
@pytest.mark.services
def test_thirty_two_parallel_runs_against_mlflow_server_on_postgresql(mlflow_pg_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    env.update(mlflow_pg_server.env(), NBOPS_SPOOL_DIR=str(tmp_path / "spool"))
    procs = _start(32, tmp_path, env)
    results = [(p.returncode, out) for p in procs for out in [p.communicate()[0]]]
    assert [c for c, _ in results] == [0] * 32, "\n".join(o for c, o in results if c)
    from mlflow.tracking import MlflowClient

    _check_all_there(MlflowClient(mlflow_pg_server.url), 32, tmp_path / "spool")

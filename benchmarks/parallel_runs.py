"""Parallel scheduled notebooks: runs per minute and records lost, for both stores, nbops vs plain MLflow.

    python benchmarks/parallel_runs.py                 # 8 at once on SQLite, 32 at once on mlflow server + PG
    python benchmarks/parallel_runs.py --sqlite 8 --server 16 --steps 50

Each job is one papermill execution of the same small notebook (parameter ``k``): two tracked cells logging
params, a metric, a 50-step metric series and an artifact, i.e. ``RECORDS_PER_JOB`` records. Two ways to run it:

- **nbops**: ``nbops run job.ipynb -p k i`` (the notebook uses ``%%track``; the writer serialises SQLite writers
  with an inter-process lock and retries, and spools what the store does not take);
- **plain MLflow** (the baseline the issue names, MLflow issues #6490/#4123): ``papermill`` on a notebook doing the
  same logging with ``mlflow.start_run()`` / ``log_param`` / ``log_metric`` / ``log_text``.

All jobs start together; records lost = records the notebook logged that are not on the store afterwards (a
job that crashed loses all of its records). The PostgreSQL server and ``mlflow server`` are started on free
loopback ports with the test fixtures' launcher (tests/services.py) and stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent

NBOPS_CELLS = [
    "%load_ext nbops",
    "%%track -n train --params lr\nlr = 0.01 * (k + 1)\naccuracy = 0.5 + k / 100\nimport nbops\n"
    "for s in range(steps):\n    nbops.tracking.current().log_metric('loss', k + 1.0 / (s + 1), step=s)\n"
    "nbops.tracking.current().log_text(f'report {k}', 'report.txt')",
    "%%track -n evaluate --params k\nrmse = 1.0 + k",
]
PLAIN_CELLS = [
    "import mlflow\nmlflow.set_experiment('par')",
    "with mlflow.start_run(run_name='train'):\n    mlflow.log_param('k', k)\n    mlflow.log_param('lr', 0.01 * (k + 1))\n"
    "    mlflow.log_metric('accuracy', 0.5 + k / 100)\n    for s in range(steps):\n"
    "        mlflow.log_metric('loss', k + 1.0 / (s + 1), step=s)\n    mlflow.log_text(f'report {k}', 'report.txt')",
    "with mlflow.start_run(run_name='evaluate'):\n    mlflow.log_param('k', k)\n    mlflow.log_metric('rmse', 1.0 + k)",
]


SMOKE_ARGS = ["--sqlite", "1", "--server", "0", "--steps", "2", "--no-baseline"]  # tests/unit/test_benchmarks.py

def records_per_job(steps: int) -> int:
    # train: 2 params (k, lr) + accuracy + steps loss points + 1 artifact; evaluate: 1 param + 1 metric
    return 2 + 1 + steps + 1 + 1 + 1


def _write(path: Path, cells: list[str], steps: int) -> None:
    from nbops_testing import write_notebook

    write_notebook(path, cells, parameters={"k": 0, "steps": steps})


def _count(uri: str, steps: int) -> int:
    """Records of the job runs found on the store (train + evaluate runs of experiment 'par')."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("par")
    if exp is None:
        return 0
    found = 0
    for r in c.search_runs([exp.experiment_id], max_results=10000):
        if r.info.run_name == "train":
            found += len({k for k in r.data.params if k in ("k", "lr")})
            found += int("accuracy" in r.data.metrics)
            found += len({m.step for m in c.get_metric_history(r.info.run_id, "loss")})
            found += int(any(a.path == "report.txt" for a in c.list_artifacts(r.info.run_id)))
        elif r.info.run_name == "evaluate":
            found += int("k" in r.data.params) + int("rmse" in r.data.metrics)
    return found


def run_batch(kind: str, n: int, uri: str | None, workdir: Path, steps: int, extra_env: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    env.update(extra_env)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    env["NBOPS_SPOOL_DIR"] = str(workdir / "spool")
    if kind == "nbops":
        _write(workdir / "job.ipynb", NBOPS_CELLS, steps)
        cmds = [[str(BIN / "nbops"), "run", "job.ipynb", "-o", f"out{i}.ipynb", "-p", "k", str(i), "-p", "steps",
                 str(steps), "-e", "par", "--no-progress"] for i in range(n)]
    else:
        _write(workdir / "job.ipynb", PLAIN_CELLS, steps)
        cmds = [[str(BIN / "papermill"), "job.ipynb", f"out{i}.ipynb", "-p", "k", str(i), "-p", "steps", str(steps),
                 "--no-progress-bar"] for i in range(n)]
    t0 = time.time()
    procs = [subprocess.Popen(c, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    errs = [p.communicate()[1] for p in procs]
    wall = time.time() - t0
    failed = [e for p, e in zip(procs, errs) if p.returncode]
    store_uri = uri or f"sqlite:///{workdir / '.nbops' / 'mlflow.db'}"
    broken = None
    try:
        found = _count(store_uri, steps)
    except Exception as exc:  # noqa: BLE001 - the racing jobs can leave the store half-migrated, unreadable
        found, broken = 0, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    spooled = len(list((workdir / "spool").glob("*/meta.json"))) if (workdir / "spool").exists() else 0
    expected = n * records_per_job(steps)
    locked = sum("database is locked" in e for e in errs)
    return {"kind": kind, "n": n, "wall_s": wall, "runs_per_min": 60 * n / wall, "failed_jobs": len(failed),
            "expected": expected, "found": found, "lost": expected - found, "spooled_runs": spooled,
            "locked_errors": locked, "broken": broken}


def _row(label: str, r: dict) -> str:
    return (f"{label:<34} {r['n']:>4} {r['wall_s']:>8.1f} {r['runs_per_min']:>9.1f} {r['failed_jobs']:>7} "
            f"{r['expected']:>8} {r['lost']:>6} {r['spooled_runs']:>8}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sqlite", type=int, default=8, help="parallel jobs on the SQLite store (default 8)")
    ap.add_argument("--server", type=int, default=32, help="parallel jobs against mlflow server + PostgreSQL")
    ap.add_argument("--steps", type=int, default=50, help="metric points per job's loss series")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain-MLflow runs")
    a = ap.parse_args(argv)
    header = (f"{'':<34} {'jobs':>4} {'wall s':>8} {'runs/min':>9} {'failed':>7} {'records':>8} {'lost':>6} "
              f"{'spooled':>8}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        tmp = Path(tmp)
        print(f"{a.sqlite} jobs on SQLite, {a.server} on mlflow server + PostgreSQL, "
              f"{records_per_job(a.steps)} records per job; {os.cpu_count()} CPUs", flush=True)
        if a.sqlite:
            nb = run_batch("nbops", a.sqlite, None, tmp / "sqlite-nbops", a.steps,
                           {"NBOPS_HOME": str(tmp / "sqlite-nbops" / ".nbops")})
            rows.append(("SQLite, nbops run", nb))
            if not a.no_baseline:
                uri = f"sqlite:///{tmp / 'sqlite-plain' / 'mlflow.db'}"
                rows.append(("SQLite, papermill + plain MLflow", run_batch("plain", a.sqlite, uri,
                                                                          tmp / "sqlite-plain", a.steps, {})))
        if a.server:
            from services import PostgresCluster, start_mlflow_server

            pg = PostgresCluster()
            try:
                for kind, label in (("nbops", "server+PG, nbops run"), ("plain", "server+PG, papermill + MLflow")):
                    if kind == "plain" and a.no_baseline:
                        continue
                    srv = start_mlflow_server(pg.create_database(), tmp / f"art-{kind}", workers=4)
                    try:
                        rows.append((label, run_batch(kind, a.server, srv.url, tmp / f"pg-{kind}", a.steps, {})))
                    finally:
                        srv.close()
            finally:
                pg.stop()
    print(header)
    for label, r in rows:
        print(_row(label, r))
    for label, r in rows:
        if r["broken"]:
            print(f"  {label}: the store cannot be opened afterwards ({r['broken']})")
    by = {label: r for label, r in rows}
    for store, ours, base in (("SQLite", "SQLite, nbops run", "SQLite, papermill + plain MLflow"),
                              ("server+PG", "server+PG, nbops run", "server+PG, papermill + MLflow")):
        if ours in by and base in by:
            o, b = by[ours], by[base]
            print(f"{store}: nbops/plain runs per minute = {o['runs_per_min'] / b['runs_per_min']:.2f}x; "
                  f"records lost {o['lost']} (nbops) vs {b['lost']} (plain MLflow, "
                  f"{b['locked_errors']} jobs hit 'database is locked')")
    return 0 if all(r["lost"] == 0 for label, r in rows if "nbops" in label) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Parallel scheduled notebooks: runs per minute and records lost, for both stores, nbops vs plain MLflow.

    python benchmarks/parallel_runs.py                 # 8 at once on SQLite, 32 at once on mlflow server + PG
    python benchmarks/parallel_runs.py --sqlite 8 --server 16 --steps 50 --repeats 3

Each job is one papermill execution of the same small notebook (parameter ``k``): two tracked cells logging
params, a metric, a 50-step metric series and an artifact, i.e. ``RECORDS_PER_JOB`` records. Two ways to run it:

- **nbops**: ``nbops run job.ipynb -p k i`` (the notebook uses ``%%track``; the writer serialises SQLite writers
  with an inter-process lock and retries, and spools what the store does not take);
- **plain MLflow** (the baseline the issue names, MLflow issues #6490/#4123): ``papermill`` on a notebook doing the
  same logging with ``mlflow.start_run()`` / ``log_param`` / ``log_metric`` / ``log_text``.

All jobs of a batch start together. A job *completed* when its process exited 0 and every record it logged is on
the store; **completed runs per minute** = completed jobs / the batch's wall time (a job that failed or lost
records does not count, so a side whose jobs all failed scores 0). Records lost = records the notebooks logged
that are not on the store afterwards (a job that crashed loses all of its records). nbops records more per run
(the parent run, the executed notebook and its HTML, the host telemetry) and pays for it in the same time.

Each store gets ``--repeats`` batches per side, the sides alternating (nbops first in odd repeats, plain first in
even ones) so neither always runs on the warmer or quieter machine; the table shows every batch and the summary
the medians and their ratio nbops/plain. ``--created-store`` creates the SQLite store before the batch (both
sides), the way a careful user of plain MLflow avoids its first-run race; without it the jobs race to create it.
The PostgreSQL server and ``mlflow server`` are started on free loopback ports with the test fixtures' launcher
(tests/services.py) and stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import statistics
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


def _count(uri: str, steps: int) -> dict[int, int]:
    """Records found on the store per job (its ``k``), over the train + evaluate runs of experiment 'par'."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("par")
    if exp is None:
        return {}
    found: dict[int, int] = {}
    for r in c.search_runs([exp.experiment_id], max_results=10000):
        if r.info.run_name not in ("train", "evaluate") or "k" not in r.data.params:
            continue
        n = 0
        if r.info.run_name == "train":
            n += len({k for k in r.data.params if k in ("k", "lr")})
            n += int("accuracy" in r.data.metrics)
            n += len({m.step for m in c.get_metric_history(r.info.run_id, "loss")})
            n += int(any(a.path == "report.txt" for a in c.list_artifacts(r.info.run_id)))
        else:
            n += int("k" in r.data.params) + int("rmse" in r.data.metrics)
        job = int(float(r.data.params["k"]))
        found[job] = found.get(job, 0) + n
    return found


def _create_store(uri: str) -> None:
    """The SQLite store created (tables migrated) before the jobs start, as a careful plain-MLflow user does."""
    from mlflow.tracking import MlflowClient

    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    MlflowClient(uri).search_experiments()


def run_batch(kind: str, n: int, uri: str | None, workdir: Path, steps: int, extra_env: dict,
              create_store: bool = False) -> dict:
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
    store_uri = uri or f"sqlite:///{workdir / '.nbops' / 'mlflow.db'}"
    if create_store and store_uri.startswith("sqlite:///"):
        _create_store(store_uri)
    t0 = time.time()
    procs = [subprocess.Popen(c, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    errs = [p.communicate()[1] for p in procs]
    wall = time.time() - t0
    broken = None
    try:
        per_job = _count(store_uri, steps)
    except Exception as exc:  # noqa: BLE001 - the racing jobs can leave the store half-migrated, unreadable
        per_job, broken = {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    each = records_per_job(steps)
    completed = sum(1 for i, p in enumerate(procs) if p.returncode == 0 and per_job.get(i, 0) >= each)
    found = sum(min(v, each) for v in per_job.values())
    spooled = len(list((workdir / "spool").glob("*/meta.json"))) if (workdir / "spool").exists() else 0
    expected = n * each
    locked = sum("database is locked" in e for e in errs)
    return {"kind": kind, "n": n, "wall_s": wall, "completed": completed, "runs_per_min": 60 * completed / wall,
            "failed_jobs": sum(1 for p in procs if p.returncode), "expected": expected, "found": found,
            "lost": expected - found, "spooled_runs": spooled, "locked_errors": locked, "broken": broken}


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for q in [root] + root.children(recursive=True):
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def cpu_per_run(kind: str, n: int, uri: str | None, workdir: Path, steps: int, server_pid: int | None) -> list[float]:
    """``n`` runs one after another: CPU seconds of each run's whole process tree (runner + kernel), plus what
    the ``mlflow server`` process tree spent meanwhile (its share of the work: plain MLflow sends a request per
    metric point). Independent of the machine's load, unlike runs per minute."""
    import resource

    out = []
    for i in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv0 = _tree_cpu(server_pid) if server_pid else 0.0
        r = run_batch(kind, 1, uri, workdir / str(i), steps, {}, create_store=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv = (_tree_cpu(server_pid) - srv0) if server_pid else 0.0
        if not r["completed"]:
            raise SystemExit(f"{kind} run {i} did not complete: {r}")
        out.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime + srv)
    return out


def _row(label: str, r: dict) -> str:
    return (f"{label:<36} {r['n']:>4} {r['wall_s']:>8.1f} {r['completed']:>9} {r['runs_per_min']:>9.1f} "
            f"{r['failed_jobs']:>7} {r['expected']:>8} {r['lost']:>6} {r['spooled_runs']:>8}")


SIDES = {"SQLite": ("SQLite, nbops run", "SQLite, papermill + plain MLflow"),
         "server+PG": ("server+PG, nbops run", "server+PG, papermill + MLflow")}


def _summary(rows: list[tuple[str, int, dict]]) -> list[str]:
    """Per store: median completed runs/min of each side, their ratio, and the records lost over all batches."""
    lines = []
    for store, (ours, base) in SIDES.items():
        o = [r for label, _, r in rows if label == ours]
        b = [r for label, _, r in rows if label == base]
        if not o or not b:
            continue
        mo = statistics.median(r["runs_per_min"] for r in o)
        mb = statistics.median(r["runs_per_min"] for r in b)
        ratio = f"{mo / mb:.2f}x" if mb else "inf (plain completed no run)"
        lines.append(f"{store}: completed runs/min, median of {len(o)}: nbops {mo:.1f} vs plain {mb:.1f} = {ratio}; "
                     f"records lost {sum(r['lost'] for r in o)}/{sum(r['expected'] for r in o)} (nbops) vs "
                     f"{sum(r['lost'] for r in b)}/{sum(r['expected'] for r in b)} (plain MLflow; jobs failed "
                     f"{sum(r['failed_jobs'] for r in b)}, {sum(r['locked_errors'] for r in b)} hit 'database is "
                     f"locked')")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sqlite", type=int, default=8, help="parallel jobs on the SQLite store (default 8)")
    ap.add_argument("--server", type=int, default=32, help="parallel jobs against mlflow server + PostgreSQL")
    ap.add_argument("--steps", type=int, default=50, help="metric points per job's loss series")
    ap.add_argument("--repeats", type=int, default=1, help="batches per side and store; the medians are compared")
    ap.add_argument("--created-store", action="store_true",
                    help="create the SQLite store before each batch (else the jobs race to create it)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain-MLflow runs")
    ap.add_argument("--sequential", type=int, default=0, metavar="N",
                    help="also run N jobs one at a time per side and store and print the CPU seconds of each run "
                         "(process tree, plus the mlflow server's), medians and their ratio plain/nbops")
    a = ap.parse_args(argv)
    header = (f"{'':<36} {'jobs':>4} {'wall s':>8} {'completed':>9} {'runs/min':>9} {'failed':>7} {'records':>8} "
              f"{'lost':>6} {'spooled':>8}")
    rows: list[tuple[str, int, dict]] = []
    kinds = ["nbops"] if a.no_baseline else ["nbops", "plain"]

    def order(rep: int) -> list[str]:
        return kinds if rep % 2 == 0 else kinds[::-1]

    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        tmp = Path(tmp)
        how = "store created first" if a.created_store else "the jobs race to create the store"
        print(f"{a.sqlite} jobs on SQLite ({how}), {a.server} on mlflow server + PostgreSQL, "
              f"{records_per_job(a.steps)} records per job, {a.repeats} batch(es) per side; {os.cpu_count()} CPUs",
              flush=True)
        for rep in range(a.repeats if a.sqlite else 0):
            for kind in order(rep):
                wd = tmp / f"sqlite-{kind}-{rep}"
                if kind == "nbops":
                    r = run_batch("nbops", a.sqlite, None, wd, a.steps, {"NBOPS_HOME": str(wd / ".nbops")},
                                  a.created_store)
                else:
                    r = run_batch("plain", a.sqlite, f"sqlite:///{wd / 'mlflow.db'}", wd, a.steps, {},
                                  a.created_store)
                rows.append((SIDES["SQLite"][kind != "nbops"], rep, r))
                print(_row(f"{rows[-1][0]} #{rep + 1}", r), flush=True)
        cpu: dict[tuple[str, str], list[float]] = {}
        for kind in kinds if a.sequential and a.sqlite else []:
            cpu[("SQLite", kind)] = cpu_per_run(kind, a.sequential, f"sqlite:///{tmp / f'seq-{kind}.db'}",
                                               tmp / f"seq-sqlite-{kind}", a.steps, None)
        if a.server:
            from services import PostgresCluster, start_mlflow_server

            pg = PostgresCluster()
            try:
                for kind in kinds if a.sequential else []:
                    srv = start_mlflow_server(pg.create_database(), tmp / f"art-seq-{kind}", workers=4)
                    try:
                        cpu[("server+PG", kind)] = cpu_per_run(kind, a.sequential, srv.url, tmp / f"seq-pg-{kind}",
                                                               a.steps, srv.proc.pid)
                    finally:
                        srv.close()
                for rep in range(a.repeats):
                    for kind in order(rep):
                        srv = start_mlflow_server(pg.create_database(), tmp / f"art-{kind}-{rep}", workers=4)
                        try:
                            r = run_batch(kind, a.server, srv.url, tmp / f"pg-{kind}-{rep}", a.steps, {})
                        finally:
                            srv.close()
                        rows.append((SIDES["server+PG"][kind != "nbops"], rep, r))
                        print(_row(f"{rows[-1][0]} #{rep + 1}", r), flush=True)
            finally:
                pg.stop()
    print(header)
    for label, rep, r in rows:
        print(_row(f"{label} #{rep + 1}", r))
    for label, rep, r in rows:
        if r["broken"]:
            print(f"  {label} #{rep + 1}: the store cannot be opened afterwards ({r['broken']})")
    for line in _summary(rows):
        print(line)
    for store in SIDES:
        if (store, "nbops") in cpu:
            o = statistics.median(cpu[(store, "nbops")])
            each = ", ".join(f"{v:.1f}" for v in cpu[(store, "nbops")])
            line = f"{store}: CPU per run, one at a time (runner + kernel + server), median: nbops {o:.2f} s ({each})"
            if (store, "plain") in cpu:
                b = statistics.median(cpu[(store, "plain")])
                line += (f" vs plain {b:.2f} s ({', '.join(f'{v:.1f}' for v in cpu[(store, 'plain')])}): plain/nbops "
                         f"= {b / o:.2f}x")
            print(line)
    return 0 if all(r["lost"] == 0 for label, _, r in rows if "nbops" in label) else 1


if __name__ == "__main__":
    sys.exit(main())

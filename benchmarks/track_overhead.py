"""%%track overhead vs hand-written MLflow logging, on one fresh embedded SQLite store.

    python benchmarks/track_overhead.py [--runs 30]

Prints: the cold `%load_ext nbops` time (fresh interpreter each time, median of 5); the median wall time of a
`%%track` cell that logs 5 params, 5 metrics and its source, as the cell sees it, in background mode (the
default in a live notebook: the cell returns once its records are fsync'ed in the local spool) and in sync mode
(NBOPS_WRITE_MODE=sync: the cell waits for the store); the median time until a background cell's run is
written to the store; the median time of the hand-written MLflow code that logs the same (start_run,
log_params, log_metrics, log_text, end of run); and the ratios. Targets: load < 0.25 s (issue 2), sync
ratio <= 1.0 (issue 2), background ratio <= 0.3 (issue 19).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

CELL = "a = 1\nb = 2.5\nc = 'rf'\nd = True\ne = 10\nm_accuracy = 0.9\nm_loss = 0.1\nm_f1 = 0.8\nm_auc = 0.95\nm_rmse = 1.5"
LOAD = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
        "t = time.perf_counter()\nip.run_line_magic('load_ext', 'nbops')\nprint(time.perf_counter() - t)")


SMOKE_ARGS = ["--runs", "2"]  # tests/unit/test_benchmarks.py: a tiny run

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nbops-bench-")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    os.environ["NBOPS_SPOOL_DIR"] = f"{tmp}/spool"
    os.chdir(tmp)

    loads = [float(subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, check=True)
                   .stdout.strip().splitlines()[-1]) for _ in range(5)]

    from IPython.core.interactiveshell import InteractiveShell
    import logging
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbops")
    import mlflow
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])

    line = "-e bench --params a,b,c,d,e --metrics m_accuracy,m_loss,m_f1,m_auc,m_rmse"
    exp = mlflow.set_experiment("bench-hand")

    from nbops.tracking import flusher

    def nbops_cell(mode: str):
        os.environ["NBOPS_WRITE_MODE"] = mode
        with contextlib.redirect_stdout(io.StringIO()):  # the run summary a terminal shell would print
            t = time.perf_counter()
            ip.run_cell_magic("track", line, CELL)
            return time.perf_counter() - t

    def sync_cell():
        return nbops_cell("sync")

    visible: list[float] = []

    def background_cell():
        t0 = time.perf_counter()
        took = nbops_cell("background")
        if not flusher.flush(600):  # the run is in the store when the flusher is idle again
            raise SystemExit("the background write did not finish")
        visible.append(time.perf_counter() - t0)
        if ip.user_ns["_nbops_last_run"].writing:
            raise SystemExit("the flusher is idle but the run summary still says it is being written")
        return took

    def hand_written():
        t = time.perf_counter()
        ns: dict = {}
        exec(CELL, ns)
        with mlflow.start_run(experiment_id=exp.experiment_id):
            mlflow.log_params({k: ns[k] for k in "abcde"})
            mlflow.log_metrics({k: ns[k] for k in ("m_accuracy", "m_loss", "m_f1", "m_auc", "m_rmse")})
            mlflow.log_text(CELL, "cell/source.py")
        return time.perf_counter() - t

    for f in (sync_cell, background_cell, hand_written):  # warm up: schema, experiment, caches
        f(); f()
    visible.clear()
    bg, sy, theirs = [], [], []
    for _ in range(a.runs):  # interleaved, so all see the same machine load
        bg.append(background_cell())
        sy.append(sync_cell())
        theirs.append(hand_written())
    mb, ms, mh, mv = (statistics.median(x) for x in (bg, sy, theirs, visible))
    print(f"cold %load_ext nbops                  {statistics.median(loads) * 1000:8.1f} ms   (target < 250 ms)")
    print(f"%%track cell, background (default)    {mb * 1000:8.1f} ms   median of {a.runs} as the cell sees it (5 "
          f"params, 5 metrics, source, git, environment, stdout, wall time, peak memory)")
    print(f"  ... until its run is in the store   {mv * 1000:8.1f} ms   median, from the cell's start")
    print(f"%%track cell, NBOPS_WRITE_MODE=sync   {ms * 1000:8.1f} ms   median of {a.runs}")
    print(f"hand-written MLflow code              {mh * 1000:8.1f} ms   median of {a.runs}")
    print(f"ratio background / hand-written       {mb / mh:8.2f}      (target <= 0.3)")
    print(f"ratio sync / hand-written             {ms / mh:8.2f}      (target <= 1.0)")


if __name__ == "__main__":
    main()

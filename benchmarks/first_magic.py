"""Benchmark: what the first %%track, %drift and %telemetry cost in a fresh kernel, against the same magic run again.

    python benchmarks/first_magic.py [--think 3] [--repeat 1]

A real IPython kernel (jupyter_client) on an embedded SQLite store in a temporary project. Cells, in order:
`%load_ext nbops`, a user cell of plain Python work (no nbops), then (after --think seconds, the time a person
takes to type the next cell) a `%%track` cell, a `%drift` check of two 2,000-row frames and
`%telemetry --source local`; then each of the three again. Each cell's latency is taken as the kernel reports it
(execute_request to idle). Run twice, side by side: with nbops's import warm-up after `%load_ext` (the default)
and without it (NBOPS_WARM_IMPORTS=0, the baseline), with the ratios; the user cell shows what the warm-up costs
the user's own work when it runs at once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

SMOKE_ARGS = ["--think", "0"]  # tests/unit/test_benchmarks.py: a tiny run

USER_CELL = "s = 0\nfor i in range(3_000_000):\n    s += i % 7"
SETUP = ("import numpy as np, pandas as pd\n"
         "rng = np.random.default_rng(0)\n"
         "ref = pd.DataFrame({'x': rng.normal(size=2000), 'c': rng.choice(list('abc'), 2000)})\n"
         "cur = pd.DataFrame({'x': rng.normal(0.3, 1, 2000), 'c': rng.choice(list('abc'), 2000)})")
CELLS = {
    "%%track": "%%track -e bench -n cell\nlr = 0.1\nscore = 0.5",
    "%drift": "%drift ref cur --quiet -e bench",
    "%telemetry": "%telemetry --source local --last 1m",
}


def run_cell(kc, code: str) -> float:
    """Seconds from execute_request to the kernel going idle; raises if the cell failed."""
    t = time.perf_counter()
    msg_id = kc.execute(code)
    error = None
    while True:
        msg = kc.get_iopub_msg(timeout=600)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            error = "\n".join(msg["content"]["traceback"][-3:])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    if error:
        raise RuntimeError(f"cell failed: {code.splitlines()[0]}\n{error}")
    return time.perf_counter() - t


def one_kernel(think: float, warm: bool) -> dict:
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory(prefix="nbops-first-") as tmp:
        os.makedirs(os.path.join(tmp, ".nbops"))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["NBOPS_WARM_IMPORTS"] = "1" if warm else "0"
        km, kc = start_new_kernel(kernel_name="python3", cwd=tmp, env=env)
        try:
            out = {"%load_ext nbops": run_cell(kc, "%load_ext nbops")}
            out["user cell"] = run_cell(kc, USER_CELL)
            run_cell(kc, SETUP)
            time.sleep(think)  # a person reads the output and types the next cell
            for name, code in CELLS.items():
                out[f"first {name}"] = run_cell(kc, code)
            for name, code in CELLS.items():
                out[f"second {name}"] = run_cell(kc, code)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--think", type=float, default=3.0, help="seconds between %%load_ext and the first magic")
    ap.add_argument("--repeat", type=int, default=1, help="fresh kernels to run (medians are printed)")
    a = ap.parse_args()
    if a.think < 0 or a.repeat < 1:
        ap.error("--think must be >= 0 and --repeat >= 1")
    med = {}
    for warm in (True, False):
        runs = [one_kernel(a.think, warm) for _ in range(a.repeat)]
        med[warm] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"fresh kernels: {a.repeat} per mode, think time {a.think:g} s, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}")
    print(f"{'cell':22s}{'warm-up':>10s}{'none':>10s}{'ratio':>8s}")
    rows = ["%load_ext nbops", "user cell"] + [f"{k} {n}" for k in ("first", "second") for n in CELLS]
    for row in rows:
        w, n = med[True][row], med[False][row]
        print(f"{row:22s}{w * 1000:8.0f}ms{n * 1000:8.0f}ms{w / n:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

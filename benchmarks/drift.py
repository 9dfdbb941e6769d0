"""Benchmark: nbops.check_drift (its own scipy engine) vs alibi-detect's TabularDrift, or vs scipy column by column.

    python benchmarks/drift.py [--rows 1000000] [--batch 100000]

1,000,000 rows x 20 numeric + 5 categorical columns per side; the current batch has 3 shifted numeric columns
(0.3 sd) and 1 categorical column with changed shares. Prints, in one run: nbops's first check (DataFrames in,
reference prepared inside), a second check against the same prepared reference, and the baseline on the same
arrays: alibi-detect's TabularDrift (the optional extra; when this environment lacks it, the same data is made
and timed by `.venv-alibi/bin/python` beside the project if that exists, which is what a user moving from
alibi-detect's numpy-1 environment compares with) and the obvious hand-written baseline (scipy.stats.ks_2samp /
chi2_contingency called column by column), with the ratios (targets: first check <= 0.5x TabularDrift, repeated
check <= 0.2x) and whether the verdicts agree.
Also the monitoring case: 100,000-row daily batches against one prepared reference. Nothing is logged to MLflow
(log=False): this measures the drift check itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
warnings.filterwarnings("ignore")

N_NUM, N_CAT = 20, 5
SHIFTED_NUM, SHIFTED_CAT = (0, 1, 2), (0,)


SMOKE_ARGS = ["--rows", "3000", "--batch", "500"]  # tests/unit/test_benchmarks.py: a tiny run

def make(rng, n, drift: bool):
    import numpy as np

    num = rng.normal(size=(n, N_NUM))
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    cat = np.stack([rng.choice(len(probs), size=n, p=probs) for _ in range(N_CAT)], axis=1)
    if drift:
        num[:, list(SHIFTED_NUM)] += 0.3
        shifted = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
        for j in SHIFTED_CAT:
            cat[:, j] = rng.choice(len(shifted), size=n, p=shifted)
    return num, cat


def frame(num, cat):
    import pandas as pd

    df = pd.DataFrame(num, columns=[f"x{i}" for i in range(N_NUM)])
    for j in range(N_CAT):
        df[f"c{j}"] = cat[:, j]
    return df


class Took:
    """Wall-clock and CPU seconds of one call. On a shared machine CPU time is the steadier comparison (both
    sides are single-threaded numpy/scipy work); wall-clock is what a user waits."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    def __add__(self, other: "Took") -> "Took":
        return Took(self.wall + other.wall, self.cpu + other.cpu)

    def __truediv__(self, other: "Took") -> str:
        return f"{self.wall / other.wall:.2f} wall, {self.cpu / other.cpu:.2f} cpu"

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s wall {self.cpu:7.2f} s cpu"


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return Took(time.perf_counter() - t, time.process_time() - c), out


def scipy_columns(ref_num, ref_cat, cur_num, cur_cat):
    """The hand-written baseline: scipy's tests called column by column (counts with np.unique)."""
    import numpy as np
    from scipy.stats import chi2_contingency, ks_2samp

    p = [ks_2samp(ref_num[:, j], cur_num[:, j]).pvalue for j in range(ref_num.shape[1])]
    for j in range(ref_cat.shape[1]):
        labels = np.union1d(np.unique(ref_cat[:, j]), np.unique(cur_cat[:, j]))
        table = np.vstack([[np.sum(ref_cat[:, j] == v) for v in labels], [np.sum(cur_cat[:, j] == v) for v in labels]])
        p.append(chi2_contingency(table)[1])
    return np.array(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per side (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=100_000, help="rows of the daily batches in the monitoring case")
    ap.add_argument("--tabular-only", action="store_true", help=argparse.SUPPRESS)  # the .venv-alibi side
    args = ap.parse_args()
    import json
    import subprocess

    import numpy as np

    import nbops
    from nbops.drift import alibi, prepare_reference

    have_alibi = alibi.available()
    if have_alibi:
        TabularDrift = alibi.detectors()["TabularDrift"]  # import alibi-detect outside the timings (about 6 s)
    rng = np.random.default_rng(0)
    n = args.rows
    ref_num, ref_cat = make(rng, n, drift=False)
    cur_num, cur_cat = make(rng, n, drift=True)
    if args.tabular_only:
        t, raw = timed(lambda: TabularDrift(np.hstack([ref_num, ref_cat]).astype(np.float64), p_val=0.05,
                                            categories_per_feature={N_NUM + j: None for j in range(N_CAT)}).predict(
            np.hstack([cur_num, cur_cat]).astype(np.float64), drift_type="batch"))
        print(json.dumps({"wall": t.wall, "cpu": t.cpu, "p": [float(p) for p in raw["data"]["p_val"]],
                          "numpy": np.__version__}))
        return 0
    ref_df, cur_df = frame(ref_num, ref_cat), frame(cur_num, cur_cat)
    names = list(ref_df.columns)
    thr = 0.05 / len(names)
    print(f"data: {n:,} rows x {N_NUM} numeric + {N_CAT} categorical per side; drift planted in "
          f"{len(SHIFTED_NUM)} numeric and {len(SHIFTED_CAT)} categorical columns; "
          f"numpy {np.__version__}, pandas {__import__('pandas').__version__}, "
          f"alibi-detect {'installed' if have_alibi else 'not installed'}")
    base = {}
    t_scipy, p_scipy = timed(lambda: scipy_columns(ref_num, ref_cat, cur_num, cur_cat))
    base["scipy column by column"] = (t_scipy, {names[i] for i, p in enumerate(p_scipy) if p < thr})
    if have_alibi:
        x_ref = np.hstack([ref_num, ref_cat]).astype(np.float64)
        x_cur = np.hstack([cur_num, cur_cat]).astype(np.float64)
        cats = {N_NUM + j: None for j in range(N_CAT)}
        t_alibi, raw = timed(lambda: TabularDrift(x_ref, p_val=0.05, categories_per_feature=cats).predict(
            x_cur, drift_type="batch"))
        base["alibi-detect TabularDrift"] = (t_alibi, {names[i] for i, p in enumerate(raw["data"]["p_val"])
                                                       if p < thr})
    else:
        other = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv-alibi", "bin", "python")
        if os.path.exists(other):
            out = subprocess.run([other, os.path.abspath(__file__), "--rows", str(n), "--tabular-only"],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            got = json.loads(out)
            have_alibi = True
            base[f"alibi-detect TabularDrift (.venv-alibi, numpy {got['numpy']})"] = (
                Took(got["wall"], got["cpu"]), {names[i] for i, p in enumerate(got["p"]) if p < thr})
    t_first, rep = timed(lambda: nbops.check_drift(ref_df, cur_df, log=False, progress=False))
    ready = prepare_reference(ref_df)
    nbops.check_drift(ready, cur_df, log=False, progress=False)
    cur2 = frame(*make(rng, n, drift=True))
    t_second, rep2 = timed(lambda: nbops.check_drift(ready, cur2, log=False, progress=False))
    baseline = next((k for k in base if k.startswith("alibi")), "scipy column by column")
    t_base = base[baseline][0]
    print()
    print(f"{'':52s}{'wall s':>9s}{'cpu s':>9s}{'ratio':>9s}")
    for label, (t, _) in base.items():
        print(f"{label:52s}{t.wall:9.2f}{t.cpu:9.2f}{t.wall / t_base.wall:9.2f}" +
              ("   <- baseline" if label == baseline else ""))
    print(f"{'nbops.check_drift, first check (DataFrames in)':52s}{t_first.wall:9.2f}{t_first.cpu:9.2f}"
          f"{t_first.wall / t_base.wall:9.2f}   (target <= 0.50)")
    print(f"{'nbops.check_drift, vs the same prepared reference':52s}{t_second.wall:9.2f}{t_second.cpu:9.2f}"
          f"{t_second.wall / t_base.wall:9.2f}   (target <= 0.20)")
    same = True
    for label, (_, flags) in base.items():
        agree = flags == set(rep.drifted)
        same &= agree
        print(f"verdicts vs {label}: {sorted(flags)} -> {'SAME' if agree else 'DIFFERENT: ' + str(rep.drifted)}")
    # the monitoring case: one prepared reference, small daily batches
    t_prep, small = timed(lambda: prepare_reference(ref_df))
    b1, b2 = frame(*make(rng, args.batch, drift=False)), frame(*make(rng, args.batch, drift=False))
    t_b1, _ = timed(lambda: nbops.check_drift(small, b1, log=False, progress=False))
    t_b2, _ = timed(lambda: nbops.check_drift(small, b2, log=False, progress=False))
    print()
    print(f"monitoring, {args.batch:,}-row batches vs one prepared reference: preparation {t_prep.wall:.2f} s, "
          f"then {t_b1.wall:.2f} s and {t_b2.wall:.2f} s per batch")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

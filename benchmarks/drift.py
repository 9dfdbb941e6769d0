"""Benchmark: nbops.check_drift vs alibi-detect's TabularDrift called directly on the same arrays.

    python benchmarks/drift.py [--rows 1000000] [--repeat 1]

1,000,000 rows x 20 numeric + 5 categorical columns per side; the current batch has 3 shifted numeric columns
(0.3 sd) and 1 categorical column with changed shares. Prints both times, the ratio (target <= 1.1), whether the
verdicts agree (batch and per column), and the stretch goal: a second check against the same prepared reference
(target: well under half the first), also for the monitoring case of 100,000-row daily batches.
Nothing is logged to MLflow (log=False): this measures the drift check itself.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000, help="rows of the daily batches in the monitoring case")
    args = ap.parse_args()
    import numpy as np

    import nbops
    from nbops.drift import prepare_reference
    from nbops.drift.stats import alibi_class

    TabularDrift = alibi_class("TabularDrift")  # import alibi-detect outside the timings (about 6 s)
    rng = np.random.default_rng(0)
    n = args.rows
    ref_num, ref_cat = make(rng, n, drift=False)
    cur_num, cur_cat = make(rng, n, drift=True)
    x_ref = np.hstack([ref_num, ref_cat]).astype(np.float64)
    x_cur = np.hstack([cur_num, cur_cat]).astype(np.float64)
    ref_df, cur_df = frame(ref_num, ref_cat), frame(cur_num, cur_cat)
    names = list(ref_df.columns)
    cats = {N_NUM + j: None for j in range(N_CAT)}
    print(f"data: {n:,} rows x {N_NUM} numeric + {N_CAT} categorical per side; drift planted in "
          f"{len(SHIFTED_NUM)} numeric and {len(SHIFTED_CAT)} categorical columns")

    def alibi_run():
        det = TabularDrift(x_ref, p_val=0.05, categories_per_feature=cats)
        return det.predict(x_cur, drift_type="batch")

    t_alibi, raw = timed(alibi_run)
    t_nbops, rep = timed(lambda: nbops.check_drift(ref_df, cur_df, log=False, progress=False))
    thr = 0.05 / len(names)
    alibi_flags = {names[i] for i, p in enumerate(raw["data"]["p_val"]) if p < thr}
    nbops_flags = set(rep.drifted)
    same = bool(raw["data"]["is_drift"]) == rep.is_drift and alibi_flags == nbops_flags
    print()
    print(f"{'':44s}{'wall s':>10s}{'cpu s':>10s}")
    print(f"{'alibi-detect TabularDrift (init + predict)':44s}{t_alibi.wall:10.2f}{t_alibi.cpu:10.2f}")
    print(f"{'nbops.check_drift (DataFrames, all extras)':44s}{t_nbops.wall:10.2f}{t_nbops.cpu:10.2f}")
    print(f"{'ratio nbops / alibi-detect':44s}{t_nbops.wall / t_alibi.wall:10.2f}"
          f"{t_nbops.cpu / t_alibi.cpu:10.2f}   (target <= 1.10)")
    print(f"verdicts: alibi-detect is_drift={bool(raw['data']['is_drift'])} drifted={sorted(alibi_flags)}")
    print(f"          nbops        is_drift={rep.is_drift} drifted={sorted(nbops_flags)}   "
          f"-> {'SAME' if same else 'DIFFERENT'}")

    # stretch: the same reference, prepared once, checked against new batches
    t_prep, ready = timed(lambda: prepare_reference(ref_df))
    t_first, _ = timed(lambda: nbops.check_drift(ready, cur_df, log=False, progress=False))
    cur2 = frame(*make(rng, n, drift=True))
    t_second, rep2 = timed(lambda: nbops.check_drift(ready, cur2, log=False, progress=False))
    first = t_prep + t_first
    print()
    print("repeated checks against one prepared reference (1st = preparation + check):")
    print(f"  {n:,}-row batch:   1st {first}   2nd {t_second}   2nd/1st = {t_second / first}")
    ready_small = prepare_reference(ref_df)
    b1 = frame(*make(rng, args.batch, drift=False))
    b2 = frame(*make(rng, args.batch, drift=False))
    t_b1, _ = timed(lambda: nbops.check_drift(ready_small, b1, log=False, progress=False))
    t_b2, _ = timed(lambda: nbops.check_drift(ready_small, b2, log=False, progress=False))
    t_alibi_b = timed(lambda: TabularDrift(x_ref, p_val=0.05, categories_per_feature=cats).predict(
        np.hstack(make(rng, args.batch, drift=False)).astype(np.float64)))[0]
    print(f"  {args.batch:,}-row batches: 1st {t_prep + t_b1}   2nd {t_b2}   2nd/1st = {t_b2 / (t_prep + t_b1)}")
    print(f"  (alibi-detect TabularDrift per {args.batch:,}-row batch: {t_alibi_b})")
    print()
    print(f"stock detectors (engine='alibi', for reference): "
          f"{timed(lambda: nbops.check_drift(ref_df, cur_df, log=False, progress=False, engine='alibi'))[0]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

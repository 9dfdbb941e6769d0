"""CAD OSE against NAB's reference run: per-row agreement, per-file NAB scores side by side, and the causal detector.

    python benchmarks/cad_ose.py --data ../shared/datasets/nab/data \
        --windows ../shared/datasets/nab/labels/combined_windows.json --results ../shared/datasets/nab/results

For every CSV under --data that has a reference run (``<results>/contextOSE/<category>/contextOSE_<file>``):

1. *reproduction*: ``nbops.telemetry.cad_ose`` run under the reference run's protocol -- the value range of the
   whole file and a rest period of NAB's probationary rows / 5, as NAB handed them to the original -- and compared
   row by row with the reference scores: Pearson correlation, share of rows equal to 1e-6, and the file's NAB
   standard raw score (each at its own corpus-optimal threshold), ours vs the reference, side by side, and the
   same correlation and score for the causal detector ("stream"); the mean per-file and the pooled correlation
   at the end;
   (One file differs: ec2_request_latency_system_failure.csv, 87% of rows equal, because the 2016 run's CSV
   parser read its maximum, 99.248, one ulp higher -- with that maximum all its rows match.)
2. *streaming*: the causal ``cad_ose`` detector (range: the minimum and maximum seen so far with headroom, the
   memory rebuilt from the whole history on a re-range; rest period 150 rows for every file: nothing depends on
   the file) scored in-sample and leave-one-category-out, next to the reference run, the reference HTM run
   (``numenta``) and the HTM-style likelihood layer over the streaming CAD OSE's raw scores (without its rest
   period);
3. speed: seconds per 10,000 points of the reproduction and of the streaming detector, on one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nbops.telemetry import cad_ose, likelihood, nab  # noqa: E402

SMOKE_ARGS = ["--data", "../shared/datasets/nab/data", "--windows",  # tests/unit/test_benchmarks.py (repo root)
              "../shared/datasets/nab/labels/combined_windows.json", "--results", "../shared/datasets/nab/results",
              "--limit", "1"]


def reference(results: Path, detector: str, key: str):
    cat, _, name = key.rpartition("/")
    path = results / detector / cat / f"{detector}_{name}"
    if not path.exists():
        return None
    import pandas as pd

    return pd.read_csv(path)["anomaly_score"].to_numpy(float)


def file_score(raw: float, lab: nab.FileLabels) -> str:
    k = len(lab.windows)
    return f"{100.0 * (raw + k) / (2 * k):6.1f}" if k else f"raw{raw:+.2f}"


def pearson(a, b) -> float:
    """Pearson correlation (NaN when either side is constant: e.g. a file both score 0 throughout)."""
    return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else float("nan")


def category(name: str) -> str:
    return name.split("/")[0] if "/" in name else "."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of NAB CSVs (timestamp,value)")
    ap.add_argument("--windows", required=True, help="combined_windows.json")
    ap.add_argument("--results", required=True, help="NAB results folder holding contextOSE/ (and numenta/)")
    ap.add_argument("--limit", type=int, help="only the first N files of each category (for iterating)")
    a = ap.parse_args(argv)
    data, results = Path(a.data), Path(a.results)
    windows = nab.load_windows(a.windows)
    files, count = [], {}
    for p in sorted(data.rglob("*.csv")):
        key = p.relative_to(data).as_posix()
        ref = reference(results, "contextOSE", key)
        if key not in windows or ref is None:
            continue
        count[category(key)] = count.get(category(key), 0) + 1
        if a.limit and count[category(key)] > a.limit:
            continue
        ts, y = nab.read_series(p)
        files.append((key, nab.FileLabels.build(key, ts, windows[key]), ts.astype(np.int64) / 1e9, y, ref))
    if not files:
        print(f"no CSV under {data} with a reference run under {results}", file=sys.stderr)
        return 2
    ours, streaming, t_rep, t_stream = [], [], 0.0, 0.0
    det, raw_det, unrested = cad_ose.CadOse(), cad_ose.CadOse(rest_period=None), []
    for key, lab, t, y, ref in files:
        rest = nab.probation_length(len(y)) / 5.0  # NAB v1.1's probationary rows, capped at 750
        t0 = time.process_time()
        ours.append(cad_ose.cad_ose_scores(y, rest_period=rest))
        t1 = time.process_time()
        streaming.append(det.score(t, y))
        t_stream += time.process_time() - t1
        unrested.append(raw_det.score(t, y))
        t_rep += t1 - t0
    n_points = sum(len(f[3]) for f in files)
    mine = [(f[1], s) for f, s in zip(files, ours)]
    theirs = [(f[1], f[4]) for f in files]
    best_mine, best_theirs = nab.optimize(mine, "standard"), nab.optimize(theirs, "standard")
    at_mine = nab.score_at(mine, best_mine.threshold).per_file
    at_theirs = nab.score_at(theirs, best_theirs.threshold).per_file
    flow = [(f[1], s) for f, s in zip(files, streaming)]
    at_flow = nab.score_at(flow, nab.optimize(flow, "standard").threshold).per_file
    print(f"reproduction under the reference protocol: {len(files)} files, {n_points} points; 'stream': the causal "
          f"detector against the same reference")
    print(f"{'file':<58} {'rows':>6} {'pearson':>8} {'equal':>6} {'ours':>7} {'ref':>7} {'diff':>6} "
          f"{'stream r':>8} {'stream':>7} {'diff':>6}")
    corr, corr_flow = [], []
    for (key, lab, _t, y, ref), s, f in zip(files, ours, streaming):
        r, rf = pearson(s, ref), pearson(f, ref)
        corr.append(r)
        corr_flow.append(rf)
        same = float(np.mean(np.abs(s - ref) < 1e-6))
        d, df = at_mine[key] - at_theirs[key], at_flow[key] - at_theirs[key]
        print(f"{key:<58} {len(y):>6} {r:8.4f} {100 * same:5.1f}% {file_score(at_mine[key], lab):>7} "
              f"{file_score(at_theirs[key], lab):>7} {d:+6.3f} {rf:8.4f} {file_score(at_flow[key], lab):>7} "
              f"{df:+6.3f}")
    pooled = pearson(np.concatenate(ours), np.concatenate([f[4] for f in files]))
    pooled_flow = pearson(np.concatenate(streaming), np.concatenate([f[4] for f in files]))
    same = float(np.mean(np.abs(np.concatenate(ours) - np.concatenate([f[4] for f in files])) < 1e-6))
    print(f"mean per-file pearson={np.nanmean(corr):.4f} pooled={pooled:.4f} rows_equal={100 * same:.2f}%  "
          f"stream: mean per-file pearson={np.nanmean(corr_flow):.4f} pooled={pooled_flow:.4f}  (file scores: "
          f"100 (raw + windows) / (2 windows); diff = raw ours - raw reference, each at its own best threshold)")
    print(f"standard ours={best_mine.score:.1f} (threshold {best_mine.threshold:.4f})  reference="
          f"{best_theirs.score:.1f} (threshold {best_theirs.threshold:.4f})")
    runs = {"cad_ose streaming": [(f[1], s) for f, s in zip(files, streaming)],
            "cad_ose streaming + likelihood": [(f[1], likelihood.log_scale(likelihood.likelihood(s)))
                                               for f, s in zip(files, unrested)],
            "contextOSE reference": theirs}
    htm = [reference(results, "numenta", f[0]) for f in files]
    if all(h is not None and len(h) == len(f[3]) for h, f in zip(htm, files)):
        runs["numenta HTM reference"] = [(f[1], h) for f, h in zip(files, htm)]
    print("NAB scores (one threshold per profile; LOCO: threshold chosen on the other categories):")
    for name, run in runs.items():
        parts = []
        for profile in nab.PROFILES:
            ins = nab.optimize(run, profile)
            held = nab.leave_one_out({"default": run}, category, profile)
            parts.append(f"{profile} {ins.score:5.1f} / LOCO {held.score:5.1f}")
        fp = nab.optimize(run, "standard")
        print(f"    {name:<32} " + "   ".join(parts) + f"   fp/10k={fp.fp_per_10k:.2f}")
    print(f"time per 10,000 points (CPU): reproduction {t_rep / n_points * 1e4:.2f} s, streaming "
          f"{t_stream / n_points * 1e4:.2f} s ({n_points} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

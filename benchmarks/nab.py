"""Numenta Anomaly Benchmark: run one nbops detector as a streaming user would see it, score it with NAB's rules.

    python benchmarks/nab.py --data ../shared/datasets/nab/data \
        --windows ../shared/datasets/nab/labels/combined_windows.json [--detector auto] [--direction both]

Every CSV under --data (any categories, any depth) is scored; its key in the windows file is its path relative
to --data, its category the first folder of that path. Each point is scored using only the points before it: a
causal detector (its score at i provably uses only rows <= i; see tests/unit/test_telemetry_detectors.py) is run
once over the file, a non-causal one is run on a trailing window ending at each point.

Per profile (``--protocol loco|insample|both``), for ours and for each reference detector, on the same files with
the same scorer: the score, false-positive rows per 10,000 scored rows and alerts per day (detections at the
chosen threshold over the days the scored rows span), and ours/theirs per protocol.

- *LOCO* (leave-one-category-out, the number to tune on): for each category, every tunable setting (the
  detector's grid, below) and the threshold are chosen on the other categories only, and the held-out category
  is scored with them; the pooled score sums the held-out raw scores (per category in brackets: score, or the raw
  cost of a category without windows, and its false positives);
- *in-sample*: the detector's default settings, one threshold optimised over exactly the scored files (NAB's
  own protocol; optimistic, since the threshold has seen every file).

The references are the per-row scores of published runs in NAB's ``results/`` layout
(``<detector>/<category>/<detector>_<file>.csv``; ``--references``, default ``results/`` beside ``--data``): each
is scored like ours (no refractory rows: NAB counts the first detection in a window and every one outside), on
the files all of them have rows for, and every figure is on those files -- a ratio is always like for like. The
settings of a run depend on nothing but the rows before each point: not a file's name, category, length or
position in the corpus (the category only splits LOCO's folds).

A detector with a refractory period (``Detector.refractory`` rows; the ensemble's is 36) alerts as `%telemetry`
does: a row at or above the threshold alerts unless an alert was raised in the previous ``refractory`` rows, and the
threshold sweep is exact for that rule (``nab.optimize``). Then (in-sample) the thresholds `--sensitivity` uses
(medium = the best standard threshold; low / high = the lowest threshold with at most half / twice medium's
false-positive rows), and the speed. ``--compare-reference NAME`` (e.g. ``--detector cad_ose --compare-reference
contextOSE``) also prints, per file, the Pearson correlation of our per-row scores with that reference run's and
the standard raw score of each at its own best threshold: how closely an implementation of a published algorithm
behaves like its reference run. `--grid default` skips the grid (fast, for iterating); `--limit N` scores the
first N files of each category only; `--save-scores run.npz` keeps every file's per-row scores, to check that a
change leaves them all as they were (``np.array_equal`` file by file against a saved run).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nbops.telemetry import detectors, nab  # noqa: E402

# The settings leave-one-category-out may choose from (constructor keyword -> candidate values); the first value
# of each is the default the detector ships with.
GRIDS = {
    "ensemble": {"context_weight": (1.0, 0.5, 2.0), "short": (10, 5), "refractory": (36, 12)},
    "seasonal": {"record_window": (300, 600), "memory": (100, 200)},
}


SMOKE_ARGS = ["--data", "../shared/datasets/nab/data", "--windows",  # tests/unit/test_benchmarks.py (from the repo root)
              "../shared/datasets/nab/labels/combined_windows.json", "--limit", "1", "--grid", "default",
              "--compare-reference", "contextOSE"]

def stream_scores(det: detectors.Detector, t: np.ndarray, y: np.ndarray, direction: str, window: int) -> np.ndarray:
    if det.causal:
        return det.score(t, y, direction)
    out = np.full(len(y), np.nan)
    for i in range(len(y)):
        lo = max(0, i + 1 - window)
        s = det.score(t[lo:i + 1], y[lo:i + 1], direction)
        out[i] = s[-1]
    return out


def settings(name: str, grid: str) -> list[dict]:
    space = GRIDS.get(name, {}) if grid == "full" else {}
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))] or [{}]


def make(name: str, kw: dict) -> detectors.Detector:
    if not kw:
        return detectors.get(name)
    return type(detectors.get(name))(**kw)


def category(name: str) -> str:
    return name.split("/")[0] if "/" in name else "."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of NAB-style CSVs (timestamp,value), any categories")
    ap.add_argument("--windows", required=True, help="combined_windows.json")
    ap.add_argument("--detector", default="auto", help=f"one of {', '.join(detectors.names())} (default auto: the "
                                                      "larger of ensemble and HTM's likelihood of cad_ose's and the "
                                                      "seasonal residual's raw scores)")
    ap.add_argument("--direction", default="both", choices=detectors.DIRECTIONS)
    ap.add_argument("--window", type=int, default=400, help="trailing window for non-causal detectors")
    ap.add_argument("--grid", default="full", choices=["full", "default"],
                    help="settings leave-one-category-out may choose from (default: the shipped ones only)")
    ap.add_argument("--limit", type=int, help="score only the first N files of each category (for iterating)")
    ap.add_argument("--per-file", action="store_true", help="also print each file's standard raw score")
    ap.add_argument("--protocol", default="both", choices=["loco", "insample", "both"],
                    help="leave-one-category-out (thresholds and settings chosen on the other categories), "
                         "in-sample (one threshold over all the files), or both")
    ap.add_argument("--compare-reference", metavar="NAME",
                    help="also compare ours row by row with one reference run (e.g. contextOSE for --detector "
                         "cad_ose): per file the Pearson correlation of the scores and the standard raw score of "
                         "each at its own best threshold, and the mean correlation")
    ap.add_argument("--references", type=Path, help="reference runs to compare with, NAB's results/ layout "
                                                     "(<detector>/<category>/<detector>_<file>.csv; default: "
                                                     "results/ beside --data, when there)")
    ap.add_argument("--save-scores", type=Path, metavar="NPZ",
                    help="also save every file's per-row scores (default setting) to this .npz, keyed by file: to "
                         "check that a change leaves every score as it was (np.array_equal against a saved run)")
    a = ap.parse_args(argv)
    from tqdm import tqdm

    data = Path(a.data)
    windows = nab.load_windows(a.windows)
    paths = sorted(p for p in data.rglob("*.csv"))
    if a.limit:
        kept, count = [], {}
        for p in paths:
            c = category(p.relative_to(data).as_posix())
            count[c] = count.get(c, 0) + 1
            if count[c] <= a.limit:
                kept.append(p)
        paths = kept
    if not paths:
        print(f"no CSV files under {data}", file=sys.stderr)
        return 2
    series, stamps = [], {}
    for p in paths:
        key = p.relative_to(data).as_posix()
        if key not in windows:
            print(f"{key}: not in {a.windows}; skipped", file=sys.stderr)
            continue
        ts, y = nab.read_series(p)
        series.append((nab.FileLabels.build(key, ts, windows[key]), ts.astype(np.int64) / 1e9, y))
        stamps[key] = ts
    grid = settings(a.detector, a.grid)
    runs, refr, cache, n_points = {}, {}, {}, sum(len(y) for _, _, y in series)
    elapsed = cpu = 0.0
    for kw in tqdm(grid, desc=f"nab {a.detector}", unit="setting", file=sys.stderr, disable=len(grid) == 1):
        det = make(a.detector, kw)
        key = tuple(sorted(kw.items()))
        refr[key] = det.refractory
        same = tuple(sorted((k, v) for k, v in kw.items() if k != "refractory"))  # the refractory is post-scoring
        if same not in cache:
            cache[same] = []
            t0, c0 = time.perf_counter(), time.process_time()
            for lab, t, y in series:
                cache[same].append((lab, stream_scores(det, t, y, a.direction, a.window)))
            if not elapsed:  # speed of the default setting: wall time, and CPU time (fairer on a shared host)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs[key] = cache[same]
    default = next(iter(runs))
    scored, refractory = runs[default], refr[default]
    if a.save_scores:
        np.savez(a.save_scores, **{lab.name: s for lab, s in scored})
    n_windows = sum(len(lab.windows) for lab, _ in scored)
    print(f"detector={a.detector} direction={a.direction} files={len(scored)} windows={n_windows} "
          f"points={n_points} settings={len(runs)} refractory={refractory} rows protocol={a.protocol}")
    days = {lab.name: scored_days(lab, stamps[lab.name]) for lab, _ in scored}
    refs = references(a.references or Path(a.data).parent / "results", scored, stamps)
    if a.compare_reference and a.compare_reference not in refs:
        print(f"--compare-reference {a.compare_reference}: no such reference run here (have: "
              f"{', '.join(refs) or 'none'})", file=sys.stderr)
        return 2
    same = set(days) if not refs else set.intersection(*({lab.name for lab, _ in rows} for rows in refs.values()))
    if refs:
        print(f"references {', '.join(refs)} ({Path(a.references or Path(a.data).parent / 'results')}): scored with "
              f"the same scorer on the {len(same)} of these {len(days)} files they have rows for; the figures "
              f"below are on those files" + ("" if len(same) == len(days) else ", except 'ours-all' (every file)"))
    contenders = {"ours-all": (runs, refr.get)} if len(same) < len(days) else {}
    contenders["ours"] = ({k: [f for f in v if f[0].name in same] for k, v in runs.items()}, refr.get)
    contenders.update({name: ({(): [f for f in rows if f[0].name in same]}, lambda _k: 0)
                       for name, rows in refs.items()})
    protocols = ["loco", "insample"] if a.protocol == "both" else [a.protocol]
    best = {}
    for profile in nab.PROFILES:
        print(f"{profile} profile: score, false-positive rows per 10,000 points, alerts per day; LOCO per held-out "
              f"category: score (raw cost where a category has no windows) / false-positive rows")
        figures = {}
        for proto in protocols:
            for name, (cruns, crefr) in contenders.items():
                if proto == "insample":
                    key = next(iter(cruns))
                    r = nab.optimize(cruns[key], profile, crefr(key))
                    if name == next(iter(contenders)):
                        best[profile] = r  # ours on every file: what --sensitivity is set from
                    figures[proto, name] = r.score
                    print(f"    in-sample {name:<11} {r.score:5.1f}  fp/10k={r.fp_per_10k:6.2f}  "
                          f"alerts/day={per_day(r.alerts, [lab.name for lab, _ in cruns[key]], days):6.3f}  "
                          f"threshold={r.threshold:.6g} tp={r.tp} fn={r.fn}")
                    continue
                if len({category(lab.name) for lab, _ in cruns[next(iter(cruns))]}) < 2:
                    print(f"    LOCO      {name:<11} needs files of two categories or more")
                    figures[proto, name] = float("nan")
                    continue
                held = nab.leave_one_out(cruns, category, profile, crefr)
                figures[proto, name] = held.score
                alerts = sum(r.alerts for _, r in held.groups.values())
                cats = "  ".join(f"{g}={r.score:.1f}/{r.fp}fp" if r.perfect != r.null else
                                 f"{g}=raw{r.raw:+.2f}/{r.fp}fp" for g, (_, r) in held.groups.items())
                print(f"    LOCO      {name:<11} {held.score:5.1f}  fp/10k={held.fp_per_10k:6.2f}  "
                      f"alerts/day={per_day(alerts, [lab.name for lab, _ in cruns[next(iter(cruns))]], days):6.3f}"
                      f"  [{cats}]")
                if name == "ours" and len(cruns) > 1:
                    chosen = "  ".join(f"{g}:{dict(k) or 'default'}" for g, (k, _) in held.groups.items())
                    print(f"        settings chosen: {chosen}")
        for proto in protocols:
            ratios = "  ".join(f"{name} {figures[proto, 'ours'] / figures[proto, name]:.2f}" for name in refs
                               if figures[proto, name] > 0)  # NaN (no LOCO) compares False: left out
            if ratios:
                print(f"    ours/theirs ({proto}, same files): {ratios}")
        if a.per_file and profile == "standard":
            r = best.get(profile) or nab.optimize(scored, profile, refractory)
            res = nab.score_at(scored, r.threshold, profile, refractory)
            for name, v in sorted(res.per_file.items()):
                print(f"    {name} raw={v:+.3f}")
    if a.compare_reference:
        compare(scored, refs[a.compare_reference], a.compare_reference, refractory)
    if "insample" in protocols:
        med = best["standard"]
        ours = scored
        sens = {"low": nab.threshold_for_fp_rate(ours, med.fp_per_10k / 2, refractory), "medium": med.threshold,
                "high": nab.threshold_for_fp_rate(ours, med.fp_per_10k * 2, refractory)}
        print("sensitivity thresholds (medium = best standard threshold; low / high = the lowest threshold with at "
              "most half / twice its false-positive rows):")
        for name, th in sens.items():
            r = nab.score_at(ours, th, "standard", refractory)
            print(f"    {name:<6} threshold={th:.4f} standard={r.score:.1f} fp/10k={r.fp_per_10k:.2f} "
                  f"alerts_in_windows={100 * r.hit_share:.0f}% windows_found={r.tp}/{r.tp + r.fn}")
    per = 1e4 / max(n_points, 1)
    print(f"time per 10,000 points: {elapsed * per:.3f} s wall, {cpu * per:.3f} s CPU ({n_points} points, "
          f"{elapsed:.1f} s wall, {cpu:.1f} s CPU)")
    return 0


def compare(ours: list, theirs: list, name: str, refractory: int) -> None:
    """Per file: Pearson correlation of our per-row scores with a reference run's, and the standard raw score of
    each (at its own best threshold over these files) and their difference; then the mean correlation."""
    mine = {lab.name: (lab, s) for lab, s in ours}
    pairs = [(mine[lab.name], (lab, np.nan_to_num(r))) for lab, r in theirs if lab.name in mine]
    a = [(lab, np.nan_to_num(s)) for (lab, s), _ in pairs]
    b = [p[1] for p in pairs]
    at_a = nab.score_at(a, nab.optimize(a, "standard", refractory).threshold, "standard", refractory).per_file
    at_b = nab.score_at(b, nab.optimize(b, "standard").threshold).per_file
    print(f"row by row against {name} ({len(pairs)} files; raw standard score of each at its own best threshold):")
    print(f"    {'file':<58} {'pearson':>8} {'ours':>7} {name[:7]:>7} {'diff':>7}")
    corr = []
    for (lab, s), (_, r) in zip(a, b):
        c = float(np.corrcoef(s, r)[0, 1]) if np.std(s) > 0 and np.std(r) > 0 else float("nan")
        corr.append(c)
        print(f"    {lab.name:<58} {c:8.4f} {at_a[lab.name]:+7.3f} {at_b[lab.name]:+7.3f} "
              f"{at_a[lab.name] - at_b[lab.name]:+7.3f}")
    print(f"    mean pearson={np.nanmean(corr):.4f} over the {int(np.sum(np.isfinite(corr)))} files where neither "
          f"side is constant; mean |diff|={np.mean([abs(at_a[k] - at_b[k]) for k in at_a]):.3f}")


def scored_days(lab: nab.FileLabels, ts: np.ndarray) -> float:
    """Days the scored rows of a file span (from the end of its probationary period to its last row)."""
    rows = np.flatnonzero(lab.scored)
    return float((ts[rows[-1]] - ts[rows[0]]) / np.timedelta64(1, "D")) if len(rows) > 1 else 0.0


def per_day(alerts: int, names: list[str], days: dict) -> float:
    total = sum(days[n] for n in names)
    return alerts / total if total else float("nan")


def references(root: Path, scored: list, stamps: dict) -> dict:
    """``{detector: [(labels, scores)]}`` of the reference runs under ``root``
    (``<detector>/<category>/<detector>_<file>.csv``, columns timestamp, anomaly_score: NAB's ``results/``
    layout), for the scored files they have rows for, aligned on the files' timestamps."""
    import pandas as pd

    out = {}
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        rows = []
        for lab, _ in scored:
            key = Path(lab.name)
            path = d / key.parent / f"{d.name}_{key.name}"
            if not path.exists():
                continue
            df = pd.read_csv(path)
            s = pd.Series(df["anomaly_score"].to_numpy(float), index=pd.to_datetime(df["timestamp"]))
            s = s[~s.index.duplicated(keep="first")]
            v = s.reindex(pd.to_datetime(stamps[lab.name])).to_numpy(float)
            if np.isfinite(v).any():
                rows.append((lab, v))
        if rows:
            out[d.name] = rows
    return out


if __name__ == "__main__":
    from nbops.errors import NbopsError

    try:
        raise SystemExit(main())
    except NbopsError as err:  # e.g. --detector sr without alibi-detect: one line, what to do
        print(err, file=sys.stderr)
        raise SystemExit(2)

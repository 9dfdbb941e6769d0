"""nbops.fingerprint vs mlflow.data.from_pandas, in one run on the same machine.

    .venv/bin/python benchmarks/fingerprint.py [--rows 2000000] [--repeat 3]

1. Speed on a 2,000,000 x 10 float64 frame plus one string column: nbops's time and GB/s (the profile
   included, as ``fingerprint(df)`` computes it by default), next to ``mlflow.data.from_pandas(df)`` with its
   digest, and the ratio. Also nbops on the numeric columns alone (target: >= 3 GB/s).
2. Exactness: a 200,000-row frame with 50,000 rows changed after row 10,000 (MLflow's digest hashes only the
   first 10,000 rows), and a handful of single-cell, rename and dtype changes: which digest notices each.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
import warnings


SMOKE_ARGS = ["--rows", "20000", "--repeat", "1", "--mlflow-repeat", "1"]  # tests/unit/test_benchmarks.py

def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds of this process, last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="nbops timings: median of this many runs")
    ap.add_argument("--mlflow-repeat", type=int, default=2, help="from_pandas timings: median of this many runs")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import numpy as np
    import pandas as pd
    import mlflow
    import mlflow.data

    import nbops

    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"f{i}": rng.normal(size=a.rows) for i in range(10)})
    df["s"] = rng.choice(["alpha", "beta", "gamma"], size=a.rows)
    num = df[[f"f{i}" for i in range(10)]]
    num_bytes = int(num.memory_usage(index=False).sum())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}, "
          f"pandas {pd.__version__}, mlflow {mlflow.__version__}, nbops {nbops.__version__}")
    print(f"frame: {a.rows:,} rows x 10 float64 + 1 string column ({num_bytes / 1e6:.0f} MB of numbers)\n")

    nbops.fingerprint(df.head(1000))  # warm the imports
    t_nb, c_nb, v = timed(lambda: nbops.fingerprint(df), a.repeat)
    t_num, c_num, _ = timed(lambda: nbops.fingerprint(num), a.repeat)
    t_num_np, c_num_np, _ = timed(lambda: nbops.fingerprint(num, profile=False), a.repeat)
    t_ml, c_ml, ml_digest = timed(lambda: mlflow.data.from_pandas(df).digest, a.mlflow_repeat)

    rows = [
        ("nbops fingerprint(df)            [digest + profile]", t_nb, c_nb),
        ("nbops fingerprint(numeric cols)  [digest + profile]", t_num, c_num),
        ("nbops fingerprint(numeric cols)  [digest only]", t_num_np, c_num_np),
        ("mlflow.data.from_pandas(df).digest", t_ml, c_ml),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average while measuring: {load:.1f} on {os.cpu_count()} cores "
          f"(CPU seconds show the work itself when other processes compete)")
    print(f"{'':54} {'wall s':>8} {'GB/s':>7} {'CPU s':>8} {'GB/s':>7}   (GB/s over the numeric bytes)")
    for label, t, c in rows:
        print(f"{label:54} {t:8.3f} {num_bytes / t / 1e9:7.2f} {c:8.3f} {num_bytes / max(c, 1e-9) / 1e9:7.2f}")
    ratio = t_ml / t_nb
    print(f"\nratio from_pandas / nbops on the whole frame: {ratio:.1f}x wall, {c_ml / c_nb:.1f}x CPU  "
          f"(target >= 20x: {'met' if ratio >= 20 else 'NOT met'})")
    gbs = num_bytes / t_num / 1e9
    print(f"nbops on the numeric columns, profile included: {gbs:.2f} GB/s wall, {num_bytes / c_num / 1e9:.2f} GB/s "
          f"CPU  (target >= 3 GB/s: {'met' if gbs >= 3 else 'NOT met'})")
    print(f"digests: nbops {v.digest} (128 bit), mlflow {ml_digest} ({len(ml_digest) * 4} bit)\n")

    # -- exactness ------------------------------------------------------------------------------------------------
    n = 200_000
    base = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(10)})
    base["s"] = rng.choice(["alpha", "beta", "gamma"], size=n)

    def changed(fn):
        d = base.copy()
        fn(d)
        return d

    cases = {
        "50,000 rows changed after row 10,000": lambda d: d.loc.__setitem__((slice(150_000, 199_999), "f0"),
                                                                            d.loc[150_000:199_999, "f0"] + 5.0),
        "one float cell at row 123,456": lambda d: d.loc.__setitem__((123_456, "f3"), d.loc[123_456, "f3"] + 1e-9),
        "one string cell at row 199,999": lambda d: d.loc.__setitem__((199_999, "s"), "delta"),
        "one float cell at row 5": lambda d: d.loc.__setitem__((5, "f9"), 0.0),
        "column f1 renamed": lambda d: d.rename(columns={"f1": "g1"}, inplace=True),
        "f2 as float32": lambda d: d.__setitem__("f2", d["f2"].astype("float32")),
    }
    nb0, ml0 = nbops.fingerprint(base).digest, mlflow.data.from_pandas(base).digest
    print(f"exactness on a {n:,}-row frame: does the digest change?")
    print(f"{'change':40} {'nbops':>7} {'mlflow':>7}")
    missed_nb = 0
    for label, fn in cases.items():
        d = changed(fn)
        nb_changed = nbops.fingerprint(d).digest != nb0
        ml_changed = mlflow.data.from_pandas(d).digest != ml0
        missed_nb += not nb_changed
        print(f"{label:40} {'yes' if nb_changed else 'NO':>7} {'yes' if ml_changed else 'NO':>7}")
    d = changed(cases["50,000 rows changed after row 10,000"])
    print(f"\nproof, 50,000 rows changed after row 10,000:\n"
          f"  nbops  before {nb0}  after {nbops.fingerprint(d).digest}\n"
          f"  mlflow before {ml0:<32}  after {mlflow.data.from_pandas(d).digest}")
    print(f"\nevery change detected by nbops: {'yes' if not missed_nb else f'NO ({missed_nb} missed)'}")
    return 0 if ratio >= 20 and gbs >= 3 and not missed_nb else 1


if __name__ == "__main__":
    raise SystemExit(main())

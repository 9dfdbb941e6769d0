"""nbops.fingerprint vs mlflow.data.from_pandas, in one run on the same machine.

    .venv/bin/python benchmarks/fingerprint.py [--rows 2000000] [--repeat 3]

1. Speed on a 2,000,000 x 10 float64 frame plus one string column: nbops's time and GB/s (the profile
   included, as ``fingerprint(df)`` computes it by default), next to ``mlflow.data.from_pandas(df)`` with its
   digest, and the ratio (target >= 50x). Also nbops on the numeric columns alone (target: >= 3 GB/s) and on
   the string column alone.
2. Strings at memory speed: a string-only frame (the same number of rows x 4 text columns: a 50-word vocabulary,
   unique ids, free text of 3-6 words, codes with 10% missing), in the container this pandas gives (pandas 3:
   ``str`` backed by pyarrow; pandas 2: object), GB/s over the text bytes (UTF-8 plus an 8-byte offset per value,
   as arrow holds them), digest only and digest + profile (target >= 1 GB/s).
3. Exactness: a 200,000-row frame with 50,000 rows changed after row 10,000 (MLflow's digest hashes only the
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


def fp(obj, **kw):
    """nbops.fingerprint without its progress bar (the figures are the point)."""
    import nbops

    return nbops.fingerprint(obj, progress=False, **kw)


def string_frame(n: int, rng):
    """n rows x 4 text columns, built through pyarrow (fast), held as this pandas holds text by default."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    vocab = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma",
                      "north", "south", "east", "west", "river", "mountain", "valley", "harbour", "station", "market",
                      "red", "green", "blue", "amber", "violet", "silver", "golden", "copper", "ivory", "onyx",
                      "monday", "tuesday", "friday", "sunday", "winter", "summer", "spring", "autumn", "dawn", "dusk",
                      "oslo", "lima", "pune", "quito", "dakar", "hanoi", "perth", "turin", "bergen", "cusco"])

    def words(k):
        return pa.array(vocab[rng.integers(0, len(vocab), size=n)]) if k == 1 else \
            pc.binary_join_element_wise(*[pa.array(vocab[rng.integers(0, len(vocab), size=n)]) for _ in range(k)], " ")

    ids = pc.binary_join_element_wise("user-", pc.cast(pa.array(np.arange(n) + 10_000_000), pa.string()), "")
    three, six = words(3), words(6)
    free = pc.if_else(pa.array(rng.random(n) < 0.5), three, six)
    codes = pc.binary_join_element_wise("C", pc.cast(pa.array(rng.integers(0, 5000, size=n)), pa.string()), "")
    codes = pc.if_else(pa.array(rng.random(n) < 0.1), pa.scalar(None, pa.string()), codes)
    cols = {"word": words(1), "id": ids, "text": free, "code": codes}
    return pd.DataFrame({k: pd.Series(v.to_numpy(zero_copy_only=False)) for k, v in cols.items()})


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
    import pyarrow as pa
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
    print(f"frame: {a.rows:,} rows x 10 float64 + 1 string column (dtype {df['s'].dtype}; "
          f"{num_bytes / 1e6:.0f} MB of numbers)\n")

    fp(df.head(1000))  # warm the imports
    t_nb, c_nb, v = timed(lambda: fp(df), a.repeat)
    t_num, c_num, _ = timed(lambda: fp(num), a.repeat)
    t_num_np, c_num_np, _ = timed(lambda: fp(num, profile=False), a.repeat)
    t_s, c_s, _ = timed(lambda: fp(df[["s"]]), a.repeat)
    t_ml, c_ml, ml_digest = timed(lambda: mlflow.data.from_pandas(df).digest, a.mlflow_repeat)

    rows = [
        ("nbops fingerprint(df)            [digest + profile]", t_nb, c_nb),
        ("nbops fingerprint(numeric cols)  [digest + profile]", t_num, c_num),
        ("nbops fingerprint(numeric cols)  [digest only]", t_num_np, c_num_np),
        ("nbops fingerprint(string col)    [digest + profile]", t_s, c_s),
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
          f"(target >= 50x: {'met' if ratio >= 50 else 'NOT met'})")
    gbs = num_bytes / t_num / 1e9
    print(f"nbops on the numeric columns, profile included: {gbs:.2f} GB/s wall, {num_bytes / c_num / 1e9:.2f} GB/s "
          f"CPU  (target >= 3 GB/s: {'met' if gbs >= 3 else 'NOT met'})")
    print(f"digests: nbops {v.digest} (128 bit), mlflow {ml_digest} ({len(ml_digest) * 4} bit)\n")

    # -- strings at memory speed ------------------------------------------------------------------------------------
    text = string_frame(a.rows, rng)
    text_bytes = sum(int(pa.array(text[c].to_numpy(dtype=object), type=pa.large_string(), from_pandas=True).nbytes)
                     for c in text.columns)
    fp(text.head(1000))
    t_tx, c_tx, tv = timed(lambda: fp(text, profile=False), a.repeat)
    t_tp, c_tp, tvp = timed(lambda: fp(text), a.repeat)
    assert tv.digest == tvp.digest
    print(f"string-only frame: {a.rows:,} rows x {len(text.columns)} text columns (dtypes "
          f"{', '.join(sorted({str(t) for t in text.dtypes}))}), {text_bytes / 1e6:.0f} MB of text (UTF-8 + offsets)")
    print(f"{'':54} {'wall s':>8} {'GB/s':>7} {'CPU s':>8} {'GB/s':>7}")
    for label, t, c in (("nbops fingerprint(text)          [digest only]", t_tx, c_tx),
                        ("nbops fingerprint(text)          [digest + profile]", t_tp, c_tp)):
        print(f"{label:54} {t:8.3f} {text_bytes / t / 1e9:7.2f} {c:8.3f} {text_bytes / max(c, 1e-9) / 1e9:7.2f}")
    sgbs, sgbs_p = text_bytes / t_tx / 1e9, text_bytes / t_tp / 1e9
    print(f"strings: {sgbs:.2f} GB/s digest only, {sgbs_p:.2f} GB/s with the profile  "
          f"(target >= 1 GB/s: {'met' if sgbs >= 1 else 'NOT met'} for the digest, "
          f"{'met' if sgbs_p >= 1 else 'NOT met'} with the profile)\n")

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
    nb0, ml0 = fp(base).digest, mlflow.data.from_pandas(base).digest
    print(f"exactness on a {n:,}-row frame: does the digest change?")
    print(f"{'change':40} {'nbops':>7} {'mlflow':>7}")
    missed_nb = 0
    for label, fn in cases.items():
        d = changed(fn)
        nb_changed = fp(d).digest != nb0
        ml_changed = mlflow.data.from_pandas(d).digest != ml0
        missed_nb += not nb_changed
        print(f"{label:40} {'yes' if nb_changed else 'NO':>7} {'yes' if ml_changed else 'NO':>7}")
    d = changed(cases["50,000 rows changed after row 10,000"])
    print(f"\nproof, 50,000 rows changed after row 10,000:\n"
          f"  nbops  before {nb0}  after {fp(d).digest}\n"
          f"  mlflow before {ml0:<32}  after {mlflow.data.from_pandas(d).digest}")
    print(f"\nevery change detected by nbops: {'yes' if not missed_nb else f'NO ({missed_nb} missed)'}")
    return 0 if ratio >= 50 and gbs >= 3 and sgbs >= 1 and not missed_nb else 1


if __name__ == "__main__":
    raise SystemExit(main())

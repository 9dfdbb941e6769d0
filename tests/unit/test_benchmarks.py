"""Every benchmark still runs: its --help, and a tiny run with the arguments it declares in SMOKE_ARGS (a module
constant, read without importing the script). A refactor that breaks a benchmark fails here, not months later.
A tiny run may miss a benchmark's speed target (exit 1 is how some report that); it must not crash."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCH.glob("*.py"))


def _smoke_args(path: Path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SMOKE_ARGS" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def test_there_are_benchmarks():
    assert {p.stem for p in SCRIPTS} >= {"cad_ose", "drift", "fingerprint", "nab", "parallel_runs", "track_overhead"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:")


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_tiny_run(script):
    args = _smoke_args(script)
    assert args is not None, f"{script.name} declares no SMOKE_ARGS (a list of arguments for a tiny run)"
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         cwd=BENCH.parent)  # relative paths in SMOKE_ARGS are from the repo root
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode in (0, 1), out.stderr[-3000:]
    assert out.stdout.strip(), "a benchmark prints its figures"


@pytest.mark.spark
@pytest.mark.slow
def test_spark_benchmark_measures_with_spark():
    """benchmarks/spark.py with pyspark present: its --help, and a tiny run that prints every figure."""
    script = BENCH / "spark.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--sample-rows" in out.stdout
    out = subprocess.run([sys.executable, str(script), *_smoke_args(script)], capture_output=True, text=True,
                         cwd=BENCH.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "order-free digests agree: True" in out.stdout
    assert "read every column once" in out.stdout and "driver peak RSS" in out.stdout
    changed = [line for line in out.stdout.splitlines() if "digest " in line and "->" in line]
    assert [("CHANGED" in line) for line in changed] == [False, True]   # MLflow's plan hash, then nbops

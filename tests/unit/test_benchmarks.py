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

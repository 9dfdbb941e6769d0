"""One CSV, one digest: the file read with pandas in the modern environment (.venv: numpy 2, pandas 3) and in the
alibi environment (.venv-alibi: numpy < 2, pandas < 3) has the same v2 digest, with the numpy and the pyarrow
backends, and in polars."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENVS = {"modern": ROOT / ".venv" / "bin" / "python", "alibi": ROOT / ".venv-alibi" / "bin" / "python"}

CSV = (
    "when,city,n,x,note\n"
    "2026-01-01 08:00:00,Oslo,1,0.5,first\n"
    "2026-01-02 09:30:00,Lima,2,,\n"
    "2026-01-03 10:00:00,,3,1.25,third row\n"
    "2026-01-04 11:15:00,Pune,4,-2.0,\"quoted, comma\"\n"
    ",Oslo,5,3.5,é€\n"
)

PROBE = r"""
import json, sys, numpy as np, pandas as pd, nbops
path = sys.argv[1]
out = {"numpy": np.__version__, "pandas": pd.__version__}
df = pd.read_csv(path, parse_dates=["when"])
out["default"] = nbops.fingerprint(df).digest
out["dtypes"] = {c: str(t) for c, t in df.dtypes.items()}
out["columns"] = {c["name"]: c["digest"] for c in nbops.fingerprint(df).profile["columns"]}
arrow = pd.read_csv(path, dtype_backend="pyarrow")   # (pandas 2.3 leaves parse_dates undone with this backend)
arrow["when"] = pd.to_datetime(arrow["when"])
out["pyarrow"] = nbops.fingerprint(arrow).digest
try:
    import polars as pl
    out["polars"] = nbops.fingerprint(pl.read_csv(path, try_parse_dates=True)).digest
except ImportError:
    out["polars"] = None
print(json.dumps(out))
"""


def _interpreter(which: str) -> Path:
    py = VENVS[which]
    if py.exists():
        return py
    msg = (f"{py} is missing: the cross-environment digest test needs both venvs (`make test` builds .venv, "
           f"`make test-alibi` builds .venv-alibi)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _probe(py: Path, csv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(py), "-c", PROBE, str(csv)], capture_output=True, text=True, env=env, cwd=str(csv.parent),
                       timeout=600)
    assert r.returncode == 0, f"{py} failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_one_csv_one_digest_in_both_environments(tmp_path):
    modern, alibi = _interpreter("modern"), _interpreter("alibi")
    csv = tmp_path / "d.csv"
    csv.write_text(CSV, encoding="utf-8")
    a, b = _probe(modern, csv), _probe(alibi, csv)
    assert int(a["pandas"].split(".")[0]) >= 3 and int(b["pandas"].split(".")[0]) < 3, (a["pandas"], b["pandas"])
    # the containers really differ: pandas 3 reads str and datetime64[us], pandas 2 object and datetime64[ns] ...
    assert a["dtypes"] != b["dtypes"], (a["dtypes"], b["dtypes"])
    # ... and the digests do not
    assert a["columns"] == b["columns"]
    assert a["default"] == b["default"] and a["default"].startswith("v2:")
    assert a["pyarrow"] == b["pyarrow"] == a["default"]
    for side in (a, b):
        if side["polars"] is not None:   # polars reads the same CSV into the same logical columns
            assert side["polars"] == a["default"]

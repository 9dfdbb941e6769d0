"""The default environment is today's stack: a silent fallback to old numpy/pandas (or alibi-detect sneaking
into the core install) must fail the suite. `make test-alibi` does not run this file."""
import importlib.metadata as md
import importlib.util
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.version import Version


def test_default_venv_runs_numpy2_pandas3_without_alibi_detect():
    import numpy
    import pandas

    assert Version(numpy.__version__) >= Version("2"), numpy.__version__
    assert Version(pandas.__version__) >= Version("3"), pandas.__version__
    assert importlib.util.find_spec("alibi_detect") is None, "alibi-detect belongs to the optional extra only"


def test_no_core_dependency_caps_numpy_or_pandas():
    core = [Requirement(r) for r in md.requires("nbops") or [] if "extra ==" not in r]
    for req in core:
        if req.name in ("numpy", "pandas"):
            assert req.specifier.contains("99"), f"{req} caps {req.name}: users on the current release cannot install"
    assert "alibi-detect" not in {r.name for r in core}


def test_load_ext_and_first_drift_do_not_import_alibi_detect():
    code = ("import sys, numpy as np, pandas as pd, nbops\n"
            "nbops.check_drift(pd.DataFrame({'a': np.arange(50.)}), pd.DataFrame({'a': np.arange(50.)}), log=False)\n"
            "print('alibi_detect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"

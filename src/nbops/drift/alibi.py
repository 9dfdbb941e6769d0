"""The optional alibi-detect engine: ``check_drift(..., engine="alibi")`` and multivariate MMD.

alibi-detect (BSL 1.1; its last release pins numpy < 2 and pandas < 3) is not part of the core install:
``pip install "nbops[alibi]"`` brings it. Without it, asking for this engine says so in one line and nothing
else changes. Importing alibi-detect costs about 6 s the first time, which only this module pays.
"""
from __future__ import annotations

import functools

from ..errors import DriftError

INSTALL = 'pip install "nbops[alibi]"'
LAST_PYTHON = (3, 12)   # alibi-detect's last release installs up to Python 3.12 (numpy < 2, pandas < 3)


def install_hint(extra: str = "") -> str:
    """Where and how alibi-detect installs, for the Python this kernel runs: the install line, or (on a Python it
    does not support) the Python to make an environment with first."""
    import sys

    line = f"{INSTALL}{' ' + extra if extra else ''}"
    last = ".".join(map(str, LAST_PYTHON))
    if sys.version_info[:2] > LAST_PYTHON:
        here = ".".join(map(str, sys.version_info[:2]))
        return (f"alibi-detect installs on Python <= {last} only (numpy < 2, pandas < 3) and this kernel runs "
                f"Python {here}: make a Python {last} environment (e.g. `uv venv -p {last}`) and run {line} there")
    return f"{line} (alibi-detect needs Python <= {last}, numpy < 2 and pandas < 3)"


def missing(what: str, extra: str = "") -> DriftError:
    """The one line for ``what`` (e.g. "--engine alibi") asked without alibi-detect installed."""
    opt = what.split()[0]
    return DriftError(f"{what} needs the optional alibi-detect: {install_hint(extra)}; or leave out {opt} "
                      f"(nbops's own engine needs none of it).", option=opt)


@functools.lru_cache(maxsize=None)
def detectors(what: str = "--engine alibi") -> dict:
    """alibi-detect's drift detector classes (imported once, quietly); ``what`` names the option that asked for
    them in the one-line error when alibi-detect is missing."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("alibi_detect", "transformers"):  # "None of PyTorch ... found" is noise for tabular tests
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from alibi_detect.cd import ChiSquareDrift, CVMDrift, KSDrift, MMDDrift, TabularDrift
    except ImportError:
        raise missing(what) from None
    return {"KSDrift": KSDrift, "CVMDrift": CVMDrift, "ChiSquareDrift": ChiSquareDrift,
            "TabularDrift": TabularDrift, "MMDDrift": MMDDrift}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("alibi_detect") is not None


def _score(det, x) -> tuple[float, float]:
    out = det.predict(x.reshape(-1, 1))["data"]
    return float(out["distance"][0]), float(out["p_val"][0])


def univariate(test: str, ref_values, cur_values, p_val: float) -> tuple[float, float]:
    """Statistic and p-value of alibi-detect's stock ``KSDrift`` (``test="ks"``) or ``CVMDrift`` on one column."""
    cls = detectors()["KSDrift" if test == "ks" else "CVMDrift"]
    return _score(cls(ref_values.reshape(-1, 1), p_val=p_val), cur_values)


def chi2(ref_counts, cur_codes, p_val: float) -> tuple[float, float]:
    """Statistic and p-value of alibi-detect's stock ``ChiSquareDrift`` on one integer-coded column."""
    import numpy as np

    ref_codes = np.repeat(np.arange(len(ref_counts)), ref_counts)
    return _score(detectors()["ChiSquareDrift"](ref_codes.reshape(-1, 1), p_val=p_val), cur_codes)


def mmd(ref, cur, p_val: float) -> dict:
    """Multivariate MMD (alibi-detect ``MMDDrift``, PyTorch backend) on standardised numeric arrays."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise missing("--mmd (multivariate MMD)", "torch")
    mu, sd = ref.mean(0), ref.std(0) + 1e-12
    det = detectors()["MMDDrift"]((ref - mu) / sd, backend="pytorch", p_val=p_val)
    out = det.predict((cur - mu) / sd)["data"]
    return {"test": "MMD", "p_value": float(out["p_val"]), "distance": float(out["distance"]),
            "is_drift": bool(out["is_drift"])}

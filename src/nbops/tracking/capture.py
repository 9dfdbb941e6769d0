"""What a tracked cell yields without the user writing anything: parameters, metrics, secrets kept out, git
state, environment. Pure functions over source text and a namespace, so they test without a kernel.

Rules (documented in the README):
- **parameters**: names the cell assigns at top level from a literal (``lr = 0.1``, ``n = -3``,
  ``name = "rf"``, ``flag = True``, a tuple/list of literals), with their value after the cell, except
  accumulators (``x = 0`` then ``x += ...``, ``x = x * 2``, loop variables); plus the parameters papermill
  injected into the notebook; plus the hyperparameters of every estimator the cell builds or fits (see
  :func:`nbops.tracking.models.estimator_params`).
- **metrics**: names the cell assigns (anywhere at top level, including ``a, b = ...`` and ``x += ...``) whose
  name has a metric word as one of its ``_``-separated parts (accuracy, acc, auc, f1, loss, rmse, ...) and
  whose value after the cell is a real number (not a bool). A metric-looking name is a metric, never a param.
- **secrets**: a name that looks like a credential (token, secret, password, key, AWS_*, ...) is never a
  parameter or tag; its values (variables, dict keys, keywords, parameters, environment variables) and strings
  shaped like well-known keys are masked in every text nbops stores (see :mod:`nbops.tracking.redact`).
"""
from __future__ import annotations

import ast
import numbers
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from . import redact

METRIC_WORDS = {
    "accuracy", "acc", "auc", "roc", "f1", "f2", "fbeta", "precision", "recall", "loss", "rmse", "mse", "mae",
    "mape", "smape", "r2", "rsquared", "score", "error", "err", "logloss", "ll", "ndcg", "map", "mrr", "bleu",
    "rouge", "perplexity", "ppl", "iou", "dice", "kappa", "mcc", "brier", "gini", "ks", "lift", "aucpr", "wer",
    "cer", "specificity", "sensitivity", "tpr", "fpr", "deviance", "likelihood", "rmsle", "medae", "hit", "hits",
}
MASK = redact.MASK
PARAM_TYPES = (bool, int, float, str)


is_secret_name = redact.is_secret_name   # the name rule lives with the redactor (word boundaries, allow-list)


def is_metric_name(name: str) -> bool:
    parts = [p for p in re.split(r"[_\W]+", name.lower()) if p]
    return any(p in METRIC_WORDS for p in parts) or name.lower() in METRIC_WORDS


def _literal(node: ast.AST) -> bool:
    try:
        v = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    if isinstance(v, (list, tuple)):
        return len(v) <= 20 and all(isinstance(x, PARAM_TYPES) for x in v)
    return isinstance(v, PARAM_TYPES) or v is None


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _names(t)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def assigned_names(source: str) -> tuple[list[str], list[str]]:
    """(names assigned from a literal, every name assigned) at the cell's top level, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []
    literal, every = [], []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n for t in targets for n in _names(t)]
            every += names
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _literal(node.value):
                literal += names
        elif isinstance(node, (ast.For, ast.With)):
            every += _names(node.target) if isinstance(node, ast.For) else []
            for sub in ast.walk(node):  # training loops assign metrics inside for/with blocks
                if isinstance(sub, (ast.Assign, ast.AugAssign)):
                    tg = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    every += [n for t in tg for n in _names(t)]
    dedup = lambda xs: list(dict.fromkeys(xs))  # noqa: E731
    acc = accumulators(tree)
    return dedup(n for n in literal if n not in acc), dedup(every)


def accumulators(tree: ast.AST) -> set[str]:
    """Names the cell computes rather than sets: augmented (``x += ...``), reassigned from themselves
    (``x = x * 2``) or loop variables, anywhere in the cell. A literal start value (``x = 0``) does not make
    them parameters."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign):
            out.update(_names(node.target))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            out.update(_names(node.target))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            out.update(n for t in targets for n in _names(t) if n in used)
    return out


def as_number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        try:
            import numpy as np  # numpy scalars and 0-d arrays

            if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf":
                return float(v)
        except ImportError:
            pass
        return None
    f = float(v)
    return f if f == f and abs(f) != float("inf") else None


def auto_params(source: str, ns: dict) -> dict:
    literal, _ = assigned_names(source)
    out = {}
    for n in literal:
        if n.startswith("_") or is_secret_name(n) or is_metric_name(n) or n not in ns:
            continue
        v = redact.plain(ns[n])  # numpy 2 scalars as the Python values they hold: np.float64(0.5) -> 0.5
        if isinstance(v, PARAM_TYPES) or v is None or (isinstance(v, (list, tuple)) and len(v) <= 20):
            out[n] = v
    return out


def auto_metrics(source: str, ns: dict) -> dict:
    _, every = assigned_names(source)
    out = {}
    for n in every:
        if n.startswith("_") or is_secret_name(n) or not is_metric_name(n) or n not in ns:
            continue
        f = as_number(ns[n])
        if f is not None:
            out[n] = f
    return out


def papermill_parameters(history: list[str]) -> dict:
    """The parameters papermill injected: the cell it inserts starts with ``# Parameters`` and assigns literals.
    Read from the kernel's input history, so it works under plain ``papermill`` as well as ``nbops run``."""
    params: dict = {}
    for src in history:
        if not src.lstrip().startswith("# Parameters"):
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                try:
                    value = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError):
                    continue
                for n in (n for t in node.targets for n in _names(t)):
                    if is_secret_name(n):
                        redact.learn_object(value, n)   # -p api_token ...: masked wherever it reappears
                    else:
                        params[n] = value
    return params


class Masker:
    """Learns the secrets of a cell (its namespace and source, the environment) and masks them, with every
    value learned before in this process, in any text: a thin view of :mod:`nbops.tracking.redact`."""

    def __init__(self, ns: dict | None = None, source: str | None = None):
        redact.learn_namespace(ns)
        redact.learn_source(source, ns)
        redact.learn_environ()

    def __call__(self, text: str) -> str:
        return redact.text(text)


def drop_secret_keys(d: dict) -> dict:
    return {k: v for k, v in d.items() if not is_secret_name(str(k))}


def _git(folder, *args) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


@lru_cache(maxsize=32)
def _git_remote(folder: str) -> str | None:
    out = _git(folder, "config", "--get", "remote.origin.url")
    return out.strip() if out else None


def git_info(folder: str | os.PathLike) -> dict:
    """Commit, branch, dirty flag and (when dirty) the diff of the repository holding ``folder``; {} outside git
    or before the first commit. One ``git status`` call (plus ``git diff`` when the tree is dirty); none when no
    folder from ``folder`` upwards holds ``.git`` (``GIT_DIR`` unset): not a repository, so no process to start."""
    if not os.environ.get("GIT_DIR") and not any((d / ".git").exists() for d in (Path(folder).absolute(),
                                                                                 *Path(folder).absolute().parents)):
        return {}
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return {}
    head = dict(line[2:].split(" ", 1) for line in status.splitlines() if line.startswith("# ") and " " in line[2:])
    commit = head.get("branch.oid", "")
    if not commit or commit == "(initial)":
        return {}
    dirty = any(not line.startswith("#") for line in status.splitlines() if line.strip())
    info = {"commit": commit, "branch": head.get("branch.head", ""), "dirty": dirty}
    remote = _git_remote(str(folder))
    if remote:
        info["remote"] = remote
    if dirty:
        info["diff"] = _git(folder, "diff", "HEAD") or ""
    return info


@lru_cache(maxsize=1)
def environment() -> tuple[str, str]:
    """(python version, ``pip freeze``-style list of installed distributions). Cached per process."""
    from importlib import metadata

    pkgs = set()
    for d in metadata.distributions():
        # the folder's name says it (``name-version.dist-info``): parsing every METADATA file instead cost ~0.4 s
        m = _DIST_FOLDER.match(getattr(getattr(d, "_path", None), "name", "") or "")
        if m:
            pkgs.add(f"{m['name'].replace('_', '-')}=={m['version']}")
        elif d.metadata["Name"]:
            pkgs.add(f"{d.metadata['Name']}=={d.version}")
    return sys.version.split()[0], "\n".join(sorted(pkgs, key=str.lower)) + "\n"


_DIST_FOLDER = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to /proc/self/clear_refs resets the process's peak RSS (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_sampler():
    """Measure this process's peak RSS from now on; ``stop()`` returns it in bytes. On Linux the kernel keeps the
    high-water mark (reset here, read at stop: exact, no thread); elsewhere a thread samples every 50 ms."""
    if _reset_peak_rss() and _vm_hwm() is not None:
        return lambda: _vm_hwm() or 0
    import threading

    import psutil

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def loop():
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    t = threading.Thread(target=loop, name="nbops-peak-rss", daemon=True)
    t.start()

    def stop() -> int:
        done.set()
        t.join(1)
        return max(peak[0], proc.memory_info().rss)
    return stop

"""Shared fixtures: a fresh MLflow store per test, a real IPython shell, paths to the shared datasets."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NBOPS_SHARED", ROOT.parent / "shared"))
DATASETS = SHARED / "datasets"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store in ``tmp_path``; cwd is ``tmp_path``. Returns the tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBOPS_SPOOL_DIR", str(tmp_path / "spool"))
    for var in ("NBOPS_OFFLINE", "NBOPS_PARENT_RUN_ID", "NBOPS_NOTEBOOK_PATH", "NBOPS_EXPERIMENT",
                "MLFLOW_EXPERIMENT_NAME", "NBOPS_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    import mlflow
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def client(store):
    from mlflow.tracking import MlflowClient
    return MlflowClient(store)


@pytest.fixture(scope="session")
def _ipython():
    from IPython.testing.globalipapp import start_ipython
    return start_ipython()


@pytest.fixture
def ip(_ipython, store):
    """The real IPython shell with nbops loaded; unloaded and namespace cleaned after the test."""
    _ipython.run_line_magic("load_ext", "nbops")
    keep = set(_ipython.user_ns)
    yield _ipython
    _ipython.run_line_magic("unload_ext", "nbops")
    for k in set(_ipython.user_ns) - keep:
        _ipython.user_ns.pop(k, None)


def run_notebook(path, cwd, parameters=None, env=None, **kw):
    """Execute a notebook with papermill in a real kernel; returns the output notebook path."""
    import papermill as pm
    out = Path(cwd) / (Path(path).stem + ".out.ipynb")
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        pm.execute_notebook(str(path), str(out), parameters=parameters or {}, cwd=str(cwd), progress_bar=False,
                            kernel_name="python3", **kw)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return out


def write_notebook(path, cells, parameters=None):
    """Write a notebook whose cells are source strings; ``parameters`` becomes a tagged parameters cell."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb_cells = []
    if parameters is not None:
        nb_cells.append(new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()),
                                      metadata={"tags": ["parameters"]}))
    nb_cells += [new_code_cell(c) for c in cells]
    nb = new_notebook(cells=nb_cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, str(path))
    return Path(path)


def all_artifacts(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += all_artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out

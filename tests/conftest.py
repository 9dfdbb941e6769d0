"""Shared fixtures: a fresh MLflow store per test, a real IPython shell, paths to the shared datasets."""
from __future__ import annotations

import pytest

from nbops_testing import (DATASETS, ROOT, SHARED, all_artifacts, free_port, isolated_store,  # noqa: F401
                           run_notebook, write_notebook)


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store in ``tmp_path``; cwd is ``tmp_path``. Returns the tracking URI."""
    with isolated_store(tmp_path) as uri:
        yield uri


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

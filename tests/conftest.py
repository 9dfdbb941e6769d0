"""Shared fixtures: a fresh MLflow store per test, a real IPython shell with nbops loaded. Helpers (paths to the
shared datasets, notebooks to write and run) are in nbops_testing.py."""
from __future__ import annotations

import pytest

from nbops_testing import isolated_store, nbops_loaded


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
    with nbops_loaded(_ipython) as shell:
        yield shell


@pytest.fixture(autouse=True)
def _no_ui_url_from_an_earlier_server(monkeypatch):
    """The server extension exports NBOPS_UI_URL into its process's environment for the kernels it starts; when
    a test ran it in-process, later tests must not inherit it (links would point at that server)."""
    monkeypatch.delenv("NBOPS_UI_URL", raising=False)

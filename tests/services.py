"""Real services for tests: a PostgreSQL cluster and ``mlflow server`` processes on free loopback ports.

Import the fixtures into a test module (``from services import postgres, mlflow_server  # noqa: F401``) and mark
the tests ``@pytest.mark.services``. Everything started here is stopped at teardown; nothing is left running.

- ``pg_cluster`` (session): one PostgreSQL 15 cluster in a temporary data folder (``initdb`` + ``postgres``, run
  as the ``postgres`` OS user when the tests run as root), listening on 127.0.0.1:<free port>.
- ``postgres``: a fresh database in that cluster; yields its SQLAlchemy URL
  ``postgresql+psycopg2://postgres@...`` (explicit driver: SQLAlchemy 2.1 maps bare ``postgresql://`` to psycopg 3).
- ``start_mlflow_server(backend_uri, artifacts_dir, auth=False, port=None) -> Server``: ``python -m mlflow
  server`` serving artifacts itself (``--serve-artifacts --artifacts-destination``), so clients need no shared
  filesystem. ``Server.url``, ``.stop()``, ``.kill()`` (SIGKILL, as a crash), ``.restart()`` (same port, same
  store), ``.env()`` (the variables a client needs). With ``auth=True`` the server runs ``--app-name basic-auth``
  with a config file of its own; ``.username`` / ``.password`` are the admin credentials.
- ``mlflow_server`` (SQLite-backed) and ``mlflow_pg_server`` (PostgreSQL-backed): a running server per test.
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from nbops_testing import free_port  # noqa: F401  (re-exported: fixtures and benchmarks import it from here)

PG_BIN = Path(os.environ.get("NBOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
_STARTED: list["Server"] = []


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port_free(port: int, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end and _port_open(port):
        time.sleep(0.1)


# -- PostgreSQL -----------------------------------------------------------------------------------------------
def _as_pg_user() -> list[str]:
    """The prefix that runs a command as the ``postgres`` OS user (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class PostgresCluster:
    """A throwaway PostgreSQL cluster: ``initdb`` in a temp folder, ``postgres`` on 127.0.0.1:<port>."""

    def __init__(self):
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (install the postgresql package)")
        self.dir = Path(tempfile.mkdtemp(prefix="nbops-pg-"))  # under /tmp, reachable by the postgres user
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._n = 0
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run([*_as_pg_user(), str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        self.start()

    def start(self) -> None:
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [*_as_pg_user(), str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.dir), "-c", "fsync=off", "-c", "max_connections=300",
             "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import psycopg2

        end = time.time() + 60
        while True:
            try:
                psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres").close()
                return
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.time() > end:
                    raise RuntimeError(f"PostgreSQL did not start:\n{(self.dir / 'postgres.log').read_text()}")
                time.sleep(0.1)

    def create_database(self, name: str | None = None) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        import psycopg2

        self._n += 1
        name = name or f"nbops_{os.getpid()}_{self._n}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        # SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; psycopg2-binary is what is installed.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGINT is PostgreSQL's "fast shutdown"; sent to the group, as runuser does not forward it.
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres(pg_cluster):
    """SQLAlchemy URL of a fresh PostgreSQL database (``postgresql+psycopg2://postgres@127.0.0.1:<port>/<db>``)."""
    return pg_cluster.create_database()


# -- mlflow server --------------------------------------------------------------------------------------------
class Server:
    """One ``mlflow server`` process. ``restart()`` brings it back on the same port with the same store."""

    def __init__(self, backend_uri: str, artifacts_dir: str | os.PathLike, auth: bool = False,
                 port: int | None = None, workers: int = 2):
        self.backend_uri = backend_uri
        self.artifacts_dir = Path(artifacts_dir)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        self.workers = workers
        self.username = self.password = None
        self._conf_dir = Path(tempfile.mkdtemp(prefix="nbops-mlflow-"))
        self.log_path = self._conf_dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self._secret = secrets.token_hex(16)  # CSRF key; the same across restarts
        if auth:
            self.username, self.password = "admin", "pw-" + secrets.token_hex(8)
            (self._conf_dir / "basic_auth.ini").write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self._conf_dir / 'basic_auth.db'}\n"
                f"admin_username = {self.username}\nadmin_password = {self.password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        self.start()

    def env(self) -> dict[str, str]:
        """Environment variables that point an MLflow client (and nbops) at this server."""
        env = {"MLFLOW_TRACKING_URI": self.url}
        if self.auth:
            env.update(MLFLOW_TRACKING_USERNAME=self.username, MLFLOW_TRACKING_PASSWORD=self.password)
        return env

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "Server":
        _wait_port_free(self.port)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
               "--serve-artifacts", "--artifacts-destination", str(self.artifacts_dir)]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_", "NBOPS_"))}
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", self._secret)
        # MLflow 3's server starts a dozen huey job consumers (GenAI jobs) unless told not to: on a 2-core
        # machine they cost the tests more than the server itself, and nothing here uses them.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        if self.auth:
            cmd += ["--app-name", "basic-auth"]
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self._conf_dir / "basic_auth.ini")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._conf_dir,
                                     start_new_session=True)
        self._wait_healthy()
        if self not in _STARTED:
            _STARTED.append(self)
        return self

    def _wait_healthy(self, timeout: float = 120.0) -> None:
        import requests

        end = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.time() > end:
                self.kill()
                raise RuntimeError(f"mlflow server did not answer /health in {timeout:.0f}s:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal(self, sig: int) -> None:
        if not self.running:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the server and its workers
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        _wait_port_free(self.port)

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the process group)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as a crashed or unplugged server."""
        self._signal(signal.SIGKILL)

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._conf_dir, ignore_errors=True)
        if self in _STARTED:
            _STARTED.remove(self)


def start_mlflow_server(backend_uri: str, artifacts_dir: str | os.PathLike, auth: bool = False,
                        port: int | None = None, workers: int = 2) -> Server:
    """Start ``mlflow server`` on 127.0.0.1 and wait until ``/health`` answers. Stop it with ``.close()``."""
    return Server(backend_uri, artifacts_dir, auth=auth, port=port, workers=workers)


@pytest.fixture
def mlflow_server(tmp_path):
    """A running ``mlflow server`` on a fresh SQLite store (artifacts served by the server)."""
    # one worker: several server processes on one SQLite file would meet "database is locked" themselves
    srv = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts", workers=1)
    yield srv
    srv.close()


@pytest.fixture
def mlflow_pg_server(tmp_path, postgres):
    """A running ``mlflow server`` on a fresh PostgreSQL database (artifacts served by the server)."""
    srv = start_mlflow_server(postgres, tmp_path / "server-artifacts", workers=4)
    yield srv
    srv.close()


@atexit.register
def _stop_leftovers() -> None:
    """A server a test forgot to close is stopped when the test process exits."""
    for srv in list(_STARTED):
        srv.close()

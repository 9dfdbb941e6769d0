"""A SQLite MLflow store is created whole or not at all.

MLflow creates a SQLite store's schema in place, table by table and migration by migration; a full disk (or a
killed process) half-way leaves a file every later process fails to open ("table secrets already exists" and a
SQL dump). :func:`ensure` makes a new store aside (``.<name>.creating`` in the same folder), lets MLflow build its
schema there, switches it to WAL and moves it into place with one ``os.replace``. A store left half-made by an
earlier version (a schema that is not MLflow's latest and holds no runs) is moved aside, kept for inspection as
``<name>.half-made-<time>``, and made afresh. A store with runs in it is never touched. A short schema whose
files changed in the last ``SETTLE_S`` seconds is a creation under way in another process (plain MLflow builds in
place): nbops waits until it is ready, or has stopped changing, before judging it.

The caller holds the store's write guard (:meth:`nbops.tracking.writer.Writer.guard`): one creator at a time.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("nbops")

COMPANIONS = ("", "-wal", "-shm", "-journal")
SETTLE_S = 30.0   # a schema still being built changes far more often than this


def _connect(db: Path) -> sqlite3.Connection:
    """A connection to read ``db``; ``immutable`` when its folder takes no ``-shm`` file (read-only)."""
    con = sqlite3.connect(str(db), timeout=30)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return con
    except sqlite3.OperationalError:
        con.close()
        return sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True, timeout=30)


def state(db: Path) -> str:
    """``absent`` (no file, or no schema), ``ready`` (MLflow's latest schema), ``half-made`` (a schema short of
    MLflow's latest, with no runs in it: an interrupted creation) or ``other`` (an older store with runs, or not
    a database: left to MLflow's own checks)."""
    if not db.exists() or db.stat().st_size == 0:
        return "absent"
    try:
        con = _connect(db)
    except sqlite3.Error:
        return "other"
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return "absent"
        version = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            version = row[0] if row else None
        if version is not None and version == _head():
            return "ready"

        def rows(table: str) -> int:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table in tables else 0

        if rows("runs") or rows("registered_models") or rows("experiments") > 1:
            return "other"
        return "half-made"
    except sqlite3.Error:
        return "other"
    finally:
        con.close()


def complete(db: Path) -> bool:
    return state(db) == "ready"


def read_only_uri(db: Path) -> str:
    """A tracking URI that reads ``db`` without writing anything beside it (a read-only folder)."""
    return f"sqlite:///{db.resolve().as_uri()}?immutable=1&uri=true"


def _head() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def ensure(db: Path, artifact_root: str | None) -> None:
    """Make sure ``db`` holds a complete MLflow schema in WAL mode, creating it atomically when needed."""
    now = state(db)
    if now == "ready":
        _wal(db)
        return
    if now == "other":
        return
    if now == "half-made" and _changing(db):
        log.warning("nbops: the store %s is being created by another process; waiting for it", db)
        while now == "half-made" and _changing(db):
            time.sleep(0.5)
            now = state(db)
        return ensure(db, artifact_root)
    if now == "half-made":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for c in COMPANIONS:
            if Path(f"{db}{c}").exists():
                os.replace(f"{db}{c}", f"{db}.half-made-{stamp}{c}")
        log.warning("nbops: the store %s was left half-made by an interrupted creation (a full disk?) and held no "
                    "runs; it is kept as %s.half-made-%s and a new store is made.", db, db.name, stamp)
    else:
        for c in COMPANIONS[1:]:  # a journal without its database must not be replayed into the new one
            Path(f"{db}{c}").unlink(missing_ok=True)
    _create(db, artifact_root)


def _changing(db: Path) -> bool:
    """Whether ``db`` or a companion file changed in the last ``SETTLE_S`` seconds."""
    times = [Path(f"{db}{c}").stat().st_mtime for c in COMPANIONS if Path(f"{db}{c}").exists()]
    return bool(times) and time.time() - max(times) < SETTLE_S


def _wal(db: Path) -> None:
    """WAL mode (persistent, once per file): readers no longer block the writer and a commit costs one fsync."""
    con = sqlite3.connect(str(db), timeout=30)
    try:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _create(db: Path, artifact_root: str | None) -> None:
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.creating")
    _remove(tmp)  # a creation that died earlier (we hold the guard: no one else is creating)
    uri = f"sqlite:///{tmp}"
    quiet = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow database tables..."
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        store = SqlAlchemyStore(uri, artifact_root or DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
        store.engine.dispose()
        SqlAlchemyStore._engine_map.pop(uri, None)
        _wal(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, db)
        fd = os.open(db.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(tmp)
        raise
    finally:
        quiet.setLevel(level)


def _remove(path: Path) -> None:
    for c in COMPANIONS:
        try:
            Path(f"{path}{c}").unlink(missing_ok=True)
        except OSError:
            pass

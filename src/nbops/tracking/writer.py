"""The one writer. Every record nbops writes -- runs, params, metrics, tags, artifacts, dataset inputs, models,
statuses, traces -- goes through :class:`Writer`, which sends it to the MLflow store or, when the store does not answer
(or ``NBOPS_OFFLINE=1``), appends it to the durable local spool that ``nbops sync`` replays later. Every value
is masked by the one redactor (:mod:`nbops.tracking.redact`) before it leaves: to the store and to the spool alike.

Two guards make the embedded SQLite store safe for parallel notebooks (MLflow issues #6490, #4123): every write
holds an inter-process file lock beside the database, and a write that still meets "database is locked" is
retried with backoff. Experiments are created get-or-create under the same lock, so parallel first runs do not
race on creating the experiment or migrating the schema.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .. import config
from ..errors import TrackingError
from . import redact, sqlite_store
from .mlflow_errors import already_exists
from .outage import (StoreNotWritable, bounded_http_retries as _bounded_http_retries, is_unavailable,  # noqa: F401
                     is_unreachable, is_unwritable, short_reason)
from .spool import REPLAYABLE, SPOOL_ID_TAG, RunRef, holding_lock, read_meta  # noqa: F401 - re-exported

log = logging.getLogger("nbops")

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
MAX_PARAM_LEN = 6000


@contextlib.contextmanager
def _fluent_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (model logging uses it) on ``uri`` for a moment; its URI and the process's
    ``MLFLOW_TRACKING_URI`` are put back exactly as they were afterwards."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    before, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    if before == uri and env == uri:
        yield
        return
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if before is None:
            utils._tracking_uri = None
        else:
            mlflow.set_tracking_uri(before)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


_PROCESS_LOCKS: dict[str, threading.Lock] = {}   # one per SQLite file: threads of this process take turns
_HELD = threading.local()                         # per thread: guard depth per SQLite file


class Writer:
    """Writes to one store (``settings.tracking_uri``); spools what the store does not take."""

    def __init__(self, settings: config.Settings | None = None, fluent: bool = True):
        """``fluent``: point MLflow's fluent API at this store (the process's own store); False for a writer to
        another store (``nbops sync``'s, for a run recorded for it), which must not repoint the process."""
        self.settings = settings or config.settings()
        self._fluent = fluent
        self._client = None
        self._experiments: dict[str, str] = {}
        from .spool import Spool  # light module
        self.spool = Spool(self.settings.spool_dir)
        self._warned = False
        self._down_since: float | None = None
        self._down_error: BaseException | None = None
        self._deferred: dict[str, list] = {}   # background runs: (op, files) kept until their end-of-run
        self._held: set[str] = set()           # of those, the ones the caller pushes (no flusher)
        self._parents: dict[str, str] = {}     # spooled parents of other processes -> their id on the store
        self._tracing = None                   # MLflow's TracingClient for this store (log_traces)
        self.read_uri = self.settings.tracking_uri  # where reads go (a read-only SQLite store: opened immutable)

    # -- plumbing -------------------------------------------------------------------------------------------
    @property
    def client(self):
        """The MLflow client of this store. Reading through it sees every run this process wrote in the
        background: runs already handed to the flusher are waited for first (read your own writes)."""
        flusher = sys.modules.get("nbops.tracking.flusher")
        if flusher is not None and not self._holding_guard() and not holding_lock():
            flusher.flush()
        if self._client is None:
            import mlflow
            from mlflow.tracking import MlflowClient

            if self.settings.is_server:
                _bounded_http_retries()
            db = self.settings.sqlite_path
            # The fluent API (and MLflow's model logging, which uses it) must see the process's own store; a
            # writer for another store (nbops sync's, for a run recorded for it) leaves the process's store alone.
            if self._fluent:
                mlflow.set_tracking_uri(self.settings.tracking_uri)
            if db is None:
                self._client = MlflowClient(self.settings.tracking_uri)
                return self._client
            # Opening a SQLite store creates or migrates its schema: parallel first runs must do that one at a
            # time (else "table _alembic_tmp_... already exists"), and a new store is made aside and moved into
            # place whole (a full disk half-way must not leave a store that no later process can open).
            try:
                with self.guard():
                    sqlite_store.ensure(db, self.settings.artifact_root)
                    self._client = MlflowClient(self.settings.tracking_uri)
                    if self.settings.embedded:
                        self._home_default_experiment(db)
            except StoreNotWritable:
                if not sqlite_store.complete(db):
                    raise
                # A read-only folder: reads need no lock, and open the store as immutable (no -shm file to make)
                self.read_uri = sqlite_store.read_only_uri(db)
                self._client = MlflowClient(self.read_uri)
        return self._client

    def reading(self):
        """A context in which MLflow's fluent reads (``mlflow.search_runs``) see this store, as :attr:`client`
        does (a read-only store is opened read-only)."""
        self.client  # noqa: B018 - opens the store, and learns whether it is read-only
        return _fluent_uri(self.read_uri)

    def _home_default_experiment(self, db: Path) -> None:
        """MLflow creates the ``Default`` experiment (id 0) with its artifacts in ``<cwd>/mlruns/0``, wherever the
        process happens to start. In the embedded store every experiment's artifacts live under
        ``.nbops/artifacts/``: point ``Default`` there (runs already made keep their own artifact location)."""
        import sqlite3

        want = f"{self.settings.artifact_root}/0"
        con = sqlite3.connect(str(db), timeout=30)
        try:
            with con:
                con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0 AND "
                            "artifact_location != ?", (want, want))
        except sqlite3.Error as exc:  # an older schema: leave it, runs still work
            log.debug("nbops: could not move the Default experiment's artifacts to %s: %s", want, exc)
        finally:
            con.close()

    def _holding_guard(self) -> bool:
        """True while this thread holds the store's write guard (waiting for the flusher then would deadlock)."""
        return any(_HELD.__dict__.get("depths", {}).values())

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Serialise writers on a SQLite store: threads of this process on a lock per database file, processes on
        an ``flock`` beside it. Re-entrant per thread and per database, across Writer instances (two writers for
        one file in one thread must not wait on each other). No-op for servers and file stores."""
        db = self.settings.sqlite_path
        if db is None:
            yield
            return
        key = str(db.resolve()) if db.parent.exists() else str(db)
        depths = _HELD.__dict__.setdefault("depths", {})
        if depths.get(key):
            depths[key] += 1
            try:
                yield
            finally:
                depths[key] -= 1
            return
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            fh = open(key + ".nbops-lock", "a")
        except OSError as exc:
            raise StoreNotWritable(
                f"nbops cannot write to {db.parent} ({(exc.strerror or str(exc)).lower()}): make it writable (chmod "
                f"u+w {db.parent}), or point NBOPS_HOME or MLFLOW_TRACKING_URI at a store you can write to. "
                f"Reading runs works as it is.", path=str(db.parent), uri=self.settings.tracking_uri) from None
        with _PROCESS_LOCKS.setdefault(key, threading.Lock()), fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            depths[key] = 1
            try:
                yield
            finally:
                depths[key] = 0
                fcntl.flock(fh, fcntl.LOCK_UN)

    def call(self, fn, *args, **kwargs):
        """Run one store operation under the guard, retrying "database is locked" with backoff. The free text of
        a registry or tag write made this way (model-version tags, descriptions, run tags) passes through the
        redactor first, like every record the Writer's own methods write."""
        args, kwargs = _redacted_args(fn, args, kwargs)
        delay = 0.05
        for attempt in range(8):
            try:
                with self.guard():
                    return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - classified below
                if "database is locked" in str(exc) and attempt < 7:
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise

    def _mark_down(self, exc: BaseException) -> None:
        self._down_since, self._down_error = time.time(), exc

    def _warn_spooled(self, run: RunRef, exc: BaseException | None) -> None:
        if exc is None:
            why = "NBOPS_OFFLINE=1"
        elif is_unreachable(exc):
            why = f"the tracking store at {self.settings.tracking_uri} did not answer ({short_reason(exc)})"
        else:
            why = f"the tracking store at {self.settings.tracking_uri} could not be written ({short_reason(exc)})"
        run.spool_reason = why
        if not self._warned:
            log.warning("nbops: %s; run %s is spooled to %s. Run `nbops sync` when the store is back.",
                        why, run.run_id, self.spool.root)
            self._warned = True

    def _server_or_spool(self, run: RunRef, op: dict, direct, files=None):
        """Do ``direct()`` against the store; if the store does not answer, move ``run`` to the spool.
        ``files`` is a folder (``{"dir": path}``) whose contents go with the spooled record, or a callable
        that makes it (so a model is only pickled when it has to be spooled). A background run keeps its records
        in memory until :meth:`end_run` writes them to its journal at once."""
        if run.run_id in self._deferred:
            self._deferred[run.run_id].append((op, files() if callable(files) else files))
            return None
        if not run.spooled:
            try:
                return direct()
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc, TrackingError) and not isinstance(exc, StoreNotWritable):
                    raise
                if not is_unavailable(exc):
                    raise TrackingError(f"The tracking store refused {op['op']} for run {run.run_id}: {exc}",
                                        run_id=run.run_id, uri=self.settings.tracking_uri) from exc
                self._mark_down(exc)
                with self._spooling(exc):
                    self.spool.adopt(run, self.settings.tracking_uri, self.settings.artifact_root)
                run.spooled = True
                self._warn_spooled(run, exc)
        with self._spooling(None):
            self.spool.append(run.run_id, op, files() if callable(files) else files)
        return None

    @contextlib.contextmanager
    def _spooling(self, store_error: BaseException | None) -> Iterator[None]:
        """A spool that cannot be written either (a read-only or full ``.nbops``) is one line saying what to do."""
        try:
            yield
        except OSError as exc:
            if isinstance(store_error, StoreNotWritable):  # one read-only folder: its message says what to do
                raise TrackingError(store_error.message, path=store_error.path, uri=store_error.uri) from None
            store = "" if store_error is None else \
                f"the store {self.settings.tracking_uri} ({short_reason(store_error)}) nor to "
            raise TrackingError(f"nbops can write this run neither to {store}the spool {self.spool.root} "
                                f"({(exc.strerror or str(exc)).lower()}): free space or make the folder writable "
                                f"(chmod u+w), or point NBOPS_HOME (or NBOPS_SPOOL_DIR) at a writable folder. "
                                f"Reading runs works as it is.",
                                path=str(self.spool.root), uri=self.settings.tracking_uri) from None

    def _new_spooled_run(self, experiment, run_name, tags, start_ms, exc, staging=False) -> RunRef:
        with self._spooling(exc):
            return self.spool.new_run(experiment, run_name, tags, start_ms, self.settings.tracking_uri,
                                      staging=staging, artifact_root=self.settings.artifact_root)

    # -- experiments and runs -------------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.exceptions import MlflowException

        def get_or_create():
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                if exp.lifecycle_stage == "deleted":
                    raise TrackingError(f"Experiment {name!r} is deleted: restore it in the MLflow UI or pick "
                                        f"another name with -e.", experiment=name)
                return exp.experiment_id
            loc = f"{self.settings.artifact_root}/{_safe(name)}" if self.settings.artifact_root else None
            try:
                return self.client.create_experiment(name, artifact_location=loc)
            except MlflowException as exc:
                if already_exists(exc):
                    return self.client.get_experiment_by_name(name).experiment_id
                raise

        self._experiments[name] = self.call(get_or_create)
        return self._experiments[name]

    def start_run(self, experiment: str, run_name: str | None = None, tags: dict | None = None,
                  parent_run_id: str | None = None, start_time: float | None = None,
                  background: bool = False, held: bool = False) -> RunRef:
        """Create a run on the store (or in the spool when it does not answer). ``background``: create it in the
        spool and let the flusher (:mod:`nbops.tracking.flusher`) write it, so the caller never waits on the
        store; its records reach the journal in one write at :meth:`end_run`. ``held``: the same, but no flusher
        takes it: the caller pushes it (:func:`nbops.tracking.sync.push_run`) -- ``nbops run`` has its kernel do
        that, so the runner process never imports MLflow. A parent that is such a spooled run is put on the store
        first (its start only), so the new run links to it directly."""
        tags = redact.mapping(tags, 5000)
        if run_name:
            run_name = redact.text(str(run_name))
        if parent_run_id and not (background or held):
            parent_run_id = self._parent_on_store(parent_run_id)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        start_ms = int((start_time or time.time()) * 1000)
        if (background or held) and not self.settings.offline:
            run = self._new_spooled_run(experiment, run_name, tags, start_ms, None, staging=True)
            run.spool_id = run.run_id
            self._deferred[run.run_id] = []
            if held:
                self._held.add(run.run_id)
            else:
                from .flusher import get_flusher

                get_flusher(self.settings).submit(run, ended=False, writer_for=Writer)  # created on the store while the cell runs
            return run
        if self.settings.offline:
            run = self._new_spooled_run(experiment, run_name, tags, start_ms, None)
            self._warn_spooled(run, None)
            return run
        if self._down_since is not None and time.time() - self._down_since < config.down_grace_s():
            run = self._new_spooled_run(experiment, run_name, tags, start_ms, self._down_error)
            self._warn_spooled(run, self._down_error)
            return run
        try:
            exp_id = self.experiment_id(experiment)
            r = self.call(self.client.create_run, exp_id, start_time=start_ms, tags=tags, run_name=run_name)
        except TrackingError as exc:
            if not isinstance(exc, StoreNotWritable):
                raise
            err: BaseException = exc
        except Exception as exc:  # noqa: BLE001
            if not is_unavailable(exc):
                raise TrackingError(f"Could not start a run in experiment {experiment!r} on "
                                    f"{self.settings.tracking_uri}: {exc}", uri=self.settings.tracking_uri) from exc
            err = exc
        else:
            self._down_since = None
            return RunRef(r.info.run_id, exp_id, experiment, r.info.run_name, artifact_uri=r.info.artifact_uri)
        self._mark_down(err)
        run = self._new_spooled_run(experiment, run_name, tags, start_ms, err)
        self._warn_spooled(run, err)
        return run

    def log_batch(self, run: RunRef, params: dict | None = None, metrics: dict | None = None,
                  tags: dict | None = None, step: int = 0, timestamp: float | None = None,
                  series: list[tuple[str, float, float, int]] | None = None) -> None:
        """Params, metrics, tags and metric series ``(key, value, unix_seconds, step)`` in as few writes as
        MLflow's ``log_batch`` limits allow (one, for a typical cell)."""
        ts = int((timestamp or time.time()) * 1000)
        params = list(redact.mapping(params, MAX_PARAM_LEN).items())
        tags = list(redact.mapping(tags, 5000).items())
        names: dict[str, str] = {}
        name = lambda k: names.get(k) or names.setdefault(k, redact.text(str(k)))  # noqa: E731
        rows = [[name(k), float(v), ts, step] for k, v in (metrics or {}).items()]
        rows += [[name(k), float(v), int(t * 1000), int(s)] for k, v, t, s in (series or [])]
        while params or tags or rows:
            # MLflow's limits: 100 params, 100 tags, 1000 metrics and 1000 items in all per batch
            p, params = params[:100], params[100:]
            t, tags = tags[:100], tags[100:]
            m, rows = rows[:1000 - len(p) - len(t)], rows[1000 - len(p) - len(t):]
            op = {"op": "log_batch", "params": dict(p), "metrics": m, "tags": dict(t)}
            self._server_or_spool(run, op, lambda op=op: self._direct_batch(run.run_id, op))

    def _direct_batch(self, run_id: str, op: dict) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.call(self.client.log_batch, run_id,
                  metrics=[Metric(k, v, t, s) for k, v, t, s in op["metrics"]],
                  params=[Param(k, v) for k, v in op["params"].items()],
                  tags=[RunTag(k, v) for k, v in op["tags"].items()])

    def log_artifacts(self, run: RunRef, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a folder's contents (one call for everything a cell produced)."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir() or not any(local_dir.iterdir()):
            return
        if local_dir != self.staging_dir(run):  # (staged files came through the Tracker's masking writers)
            redact.files(local_dir)
        op = {"op": "log_artifacts", "artifact_path": artifact_path}
        self._server_or_spool(run, op, lambda: self._direct_artifacts(run, local_dir, artifact_path),
                              files={"dir": local_dir})

    def staging_dir(self, run: RunRef) -> Path | None:
        """Where a background or held run's artifacts are written: inside its spool folder, so ending the run
        copies nothing (the push uploads them from there). None for other runs."""
        if run.run_id not in self._deferred:
            return None
        return self.spool.staging_dir(run.run_id)

    def local_artifact_dir(self, run: RunRef) -> Path | None:
        """The run's artifact folder when the artifact store is a local folder (the embedded store, a file
        store): writing there *is* logging, with no copy. None for remote artifact stores and spooled runs."""
        if run.spooled or not run.artifact_uri or not run.artifact_uri.startswith("file:"):
            return None
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(run.artifact_uri).path))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _direct_artifacts(self, run: RunRef, local_dir: Path, artifact_path: str | None) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if not run.artifact_uri:
            run.artifact_uri = self.call(self.client.get_run, run.run_id).info.artifact_uri
        get_artifact_repository(run.artifact_uri, tracking_uri=self.settings.tracking_uri).log_artifacts(
            str(local_dir), artifact_path)

    def log_inputs(self, run: RunRef, datasets: list[dict]) -> None:
        """Dataset inputs: dicts with name, digest, source_type, source, schema, profile, context."""
        if not datasets:
            return
        datasets = [{**d, "name": redact.text(str(d.get("name", "dataset"))),
                     "source": redact.text(d.get("source")), "schema": redact.text(d.get("schema")),
                     "profile": redact.profile_json(d.get("profile"))} for d in datasets]
        op = {"op": "log_inputs", "datasets": datasets}
        self._server_or_spool(run, op, lambda: self._direct_inputs(run.run_id, datasets))

    def _direct_inputs(self, run_id: str, datasets: list[dict]) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(Dataset(name=d["name"], digest=d["digest"], source_type=d.get("source_type", "code"),
                                       source=d.get("source", "{}"), schema=d.get("schema"), profile=d.get("profile")),
                               tags=[InputTag("mlflow.data.context", d.get("context", "training"))])
                  for d in datasets]
        self.call(self.client.log_inputs, run_id, datasets=inputs)

    def log_model(self, run: RunRef, model: Any, name: str = "model", flavor: str = "sklearn",
                  input_example: Any = None) -> str | None:
        """Log a fitted model as an MLflow 3 LoggedModel linked to ``run``; returns its ``models:/`` URI
        (None when spooled: ``nbops sync`` logs it later from a cloudpickle of the object)."""
        op = {"op": "log_model", "name": name, "flavor": flavor}
        uri = self._server_or_spool(run, op, lambda: self._direct_model(run, model, name, flavor, input_example),
                                    files=lambda: {"dir": _pickle_to_tmp(model, input_example)})
        if uri:
            run.model_uris.append(uri)
        return uri

    def _direct_model(self, run: RunRef, model, name, flavor, input_example) -> str:
        import mlflow

        module = {"sklearn": "mlflow.sklearn", "pyfunc": "mlflow.pyfunc"}[flavor]
        import importlib

        mod = importlib.import_module(module)
        kwargs = {"name": name, "run_id": run.run_id}
        if flavor == "sklearn":
            kwargs["sk_model"] = model
            kwargs["serialization_format"] = "cloudpickle"
        else:
            from .models import as_python_model

            kwargs["python_model"] = as_python_model(model)
        if input_example is not None:
            kwargs["input_example"] = input_example
        with self.guard():
            # Create the LoggedModel in the run's own experiment: left to itself, Model.log files it under the
            # fluent API's active experiment ("Default" in a process that never called set_experiment).
            src = self.client.get_run(run.run_id)
            lm = self.client.create_logged_model(src.info.experiment_id, name=name, source_run_id=run.run_id,
                                                 params={k: str(v) for k, v in src.data.params.items()})
            # cloudpickle is chosen on purpose (skops refuses custom estimators without a trusted-types list):
            # MLflow's warning about it would print under every tracked cell.
            quiet = logging.getLogger("mlflow.sklearn")
            level, quiet.level = quiet.level, logging.ERROR
            try:
                with _fluent_uri(self.settings.tracking_uri):
                    info = mlflow.models.Model.log(artifact_path=None, flavor=mod, model_id=lm.model_id, **kwargs)
            finally:
                quiet.setLevel(level)
        return info.model_uri

    def log_traces(self, run: RunRef, records: list[dict]) -> None:
        """MLflow traces linked to ``run`` (records made with :func:`nbops.tracking.traces.record`): masked here,
        spooled as ``log_trace`` records of up to 100 traces, written to the run's experiment with
        ``mlflow.sourceRun`` = the run's id on the store. A trace already on the store (a replay) is not written
        again."""
        from . import traces

        records = [traces.mask_record(r) for r in records]
        for i in range(0, len(records), 100):
            op = {"op": "log_trace", "traces": records[i:i + 100]}
            self._server_or_spool(run, op, lambda op=op: self._direct_traces(run, op["traces"]))

    def _direct_traces(self, run: RunRef, records: list[dict]) -> None:
        from mlflow.tracing.client import TracingClient

        from . import traces

        if self._tracing is None:
            self._tracing = TracingClient(self.settings.tracking_uri)
        exp_id = run.experiment_id or self.call(self.client.get_run, run.run_id).info.experiment_id
        traces.write(self._tracing, self.call, records, exp_id, run.run_id)

    def end_run(self, run: RunRef, status: str = FINISHED, end_time: float | None = None) -> None:
        end_ms = int((end_time or time.time()) * 1000)
        op = {"op": "end_run", "status": status, "end_time": end_ms}
        self._server_or_spool(run, op, lambda: self.call(self.client.set_terminated, run.run_id, status, end_ms))
        records = self._deferred.pop(run.run_id, None)
        if records is not None:  # background / held: durable in one append + fsync, then pushed
            self.spool.append_many(run.run_id, records)
            run.ended = True
            if run.run_id in self._held:
                self._held.discard(run.run_id)
            else:
                from .flusher import get_flusher

                get_flusher(self.settings).submit(run, ended=True, writer_for=Writer)

    def _parent_on_store(self, parent: str) -> str:
        """The store's id of ``parent``. A parent that is a spooled run (``nbops run``'s parent, held in the spool
        by the runner process) is created on the store now, once. The local id stays for a background run of
        this process (its flusher links the child) and while the store does not answer (``nbops sync`` does)."""
        from .spool import LOCAL_PREFIX

        if not parent.startswith(LOCAL_PREFIX) or self.settings.offline or parent in self._deferred:
            return parent
        if parent not in self._parents:
            out = push_run(parent, self, live=True)
            if not out.get("run_id"):
                return parent  # not in this spool, or the store is down: the child is spooled and linked at sync
            self._parents[parent] = out["run_id"]
        return self._parents[parent]

    # -- replaying the spool ----------------------------------------------------------------------------------
    REPLAYABLE = REPLAYABLE

    def replay(self, run: RunRef, op: dict, files: Path | None = None) -> None:
        """Write one spooled record (``op`` as the methods above spool it, ``files`` its folder) straight to the
        store, without falling back to the spool: what ``nbops sync`` does with each journal line."""
        kind = op["op"]
        if kind == "log_batch":
            self._direct_batch(run.run_id, op)
        elif kind == "log_artifacts":
            redact.files(files)
            self._direct_artifacts(run, files, op.get("artifact_path"))
        elif kind == "log_inputs":
            self._direct_inputs(run.run_id, op["datasets"])
        elif kind == "log_model":
            import cloudpickle

            with open(Path(files) / "model.pkl", "rb") as fh:
                obj = cloudpickle.load(fh)
            self._direct_model(run, obj["model"], op["name"], op["flavor"], obj.get("input_example"))
        elif kind == "log_trace":
            from .traces import mask_record

            self._direct_traces(run, [mask_record(r) for r in op["traces"]])  # (older spools: masked now)
        elif kind == "end_run":
            self.call(self.client.set_terminated, run.run_id, op["status"], op["end_time"])
        else:
            raise TrackingError(f"unknown spool record {kind!r}: nbops cannot replay it.")

    def run_url(self, run: RunRef) -> str | None:
        if run.spooled or not self.settings.is_server:
            return None
        return f"{self.settings.tracking_uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


# MlflowClient write methods callers reach through ``Writer.call`` (the registry, drift's version tags, sync):
# the parameters that carry free text. Their values are masked by the one redactor before the store sees them.
_TEXT_PARAMS = {
    "set_model_version_tag": ("key", "value"),
    "set_registered_model_tag": ("key", "value"),
    "set_tag": ("key", "value"),
    "create_model_version": ("tags", "description"),
    "create_registered_model": ("tags", "description"),
    "update_model_version": ("description",),
    "update_registered_model": ("description",),
    "create_prompt": ("description", "tags"),
    "create_prompt_version": ("template", "description", "tags"),
    "set_prompt_version_tag": ("key", "value"),
    "set_prompt_tag": ("key", "value"),
}


def _redacted_args(fn, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    names = _TEXT_PARAMS.get(getattr(fn, "__name__", ""))
    if not names:
        return args, kwargs
    import inspect

    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):  # not the MlflowClient method it is named like: leave it to fail as it would
        return args, kwargs
    for n in names:
        v = bound.arguments.get(n)
        if isinstance(v, dict):
            bound.arguments[n] = {redact.text(str(k)): redact.value(x) for k, x in v.items()}
        elif isinstance(v, str):
            bound.arguments[n] = redact.text(v)
        elif isinstance(v, list):  # chat messages of a prompt: each text masked, the structure kept
            bound.arguments[n] = [{k: redact.text(x) if isinstance(x, str) else x for k, x in m.items()}
                                  if isinstance(m, dict) else redact.value(m) for m in v]
    return bound.args, bound.kwargs


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


def _pickle_to_tmp(model: Any, input_example: Any) -> Path:
    import cloudpickle

    d = Path(tempfile.mkdtemp(prefix="nbops-model-"))
    with open(d / "model.pkl", "wb") as fh:
        cloudpickle.dump({"model": model, "input_example": input_example}, fh)
    return d


_WRITERS: dict[tuple, Writer] = {}


def get_writer(settings: config.Settings | None = None) -> Writer:
    """The process's writer for the current settings (one per store, so connections are reused)."""
    s = settings or config.settings()
    key = (s.tracking_uri, s.offline, str(s.spool_dir))
    if key not in _WRITERS:
        _WRITERS[key] = Writer(s)
    return _WRITERS[key]


def push_run(local: str, writer: Writer | None = None, live: bool = False) -> dict:
    """Push the spooled run ``local`` now, under the sync lock, to the store it was recorded for. Returns
    ``{"run_id", "experiment_id"}`` of the run on the store; ``{"unreachable": why}`` when the store does not
    answer; ``{}`` when the spool has no such run and never pushed it. ``live``: the run is still being written
    (by another process: ``nbops run``'s parent, which its kernel puts on the store so the kernel's runs link to
    it). Other store errors raise. ``writer`` is used when it writes to that store; else one that does.

    ``nbops run`` calls this in its kernel, through the kernel protocol, once the notebook has run: the kernel
    has MLflow imported and the store open already, so the runner process never pays for either."""
    from .sync import SyncReport, locked, push

    writer = writer or get_writer()
    root = Path(writer.settings.spool_dir)
    d = root / local
    try:
        target = read_meta(d).get("target") or writer.settings.tracking_uri
    except ValueError:
        target = writer.settings.tracking_uri
    if target != writer.settings.tracking_uri:
        writer = Writer(config.settings_for(target, read_meta(d).get("artifact_root"), writer.settings),
                        fluent=False)
    try:
        with locked(root, target) as idmap:
            if not (d / "meta.json").is_file():
                return {"run_id": idmap[local]} if local in idmap else {}
            server_id = push(writer, d, idmap, SyncReport(target), live=live)
        experiment = json.loads((d / "meta.json").read_text())["experiment"]
        return {"run_id": server_id, "experiment_id": writer.experiment_id(experiment)}
    except Exception as exc:  # noqa: BLE001 - classified
        if not is_unavailable(exc):
            raise
        return {"unreachable": short_reason(exc)}

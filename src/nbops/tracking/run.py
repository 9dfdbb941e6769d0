"""``with nbops.track(...) as run:`` -- one MLflow run whose records are buffered and written in a few batches.

The ``%%track`` magic wraps this; so do ``%drift``, ``%telemetry --log`` and ``%promote`` when they record.
Nesting is a parent/child pair: an enclosing :class:`Tracker`, an active ``mlflow.start_run()`` or the parent
that ``nbops run`` passes to the kernel (``NBOPS_PARENT_RUN_ID``) becomes the new run's parent.

The status is right every time: an exception ends the run FAILED (traceback stored) and propagates unchanged,
``KeyboardInterrupt`` ends it KILLED; the run is never left active. A failure of the tracking store never
fails the user's code: the records go to the spool and the summary says so.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .. import config
from ..errors import TrackingError, NbopsError
from . import redact
from .writer import FAILED, FINISHED, KILLED, MAX_PARAM_LEN, RunRef, get_writer

log = logging.getLogger("nbops")
_STACK: list["Tracker"] = []      # the main thread's runs (the notebook's cells)
_THREAD = threading.local()        # other threads' own runs (a live report's runbooks, user worker threads)


def _own_stack() -> list["Tracker"]:
    if threading.current_thread() is threading.main_thread():
        return _STACK
    return _THREAD.__dict__.setdefault("stack", [])


def current() -> "Tracker | None":
    """The innermost active tracked run of this thread; in a thread with none of its own, the main thread's (a
    worker thread inside a tracked cell logs to the cell's run)."""
    own = _own_stack()
    return own[-1] if own else _STACK[-1] if _STACK else None


def _inherited_parent() -> str | None:
    """The run a new run nests under: the innermost run of this thread (a thread other than the main one never
    nests its runs under whatever cell the notebook happens to be running)."""
    own = _own_stack()
    return own[-1].run.run_id if own and own[-1].run else None


def _fluent_parent() -> str | None:
    mlflow = sys.modules.get("mlflow")  # only if the user imported it: never import mlflow to ask
    if mlflow is None:
        return None
    try:
        r = mlflow.active_run()
        return r.info.run_id if r else None
    except Exception:  # noqa: BLE001
        return None


def _notebook_tags(tags: dict) -> dict:
    """In a notebook kernel, a run that does not say where it comes from (``%drift``, ``%dataversion``,
    ``%validate``, ``%evaluate``, ``nbops.track()`` in a cell) is the notebook's, like its ``%%track`` runs:
    ``%nbops runs`` lists them together."""
    if "mlflow.source.name" in tags or "IPython" not in sys.modules:
        return {}
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return {}
    from .notebook import notebook_path

    nb = notebook_path(shell.user_ns)
    return {"mlflow.source.name": nb, "mlflow.source.type": tags.get("mlflow.source.type", "NOTEBOOK")} if nb else {}


class Tracker:
    """A tracked run. Use as a context manager; log with the methods below (all buffered)."""

    def __init__(self, experiment: str | None = None, run_name: str | None = None, *, tags: dict | None = None,
                 params: dict | None = None, parent_run_id: str | None = None, kind: str = "track",
                 settings: config.Settings | None = None, masker=None, held: bool = False):
        self.settings = settings or config.settings()
        self.experiment = experiment or self.settings.experiment
        self.run_name = run_name
        self.kind = kind
        self._tags = {"nbops.kind": kind, **(tags or {})}
        self._params: dict[str, Any] = dict(params or {})
        self._metrics: dict[str, float] = {}
        self._series: list[tuple[str, float, float, int]] = []
        self._datasets: list[dict] = []
        self.data_versions: list[Any] = []
        self._models: list[tuple[Any, str, str, Any]] = []
        self._traces: list[dict] = []
        self._explicit_parent = parent_run_id
        self._held = held                  # made and kept in the spool; the caller pushes it (nbops run)
        self.masker = masker or redact.text
        self.run: RunRef | None = None
        self.status: str | None = None
        self.error: BaseException | None = None
        self.started = self.ended = None
        self._tmp: Path | None = None      # where artifacts are written before they are logged
        self._in_place = False             # True: _tmp is the run's own local artifact folder (nothing to upload)
        self._staged = False               # True: _tmp is in the spool (a background run): uploaded, not deleted
        self._stack: list[Tracker] = []    # the thread's run stack it was pushed on (see current())
        self._folders: set[Path] = set()   # artifact folders made so far
        self.figures: list[str] = []
        self.artifacts: list[str] = []
        self.warnings: list[str] = []
        self.params_logged: dict[str, Any] = {}
        self.metrics_logged: dict[str, float] = {}
        self.writer = get_writer(self.settings)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "Tracker":
        """Create the run (on the store, or in the spool when the store does not answer) and make it current.
        A tracked cell's run (kind ``track``) is written in the background when :func:`flusher.background` says
        so: the cell then waits only for the local spool."""
        from .flusher import background

        parent = self._explicit_parent or _inherited_parent() or _fluent_parent() or self.settings.parent_run_id
        self._tags.update(_notebook_tags(self._tags))
        self.started = time.time()
        self.run = self.writer.start_run(self.experiment, self.run_name, self._tags, parent, self.started,
                                         background=self.kind == "track" and background(), held=self._held)
        self._tmp = self.writer.local_artifact_dir(self.run)
        self._in_place = self._tmp is not None
        if self._tmp is None:
            self._tmp = self.writer.staging_dir(self.run)
            self._staged = self._tmp is not None
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="nbops-run-"))
        self.run_name = self.run.run_name or self.run_name
        self._tags = {}  # written with the run
        self._stack = _own_stack()
        self._stack.append(self)
        return self

    def finish(self, status: str | None = None, exc: BaseException | None = None) -> None:
        """End the run: FINISHED, or -- when ``exc`` is given -- KILLED for a ``KeyboardInterrupt`` and FAILED
        otherwise, with the (masked) traceback of ``exc.__traceback__`` and an ``nbops.error`` tag. ``status``
        overrides the status chosen. Writes everything buffered; never raises for a store failure (it spools)."""
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            self.error = exc
            self.log_text(self.masker("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
                          "error/traceback.txt")
            self._tags["nbops.error"] = self.masker(f"{type(exc).__name__}: {exc}")[:500]
        if status is None:
            status = FINISHED if exc is None else KILLED if isinstance(exc, KeyboardInterrupt) else FAILED
        self._end(status)

    def __enter__(self) -> "Tracker":
        return self.start()

    def __exit__(self, et, ev, tb) -> bool:
        self.finish(exc=ev)
        return False  # the user's exception propagates unchanged

    def _end(self, status: str) -> None:
        """Write everything buffered and end the run. Never raises for a store failure (it spools)."""
        if self in self._stack:
            self._stack.remove(self)
        self.ended = time.time()
        try:
            self.flush()
            self.writer.end_run(self.run, status, self.ended)
        except TrackingError as exc:
            self.warnings.append(str(exc))
            log.warning("nbops: %s", exc)
            if status == FINISHED:
                status = FAILED
        finally:
            self.status = status
            if self._tmp and not self._in_place and not self._staged:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def flush(self) -> None:
        """Write what is buffered: one batch of params/metrics/tags, one upload of the artifacts folder."""
        run = self.run
        self._keep_long_params()
        self.writer.log_batch(run, self._params, self._metrics, self._tags, timestamp=self.ended or time.time(),
                              series=self._series)
        self.params_logged.update(self._params)
        self.metrics_logged.update(self._metrics)
        self._params, self._metrics, self._tags, self._series = {}, {}, {}, []
        self.writer.log_inputs(run, self._datasets)
        self._datasets = []
        if self._tmp and not self._in_place and any(self._tmp.iterdir()):
            self.writer.log_artifacts(run, self._tmp)
            if not self._staged:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp.mkdir()
                self._folders.clear()
        for model, name, flavor, example in self._models:
            self.writer.log_model(run, model, name, flavor, example)
        self._models = []
        if self._traces:
            self.writer.log_traces(run, self._traces)
            self._traces = []

    def _keep_long_params(self) -> None:
        """A parameter longer than MLflow keeps (``MAX_PARAM_LEN``) is stored cut; its full value goes beside it as
        the artifact ``params/<name>.txt`` (masked like every artifact), and the summary says so."""
        import re

        for k, v in self._params.items():
            if not isinstance(v, (str, list, tuple, dict, set)) or redact.is_secret_name(k) or self._tmp is None:
                continue
            full = redact.value(v)
            if len(full) <= MAX_PARAM_LEN:
                continue
            path = "params/" + re.sub(r"[^\w.-]", "_", k) + ".txt"
            self.log_text(full, path)
            self.warnings.append(f"param {k} has {len(full):,} characters; MLflow keeps the first {MAX_PARAM_LEN:,}: "
                                 f"the full value is the artifact {path}")

    # -- logging --------------------------------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run else None

    def log_param(self, key: str, value: Any) -> None:
        self._params[str(key)] = value

    def log_params(self, params: dict) -> None:
        for k, v in params.items():
            self.log_param(k, v)

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        if step is None and timestamp is None:
            self._metrics[str(key)] = float(value)
        else:
            self._series.append((str(key), float(value), timestamp or time.time(), step or 0))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        for k, v in metrics.items():
            self.log_metric(k, v, step)

    def set_tag(self, key: str, value: Any) -> None:
        self._tags[str(key)] = value

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.set_tag(k, v)

    def _path(self, artifact_file: str) -> Path:
        if self._tmp is None:
            raise NbopsError("This run is closed; log inside the `with nbops.track()` block.")
        p = self._tmp / artifact_file
        if p.parent not in self._folders:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(p.parent)
        self.artifacts.append(artifact_file)
        return p

    def log_text(self, text: str, artifact_file: str) -> None:
        """An artifact from text, secrets masked (see :mod:`nbops.tracking.redact`)."""
        self._path(artifact_file).write_text(redact.text(text, artifact_file), encoding="utf-8")

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self.log_text(json.dumps(redact.plain(data), indent=2, default=str), artifact_file)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        src = Path(local_path)
        if not src.exists():
            raise NbopsError(f"log_artifact: {local_path} does not exist.", path=str(local_path))
        dest = self._path(str(Path(artifact_path or "") / src.name))
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
        redact.files(dest) if dest.is_dir() else redact.file(dest)  # text files: secrets masked in the copy

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """An artifact from bytes as they are (an image already rendered)."""
        self._path(artifact_file).write_bytes(data)

    def log_figure(self, figure, artifact_file: str) -> None:
        figure.savefig(self._path(artifact_file), dpi=100, bbox_inches="tight")
        self.figures.append(artifact_file)

    def log_dataset(self, record: dict, version: Any = None) -> None:
        """A dataset input (see :mod:`nbops.data`): name, digest, source, schema, profile, context."""
        self._datasets.append(record)
        if version is not None:
            self.data_versions.append(version)

    def log_traces(self, records: list[dict]) -> None:
        """MLflow traces linked to this run (records of :func:`nbops.tracking.traces.record`), masked and written
        with the run's other records."""
        self._traces.extend(records)

    def log_model(self, model: Any, name: str = "model", flavor: str | None = None, input_example: Any = None):
        from .models import model_flavor

        self._models.append((model, name, flavor or model_flavor(model), input_example))

    # -- result ---------------------------------------------------------------------------------------------
    def summary(self, **extra):
        from .summary import RunSummary

        return RunSummary.from_tracker(self, **extra)


def track(experiment: str | None = None, run_name: str | None = None, **kwargs) -> Tracker:
    """Start a tracked run: ``with nbops.track("exp", "name") as run: run.log_metric("rmse", 1.2)``."""
    return Tracker(experiment, run_name, **kwargs)

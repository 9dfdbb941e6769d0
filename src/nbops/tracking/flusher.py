"""Background writes: a tracked cell returns once its records are durable in the local spool, and one flusher
thread per process writes them to the store, in order.

How a run travels in background mode (``NBOPS_WRITE_MODE``, see :func:`background`):

1. ``Writer.start_run`` makes the run in the spool (``meta.json``, no store round trip) and hands it to the
   flusher, which creates it on the store while the cell body runs (a long cell shows as RUNNING in the UI).
2. Everything the run logs is kept in memory until its end; ``Writer.end_run`` appends all of it to the run's
   journal in one write and one ``fsync`` (:meth:`Spool.append_many`) and hands the run to the flusher again.
   The cell returns here.
3. The flusher pushes the journal with the same code as ``nbops sync`` (:func:`nbops.tracking.sync.push`,
   under the spool's sync lock: idempotent, resumable), then deletes the run's spool folder. The RunRef the
   cell's Tracker holds now names the run on the store; callbacks (the summary under the cell) are told.

Nothing is lost or reordered: one thread, first in first out; ``flush()`` waits for everything handed over so far
(``%nbops runs``, ``%unload_ext nbops`` and interpreter exit call it, with a bound); a store that does not answer
leaves the run in the spool, retried with the next run and by ``nbops sync``; a crash leaves the journal for
``nbops sync``.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from .. import config
from ..errors import ConfigError

log = logging.getLogger("nbops")

ENV_MODE = "NBOPS_WRITE_MODE"
ENV_FLUSH_TIMEOUT = "NBOPS_FLUSH_TIMEOUT_S"
MODES = ("auto", "background", "sync")


def mode() -> str:
    """``NBOPS_WRITE_MODE``: ``background``, ``sync`` or ``auto`` (the default)."""
    raw = os.environ.get(ENV_MODE, "").strip().lower() or "auto"
    if raw not in MODES:
        raise ConfigError(f"{ENV_MODE}={os.environ[ENV_MODE]!r}: use background (a tracked cell returns once its "
                          f"records are in the local spool), sync (it waits for the store) or auto.")
    return raw


def background() -> bool:
    """Whether tracked cells write in the background. ``auto``: yes in a notebook a person is looking at (a live
    JupyterLab / VS Code kernel); no in scheduled and headless runs (``nbops run``, papermill, scripts), where no
    one waits on a cell and the saved notebook must show the run id the store gave."""
    m = mode()
    if m != "auto":
        return m == "background"
    from ..display import headless_reason

    return headless_reason() is None


def flush_timeout() -> float:
    raw = os.environ.get(ENV_FLUSH_TIMEOUT, "").strip()
    try:
        return float(raw) if raw else 60.0
    except ValueError:
        raise ConfigError(f"{ENV_FLUSH_TIMEOUT}={raw!r} is not a number of seconds: set it to e.g. 60, or unset "
                          f"it.") from None


class Flusher:
    """One thread that pushes spooled runs of this process to the store, first in first out."""

    def __init__(self, settings: config.Settings):
        self.settings = settings
        self._queue: deque = deque()       # (RunRef, ended: bool)
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._stranded: dict[str, object] = {}   # local id -> RunRef: the store did not answer; retried later
        self._callbacks: dict[str, list[Callable]] = {}
        self._warned = False
        self._tried: set[str] = set()            # runs pushed at least once (a retry must look for the run first)
        self._writer = None
        self._writer_for: Callable | None = None

    # -- called by the Writer --------------------------------------------------------------------------------
    def submit(self, run, ended: bool, writer_for: Callable) -> None:
        """Push ``run`` (ended or not) after those handed over before it, with a writer made by ``writer_for``
        (the Writer class: the writer hands it over, so the flusher never imports the writer)."""
        with self._cond:
            self._writer_for = self._writer_for or writer_for
            self._queue.append((run, ended))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nbops-flusher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def on_written(self, run, callback: Callable) -> None:
        """Call ``callback(run)`` once ``run`` (ended) is on the store: from the flusher thread, or at once when it
        is there already."""
        with self._cond:
            if run.in_flight:
                self._callbacks.setdefault(run.spool_id, []).append(callback)
                return
        callback(run)

    # -- waiting -----------------------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._busy

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed over so far is written (or left in the spool because the store does not
        answer); True when nothing is left in flight. Never waits on itself (called from the flusher thread)."""
        if threading.current_thread() is self._thread:
            return True
        deadline = time.monotonic() + (flush_timeout() if timeout is None else timeout)
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # -- the thread ----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                run, ended = self._queue.popleft()
                self._busy = True
            try:
                from ..importhook import BACKGROUND_IMPORTS

                with BACKGROUND_IMPORTS:  # not while the warm-up thread is importing (see importhook)
                    self._push(run, ended)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any one run
                log.warning("nbops: run %s could not be written in the background (%s: %s); it stays in the "
                            "spool: run `nbops sync`.", run.spool_id, type(exc).__name__, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _push(self, run, ended: bool) -> None:
        from .sync import ParentPending, SyncReport, locked, push
        from .outage import is_unavailable

        if self._writer is None:
            self._writer = self._writer_for(self.settings)
        todo = [r for r in self._stranded.values() if r is not run] + [run] if ended else [run]
        for r in todo:
            d = Path(self.settings.spool_dir) / r.spool_id
            if not d.is_dir():
                continue  # written already (its start's push found the whole journal)
            complete = r.ended  # read once: the journal is whole only if the run had ended before the push
            fresh = r.spool_id not in self._tried
            self._tried.add(r.spool_id)
            try:
                with locked(d.parent, self.settings.tracking_uri) as idmap:
                    self._parent_first(d, idmap)
                    server_id = push(self._writer, d, idmap, SyncReport(self.settings.tracking_uri),
                                     live=not complete, fresh=fresh)
            except ParentPending:  # its parent's own start is still queued or stranded: after it
                self._stranded[r.spool_id] = r
                continue
            except Exception as exc:  # noqa: BLE001 - classified
                if not is_unavailable(exc):
                    raise
                self._stranded[r.spool_id] = r
                self._tell_stranded(todo[todo.index(r):])
                if not self._warned:
                    self._warned = True
                    log.warning("nbops: the tracking store at %s did not answer (%s); run %s waits in the spool "
                                "and is written with the next run, or by `nbops sync`.", self.settings.tracking_uri,
                                str(exc)[:160], r.spool_id)
                return  # keep the order: nothing after it goes first
            self._stranded.pop(r.spool_id, None)
            if complete:
                r.landed(server_id, self._writer.experiment_id(r.experiment))
                shutil.rmtree(d, ignore_errors=True)  # on the store: the journal has done its job
                self._tried.discard(r.spool_id)
                with self._cond:
                    callbacks = self._callbacks.pop(r.spool_id, [])
                for cb in callbacks:
                    try:
                        cb(r)
                    except Exception as exc:  # noqa: BLE001 - a display update must not stop the writes
                        log.debug("nbops: callback for run %s failed: %s", r.run_id, exc)

    def _tell_stranded(self, runs) -> None:
        """The store did not answer: ended runs left in the spool say why (``spool_reason``) to their callbacks (the
        summary under the cell), which are called again once the run is written."""
        for x in runs:
            if not x.ended:
                continue
            x.spool_reason = f"the tracking store at {self.settings.tracking_uri} does not answer"
            with self._cond:
                callbacks = list(self._callbacks.get(x.spool_id, []))
            for cb in callbacks:
                try:
                    cb(x)
                except Exception as exc:  # noqa: BLE001 - a display update must not stop the writes
                    log.debug("nbops: callback for run %s failed: %s", x.run_id, exc)

    def _parent_first(self, d: Path, idmap: dict) -> None:
        """A run whose parent is another process's held spooled run (``nbops run``'s parent): put the parent's
        start on the store first. A parent of this process is this flusher's to push, in order."""
        from .spool import LOCAL_PREFIX, read_meta
        from .sync import PARENT_TAG, SyncReport, push

        parent = read_meta(d).get("tags", {}).get(PARENT_TAG) or ""
        with self._cond:
            ours = {r.spool_id for r, _ in self._queue} | set(self._stranded) | self._tried
        if (not parent.startswith(LOCAL_PREFIX) or parent in idmap or parent in ours
                or not (d.parent / parent / "meta.json").is_file()
                or read_meta(d.parent / parent).get("target") != self.settings.tracking_uri):
            return  # (a parent recorded for another store is linked by `nbops sync`)
        push(self._writer, d.parent / parent, idmap, SyncReport(self.settings.tracking_uri), live=True)


_FLUSHERS: dict[tuple, Flusher] = {}
_LOCK = threading.Lock()


def get_flusher(settings: config.Settings) -> Flusher:
    key = (settings.tracking_uri, str(settings.spool_dir))
    with _LOCK:
        if key not in _FLUSHERS:
            if not _FLUSHERS:
                atexit.register(_flush_at_exit)
            _FLUSHERS[key] = Flusher(settings)
        return _FLUSHERS[key]


def flush(timeout: float | None = None) -> bool:
    """Wait until every run this process wrote in the background is on the store (bounded by ``timeout``, default
    ``NBOPS_FLUSH_TIMEOUT_S`` = 60 s). True when nothing is left in flight."""
    with _LOCK:
        flushers = list(_FLUSHERS.values())
    return all([f.flush(timeout) for f in flushers])


def resolve(run_id: str | None) -> str | None:
    """The store's id for a run this process wrote in the background (waits for the flusher when needed);
    other ids unchanged."""
    from .spool import LOCAL_PREFIX

    if not run_id or not run_id.startswith(LOCAL_PREFIX):
        return run_id
    from .sync import mapped

    flush()
    with _LOCK:
        flushers = list(_FLUSHERS.values())
    for f in flushers:
        server_id = mapped(Path(f.settings.spool_dir), f.settings.tracking_uri, run_id)
        if server_id:
            return server_id
    return run_id


def _flush_at_exit() -> None:
    if not flush():
        left = sum(f.pending() for f in _FLUSHERS.values())
        log.warning("nbops: %d runs were still being written at exit; they are in the spool: run `nbops sync`.",
                    left)

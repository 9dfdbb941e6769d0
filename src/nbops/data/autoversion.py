"""Automatic versions of the files a tracked cell reads.

While a ``%%track`` cell runs, ``pandas.read_csv`` and ``pandas.read_parquet`` are wrapped: when called with a
path (a ``str`` or ``os.PathLike``; local files and folders, or URLs), the returned DataFrame is fingerprinted
and logged on the cell's run as a dataset input named after the file (``train.csv``), context ``read``, with
the path -- and, for a local file, the xxh3-128 of its bytes -- as the source. The wrapper returns exactly what
pandas returned; a fingerprinting failure is a warning on the run, never the user's error. On exit the very
function objects that were there before are put back.

If pandas is not imported when the cell starts, nothing is patched; a light import hook waits for a cell that
imports pandas and wraps it at that moment (and is removed with the rest on exit). Not covered: functions
bound before the cell (``from pandas import read_csv``), file handles / buffers, chunked reads (``chunksize=``,
``iterator=True``) and other readers.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading

from .._lazy import loaded
from ..importhook import OnImport

log = logging.getLogger("nbops")
READERS = ("read_csv", "read_parquet")
CONTEXT = "read"
_state = threading.local()   # .busy: a wrapper is already handling this call (nested cells, nbops's own reads)


def _wrap(orig, reader: str, tracker):
    @functools.wraps(orig)
    def wrapper(*args, **kwargs):
        if getattr(_state, "busy", False):
            return orig(*args, **kwargs)
        _state.busy = True
        try:
            result = orig(*args, **kwargs)
        finally:
            _state.busy = False
        source = args[0] if args else kwargs.get("filepath_or_buffer", kwargs.get("path"))
        if isinstance(source, (str, os.PathLike)):
            _state.busy = True
            try:
                _log_read(tracker, result, source, reader)
            except Exception as exc:  # noqa: BLE001 - never break the user's read
                msg = f"could not version {os.fspath(source)} read with pandas.{reader}: {exc}"
                log.warning("nbops: %s", msg)
                tracker.warnings.append(msg)
            finally:
                _state.busy = False
        return result

    wrapper.__nbops_wrapped__ = orig
    return wrapper


def _log_read(tracker, frame, source, reader: str) -> None:
    import pandas as pd

    from .fingerprinting import fingerprint, hash_file, reading_internally
    from .record import log_to_run

    if reading_internally() or not isinstance(frame, pd.DataFrame):
        return
    text = os.fspath(source)
    is_url = "://" in text and not text.startswith("file://")
    path = text if is_url else os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
    name = os.path.basename(path.rstrip("/")) or path
    v = fingerprint(frame, name)
    src = {"type": "file", "path": path, "reader": f"pandas.{reader}", "frame": "pandas.DataFrame"}
    if not is_url and os.path.isfile(path):
        try:
            src["file_digest"], src["bytes"] = hash_file(path)
        except Exception as exc:  # noqa: BLE001 - the frame's version stands without the file's
            log.debug("nbops: no file digest for %s: %s", path, exc)
    v.source = src
    if any(x.digest == v.digest and x.name == v.name for x in tracker.data_versions):
        return  # the same file read twice in one cell
    log_to_run(tracker, frame, name, context=CONTEXT, version=v)


class _Patch:
    def __init__(self, tracker):
        self.tracker = tracker
        self.module = None
        self.saved: dict[str, object] = {}

    def apply(self, pd) -> None:
        if self.module is not None:
            return
        self.module = pd
        for fn in READERS:
            if fn in pd.__dict__:
                self.saved[fn] = pd.__dict__[fn]
                setattr(pd, fn, _wrap(self.saved[fn], fn, self.tracker))

    def restore(self) -> None:
        if self.module is None:
            return
        for fn, orig in self.saved.items():
            setattr(self.module, fn, orig)
        self.module, self.saved = None, {}


@contextlib.contextmanager
def versions_reads(tracker, cell=None):
    """Context manager for one tracked cell (listed in ``CELL_HOOKS``)."""
    patch = _Patch(tracker)
    hook = None
    pd = loaded("pandas")
    if pd is not None:
        patch.apply(pd)
    else:
        hook = OnImport("pandas", patch.apply)
        sys.meta_path.insert(0, hook)
    try:
        yield patch
    finally:
        if hook is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(hook)
        patch.restore()

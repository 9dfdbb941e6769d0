"""Data versions: exact fingerprints, profiles, lineage and diffs for the data a notebook uses.

Public API (resolved lazily, so ``%load_ext nbops`` does not import numpy, pandas or mlflow)::

    fingerprint(obj, name=None, *, index=None, profile=True, progress=None) -> DataVersion
    diff(old, new) -> DataDiff                       # frames or DataVersions
    record_version(obj, name, snapshot=False) -> VersionReport   # what %dataversion does
    log_to_run(tracker, obj, name, snapshot=False, context="training") -> DataVersion
    load_snapshot(run_id, name=None) -> pandas.DataFrame
    runs_using(digest) -> Lineage ; history(name) -> Lineage
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "fingerprint": "nbops.data.fingerprinting:fingerprint",
    "hash_file": "nbops.data.fingerprinting:hash_file",
    "DataVersion": "nbops.data.version:DataVersion",
    "diff": "nbops.data.compare:diff",
    "DataDiff": "nbops.data.compare:DataDiff",
    "runs_using": "nbops.data.lineage:runs_using",
    "history": "nbops.data.lineage:history",
    "Lineage": "nbops.data.lineage:Lineage",
    "log_to_run": "nbops.data.record:log_to_run",
    "load_snapshot": "nbops.data.record:load_snapshot",
    "record_version": "nbops.data.record:record_version",
    "VersionReport": "nbops.data.record:VersionReport",
}
__all__ = list(_LAZY)


__getattr__ = lazy_getattr("nbops.data", _LAZY, globals())

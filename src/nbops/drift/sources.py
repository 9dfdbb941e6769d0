"""Where the reference comes from: a DataFrame, a prepared Reference, ``run:<run_id>`` (the data snapshot that
run logged with ``%%track --data df --snapshot``) or ``models:/<name>@<alias>`` (the snapshot of the run that
produced the model version the alias points at). Everything is resolved before anything is logged."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DriftError, NbopsError

_MODEL = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass
class Resolved:
    ref: object = None          # a prepared Reference, when one was passed
    frame: object = None        # the reference data otherwise
    label: str = "DataFrame"
    run_id: str | None = None   # the run whose snapshot the frame is
    model: dict | None = None   # {"name", "version", "alias", "run_id"} for models:/ references


def resolve_reference(reference) -> Resolved:
    """Turn what the user passed as the reference into data (loading snapshots), with where it came from."""
    from .reference import Reference

    if isinstance(reference, Reference):
        return Resolved(ref=reference, label=reference.source, run_id=reference.run_id, model=reference.model)
    if isinstance(reference, str):
        text = reference.strip()
        if text.startswith("run:"):
            run_id, name = text[4:].strip(), None
            if "/" in run_id:  # run:<id>/<snapshot name>
                run_id, name = run_id.split("/", 1)
            if not run_id:
                raise DriftError("run: needs a run id, e.g. run:3f2a... (the run that logged the data snapshot).")
            return Resolved(frame=snapshot(run_id, name), label=text, run_id=run_id)
        m = _MODEL.match(text)
        if m:
            info = model_version(m["name"], m["alias"], m["version"])
            return Resolved(frame=snapshot(info["run_id"], None), label=text, run_id=info["run_id"], model=info)
        if text.startswith("models:"):
            raise DriftError(f"{text!r}: write a model reference as models:/<name>@<alias> or "
                             f"models:/<name>/<version>.")
        raise DriftError(f"Reference {text!r} is not understood: pass a DataFrame, run:<run_id> or "
                         f"models:/<name>@<alias>.")
    return Resolved(frame=reference, label=_label(reference))


def _label(obj) -> str:
    from ..sparkframes import is_spark

    if is_spark(obj):   # a Spark Connect frame answers any attribute with a Column: never probe one
        return "Spark DataFrame"
    shape = getattr(obj, "shape", None)
    return f"DataFrame {shape[0]:,}x{shape[1]}" if shape is not None and len(shape) == 2 else type(obj).__name__


_SNAPSHOTS: dict[tuple, object] = {}   # (store, run_id, name) -> frame: a run's snapshot never changes
_MAX_CACHED = 4


def snapshot(run_id: str, name: str | None):
    """The data snapshot a run logged (``nbops.data.load_snapshot``), loaded once per process."""
    from ..config import settings

    key = (settings().tracking_uri, run_id, name)
    if key not in _SNAPSHOTS:
        frame = _load(run_id, name)
        while len(_SNAPSHOTS) >= _MAX_CACHED:
            _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
        _SNAPSHOTS[key] = frame
    return _SNAPSHOTS[key]


def _load(run_id: str, name: str | None):
    try:
        from ..data import load_snapshot
    except (ImportError, AttributeError) as exc:  # the data-versions module is not there
        raise DriftError("Loading a run's data snapshot needs nbops.data.load_snapshot, which is not available "
                         "in this installation; pass the reference DataFrame instead.") from exc
    try:
        return load_snapshot(run_id, name)
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unknown run id surfaces from MLflow
        raise DriftError(f"Could not load the data snapshot of run {run_id}: {type(exc).__name__}: {exc}. Check the "
                         f"run id (it must be a run that logged %%track --data df --snapshot).",
                         run_id=run_id) from exc


def model_version(name: str, alias: str | None, version: str | None) -> dict:
    """``{"name", "version", "alias", "run_id"}`` of a registered model version; clear errors otherwise."""
    from mlflow.exceptions import MlflowException

    from ..tracking.writer import get_writer

    client = get_writer().client
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        try:
            aliases = sorted(client.get_registered_model(name).aliases)
        except MlflowException:
            raise DriftError(f"models:/{name}: there is no registered model named {name!r} in "
                             f"{get_writer().settings.tracking_uri}. Check the name (mlflow models list).",
                             model=name) from exc
        raise DriftError(f"models:/{name}@{alias or version}: model {name!r} has no {what}. Existing aliases: "
                         f"{aliases or 'none'}.", model=name, alias=alias) from exc
    run_id = mv.run_id
    if not run_id and getattr(mv, "model_id", None):  # MLflow 3: the LoggedModel knows its source run
        try:
            run_id = client.get_logged_model(mv.model_id).source_run_id
        except Exception:  # noqa: BLE001
            run_id = None
    if not run_id:
        raise DriftError(f"models:/{name}@{alias or version}: model version {mv.version} has no source run, so "
                         f"there is no training-data snapshot to compare with; pass the reference DataFrame.",
                         model=name, version=mv.version)
    return {"name": name, "version": str(mv.version), "alias": alias, "run_id": run_id}

"""Which model is evaluated, how to call it, which columns it takes and which run it belongs to.

A notebook variable is matched to the tracked run that logged it (``%%track --model VAR`` remembers the
object); ``runs:/...``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` and ``models:/<model_id>`` are loaded
with ``mlflow.pyfunc`` and know their run from the registry or the logged model.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

from .errors import EvaluationError

_MODEL = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_REMEMBERED: dict[int, tuple] = {}   # id(model) -> (weakref or None, run_id, experiment_id, experiment)
_MAX = 32


def remember(model, run_id: str | None, experiment_id: str | None = None, experiment: str | None = None) -> None:
    """Note that ``model`` was logged on ``run_id`` (called by ``%%track --model``)."""
    if not run_id:
        return
    try:
        ref = weakref.ref(model)
    except TypeError:
        ref = None
    _REMEMBERED[id(model)] = (ref, run_id, experiment_id, experiment)
    while len(_REMEMBERED) > _MAX:
        _REMEMBERED.pop(next(iter(_REMEMBERED)))


def remembered_run(model) -> str | None:
    entry = _REMEMBERED.get(id(model))
    if entry is None:
        return None
    ref, run_id = entry[0], entry[1]
    if ref is not None and ref() is not model:
        return None
    from ..tracking.flusher import resolve

    return resolve(run_id)  # a run written in the background: the store's id


@dataclass
class ResolvedModel:
    predict: object               # callable(frame) -> predictions
    raw: object                   # the estimator when it can be reached (feature names, classes)
    label: str
    run_id: str | None = None
    uri: str | None = None

    @property
    def feature_names(self) -> list[str] | None:
        names = getattr(self.raw, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        meta = getattr(self, "_signature_names", None)
        return meta

    @property
    def is_classifier(self) -> bool:
        raw = self.raw
        return raw is not None and (hasattr(raw, "classes_") or getattr(raw, "_estimator_type", None) == "classifier")


def resolve(model, run: str | None = None) -> ResolvedModel:
    if isinstance(model, str):
        return _from_uri(model.strip(), run)
    if not callable(getattr(model, "predict", None)):
        raise EvaluationError(f"A {type(model).__name__} is not a model: pass a fitted estimator (anything with "
                              f".predict), runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION.")
    return ResolvedModel(model.predict, model, type(model).__name__, run or remembered_run(model))


def _from_uri(text: str, run: str | None) -> ResolvedModel:
    import mlflow.pyfunc

    from ..tracking.writer import get_writer

    client = get_writer().client
    run_id = run
    m = _MODEL.match(text)
    if text.startswith("runs:/"):
        run_id = run_id or text[len("runs:/"):].split("/")[0]
    elif m:
        from ..drift.sources import model_version
        from ..errors import NbopsError

        try:
            run_id = run_id or model_version(m["name"], m["alias"], m["version"])["run_id"]
        except NbopsError as exc:
            raise EvaluationError(str(exc)) from None
    elif text.startswith("models:/"):
        try:
            run_id = run_id or client.get_logged_model(text[len("models:/"):]).source_run_id
        except Exception as exc:  # noqa: BLE001
            raise EvaluationError(f"{text}: no such model ({type(exc).__name__}); write models:/NAME@ALIAS, "
                                  f"models:/NAME/VERSION or runs:/RUN_ID/model.") from None
    else:
        raise EvaluationError(f"{text!r} is not a model reference: pass a variable, runs:/RUN_ID/model, "
                              f"models:/NAME@ALIAS or models:/NAME/VERSION.")
    try:
        pm = mlflow.pyfunc.load_model(text)
    except Exception as exc:  # noqa: BLE001
        raise EvaluationError(f"Could not load {text}: {type(exc).__name__}: {str(exc)[:300]}") from None
    raw = None
    try:
        raw = pm.get_raw_model()
    except Exception:  # noqa: BLE001 - a custom pyfunc: predict is all there is
        raw = None
    rm = ResolvedModel(pm.predict, raw, text, run_id, text)
    sig = getattr(pm.metadata, "signature", None)
    if sig is not None and getattr(sig, "inputs", None) is not None:
        try:
            rm._signature_names = [n for n in sig.inputs.input_names()]
        except Exception:  # noqa: BLE001
            pass
    return rm

"""Which MLflow flavour logs a model object: sklearn for scikit-learn estimators (and pipelines), pyfunc for
anything else with a ``predict`` method (wrapped in a ``PythonModel``) or an ``mlflow.pyfunc.PythonModel``."""
from __future__ import annotations

import logging
from typing import Any

from ..errors import NbopsError

log = logging.getLogger("nbops")


def model_flavor(model: Any, name: str = "model") -> str:
    """'sklearn' or 'pyfunc'; raises NbopsError for an object MLflow could not serve."""
    mod = type(model).__module__ or ""
    if mod.startswith("sklearn") or _has_sklearn_base(model):
        try:
            from sklearn.utils.validation import check_is_fitted

            check_is_fitted(model)
        except Exception as exc:  # NotFittedError, or a TypeError for a non-estimator
            raise NbopsError(f"--model {name}: the {type(model).__name__} is not fitted yet; call .fit(...) in "
                             f"the cell before it ends ({type(exc).__name__}).", variable=name) from exc
        return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "pyfunc"
    raise NbopsError(f"--model {name}: a {type(model).__name__} is not a model nbops can log: pass a fitted "
                     f"scikit-learn estimator, an mlflow.pyfunc.PythonModel, or any object with a .predict() "
                     f"method.", variable=name)


def _has_sklearn_base(model: Any) -> bool:
    return any((c.__module__ or "").startswith("sklearn") for c in type(model).__mro__[1:])


def as_python_model(model: Any):
    """``model`` itself if it is a PythonModel, else a PythonModel that calls ``model.predict``."""
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return model

    class PredictWrapper(mlflow.pyfunc.PythonModel):
        def __init__(self, obj):
            self.obj = obj

        def predict(self, context, model_input, params=None):  # noqa: ARG002
            return self.obj.predict(model_input)

    return PredictWrapper(model)


# ---- which objects of a cell are estimators, which one is the model, and their hyperparameters ----------------
# The bar is MLflow's autolog: scikit-learn (and the sklearn APIs of xgboost / lightgbm / catboost) log
# ``get_params(deep=True)`` with the tags ``estimator_name`` / ``estimator_class``; PyTorch optimisers log their
# class and the hyperparameters of their param groups (lr, momentum, weight_decay, betas, ...).

FIT_METHODS = {"fit", "fit_transform", "fit_predict", "partial_fit"}


def is_estimator(obj: Any) -> bool:
    """A scikit-learn-style estimator (``get_params`` and ``fit``) or an optimiser (``param_groups`` + ``step``),
    an instance, not a class."""
    try:
        if isinstance(obj, type):
            return False
        if callable(getattr(obj, "get_params", None)) and callable(getattr(obj, "fit", None)):
            return True
        return _is_optimizer(obj)
    except Exception:  # noqa: BLE001 - an object whose attribute lookup raises (a proxy, a lazy module)
        return False


def _is_optimizer(obj: Any) -> bool:
    groups = getattr(obj, "param_groups", None)
    return (not isinstance(obj, type) and isinstance(groups, list) and all(isinstance(g, dict) for g in groups)
            and callable(getattr(obj, "step", None)))


def cell_estimators(source: str, ns: dict) -> dict[str, Any]:
    """The estimators a cell builds or fits, by variable name in source order: names it assigns (anywhere at top
    level or in a block) and names it calls ``.fit(...)`` (or ``fit_transform``, ``partial_fit``...) on, whose value
    after the cell is an estimator or optimiser."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: list[tuple[int, int, str]] = []   # (line, column, name): source order (ast.walk is breadth-first)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [(n.lineno, n.col_offset, n.id) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FIT_METHODS
              and isinstance(node.func.value, ast.Name)):
            found.append((node.lineno, node.col_offset, node.func.value.id))
    order = list(dict.fromkeys(n for _, _, n in sorted(found)))
    return {n: ns[n] for n in order if not n.startswith("_") and n in ns and is_estimator(ns[n])}


def class_path(obj: Any) -> str:
    """``sklearn.ensemble.RandomForestRegressor``: the public import path when the package exports the class
    there (``sklearn.ensemble._forest`` -> ``sklearn.ensemble``), else the defining module."""
    cls = type(obj)
    mod = cls.__module__ or ""
    parts = mod.split(".")
    import sys

    for i in range(1, len(parts)):  # the shortest public parent that exports the same class
        parent = ".".join(parts[:i])
        if any(p.startswith("_") for p in parts[:i]):
            break
        m = sys.modules.get(parent)
        if m is not None and getattr(m, cls.__name__, None) is cls:
            return f"{parent}.{cls.__name__}"
    return f"{mod}.{cls.__qualname__}" if mod else cls.__qualname__


def find_model(source: str, ns: dict, name: str | None = None) -> tuple[str, Any] | None:
    """THE answer to "which object is the cell's model" (``--model`` and the automatic capture agree): ``name``
    when given (it must name a model in ``ns``: a one-line error otherwise); else the last estimator the cell
    built or fitted that predicts; None when it made none."""
    if name is not None:
        if name not in ns:
            raise NbopsError(f"--model {name}: no variable named {name!r} after the cell ran; name the fitted "
                             f"model variable.", variable=name)
        model_flavor(ns[name], name)  # a one-line error for what is not a model (named by its variable)
        return name, ns[name]
    found = [(n, o) for n, o in cell_estimators(source, ns).items() if callable(getattr(o, "predict", None))]
    return found[-1] if found else None


def _value(v: Any) -> Any:
    """A hyperparameter as a parameter value: plain values as they are, an estimator by its class name, a
    function by its name, a list of (name, estimator) steps as ``name:Class`` pairs, anything else by repr."""
    from . import redact

    v = redact.plain(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if is_estimator(v):
        return type(v).__name__
    if callable(v) and hasattr(v, "__qualname__"):
        return v.__qualname__
    if isinstance(v, (list, tuple)) and v and all(isinstance(s, tuple) and len(s) >= 2 for s in v):
        return ",".join(f"{s[0]}:{_value(s[1])}" for s in v)
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    return repr(v)


def hyperparameters(obj: Any) -> dict[str, Any]:
    """What MLflow's autolog records for one estimator: ``get_params(deep=True)`` (nested ``step__param`` for
    pipelines and meta-estimators), or an optimiser's class and its param groups' scalar settings (the first
    group's plain names; a later group's that differ as ``group<i>.name``)."""
    if _is_optimizer(obj):
        out: dict[str, Any] = {"optimizer_name": type(obj).__name__}
        for i, group in enumerate(obj.param_groups):
            for k, v in group.items():
                if k == "params":
                    continue
                v = _value(v)
                if isinstance(v, list):
                    v = tuple(v)
                if i == 0:
                    out[k] = v
                elif out.get(k) != v:
                    out[f"group{i}.{k}"] = v
        return out
    try:
        params = obj.get_params(deep=True)
    except TypeError:
        params = obj.get_params()
    return {str(k): _value(v) for k, v in params.items()}


def estimator_params(estimators: dict[str, Any]) -> dict[str, Any]:
    """Every estimator's hyperparameters: plain names for one estimator, ``<variable>.<name>`` for several. An
    object whose ``get_params`` fails is skipped (logged): the rest of the cell's record does not depend on it."""
    found = {}
    for var, obj in estimators.items():
        try:
            found[var] = hyperparameters(obj)
        except Exception as exc:  # noqa: BLE001 - a third-party get_params that raises
            log.warning("nbops: no hyperparameters for %s (%s): %s", var, type(obj).__name__, exc)
    if len(found) == 1:
        return next(iter(found.values()))
    return {f"{var}.{k}": v for var, hp in found.items() for k, v in hp.items()}


def model_tags(model: Any) -> dict[str, str]:
    """MLflow autolog's tags for the model: ``estimator_name`` and ``estimator_class``."""
    return {"estimator_name": type(model).__name__, "estimator_class": class_path(model)}


def merge_params(params: dict, estimators: dict[str, Any]) -> dict:
    """``params`` (the cell's own variables) plus every estimator's hyperparameters (:func:`estimator_params`);
    a hyperparameter whose plain name a variable already holds with another value is kept as
    ``<variable>.<name>``."""
    out = dict(params)
    if not estimators:
        return out
    single = next(iter(estimators)) if len(estimators) == 1 else None
    for k, v in estimator_params(estimators).items():
        if k in out and out[k] != v:
            k = f"{single}.{k}" if single else k
        out.setdefault(k, v)
    return out

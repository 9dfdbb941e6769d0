"""Which MLflow flavour logs a model object: sklearn for scikit-learn estimators (and pipelines), pyfunc for
anything else with a ``predict`` method (wrapped in a ``PythonModel``) or an ``mlflow.pyfunc.PythonModel``."""
from __future__ import annotations

from typing import Any

from ..errors import NbopsError


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

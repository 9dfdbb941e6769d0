"""Model evaluation before promotion: task metrics, per-slice metrics (fairlearn), prediction latency.

Public API (resolved lazily)::

    evaluate(model, data, target, task=None, slices=None, latency=False) -> EvaluationResult
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "evaluate": "nbops.evaluation.api:evaluate",
    "EvaluationResult": "nbops.evaluation.result:EvaluationResult",
}
__all__ = list(_LAZY)

__getattr__ = lazy_getattr("nbops.evaluation", _LAZY, globals())

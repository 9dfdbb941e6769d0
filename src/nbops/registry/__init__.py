"""Promotion to the MLflow 3 Model Registry: gates, alias moves, audit trail, rollback.

``nbops.promote(name, run=..., require=[...], must_beat="champion")`` registers the model a tracked run logged
and moves an alias (``champion`` by default) to it only when every gate passes; ``nbops.rollback(name)``
moves it back; :func:`history` lists every promotion from the audit tags on the versions; :func:`pick` shows
candidate runs with a Promote button. Names resolve on first use (``%load_ext nbops`` imports only
``nbops.registry.magics``); MLflow is imported by the functions that need it.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "promote": "core", "rollback": "core", "PromotionResult": "core",
    "history": "audit", "PromotionHistory": "audit",
    "GateResult": "gates",
    "pick": "picker", "Picker": "picker",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

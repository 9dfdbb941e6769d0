"""nbops: notebook-native MLOps and AIOps over MLflow.

``%load_ext nbops`` registers the magics (``%%track``, ``%dataversion``, ``%drift``, ``%telemetry``, ``%promote``,
``%nbops``); the same capabilities are plain functions here. Heavy libraries (mlflow, alibi-detect, matplotlib)
are imported only by the functions that need them, so loading the extension is instant.
"""
from __future__ import annotations

import importlib
import os

from ._lazy import lazy_getattr
from .errors import NbopsError

__version__ = "0.1.0"

# public name -> "module:attribute", resolved on first use
_LAZY = {
    "track": "nbops.tracking.run:track",
    "Tracker": "nbops.tracking.run:Tracker",
    "fingerprint": "nbops.data:fingerprint",
    "DataVersion": "nbops.data:DataVersion",
    "check_drift": "nbops.drift:check_drift",
    "DriftReport": "nbops.drift:DriftReport",
    "validate": "nbops.validation:validate",
    "evaluate": "nbops.evaluation:evaluate",
    "promote": "nbops.registry:promote",
    "rollback": "nbops.registry:rollback",
    "PromotionResult": "nbops.registry:PromotionResult",
    "run_notebook": "nbops.runner:run_notebook",
    "runs": "nbops.api:runs",
    "compare_runs": "nbops.api.compare:compare",
    "status": "nbops.api:status",
    "sync": "nbops.api:sync",
    "secret": "nbops.tracking.redact:secret",
    "prompt": "nbops.llm.prompts:load",
}
_SUBMODULES = frozenset({"validation", "evaluation", "data", "drift", "telemetry", "registry", "tracking", "display", "config", "errors", "api", "llm"})
__all__ = ["NbopsError", "load_ipython_extension", "unload_ipython_extension", *_LAZY]


__getattr__ = lazy_getattr("nbops", _LAZY, globals(), _SUBMODULES)


def _jupyter_server_extension_points() -> list[dict]:
    """Jupyter Server finds the extension here (enabled by jupyter-config/); the wiring is in nbops.server."""
    return [{"module": "nbops.server"}]


_registered: dict[int, list[tuple[str, str, object]]] = {}
_classes: dict[int, list[str]] = {}


def load_ipython_extension(ip) -> None:
    """``%load_ext nbops``: register the magics. Imports IPython-level modules only."""
    from .magics import MAGIC_CLASSES, install_error_boundary

    if id(ip) in _registered:
        return
    before = {kind: dict(table) for kind, table in ip.magics_manager.magics.items()}
    classes = []
    for spec in MAGIC_CLASSES:
        mod, cls = spec.split(":")
        ip.register_magics(getattr(importlib.import_module(mod), cls))
        classes.append(cls)
    added = []
    for kind, table in ip.magics_manager.magics.items():
        for name, fn in table.items():
            if before[kind].get(name) is not fn:
                added.append((kind, name, before[kind].get(name)))
    _registered[id(ip)] = added
    _classes[id(ip)] = classes
    if os.environ.get("NBOPS_REDACT_CHANNEL"):  # a kernel of `nbops run`: report the secrets it sees
        from .tracking.redact import watch_kernel

        watch_kernel(ip)
    install_error_boundary(ip)
    _quiet_loggers()
    from .display.progress import quiet_libraries

    quiet_libraries()
    from . import warmup

    warmup.install(ip)


# MLflow's start-up chatter that would land in every first cell's output (and in saved notebooks)
_CHATTY = ("mlflow.store.db.utils", "alembic.runtime.migration")


def _quiet_loggers() -> None:
    import logging

    for name in _CHATTY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # a level the user set stays
            logger.setLevel(logging.WARNING)


def unload_ipython_extension(ip) -> None:
    """``%unload_ext nbops``: remove our magics (restoring any they shadowed), stop background samplers."""
    import sys

    from .magics import uninstall_error_boundary

    uninstall_error_boundary(ip)
    from . import warmup

    warmup.uninstall(ip)
    if "nbops.tracking.redact" in sys.modules:
        sys.modules["nbops.tracking.redact"].unwatch_kernel(ip)
    for kind, name, previous in _registered.pop(id(ip), []):
        table = ip.magics_manager.magics[kind]
        if previous is None:
            table.pop(name, None)
        else:
            table[name] = previous
    for cls in _classes.pop(id(ip), []):
        ip.magics_manager.registry.pop(cls, None)
    from .config import use_experiment

    use_experiment(None)  # the kernel's `%%track -e` experiment goes with the extension
    if "nbops.tracking.flusher" in sys.modules:  # background writes reach the store before nbops goes
        sys.modules["nbops.tracking.flusher"].flush()
    for spec in ("nbops.telemetry.local:shutdown", "nbops.telemetry.live:shutdown"):
        mod, fn = spec.split(":")
        if mod in sys.modules and hasattr(sys.modules[mod], fn):
            getattr(sys.modules[mod], fn)()
    ip.user_ns.pop("_nbops_last_run", None)

"""Warm the heavy imports while the person types: the first ``%%track`` would otherwise pay ``import mlflow``
(about 3 s here) in the cell itself.

After the cell that ran ``%load_ext nbops`` finishes, one daemon thread imports what the first magics need, a
module at a time and only while no cell runs: a cell that starts while a module is being imported waits for that
import to end (never two importers at once: Python's per-module locks then break a lock cycle by handing one
thread a partially initialised module, as "cannot import name ... (partially initialized module)"), and the
thread then waits until the kernel is idle again. Nor does it import while the background writer pushes a run
(``importhook.BACKGROUND_IMPORTS``). A cell that needs one of these modules first imports it itself. It does no I/O against the store and writes nothing. ``NBOPS_WARM_IMPORTS=0`` switches it off.
"""
from __future__ import annotations

import logging
import os
import threading

# smallest first, so a starting cell waits for little; together what the first %%track (the host sampler's numpy,
# the redactor's detect-secrets rules), `import mlflow` and the first %drift pull in. "module:function" is called.
MODULES = ("numpy", "nbops.tracking.redact:warm", "pandas", "pydantic", "sqlalchemy", "requests", "fastapi",
           "mlflow.entities", "mlflow.data", "mlflow.tracking", "mlflow", "scipy.stats", "matplotlib.figure")
log = logging.getLogger("nbops")


class _Warmup:
    def __init__(self, ip):
        self.ip = ip
        self.idle = threading.Event()
        self.importing = threading.Lock()  # held by the thread for one module's import
        self.waiting = threading.Event()  # set while the thread is held back by a running cell
        self.stopped = False
        self.thread: threading.Thread | None = None

    def pre(self, info=None) -> None:
        self.idle.clear()
        with self.importing:  # an import in flight ends before the cell's code runs; none starts after
            pass

    def post(self, result=None) -> None:
        self.idle.set()

    def run(self) -> None:
        import importlib
        import sys
        import warnings

        from .importhook import BACKGROUND_IMPORTS

        for name in MODULES:
            module, _, function = name.partition(":")
            while True:
                if not self.idle.is_set():
                    self.waiting.set()
                    self.idle.wait()
                    self.waiting.clear()
                if self.stopped:
                    return
                with BACKGROUND_IMPORTS, self.importing:  # never beside the background writer's imports
                    if not self.idle.is_set():  # a cell started meanwhile: wait for the next idle moment
                        continue
                    if module not in sys.modules or function:
                        self._import(module, function, warnings, importlib)
                    break
        uninstall(self.ip)

    @staticmethod
    def _import(module: str, function: str, warnings, importlib) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(module)
                if function:
                    getattr(mod, function)()
        except Exception as exc:  # an optional module missing is not the user's problem here
            log.debug("nbops warm-up: %s%s not imported (%s)", module, f":{function}" if function else "", exc)


_ACTIVE: dict[int, _Warmup] = {}


def enabled() -> bool:
    return os.environ.get("NBOPS_WARM_IMPORTS", "1").strip().lower() not in ("0", "false", "no", "off")


def install(ip) -> None:
    """Start the warm-up once the current cell (the one running ``%load_ext``) has finished."""
    if not enabled() or id(ip) in _ACTIVE:
        return
    w = _ACTIVE[id(ip)] = _Warmup(ip)
    ip.events.register("pre_run_cell", w.pre)
    ip.events.register("post_run_cell", w.post)
    # starts held back: the cell running %load_ext is still running; its post_run_cell lets the thread go
    w.thread = threading.Thread(target=w.run, name="nbops-warmup", daemon=True)
    w.thread.start()


def uninstall(ip) -> None:
    w = _ACTIVE.pop(id(ip), None)
    if w is None:
        return
    w.stopped = True
    w.idle.set()
    for event, cb in (("pre_run_cell", w.pre), ("post_run_cell", w.post)):
        try:
            ip.events.unregister(event, cb)
        except ValueError:
            pass

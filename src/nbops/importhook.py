"""Run a function the moment a module is imported: a cell hook that patches a library (pandas' readers, pyplot's
figure bookkeeping) applies its patch as soon as the cell imports that library, not only when it was imported
before the cell. ``sys.meta_path.insert(0, OnImport(name, fn))``; remove it when the cell is over.

``BACKGROUND_IMPORTS``: held by nbops's own threads (the import warm-up, one module at a time; the background
writer, for one run's push) so that they never import at the same time: two threads importing a package whose
modules import each other can be handed a partially initialised module ("cannot import name 'EvaluationDataset'
from 'mlflow.entities'"), which left a tracked run in the spool."""
from __future__ import annotations

import importlib.abc
import importlib.util
import threading

BACKGROUND_IMPORTS = threading.RLock()


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, on_loaded):
        self.inner, self.on_loaded = inner, on_loaded

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        self.on_loaded(module)


class OnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of module ``name`` so ``on_loaded(module)`` runs right after the module is executed."""

    def __init__(self, name: str, on_loaded):
        self.name, self.on_loaded = name, on_loaded
        self._looking = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._looking:
            return None
        self._looking = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, self.on_loaded)
        return spec

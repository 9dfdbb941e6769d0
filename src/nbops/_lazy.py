"""Lazy attribute tables: a package lists its public names as ``"module:attribute"`` and imports a module only
when one of its names is first used (heavy libraries stay unloaded until then)."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, table: dict[str, str], namespace: dict, submodules: frozenset = frozenset()):
    """A module ``__getattr__`` resolving ``table`` entries (and ``submodules`` by name) on first use and caching
    them in ``namespace``."""

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod, attr = table[name].split(":")
        value = getattr(importlib.import_module(mod), attr)
        namespace[name] = value
        return value

    return __getattr__


def loaded(name: str):
    """The module ``name`` if it is already imported, else None; never imports it. A module another thread is
    still importing (nbops's warm-up or background writer, say) counts as not imported: its attributes may not
    exist yet, and no object the user holds can come from it."""
    import sys

    mod = sys.modules.get(name)
    if mod is None or getattr(getattr(mod, "__spec__", None), "_initializing", False):
        return None
    return mod

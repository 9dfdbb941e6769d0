"""Every registered magic class, CLI module and cell hook imports and is what its registry says: nothing is
skipped silently at load time, so a broken import fails here instead of making a magic disappear."""
import importlib

import pytest
from IPython.core.magic import Magics

from nbops.cli import CLI_MODULES
from nbops.magics import MAGIC_CLASSES
from nbops.hooks import CELL_HOOKS


@pytest.mark.parametrize("spec", MAGIC_CLASSES)
def test_magic_class_imports(spec):
    mod, cls = spec.split(":")
    assert issubclass(getattr(importlib.import_module(mod), cls), Magics)


@pytest.mark.parametrize("name", CLI_MODULES)
def test_cli_module_imports_and_adds_commands(name):
    assert callable(importlib.import_module(name).add_cli)


@pytest.mark.parametrize("spec", CELL_HOOKS)
def test_cell_hook_imports(spec):
    mod, fn = spec.split(":")
    assert callable(getattr(importlib.import_module(mod), fn))


def test_every_magic_is_registered_by_load_ext(ip):
    names = set(ip.magics_manager.magics["line"]) | set(ip.magics_manager.magics["cell"])
    assert {"track", "nbops", "dataversion", "drift", "telemetry", "promote", "validate", "evaluate"} <= names

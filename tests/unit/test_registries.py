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


def _imports(path):
    """Every module an nbops source file imports (absolute names; relative imports resolved), at any depth of the
    file (imports inside functions count: they are dependencies all the same)."""
    import ast
    from pathlib import Path

    pkg = ".".join(Path(path).relative_to(Path(nbops.__file__).parent.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from .. import magics`
    return out


import nbops  # noqa: E402


@pytest.mark.parametrize("path", sorted(
    __import__("pathlib").Path(nbops.__file__).parent.joinpath("tracking").glob("*.py")), ids=lambda p: p.name)
def test_tracking_imports_no_domain_and_not_the_front_end(path):
    """tracking/ is the ground floor every domain writes through: it imports no domain and not the front end
    (the %%track hooks of the domains come from nbops.hooks, above them)."""
    above = ("nbops.data", "nbops.validation", "nbops.evaluation", "nbops.drift", "nbops.telemetry",
             "nbops.registry", "nbops.magics", "nbops.hooks", "nbops.runner", "nbops.cli")
    bad = sorted(m for m in _imports(path) if any(m == a or m.startswith(a + ".") for a in above))
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted(p for p in __import__("pathlib").Path(nbops.__file__).parent.rglob("*.py")
                                        if p.name not in ("__init__.py", "magics.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nothing_but_a_front_end_imports_the_front_end(path):
    """nbops/magics.py is the front end (the argument reader and the error boundary): only the magics modules
    and the extension's loader import it, never the API or a domain's logic."""
    assert not [m for m in _imports(path) if m == "nbops.magics" or m.startswith("nbops.magics.")]

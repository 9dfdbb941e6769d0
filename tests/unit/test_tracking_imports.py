"""tracking/ imports one way: writer -> flusher -> sync -> spool (and each -> outage). Read from the source, so a
lazy import inside a function counts too; an import only for type checking does not."""
import ast
from pathlib import Path

import pytest

TRACKING = Path(__file__).resolve().parents[2] / "src" / "nbops" / "tracking"
# module -> the tracking modules it must never import
NEVER = {"spool": {"writer", "flusher", "sync"}, "outage": {"writer", "flusher", "sync", "spool"},
         "sync": {"writer", "flusher"}, "flusher": {"writer"}}


def _runtime_imports(module: str) -> set[str]:
    tree = ast.parse((TRACKING / f"{module}.py").read_text())
    skip = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbops.tracking."):
            out.add(node.module.split(".")[2])
    return out


@pytest.mark.parametrize("module", sorted(NEVER))
def test_tracking_modules_import_one_way(module):
    assert not _runtime_imports(module) & NEVER[module]

"""``%%track --data a,b --validate REF``: each ``--data`` frame checked against REF's contract (results shown,
logged on the cell's run). Frames that exist before the body runs are checked then -- a violation stops the cell
before its body -- the others right after it (a cell hook, see :data:`nbops.hooks.CELL_HOOKS`)."""
from __future__ import annotations

from ..errors import NbopsError


class validate_data:  # noqa: N801 - named as the hook it is
    def __init__(self, tracker, cell):
        self.cell = cell
        self.pending: list[str] = []

    def __enter__(self):
        opts = self.cell.opts
        if not opts.validate:
            return self
        if not opts.data:
            raise NbopsError("--validate REF checks the --data frames: name them, e.g. --data train --validate REF.")
        ns = self.cell.ns
        self._check([n for n in opts.data if n in ns])
        self.pending = [n for n in opts.data if n not in ns]
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self._check([n for n in self.pending if n in self.cell.ns])  # a missing one: said by --data's check
        return False

    def _check(self, names: list[str]) -> None:
        from ..display import show
        from .api import validate

        for name in names:
            try:
                show(validate(self.cell.ns[name], self.cell.opts.validate, fail=True, name=name))
            except NbopsError as exc:
                if getattr(exc, "result", None) is not None:
                    show(exc.result)
                raise

"""``%%track --data a,b [--snapshot]``: the named frames versioned and logged on the cell's run (a cell hook, see
:data:`nbops.hooks.CELL_HOOKS`). Checks of the frames that can be made before the body runs belong in
``__enter__``; the frames are logged once the body ran (also when it failed: what it trained on stays known)."""
from __future__ import annotations

import logging

from ..errors import NbopsError

log = logging.getLogger("nbops")


class log_data:  # noqa: N801 - named as the hook it is
    def __init__(self, tracker, cell):
        self.tracker, self.cell = tracker, cell

    @staticmethod
    def check(cell) -> None:
        """Before the run starts: a --snapshot frame parquet cannot store (duplicate names) is refused."""
        if cell.opts.snapshot:
            from .record import check_snapshot

            for name in cell.opts.data:
                if name in cell.ns:
                    check_snapshot(cell.ns[name], name)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb) -> bool:
        opts, ns = self.cell.opts, self.cell.ns
        for name in opts.data:
            if name not in ns:
                raise NbopsError(f"--data {name}: no variable named {name!r} after the cell ran; name a DataFrame "
                                 f"the cell uses.", variable=name)
            from .record import log_to_run

            log_to_run(self.tracker, ns[name], name=name, snapshot=opts.snapshot)
        return False

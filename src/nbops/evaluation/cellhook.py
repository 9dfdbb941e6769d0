"""``%%track --model VAR``: remember which run logged the model, so ``%evaluate VAR`` logs on that run (a cell
hook, see :data:`nbops.hooks.CELL_HOOKS`). Which object is the model is the tracking core's answer
(:meth:`nbops.tracking.cell.TrackedCell.model`); a ``--model`` that names no model is said there, not here."""
from __future__ import annotations

import contextlib

from ..errors import NbopsError


@contextlib.contextmanager
def remember_model(tracker, cell):
    yield
    if not cell.opts.model:
        return
    try:
        found = cell.model()
    except NbopsError:
        return
    if found is not None:
        from .models import remember

        remember(found[1], tracker.run_id)

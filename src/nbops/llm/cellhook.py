"""The ``%%track`` cell hook of LLM calls (listed in :data:`nbops.hooks.CELL_HOOKS`): while the cell runs, the
OpenAI SDK's calls are recorded (:mod:`nbops.llm.capture`); when it ends, each call becomes a trace linked to the
cell's run and the run gets its LLM metrics (:mod:`nbops.llm.record`). A cell that makes no LLM call logs nothing.

Budgets: ``%%track --budget-usd X`` is the cell's run's; ``NBOPS_BUDGET_USD`` (``nbops run --budget-usd X``) is the
kernel's, spent across its tracked cells. A call that would pass either is not made: the cell stops with one line,
its run ends FAILED with the tag ``nbops.budget_exceeded`` and the cost spent so far.
"""
from __future__ import annotations

import contextlib
import logging

from . import used

log = logging.getLogger("nbops")
BUDGET_TAG = "nbops.budget_exceeded"
_KERNEL: list = [None, None]   # (NBOPS_BUDGET_USD as read, its Budget): spent across the kernel's tracked cells


def _kernel_budget():
    from .cost import Budget, budget_from_env

    limit = budget_from_env()
    if limit is None:
        return None
    if _KERNEL[0] != limit:
        _KERNEL[0], _KERNEL[1] = limit, Budget(limit)
    return _KERNEL[1]


@contextlib.contextmanager
def record_calls(tracker, cell=None):
    """Context manager for one tracked cell."""
    from . import capture
    from .cost import Budget

    used.clear()
    limit = getattr(getattr(cell, "opts", None), "budget_usd", None)
    cell_budget = Budget(limit) if limit is not None else None
    session = capture.Session([cell_budget, _kernel_budget()])
    capture.start(session)
    try:
        yield session
    finally:
        capture.stop(session)
        try:
            _finish(tracker, session, cell_budget)
        except Exception as exc:  # noqa: BLE001 - recording must never cost the user their cell
            log.warning("nbops: the cell's LLM calls were not recorded: %s", exc)
            tracker.warnings.append(f"LLM calls: {exc}")


def _finish(tracker, session, cell_budget) -> None:
    from . import record

    for call in session.calls:
        if call.t_end is None:  # a stream the cell did not read to its end: what arrived
            session.ended(call, None)
    if session.calls:
        tracker.log_traces(session.records())
        tracker.log_metrics(record.metrics(session.calls))
    stopped = session.stopped
    if stopped is not None:
        tracker.set_tags({BUDGET_TAG: "true", "nbops.budget_usd": stopped.budget_usd})
        if not session.calls:  # stopped at its first call: it spent nothing (llm_cost_usd is the run's own)
            tracker.log_metrics({"llm_cost_usd": 0.0})

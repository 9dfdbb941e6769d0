"""What each domain adds to a ``%%track`` cell: the cell hooks, above the domains and the tracking core.

:func:`nbops.tracking.cell.run_cell` runs a cell with the hooks it is given and knows no domain; the ``%%track``
magic gives it these. Each entry is ``"module:function"``, ``function(tracker, cell)`` returning a context manager
entered before the cell's body and exited right after it (see :mod:`nbops.tracking.cell`). Imported only when a
tracked cell runs; every entry must import (tests/unit/test_registries.py).
"""
CELL_HOOKS: list[str] = [
    "nbops.validation.cellhook:validate_data",     # --validate REF: the --data frames checked before the body
    "nbops.data.cellhook:log_data",                # --data [--snapshot]: versions of the named frames
    "nbops.data.autoversion:versions_reads",       # frames read with pandas.read_csv/read_parquet
    "nbops.evaluation.cellhook:remember_model",    # %evaluate VAR finds the run that logged --model VAR
    "nbops.telemetry.local:system_metrics",        # host samples of the cell's time window under system/
    "nbops.telemetry.overlap:run_incidents",       # host incidents the cell overlapped -> tag nbops.incidents
    "nbops.llm.cellhook:record_calls",             # OpenAI SDK calls -> traces + llm_* metrics; --budget-usd
]

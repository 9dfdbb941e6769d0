"""Live infrastructure telemetry in the notebook: sources (local host, Prometheus, frames), anomaly detectors,
incidents and plots. ``import nbops.telemetry`` is light: pandas, matplotlib and alibi-detect load on first use.

    frame = nbops.telemetry.fetch("prometheus", "rate(node_cpu_seconds_total[1m])", last="1h", url=...)
    scored = nbops.telemetry.detect(frame, detector="auto", sensitivity="medium")
    found = nbops.telemetry.incidents(scored)
    report = nbops.telemetry.analyze("local", last="10m"); report.plot()
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "fetch": "nbops.telemetry.api:fetch",
    "detect": "nbops.telemetry.api:detect",
    "incidents": "nbops.telemetry.api:incidents",
    "analyze": "nbops.telemetry.api:analyze",
    "TelemetryReport": "nbops.telemetry.report:TelemetryReport",
    "Incident": "nbops.telemetry.grouping:Incident",
    "get_sampler": "nbops.telemetry.local:get_sampler",
    "respond": "nbops.telemetry.respond:respond",
    "send_alerts": "nbops.telemetry.alerts:send",
    "run_runbooks": "nbops.telemetry.runbook:run_for_new",
    "Ledger": "nbops.telemetry.lifecycle:Ledger",
}
__all__ = list(_LAZY)


__getattr__ = lazy_getattr("nbops.telemetry", _LAZY, globals())

"""From anomaly to action: what ``%telemetry --alert/--on-incident`` does with a report.

:func:`respond` matches the report's incidents to the ledger (stable keys, first detection), records the report
to MLflow when there is something new to act on (so alerts and runbooks link to the evidence), sends every
incident to Alertmanager, runs the runbook for each new incident (then re-sends, so the alerts name the
runbook's run), and logs the KPIs. The report keeps ``alerts`` and ``runbooks`` and shows them.
"""
from __future__ import annotations

import logging

log = logging.getLogger("nbops")


def respond(report, *, alert: str | bool | None = None, on_incident=None, log_run: bool = False,
            log_new: bool = True, experiment: str | None = None, ledger=None):
    """Act on ``report``. ``alert``: an Alertmanager URL, or ``True`` for ``NBOPS_ALERTMANAGER_URL``;
    ``on_incident``: a runbook notebook; ``log_run``: record the report even when nothing is new; ``log_new``:
    record it when there are new incidents to alert on or run a runbook for (``--live`` refreshes do not: from
    their thread the record could land in the tracked cell the user is running)."""
    from . import alerts as am
    from .lifecycle import Ledger, kpi_line

    ledger = ledger or Ledger()
    url = am.resolve_url(alert if isinstance(alert, str) and alert else None) if alert else None
    if on_incident:
        from .runbook import check_notebook

        check_notebook(on_incident)
    ledger.observe(report)
    if report.run_id is None and (log_run or (log_new and (url or on_incident) and report.new)):
        report.log(experiment=experiment)
    run_url = _run_url(report.run_id)
    if url:
        report.alerts = am.send(report, url, ledger=ledger, run_id=report.run_id, run_url=run_url)
    if on_incident and report.incidents:
        from .runbook import run_for_new

        report.runbooks = run_for_new(report, on_incident, ledger=ledger, experiment=experiment)
        if url and report.runbooks:  # the same alerts again, now naming the runbook's run
            report.alerts = am.send(report, url, ledger=ledger, run_id=report.run_id, run_url=run_url)
    if report.incidents:
        log.info("nbops: telemetry KPIs: %s", kpi_line(report.kpis()))
    return report


def _run_url(run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        from ..tracking.writer import get_writer

        w = get_writer()
        if not w.settings.is_server:
            return None
        run = w.client.get_run(run_id)
        return f"{w.settings.tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    except Exception:  # noqa: BLE001 - a link is a courtesy
        return None

"""Runbooks: a notebook that runs, through ``nbops run``, for each new incident.

``%telemetry ... --on-incident runbook.ipynb`` (or :func:`run_for_new`) executes the notebook with papermill once
per incident the ledger has not run a runbook for, with the incident as parameters:

    incident_id        the ledger's stable key (also the alert's ``incident`` label)
    incident_start     ISO time of the first anomalous point (UTC)
    incident_end       ISO time of the last one ("" while the incident is going on)
    incident_lead      the series that went abnormal first
    incident_metrics   list of the metrics involved
    incident_labels    dict of the labels the incident's series share (host, instance, job, ...)
    incident_peak_score, incident_run_id (the MLflow run holding the telemetry report, "" if none)

The runbook's run is a child of the telemetry report's run (when it was logged) and carries the tags
``nbops.incident.id`` / ``nbops.incident.lead`` / ``nbops.runbook``; its failure (FAILED with the cell and the
error, as any ``nbops run``) is recorded in the ledger and shown with the report. A runbook runs once per
incident, also when the incident is found again later.
"""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import TelemetryError

log = logging.getLogger("nbops")


@dataclass
class RunbookResult:
    incident: str          # ledger key
    notebook: str
    status: str
    run_id: str | None
    output: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    def line(self) -> str:
        head = f"runbook {Path(self.notebook).name} for incident {self.incident}: {self.status}"
        where = f" (run {self.run_id}, output {self.output})" if self.run_id else ""
        return head + where + (f": {self.error}" if self.error else "")

    def __repr__(self) -> str:
        return self.line()

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        return f"<p style='color:{color}'>{html.escape(self.line())}</p>"


def parameters(report, incident, key: str) -> dict:
    from .lifecycle import epoch, iso, lifecycle

    done, end = lifecycle(report, incident)
    return {"incident_id": key, "incident_start": iso(epoch(incident.start)), "incident_end": iso(end) if done else "",
            "incident_lead": incident.lead, "incident_metrics": list(incident.metrics),
            "incident_labels": {str(k): str(v) for k, v in incident.labels.items()},
            "incident_peak_score": round(float(incident.peak_score), 4), "incident_run_id": report.run_id or ""}


def check_notebook(notebook) -> Path:
    p = Path(notebook).expanduser().resolve()
    if p.suffix != ".ipynb" or not p.is_file():
        raise TelemetryError(f"--on-incident {notebook}: no such notebook; give the path of a runbook .ipynb "
                             f"(e.g. notebooks/runbook.ipynb).", path=str(p))
    return p


def run_for_new(report, notebook, *, ledger=None, experiment: str | None = None,
                output_dir=None) -> list[RunbookResult]:
    """Run ``notebook`` for each incident of ``report`` that has had no runbook yet; returns what each did."""
    from .. import config
    from ..runner import run_notebook
    from .lifecycle import Ledger

    nb = check_notebook(notebook)
    ledger = ledger or Ledger()
    if not getattr(report, "keys", None) or set(report.keys) != {i.id for i in report.incidents}:
        ledger.observe(report)

    def claim(data):  # mark before running: a parallel refresh must not start the same runbook
        todo = []
        for inc in report.incidents:
            e = data["incidents"][report.keys[inc.id]]
            if not e.get("runbook"):
                e["runbook"] = {"status": "RUNNING", "notebook": str(nb)}
                todo.append(inc)
        return todo

    todo = ledger.update(claim)
    out_dir = Path(output_dir) if output_dir else config.home() / "runbooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for inc in todo:
        key = report.keys[inc.id]
        tags = {"nbops.incident.id": key, "nbops.incident.lead": inc.lead, "nbops.runbook": nb.name}
        try:
            r = run_notebook(nb, out_dir / f"{nb.stem}-{key}.ipynb", parameters(report, inc, key),
                             experiment=experiment, run_name=f"runbook {nb.stem} {key}", tags=tags,
                             parent_run_id=report.run_id, progress=False)
            err = f"{r.error['ename']}: {r.error['evalue']}"[:300] if r.error else None
            res = RunbookResult(key, str(nb), r.status, r.run_id, r.output, err)
        except Exception as exc:  # noqa: BLE001 - a runbook that cannot start is recorded, never raised
            res = RunbookResult(key, str(nb), "FAILED", None, None, f"{type(exc).__name__}: {exc}"[:300])
        (log.info if res.ok else log.warning)("nbops: %s", res.line())
        results.append(res)

        def record(data, res=res):
            e = data["incidents"].get(res.incident)
            if e is not None:
                e["runbook"] = {"status": res.status, "run_id": res.run_id, "notebook": res.notebook,
                                "output": res.output, "error": res.error}
        ledger.update(record)
    return results

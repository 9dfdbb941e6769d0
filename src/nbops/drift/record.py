"""Recording a drift check in MLflow, through nbops's writer only.

Into the current tracked run (inside ``%%track``) or a new run tagged ``nbops.kind=drift`` (a child of the
scheduled parent run when ``nbops run`` started the kernel): metrics (share drifted, per-column effect and
p-values), parameters, tags (``nbops.drift.is_drift``), the report as JSON and HTML, the figure, and the data
versions of both sides. With a ``models:/`` reference the model version gets ``nbops.drift.status``,
``nbops.drift.checked_at`` and ``nbops.drift.run_id`` (what the promotion gate ``--require-no-drift`` reads).
``on_drift`` runs a notebook with papermill, passing ``drift_run_id``, and records the link on the drift run.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
from pathlib import Path

from ..errors import NbopsError, RunnerError, TrackingError

log = logging.getLogger("nbops")


def record(report, ref, current, *, experiment=None, run_name=None, on_drift=None) -> None:
    """Log ``report`` (sets ``report.run_id``); tag the model version; run ``on_drift`` when drift is found."""
    from ..tracking.run import current as current_run, track

    failure: BaseException | None = None
    t = current_run()
    if t is not None:
        _log(t, report, ref, current)
        failure = _on_drift(t, report, on_drift)
    else:
        name = run_name or f"drift {report.reference} vs {report.current}"[:250]
        t = track(experiment, name, kind="drift")
        try:
            with t:
                _log(t, report, ref, current)
                failure = _on_drift(t, report, on_drift)
        except (TrackingError, OSError) as exc:
            if t.run is not None:  # the run started: a failure of its own, not of the store
                raise
            from ..tracking.mlflow_errors import untracked_note

            report.warnings.append(untracked_note(exc))  # the report is complete and shown all the same
            return
    report.run_id, report.experiment = t.run_id, t.experiment
    if report.model:
        tag_model_version(report)
    if failure is not None:
        raise failure


def metric_key(feature: str) -> str:
    """MLflow accepts letters, digits, ``_ - . / `` and spaces in metric names."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(feature))[:200] or "_"


def _log(t, report, ref, current) -> None:
    import math

    report.run_id, report.experiment = t.run_id, t.experiment
    t.log_params({"drift.p_val": report.p_val, "drift.correction": report.correction,
                  "drift.min_effect": report.min_effect, "drift.test": report.test,
                  "drift.reference": report.reference[:500], "drift.current": report.current[:500],
                  **({"drift.mode": f"spark-{report.mode}"} if report.mode else {})})
    metrics = {"drift.share_drifted": report.share_drifted, "drift.n_drifted": len(report.drifted),
               "drift.is_drift": float(report.is_drift), "drift.n_tests": report.n_tests,
               "drift.duration_s": report.duration_s}
    for f in report.features:
        k = metric_key(f.feature)
        for name, v in (("effect", f.effect), ("p_value", f.p_value), ("p_adjusted", f.p_adjusted),
                        ("missing_p_adjusted", f.missing_p_adjusted)):
            if v is not None and not math.isnan(v) and not math.isinf(v):
                metrics[f"drift.{k}.{name}"] = v
    t.log_metrics(metrics)
    tags = {"nbops.drift.is_drift": "true" if report.is_drift else "false",
            "nbops.drift.drifted": ", ".join(report.drifted)[:4900],
            "nbops.drift.reference": report.reference[:4900]}
    if report.model:
        m = report.model
        tags["nbops.drift.model"] = f"{m['name']}@{m['alias']} v{m['version']}" if m.get("alias") else \
            f"{m['name']} v{m['version']}"
    if ref.run_id:
        tags["nbops.drift.reference_run_id"] = ref.run_id
    t.set_tags(tags)
    _data_versions(t, report, ref, current)
    png = report.png()  # drawn once (the slowest step of a first %drift): report.html embeds the same image
    if png is not None:
        t.log_bytes(png, "drift/figures/drift.png")
    elif (fig := report.plot()) is not None:  # nothing drifted: the largest effects, for the run only
        t.log_figure(fig, "drift/figures/drift.png")
    t.log_text(report.to_json(), "drift/report.json")
    t.log_text(_html_page(report), "drift/report.html")  # the report embeds its plot when something drifted


def _data_versions(t, report, ref, current) -> None:
    try:
        from ..data import log_to_run
    except (ImportError, AttributeError):
        log_to_run = None
    sides = [("reference", ref.data), ("current", current)]
    for side, frame in sides:
        if frame is None:
            continue
        if log_to_run is None:
            report.notes.append("Data versions not recorded: nbops.data.log_to_run is not available.")
            return
        try:
            version = log_to_run(t, frame, name=f"drift_{side}", context=f"drift-{side}")
        except NbopsError as exc:
            report.warnings.append(f"Data version of the {side} side not recorded: {exc}")
            continue
        digest = getattr(version, "digest", None)
        if digest:
            report.data_versions[side] = digest
            t.set_tag(f"nbops.drift.{side}_digest", digest)


def _html_page(report) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title>"
            f"<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} "
            f"td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}</style></head>"
            f"<body>{report._repr_html_()}</body></html>")


def tag_model_version(report) -> None:
    """The last drift status on the model version (read by ``%promote --require-no-drift``)."""
    from ..tracking.writer import get_writer

    w = get_writer()
    m = report.model
    checked = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")  # the gate compares in ms
    tags = {"nbops.drift.status": "drift" if report.is_drift else "no-drift", "nbops.drift.checked_at": checked,
            "nbops.drift.run_id": report.run_id or ""}
    try:
        for k, v in tags.items():
            w.call(w.client.set_model_version_tag, m["name"], m["version"], k, v)
    except Exception as exc:  # noqa: BLE001 - the check itself is recorded; say what could not be tagged
        msg = f"Could not tag model {m['name']} version {m['version']} with the drift status: {exc}"
        report.warnings.append(msg)
        log.warning("nbops: %s", msg)


def _on_drift(t, report, notebook) -> BaseException | None:
    """Run ``notebook`` when the batch drifted (``nbops.runner.run_notebook``: its run becomes a child of the
    drift run); tag the link on the drift run. Returns the failure, if any, to raise once the run is recorded."""
    if not notebook or not report.is_drift:
        return None
    nb = Path(notebook).resolve()
    out = Path(tempfile.mkdtemp(prefix="nbops-ondrift-")) / f"{nb.stem}.out.ipynb"
    report.on_drift = {"notebook": str(nb), "status": "running"}
    log.info("nbops: drift found; running %s", nb)
    from ..runner import run_notebook

    try:
        nr = run_notebook(nb, out, parameters={"drift_run_id": t.run_id}, experiment=t.experiment,
                          run_name=f"{nb.stem} (on drift)", cwd=nb.parent, progress=False)
        report.on_drift.update(status="ok" if nr.ok else "failed", run_id=nr.run_id)
        if not nr.ok:
            report.on_drift["error"] = f"{(nr.error or {}).get('ename')}: {(nr.error or {}).get('evalue')}"
    except NbopsError as exc:
        report.on_drift.update(status="failed", error=str(exc))
    failure = None
    if report.on_drift["status"] != "ok":
        failure = RunnerError(f"The on-drift notebook {nb.name} failed ({report.on_drift.get('error', '')[:300]}); "
                              f"the drift check is recorded in run {t.run_id}.", notebook=str(nb), run_id=t.run_id)
    if out.exists():
        t.log_artifact(str(out), "drift/on_drift")
        report.on_drift["output"] = f"drift/on_drift/{out.name}"
    t.set_tags({"nbops.drift.on_drift": str(nb), "nbops.drift.on_drift_status": report.on_drift["status"],
                "nbops.drift.on_drift_run_id": report.on_drift.get("run_id") or "",
                "nbops.drift.on_drift_output": report.on_drift.get("output", "")})
    t.log_text(report.to_json(), "drift/report.json")  # again, now with the on-drift outcome
    return failure


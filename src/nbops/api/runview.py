"""Runs as JSON-ready records: what JupyterLab's nbops sidebar (through ``/nbops/api/``) and ``%nbops compare``
read about a run -- status, timing, the cell that made it, headline params and metrics, data versions, the
drift / validation / evaluation verdicts the domains tagged it with, the host incidents it overlapped, its
MLflow UI link. Runs still in the local spool (waiting for ``nbops sync``) are read from their journal and
say ``"status": "spooled"``.

Part of :mod:`nbops.api`, above the domains: it reads the tags they write, it imports none of them but
:mod:`nbops.data.version` (a plain class) to read the dataset inputs. See docs/server-api.md for the shapes.
"""
from __future__ import annotations

import json
import math
import time
from ..display.views import iso_ms
from pathlib import Path

from .. import config
from ..errors import NbopsError, RunNotFound, TrackingError

HEADLINE = 8            # params / metrics a list item shows (the detail shows all)
CELL_ID = "nbops.cell_id"
SPOOLED = "spooled"


# ---- small readers ------------------------------------------------------------------------------------------
def _number(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _user_metric(key: str) -> bool:
    return not key.startswith(("nbops.", "system/"))


def headline_metrics(metrics: dict, cap: int | None = HEADLINE) -> dict:
    """The run's own metrics first (no dotted domain prefix such as ``drift.``), then the domains', by name."""
    keys = sorted((k for k in metrics if _user_metric(k)), key=lambda k: ("." in k, k))
    keys = keys if cap is None else keys[:cap]
    return {k: _number(metrics[k]) for k in keys}


def headline_params(params: dict, cap: int | None = HEADLINE) -> dict:
    keys = sorted(params, key=lambda k: ("." in k, k))
    return {k: str(params[k]) for k in (keys if cap is None else keys[:cap])}


def verdicts(tags: dict, metrics: dict) -> dict:
    """The drift / validation / evaluation outcomes the domains recorded on a run (None / [] when none)."""
    drift = None
    if "nbops.drift.is_drift" in tags:
        drifted = [c.strip() for c in (tags.get("nbops.drift.drifted") or "").split(",") if c.strip()]
        drift = {"is_drift": tags["nbops.drift.is_drift"] == "true", "drifted": drifted,
                 "reference": tags.get("nbops.drift.reference")}
    validation = []
    for k in sorted(tags):
        if k.startswith("nbops.validation.") and not k.endswith(".against"):
            status = tags[k]
            validation.append({"data": k[len("nbops.validation."):], "passed": status == "passed", "status": status})
    evaluation = None
    if "nbops.evaluation.task" in tags:
        evaluation = {"task": tags.get("nbops.evaluation.task"), "data": tags.get("nbops.evaluation.data"),
                      "target": tags.get("nbops.evaluation.target"),
                      "metrics": {k: _number(v) for k, v in sorted(metrics.items()) if k.startswith("eval_")}}
    return {"drift": drift, "validation": validation, "evaluation": evaluation}


def data_versions(dataset_inputs, full: bool = False) -> list[dict]:
    """The run's dataset inputs (data versions nbops logged) as records; ``full`` adds each one's schema."""
    from ..data.version import DataVersion, short_digest

    out = []
    for di in dataset_inputs or []:
        ds = di.dataset
        try:
            v = DataVersion.from_dataset(ds)
            rows, schema = v.rows, v.schema
        except Exception:  # noqa: BLE001 - a dataset another tool logged: name and digest are still worth showing
            rows, schema = None, []
        ctx = next((t.value for t in (di.tags or []) if t.key == "mlflow.data.context"), None)
        rec = {"name": ds.name, "digest": ds.digest, "short": short_digest(ds.digest) if ds.digest else None,
               "context": ctx, "rows": rows, "columns": len(schema) if schema else None}
        if full:
            rec["schema"] = [{"name": c.get("name"), "dtype": c.get("type") or c.get("dtype")} for c in schema]
        out.append(rec)
    return out


def _record(*, run_id, run_name, experiment_id, experiment, status, start_ms, end_ms, tags, params, metrics,
            data, url, full: bool, spooled: bool) -> dict:
    if start_ms is not None and end_ms is not None:
        duration = (end_ms - start_ms) / 1000
    elif start_ms is not None and status == "RUNNING":
        duration = max(time.time() - start_ms / 1000, 0.0)
    else:
        duration = None
    count = tags.get("nbops.cell.execution_count")
    rec = {"run_id": run_id, "run_name": run_name, "experiment_id": experiment_id, "experiment": experiment,
           "status": status, "spooled": spooled, "start_time": iso_ms(start_ms), "end_time": iso_ms(end_ms),
           "duration_s": duration, "cell_id": tags.get(CELL_ID),
           "execution_count": int(count) if str(count or "").isdigit() else None,
           "notebook": tags.get("mlflow.source.name"), "kind": tags.get("nbops.kind"),
           "params": headline_params(params, None if full else HEADLINE),
           "metrics": headline_metrics(metrics, None if full else HEADLINE),
           "params_total": len(params), "metrics_total": sum(1 for k in metrics if _user_metric(k)),
           "data": data, "verdicts": verdicts(tags, metrics), "incidents": tags.get("nbops.incidents") or None,
           "url": url}
    if full:
        rec["tags"] = dict(sorted(tags.items()))
        rec["parent_run_id"] = tags.get("mlflow.parentRunId")
    return rec


def store_record(run, experiment: str | None = None, full: bool = False) -> dict:
    """An MLflow ``Run`` as a record."""
    from ..display.links import run_url

    info, d = run.info, run.data
    return _record(run_id=info.run_id, run_name=info.run_name, experiment_id=info.experiment_id,
                   experiment=experiment, status=info.status, start_ms=info.start_time, end_ms=info.end_time,
                   tags=dict(d.tags), params=dict(d.params), metrics=dict(d.metrics),
                   data=data_versions(run.inputs.dataset_inputs if run.inputs else [], full),
                   url=run_url(info.run_id, info.experiment_id), full=full, spooled=False)


# ---- the spool ----------------------------------------------------------------------------------------------
def spool_entry(d: Path) -> dict | None:
    """What a spooled run's folder holds: meta, params, metrics, tags, datasets, end (None when unreadable)."""
    from ..tracking.spool import read_journal, read_meta

    try:
        meta = read_meta(d)
        records = read_journal(d)
    except ValueError:
        return None
    params, metrics, tags = {}, {}, dict(meta.get("tags") or {})
    datasets, end = [], None
    for rec in records:
        if rec["op"] == "log_batch":
            params.update(rec.get("params") or {})
            tags.update(rec.get("tags") or {})
            for k, v, *_ in rec.get("metrics") or []:
                metrics[k] = v
        elif rec["op"] == "log_inputs":
            datasets += rec.get("datasets") or []
        elif rec["op"] == "end_run":
            end = rec
    return {"meta": meta, "params": params, "metrics": metrics, "tags": tags, "datasets": datasets, "end": end}


class _Input:
    """A spooled dataset input shaped like MLflow's ``DatasetInput`` (for :func:`data_versions`)."""

    def __init__(self, d: dict):
        from types import SimpleNamespace

        self.dataset = SimpleNamespace(name=d.get("name"), digest=d.get("digest"), schema=d.get("schema"),
                                       profile=d.get("profile"), source=d.get("source"))
        self.tags = [SimpleNamespace(key="mlflow.data.context", value=d.get("context"))] if d.get("context") else []


def spool_record(d: Path, full: bool = False) -> dict | None:
    """A spooled run as a record: ``status`` is ``spooled`` (``RUNNING`` while a live kernel still runs it)."""
    from ..tracking.spool import Spool

    e = spool_entry(d)
    if e is None:
        return None
    meta, end = e["meta"], e["end"]
    status = SPOOLED if end is not None or not Spool.being_written(d) else "RUNNING"
    return _record(run_id=meta.get("server_run_id") or meta["local_run_id"], run_name=meta.get("run_name"),
                   experiment_id=None, experiment=meta.get("experiment"), status=status,
                   start_ms=meta.get("start_time"), end_ms=end.get("end_time") if end else None, tags=e["tags"],
                   params=e["params"], metrics=e["metrics"],
                   data=data_versions([_Input(x) for x in e["datasets"]], full), url=None, full=full, spooled=True)


def spooled_runs(notebooks: list[str | None], experiment: str | None, landed: set[str]) -> list[dict]:
    """Spooled runs of these notebooks (any notebook for ``[None]``) not yet on the store: ``landed`` holds the
    ids (store ids and ``nbops.spool_id`` tags) of the runs the store returned."""
    from ..tracking.spool import Spool

    out = []
    for d in Spool(config.settings().spool_dir).entries():
        if d.name in landed or not (Spool.being_written(d) or Spool.waiting(d)):  # on the store already
            continue
        rec = spool_record(d)
        if rec is None or rec["run_id"] in landed:
            continue
        if experiment and rec["experiment"] != experiment:
            continue
        if None not in notebooks and rec["notebook"] not in notebooks:
            continue
        out.append(rec)
    return out


# ---- the store ----------------------------------------------------------------------------------------------
def store_unreachable(exc: Exception) -> TrackingError:
    """The one line for a read the store did not take: :func:`~nbops.tracking.mlflow_errors.store_down` when it
    does not answer (never MLflow's connection dump), else the first line of what it said."""
    from ..tracking.mlflow_errors import store_down, unreachable

    if unreachable(exc):
        return store_down()
    uri = config.settings().tracking_uri
    first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return TrackingError(f"could not read runs from {uri}: {first}. Check that the store is reachable and "
                         f"c.Nbops.tracking_uri / MLFLOW_TRACKING_URI points at it.", uri=uri)


def _client():
    from ..tracking.writer import get_writer
    return get_writer().client


def notebook_runs(notebooks: list[str | None], n: int, experiment: str | None = None) -> list[dict]:
    """The ``n`` newest runs recorded for a notebook (each spelling in ``notebooks``; ``[None]``: every notebook),
    from the store and the spool, as records, newest first."""
    from ..tracking.mlflow_errors import quote

    try:
        c = _client()
        if experiment:
            exp = c.get_experiment_by_name(experiment)
            exps = {exp.experiment_id: exp.name} if exp else {}
        else:
            exps = {e.experiment_id: e.name for e in c.search_experiments()}
        runs = []
        if exps:
            for nb in notebooks:
                flt = f"tags.`mlflow.source.name` = {quote(nb)}" if nb else ""
                runs += c.search_runs(list(exps), flt, max_results=n, order_by=["attributes.start_time DESC"])
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow's many ways of saying "cannot reach the store"
        raise store_unreachable(exc) from exc
    rows: dict[str, dict] = {}
    landed: set[str] = set()
    for r in runs:
        if r.info.run_id not in rows:
            rows[r.info.run_id] = store_record(r, exps.get(r.info.experiment_id))
            landed.add(r.info.run_id)
            if r.data.tags.get("nbops.spool_id"):
                landed.add(r.data.tags["nbops.spool_id"])
    for rec in spooled_runs(notebooks, experiment, landed):
        rows.setdefault(rec["run_id"], rec)
    return sorted(rows.values(), key=lambda r: r.get("start_time") or "", reverse=True)[:n]


def _artifacts(c, run_id: str) -> list[str]:
    try:
        return [a.path for a in c.list_artifacts(run_id)]
    except Exception:  # noqa: BLE001 - an artifact store the server cannot read: the run is still shown
        return []


def run_detail(run_id: str) -> dict:
    """One run in full (all params, metrics and tags, data schemas, top-level artifacts), store or spool."""
    return load_run(run_id)[0]


def load_run(run_id: str) -> tuple[dict, list]:
    """``(record, dataset inputs)`` of one run, from the store or else the spool; :class:`RunNotFound` when
    neither has it, a :class:`~nbops.errors.TrackingError` when the store does not answer."""
    from ..tracking.mlflow_errors import not_found, unreachable
    from ..tracking.spool import Spool

    c = _client()
    try:
        run = c.get_run(run_id)
    except Exception as exc:  # noqa: BLE001
        if unreachable(exc) or not (not_found(exc) or "INVALID_PARAMETER_VALUE" in str(exc)):
            raise store_unreachable(exc) from exc
        run = None
    if run is not None:
        try:
            exp = c.get_experiment(run.info.experiment_id).name
        except Exception:  # noqa: BLE001 - the run is still worth showing
            exp = None
        rec = store_record(run, exp, full=True)
        rec["artifacts"] = _artifacts(c, run_id)
        return rec, list(run.inputs.dataset_inputs if run.inputs else [])
    for d in Spool(config.settings().spool_dir).entries():
        if d.name == run_id or _server_id(d) == run_id:
            rec = spool_record(d, full=True)
            if rec is not None:
                rec["artifacts"] = []
                return rec, [_Input(x) for x in spool_entry(d)["datasets"]]
    raise RunNotFound(f"no run {run_id!r} in {config.settings().tracking_uri} nor in the spool: check the run id "
                      f"(`%nbops runs` lists them).", run_id=run_id)


def _server_id(d: Path) -> str | None:
    try:
        return json.loads((d / "meta.json").read_text()).get("server_run_id")
    except (OSError, ValueError):
        return None


def updated_token(runs: list[dict]) -> str:
    """A short token that changes whenever anything in ``runs`` does (durations of RUNNING runs left out, so a
    running cell does not change it every second)."""
    import hashlib

    stable = [{k: v for k, v in r.items() if not (k == "duration_s" and r.get("status") == "RUNNING")} for r in runs]
    return hashlib.sha1(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]

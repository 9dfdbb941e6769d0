"""Which run is promoted, and which model it logged.

A candidate is a finished run that logged a model through MLflow 3 (``%%track --model``): the run's outputs
name its ``LoggedModel``; the registry version is created from that model's ``models:/<model_id>`` URI.
Reads only (``get_writer().client``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..data.version import short_digest
from ..errors import PromotionError
from ..tracking.mlflow_errors import not_found
from .gates import unknown_metric

log = logging.getLogger("nbops")

# Runs written by nbops itself that are never promotion candidates.
_NOT_CANDIDATES = {"promote", "drift", "telemetry", "data", "schedule"}


@dataclass
class Candidate:
    run_id: str
    run_name: str | None
    experiment_id: str
    experiment: str | None
    status: str
    start_ms: int | None
    end_ms: int | None
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    data_versions: list = field(default_factory=list)   # "name short-digest" (data.version.short_digest)
    notebook: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    model_uri: str | None = None

    @property
    def trained_at_ms(self) -> int | None:
        """When the training data was last used: the run's end (its start while it still runs)."""
        return self.end_ms or self.start_ms

    def label(self) -> str:
        return f"{self.run_name or '?'} ({self.run_id[:8]})"


def from_run(client, run, require_model: bool = True) -> Candidate:
    exp_name = None
    try:
        exp_name = client.get_experiment(run.info.experiment_id).name
    except Exception:  # noqa: BLE001 - a name is only for display
        pass
    data = []
    for di in getattr(run.inputs, "dataset_inputs", None) or []:
        data.append(f"{di.dataset.name} {short_digest(str(di.dataset.digest))}")
    c = Candidate(run.info.run_id, run.info.run_name, run.info.experiment_id, exp_name, run.info.status,
                  run.info.start_time, run.info.end_time, dict(run.data.metrics), dict(run.data.params), data,
                  run.data.tags.get("mlflow.source.name"))
    lm = logged_model(client, run, required=require_model)
    if lm is not None:
        c.model_id, c.model_name, c.model_uri = lm.model_id, lm.name, f"models:/{lm.model_id}"
    return c


def get(client, run_id: str) -> Candidate:
    """The candidate for ``--run RUN_ID``: the run must exist, be FINISHED and have logged a model."""
    run_id = (run_id or "").strip()
    if not run_id:
        raise PromotionError("--run needs a run id (see `nbops runs` or the run summary under a %%track cell).")
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001
        if not_found(exc) or "INVALID_PARAMETER_VALUE" in str(getattr(exc, "error_code", "")):
            raise PromotionError(f"Run {run_id!r} does not exist in {client.tracking_uri}: check the id (`nbops "
                                 f"runs` lists recent runs).", run_id=run_id) from None
        raise
    if run.info.lifecycle_stage == "deleted":
        raise PromotionError(f"Run {run_id} is deleted: restore it in the MLflow UI or promote another run.",
                             run_id=run_id)
    if run.info.status != "FINISHED":
        raise PromotionError(f"Run {run_id} is {run.info.status}, not FINISHED: only a run that completed can be "
                             f"promoted.", run_id=run_id)
    return from_run(client, run)


def logged_model(client, run, required: bool = True):
    """The MLflow 3 ``LoggedModel`` the run produced: from the run's model outputs (the last step wins when
    several), else a ``search_logged_models`` on ``source_run_id``. None, or an error when ``required``."""
    run_id = run.info.run_id
    outputs = list(getattr(run.outputs, "model_outputs", None) or []) if run.outputs else []
    models = []
    for o in sorted(outputs, key=lambda o: o.step or 0, reverse=True):
        try:
            models.append(client.get_logged_model(o.model_id))
        except Exception as exc:  # noqa: BLE001
            if not not_found(exc):
                raise
    if not models:
        try:
            models = list(client.search_logged_models([run.info.experiment_id],
                                                      filter_string=f"source_run_id = '{run_id}'"))
            models.sort(key=lambda m: m.creation_timestamp or 0, reverse=True)
        except Exception as exc:  # noqa: BLE001 - an older server without logged models
            log.debug("nbops: search_logged_models failed: %s", exc)
    ready = [m for m in models if str(getattr(m.status, "value", m.status)).upper().endswith("READY")]
    if ready:
        if len(ready) > 1:
            log.info("nbops: run %s logged %d models; promoting the last one (%s)", run_id, len(ready),
                     ready[0].name)
        return ready[0]
    if not required:
        return None
    if models:
        raise PromotionError(f"Run {run_id} logged model {models[0].model_id} but it is not READY "
                             f"({getattr(models[0].status, 'value', models[0].status)}): the upload did not "
                             f"finish; run the training cell again.", run_id=run_id)
    raise PromotionError(f"Run {run_id} ({run.info.run_name}) logged no model: train it with "
                         f"`%%track --model VAR` (or Tracker.log_model) and promote that run.", run_id=run_id)


def experiment_id(client, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None and experiment.isdigit():
        try:
            exp = client.get_experiment(experiment)
        except Exception:  # noqa: BLE001
            exp = None
    if exp is None or exp.lifecycle_stage == "deleted":
        raise PromotionError(f"Experiment {experiment!r} does not exist in {client.tracking_uri}: pass "
                             f"--experiment with the name the training runs used.", experiment=experiment)
    return exp.experiment_id


def search(client, experiment: str, max_results: int = 200):
    """Finished runs of ``experiment`` (newest first), nbops's own bookkeeping runs left out."""
    eid = experiment_id(client, experiment)
    runs = client.search_runs([eid], filter_string="attributes.status = 'FINISHED'", max_results=max_results,
                              order_by=["attributes.start_time DESC"])
    return [r for r in runs if r.data.tags.get("nbops.kind", "track") not in _NOT_CANDIDATES]


def best(client, experiment: str, metric: str, higher: bool, needs=()) -> tuple[Candidate, list[str]]:
    """The finished run with the best ``metric`` among those that logged a model and have every metric in
    ``needs`` (the ones the promotion's gates read: a run that cannot be judged is no candidate); notes say
    which better runs were skipped and why."""
    runs = search(client, experiment)
    if not runs:
        raise PromotionError(f"Experiment {experiment!r} has no finished runs: train and track a model first "
                             f"(`%%track -e {experiment} --model m`).", experiment=experiment)
    having = [r for r in runs if metric in r.data.metrics]
    if not having:
        seen = set().union(*(r.data.metrics for r in runs))
        raise unknown_metric(metric, f"in experiment {experiment!r}", seen, what="any finished run")
    having.sort(key=lambda r: r.data.metrics[metric], reverse=higher)
    notes, unjudged = [], None
    for r in having:
        head = f"skipped run {r.info.run_id[:8]} ({r.info.run_name}, {metric}={r.data.metrics[metric]:.6g})"
        missing = [m for m in dict.fromkeys(needs) if m not in r.data.metrics]
        if missing:
            unjudged = unjudged or (r, missing[0])
            notes.append(f"{head}: no {', '.join(missing)} for the gates to read")
            continue
        if logged_model(client, r, required=False) is None:
            notes.append(f"{head}: no logged model")
            continue
        return from_run(client, r), notes
    if unjudged is not None:
        r, m = unjudged
        has = ", ".join(sorted(k for k in r.data.metrics if not k.startswith(("system/", "nbops.")))) or "none"
        raise PromotionError(f"No finished run of experiment {experiment!r} with {metric!r} has every metric the "
                             f"gates read: run {r.info.run_id} ({r.info.run_name}) has no {m!r} (it has: {has}). "
                             f"Log it in the training cell (or %evaluate the model), or drop that --require.",
                             metric=m, run_id=r.info.run_id)
    raise PromotionError(f"No finished run in experiment {experiment!r} with metric {metric!r} logged a model: "
                         f"train with `%%track --model VAR`.", experiment=experiment)


def listing(client, experiment: str, n: int = 50) -> list[Candidate]:
    """Up to ``n`` recent finished runs that logged a model (for ``--pick``)."""
    out = []
    for r in search(client, experiment, max_results=max(n * 2, 50)):
        if r.outputs is not None and getattr(r.outputs, "model_outputs", None):
            try:
                out.append(from_run(client, r))
            except PromotionError:
                continue
        if len(out) >= n:
            break
    return out

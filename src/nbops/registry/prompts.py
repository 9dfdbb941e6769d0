"""Promotion of prompts: the gates, audit trail and rollback of :mod:`nbops.registry.core`, moving an alias of a
prompt in MLflow's prompt registry (``%promote prompt NAME --alias production --require ...``).

The candidate is a prompt version (the latest, or ``version=``). Its gates read the metrics of its *evidence
run*: the latest finished evaluation of that version (a run tagged ``nbops.evaluation.prompt=NAME/V`` by
``nbops.evaluate(prompt, ...)``), else the latest finished run that loaded it (tag ``nbops.prompts``, written by
``nbops.prompt()`` in a tracked cell), searched in every experiment of the store. ``--must-beat ALIAS`` compares
with the evidence run of the version ALIAS holds.

Writes go in the order of model promotions (gates first; then the audit tags on the prompt version; then
``previous-<alias>`` and ``<alias>``; then the status), through the one writer, with the prompt registry's own
calls (``set_prompt_version_tag``, ``set_prompt_alias``, ``delete_prompt_alias``) standing in for the model
registry's.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..errors import GateFailed, PromotionError
from ..llm.errors import PromptError
from ..llm.prompts import RUN_TAG, check_name, get, used_by, versions
from . import audit, candidates
from .core import (PREVIOUS, beat_gate, preflight, PromotionResult, _apply_rollback, _confirm, _event_run, _event,
                   _move, _mark_failed, _notebook, _registry_error, _set_tags)
from .gates import metric_gates

EVAL_TAG = "nbops.evaluation.prompt"   # "NAME/V" on the run of an evaluation of that prompt version


def _ops(c):
    """The prompt registry's calls under the names the model promotion's writes use."""
    return SimpleNamespace(set_model_version_tag=c.set_prompt_version_tag,
                           delete_model_version_tag=c.delete_prompt_version_tag,
                           set_registered_model_alias=c.set_prompt_alias,
                           delete_registered_model_alias=c.delete_prompt_alias, tracking_uri=c.tracking_uri)


def _alias_version(c, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        pv = c.get_prompt_version_by_alias(name, alias)
    except MlflowException:  # no such alias (INVALID_PARAMETER_VALUE / not found)
        return None
    return str(pv.version) if pv is not None else None


def aliases(c, name: str, *names: str) -> dict:
    """``{alias: version}`` for the aliases asked about that are set."""
    out = {}
    for a in names:
        v = _alias_version(c, name, a)
        if v is not None:
            out[a] = v
    return out


def evidence_run(c, name: str, version) -> object | None:
    """The run whose metrics judge ``name`` v``version``: its latest finished evaluation, else the latest finished
    run that loaded it (see the module docs). None when no run used it."""
    exps = [e.experiment_id for e in c.search_experiments(max_results=50000)]
    if not exps:
        return None
    ref = f"{name}/{int(version)}"
    runs = c.search_runs(exps, filter_string=f"tags.`{RUN_TAG}` LIKE '%{ref}%' and attributes.status = 'FINISHED'",
                         max_results=500, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if (name, int(version)) in used_by(r.data.tags)]
    evals = [r for r in runs if r.data.tags.get(EVAL_TAG) == ref]
    return (evals or runs or [None])[0]


def _candidate(c, name: str, version) -> candidates.Candidate | None:
    run = evidence_run(c, name, version)
    return candidates.from_run(c, run, require_model=False) if run is not None else None


def promote_prompt(name: str, alias: str = "champion", *, version: int | None = None, require=None,
                   must_beat: str | None = None, maximize: bool | None = None, reason: str | None = None,
                   dry_run: bool = False, notebook: str | None = None, log_run: bool = True) -> PromotionResult:
    """Move ``alias`` of prompt ``name`` to ``version`` (default: the latest) only when every gate passes.

    ``require``: metric expressions (``["eval_grounded>=0.9", "llm_cost_per_call_usd<0.002"]``) on the version's
    evidence run (module docs); ``must_beat``: strictly better than the version holding that alias on the first
    ``require`` metric (passes when none holds it). Raises :class:`~nbops.errors.GateFailed` (nothing moved)
    when a gate fails; returns a :class:`~nbops.registry.core.PromotionResult` (``kind="prompt"``)."""
    name, alias, must_beat, exprs, s, w = preflight(name, alias, must_beat, require, dry_run, check_name)
    c = w.client
    vs = versions(name, c)
    if not vs:
        raise PromptError(f"No prompt {name!r} in {s.tracking_uri}: register it with a %%prompt {name} cell first.",
                          prompt=name)
    target = get(name, version if version is not None else vs[-1], client=c)
    v = str(target.version)
    cand = _candidate(c, name, v)
    if cand is None and (exprs or must_beat):
        raise PromotionError(f"No finished run used prompt {name} v{v}, so its gates have no metrics: evaluate it "
                             f"(nbops.evaluate(nbops.prompt('{name}/{v}'), data, scorers=[...])) or load it with "
                             f"nbops.prompt('{name}/{v}') in a %%track cell, then promote again.")
    current = aliases(c, name, alias, PREVIOUS + alias, *([must_beat] if must_beat else []))
    holder = current.get(alias)
    gates = metric_gates(exprs, cand.metrics, cand.run_id) if cand else []
    if must_beat:
        def holder_metric(hv, metric):
            hc = _candidate(c, name, hv)
            return (hc.metrics.get(metric), hc.run_id) if hc else (None, None)

        gates.append(beat_gate(must_beat, exprs[0].metric if exprs else None, cand, maximize, exprs,
                               current.get(must_beat), v, holder_metric,
                               "add a --require on the metric that decides"))
    user, _src = audit.who(s)
    res = PromotionResult(name, alias, "promote", "dry-run" if dry_run else "pending", v, holder, cand, gates,
                          dry_run=dry_run, reason=reason, who=user, notebook=_notebook(notebook),
                          tracking_uri=s.tracking_uri, kind="prompt")
    if cand is None:
        res.notes.append(f"no run used {name} v{v} yet: promoted without metric gates")
    if dry_run:
        if holder and holder != v:
            res.previous_alias_to = holder
        return res
    if res.passed and holder == v:
        res.status = "unchanged"
        return res
    ops = _ops(c)
    with _event_run(res, (cand.experiment if cand else None) or s.experiment, log_run):
        if not res.passed:
            res.status = "gate-failed"
            failed = "; ".join(f"{g.name}: {g.detail}" for g in res.failed_gates)
            raise GateFailed(f"Not promoted: {failed}. '{alias}' of prompt {name} is unchanged "
                             f"({'v' + holder if holder else 'no version'}).", result=res, exit_code=1)
        event = _event(res, "promote", cand.run_id if cand else None)
        tags = audit.event_tags(event, res.gates)
        try:
            _set_tags(w, ops, name, v, tags, target.tags, res.gates)
        except Exception as exc:
            raise _registry_error(exc, ops, f"write the audit tags on version {v} of prompt {name!r}",
                                  f"'{alias}' was not moved.") from None
        new_prev = holder if holder and holder != v else None
        try:
            _move(w, ops, res, v, current, new_prev, drop_previous=False)
        except Exception as exc:
            _mark_failed(w, ops, res, v, event["key"], tags, exc)
            raise _registry_error(exc, ops, f"move '{alias}' of prompt {name!r} to version {v}",
                                  f"'{alias}' is still on {('v' + holder) if holder else 'no version'}.") from None
        res.previous_alias_to = new_prev or current.get(PREVIOUS + alias)
        res.status = "promoted"
        _confirm(w, ops, res, v, event, tags, "promoted")
    return res


def rollback_prompt(name: str, alias: str = "champion", *, reason: str | None = None, dry_run: bool = False,
                    notebook: str | None = None, log_run: bool = True) -> PromotionResult:
    """Move ``alias`` of prompt ``name`` back to the version ``previous-<alias>`` holds (as for models:
    ``previous-<alias>`` then points at the version that one had replaced, or is removed)."""
    name, alias, _, _, s, w = preflight(name, alias, None, (), dry_run, check_name, "rollback")
    c = w.client
    if not versions(name, c):
        raise PromptError(f"No prompt {name!r} in {s.tracking_uri}: nothing to roll back.", prompt=name)
    current = aliases(c, name, alias, PREVIOUS + alias)
    target = current.get(PREVIOUS + alias)
    if target is None:
        raise PromotionError(f"Prompt {name!r} has no '{PREVIOUS}{alias}' alias: there is no earlier version to roll "
                             f"'{alias}' back to (see %promote prompt {name} --history).", alias=alias)
    holder = current.get(alias)
    tv = get(name, target, client=c)
    back = None
    promos = sorted((e for e in audit.events(SimpleNamespace(tags=tv.tags, version=tv.version))
                     if e.get("action") == "promote" and e.get("alias") == alias and e.get("outcome") == "done"),
                    key=lambda e: e["key"])
    if promos and promos[-1].get("replaced") not in (None, "", "none"):
        back = str(promos[-1]["replaced"])
        if back in (holder, target) or int(back) not in versions(name, c):
            back = None
    cand = _candidate(c, name, target)
    user, _src = audit.who(s)
    res = PromotionResult(name, alias, "rollback", "dry-run" if dry_run else "pending", target, holder, cand, [],
                          dry_run=dry_run, reason=reason, who=user, notebook=_notebook(notebook),
                          tracking_uri=s.tracking_uri, previous_alias_to=back, kind="prompt")
    if dry_run:
        return res
    ops = _ops(c)
    with _event_run(res, (cand.experiment if cand else None) or s.experiment, log_run):
        _apply_rollback(w, ops, res, SimpleNamespace(tags=tv.tags, run_id=cand.run_id if cand else None),
                             current, back)
    return res


def history(name: str, alias: str | None = None):
    """Every promotion and rollback of prompt ``name`` (the audit records on its versions), oldest first."""
    from ..tracking.writer import get_writer

    c = get_writer().client
    name = check_name(name)
    vs = versions(name, c)
    if not vs:
        raise PromptError(f"No prompt {name!r} in {c.tracking_uri}: register it with a %%prompt {name} cell.",
                          prompt=name)
    recs, held = [], {}
    for v in vs:
        p = get(name, v, client=c)
        recs += [e for e in audit.events(SimpleNamespace(tags=p.tags, version=v))
                 if alias is None or e.get("alias") == alias]
    for r in recs:
        for a in (r.get("alias"), PREVIOUS + str(r.get("alias"))):
            if a and a not in held:
                hv = _alias_version(c, name, a)
                if hv is not None:
                    held[a] = hv
    recs.sort(key=lambda r: r["key"])
    return audit.PromotionHistory(f"prompt {name}", recs, held)

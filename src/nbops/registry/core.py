"""``nbops.promote`` and ``nbops.rollback``: gates first, then register, audit, move the alias.

Order of work, chosen so that every failure leaves the registry consistent:

1. read: the candidate run and its MLflow 3 logged model, the registered model, its aliases, the version
   already made from this logged model (so promoting the same run twice makes no second version);
2. evaluate every gate (metric expressions, ``must_beat``, ``require_no_drift``) -- nothing is written yet;
   a failed gate raises :class:`~nbops.errors.GateFailed`, ``dry_run`` returns here;
3. write, through the one writer (``get_writer().call``: SQLite lock + retry): the registered model if new;
   the version (created with its audit tags and ``nbops.promote.status=pending`` in the same call) or, when
   it exists, its audit tags; then ``previous-<alias>`` -> the old holder and ``<alias>`` -> the new version;
   then ``status=promoted``. A refused or lost alias move leaves the version with no alias and a status tag
   saying why; the alias never points at a version without its audit.

A small run of kind ``promote`` records each promotion or rollback that was attempted (a child of the
tracked cell or of the scheduled run when there is one); its id is in the audit (``event_run_id``).
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
from dataclasses import dataclass, field
from html import escape

from .. import config
from ..errors import GateFailed, NbopsError, PromotionError, TrackingError
from ..tracking.mlflow_errors import already_exists, not_found, quote
from . import audit, candidates
from .gates import (GateResult, drift_gate, lower_is_better, metric_gates, must_beat_gate, parse_expr,
                    unknown_metric)

log = logging.getLogger("nbops")
_ALIAS = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
PREVIOUS = "previous-"


@dataclass
class PromotionResult:
    """What a promotion (or rollback) decided and did. ``status`` is one of ``promoted``, ``unchanged`` (the
    candidate already held the alias), ``dry-run``, ``gate-failed``, ``rolled-back``."""
    name: str
    alias: str
    action: str = "promote"
    status: str = "pending"
    version: str | None = None          # the version that holds (or would hold) the alias
    replaced: str | None = None         # the version that held it before
    candidate: candidates.Candidate | None = None
    gates: list[GateResult] = field(default_factory=list)
    created: bool = False               # a new version was registered
    dry_run: bool = False
    reason: str | None = None
    who: str | None = None
    who_source: str | None = None       # mlflow | os (audit.who), or the front end that named the user (jupyter)
    when: str | None = None
    notebook: str | None = None
    event_run_id: str | None = None
    previous_alias_to: str | None = None  # where previous-<alias> points after the change
    tracking_uri: str | None = None
    notes: list[str] = field(default_factory=list)
    serve: object = None                # the ServeCheck of --serve-check
    version_tags: dict = field(default_factory=dict)  # extra tags for the version (the serve check's)
    kind: str = "model"                 # "prompt": an alias of a prompt in MLflow's prompt registry

    @property
    def passed(self) -> bool:
        """Every gate passed (True when there were none)."""
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def uri(self) -> str:
        return f"{'prompts' if self.kind == 'prompt' else 'models'}:/{self.name}@{self.alias}"

    def to_frame(self):
        """One row per gate: gate, kind, passed, measured, expected, detail."""
        import pandas as pd

        return pd.DataFrame([g.as_dict() for g in self.gates],
                            columns=["gate", "kind", "passed", "measured", "expected", "detail"])

    def headline(self) -> str:
        c = self.candidate
        run = f"run {c.run_id} ({c.run_name})" if c else "?"
        if self.kind == "prompt":
            run = f"prompt {self.name} v{self.version}" + (f" (metrics of run {c.run_id}, {c.run_name})" if c else "")
        v = f"version {self.version}" if self.version else "a new version"
        was = f"v{self.replaced}" if self.replaced else "no version"
        if self.action == "rollback":
            if self.status == "dry-run":
                return f"Dry run: rollback would move '{self.alias}' of {self.name} from {was} back to v{self.version}."
            return f"Rolled back '{self.alias}' of {self.name}: v{self.replaced} -> v{self.version}."
        if self.status == "promoted":
            return f"Promoted {run} to {self.uri} as {v}" + (f" (replacing v{self.replaced})." if self.replaced
                                                             else " (the first version with this alias).")
        if self.status == "unchanged":
            return f"{run} is already {self.uri} ({v}): nothing to change."
        if self.status == "dry-run":
            verdict = "would be promoted" if self.passed else "would NOT be promoted"
            return f"Dry run: {run} {verdict} to {self.uri} as {v} (now on {was}); nothing was changed."
        if self.status == "gate-failed":
            return f"Not promoted: {len(self.failed_gates)} gate(s) failed for {run}; '{self.alias}' stays on {was}."
        return f"{self.action} of {run} to {self.uri}: {self.status}"

    def __repr__(self) -> str:
        lines = [self.headline()]
        for g in self.gates:
            lines.append("  " + g.line())
        c = self.candidate
        if c:
            what = f"model {c.model_uri}" if self.kind == "model" else f"the metrics of prompt v{self.version}"
            lines.append(f"  candidate: {c.label()} in {c.experiment or c.experiment_id}, {what}")
        meta = [f"{k}: {v}" for k, v in (("by", self.who), ("at", self.when), ("reason", self.reason),
                                         ("previous", f"{PREVIOUS}{self.alias} -> v{self.previous_alias_to}"
                                          if self.previous_alias_to else None),
                                         ("event run", self.event_run_id)) if v]
        if meta:
            lines.append("  " + "; ".join(meta))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display.links import a, model_url, run_link
        from ..display.views import frame_html

        color = {"promoted": "#1a7f37", "rolled-back": "#1a7f37", "unchanged": "#57606a",
                 "dry-run": "#1a7f37" if self.passed else "#cf222e", "gate-failed": "#cf222e"}.get(self.status, "#57606a")
        if self.gates:
            import pandas as pd

            gates = pd.DataFrame([{"result": "pass" if g.passed else "FAIL", "gate": g.name, "measured": _s(g.measured),
                                   "against": _s(g.expected), "detail": g.detail} for g in self.gates])
            table = frame_html(gates, None, highlight=[not g.passed for g in self.gates], css_class="nbops-gates")
        else:
            table = "<p><i>no gates</i></p>"
        c = self.candidate
        facts = []
        if c:
            what = (f"model <code>{escape(str(c.model_uri))}</code>" if self.kind == "model"
                    else f"metrics of prompt v{escape(str(self.version))}")
            facts.append(f"candidate {run_link(c.run_id, c.experiment_id)} ({escape(str(c.run_name))}) in "
                         f"{escape(str(c.experiment or c.experiment_id))}, {what}")
        if self.version and self.kind == "prompt":
            facts.append(f"version {escape(str(self.version))} of prompt {escape(self.name)}")
        elif self.version:
            facts.append(f"version {a(model_url(self.name, self.version), 'v' + str(self.version))} of "
                         f"{a(model_url(self.name), self.name)}")
        for k, v in (("by", self.who), ("at", self.when), ("reason", self.reason)):
            if v:
                facts.append(f"{k}: {escape(str(v))}")
        if self.event_run_id:
            facts.append(f"event run {run_link(self.event_run_id)}")
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f"<div class='nbops-promotion'><p style='color:{color}'><b>{escape(self.headline())}</b></p>"
                f"{table}<p style='font-size:90%'>{'<br>'.join(facts)}</p>"
                f"{f'<ul>{notes}</ul>' if notes else ''}</div>")


def _s(v) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


# -- validation ---------------------------------------------------------------------------------------------
def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or any(ch in name for ch in "/@:'\"") or len(name) > 256:
        raise PromotionError(f"{name!r} is not a registered model name nbops can address as models:/NAME@alias: "
                             f"use letters, digits, '-', '_', '.' or spaces (at most 256 characters).", model=name)
    return name


def check_alias(alias: str, option: str = "--alias") -> str:
    alias = (alias or "").strip()
    if not _ALIAS.match(alias) or len(alias) > 255:
        raise PromotionError(f"{option} {alias!r}: an alias may only hold letters, digits, '_' and '-'.", alias=alias)
    if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        raise PromotionError(f"{option} {alias!r} is reserved by MLflow (latest, v1, v2, ...): pick another name.",
                             alias=alias)
    if alias.startswith(PREVIOUS):
        raise PromotionError(f"{option} {alias!r}: aliases starting with {PREVIOUS!r} are kept by nbops for "
                             f"--rollback; promote to {alias[len(PREVIOUS):]!r} instead.", alias=alias)
    return alias


def _direction(metric: str, maximize: bool | None, exprs) -> bool:
    """True when higher is better: --max/--min, else the first --require on the metric (>= means higher),
    else the metric's name (loss, error, rmse, latency, ... are lower-is-better)."""
    if maximize is not None:
        return bool(maximize)
    for e in exprs:
        if e.metric == metric and e.op in (">", ">=", "<", "<="):
            return e.op.startswith(">")
    return not lower_is_better(metric)


# -- registry reads -----------------------------------------------------------------------------------------
def registered_model(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if not_found(exc):
            return None
        raise _registry_error(exc, client, f"read registered model {name!r}")


def _existing_version(client, name: str, cand, held=()):
    """The version already made from the candidate's logged model (the alias holder first, then the newest)."""
    found = [mv for mv in client.search_model_versions(f"name={quote(name)} and run_id={quote(cand.run_id)}")
             if (getattr(mv, "model_id", None) == cand.model_id) or mv.source == cand.model_uri]
    held = {str(v) for v in held}
    found.sort(key=lambda mv: (str(mv.version) in held, int(mv.version)), reverse=True)
    return found[0] if found else None


def _version(client, name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not_found(exc):
            return None
        raise


def _registry_error(exc, client, doing: str, after: str = "Nothing was changed.") -> PromotionError:
    from ..tracking.outage import is_unreachable

    uri = client.tracking_uri
    if is_unreachable(exc):  # MLflow's connection dump says no more than this (the server API answers it 503)
        return PromotionError(f"The registry at {uri} did not answer when nbops tried to {doing}. {after} "
                              "Try again when it is back.", uri=uri, cause=exc)
    msg = str(getattr(exc, "message", None) or exc).strip().splitlines()[0][:300]
    code = getattr(exc, "error_code", "") or ""
    if "PERMISSION_DENIED" in code or "403" in msg or "Permission denied" in msg or "UNAUTHENTICATED" in code:
        hint = " Ask an admin for EDIT or MANAGE permission on the registered model (and check " \
               "MLFLOW_TRACKING_USERNAME/PASSWORD)."
    else:
        hint = ""
    return PromotionError(f"The registry at {uri} refused to {doing}: {msg}. {after}{hint}", uri=uri, cause=exc)


def _holder_metric(client, name: str, version: str, metric: str):
    mv = _version(client, name, version)
    if mv is None or not mv.run_id:
        return None, None
    try:
        return client.get_run(mv.run_id).data.metrics.get(metric), mv.run_id
    except Exception as exc:  # noqa: BLE001 - a deleted run: nothing to compare with
        if not_found(exc):
            return None, mv.run_id
        raise


def _notebook(notebook: str | None) -> str | None:
    if notebook:
        return notebook
    from ..tracking.notebook import notebook_path

    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip else None
    try:
        return notebook_path(shell.user_ns if shell is not None else None)
    except Exception:  # noqa: BLE001
        return None


# -- the API ------------------------------------------------------------------------------------------------
def _check_which_run(run, best) -> None:
    if run and best:
        raise PromotionError("Pass either --run RUN_ID or --best METRIC, not both.")
    if not run and not best:
        raise PromotionError("Which run? Pass --run RUN_ID or --best METRIC [--experiment E] (or --pick in a "
                             "notebook to choose from a table).")


def _gates(c, name, cand, exprs, best, maximize, must_beat, require_no_drift, aliases, existing) -> list:
    """The metric, must-beat and no-drift gates of a promotion (the serve check comes after them)."""
    gates = metric_gates(exprs, cand.metrics, cand.run_id)
    if must_beat:
        hv = aliases.get(must_beat)
        gates.append(beat_gate(must_beat, best or (exprs[0].metric if exprs else None), cand, maximize, exprs,
                               str(hv) if hv is not None else None, existing.version if existing else None,
                               lambda v, metric: _holder_metric(c, name, v, metric),
                               "pass --best METRIC, or a --require on the metric that decides"))
    if require_no_drift:
        where = f"version {existing.version} of {name!r}" if existing else \
            f"run {cand.run_id} (no version of {name!r} made from it yet)"
        gates.append(drift_gate(existing.tags if existing else None, cand.trained_at_ms, where))
    return gates


def beat_gate(must_beat: str, metric: str | None, cand, maximize, exprs, holder: str | None,
              cand_version: str | None, holder_metric, hint: str) -> GateResult:
    """The ``--must-beat`` gate of any promotion: ``cand`` on ``metric`` (None: an error that says ``hint``)
    against the version ``holder`` holding the alias (None: nobody), whose ``(value, run id)`` comes from
    ``holder_metric(version, metric)``; not read when the candidate is that version."""
    if metric is None:
        raise PromotionError(f"--must-beat {must_beat} needs a metric to compare: {hint}.")
    if metric not in cand.metrics:
        raise unknown_metric(metric, cand.run_id, cand.metrics)
    hval, hrun = None, None
    if holder is not None and holder != (str(cand_version) if cand_version is not None else None):
        hval, hrun = holder_metric(holder, metric)
    return must_beat_gate(must_beat, metric, _direction(metric, maximize, exprs), float(cand.metrics[metric]),
                          holder, hval if hval is None else float(hval), cand_version, hrun)


def preflight(name, alias, must_beat, require, dry_run: bool, name_check, action: str = "promotion"):
    """What every promotion or rollback (a model's or a prompt's) checks first: the names (``name_check`` for
    ``name``), the gates' expressions, and that the registry is not switched off. Returns ``(name, alias,
    must_beat, exprs, settings, writer)``."""
    from ..tracking.writer import get_writer

    name, alias = name_check(name), check_alias(alias)
    must_beat = check_alias(must_beat, "--must-beat") if must_beat else None
    exprs = [parse_expr(e) for e in (require or ())]
    s = config.settings()
    if s.offline and not dry_run:
        raise PromotionError(f"NBOPS_OFFLINE=1 is set: a {action} needs the registry. Unset it and try again.")
    return name, alias, must_beat, exprs, s, get_writer(s)


def promote(name: str, run: str | None = None, *, best: str | None = None, experiment: str | None = None,
            maximize: bool | None = None, alias: str = "champion", require=(), must_beat: str | None = None,
            require_no_drift: bool = False, reason: str | None = None, dry_run: bool = False,
            notebook: str | None = None, log_run: bool = True, serve_check: bool = False,
            serve_data=None, who: tuple[str, str] | None = None) -> PromotionResult:
    """Register the model that run ``run`` logged (or the ``best`` run of ``experiment`` on a metric) as a version
    of ``name`` and move ``alias`` to it -- only if every gate passes.

    Gates: ``require`` (``["accuracy>=0.85", "latency_ms<50"]``), ``must_beat`` (an alias whose version the
    candidate must strictly beat on ``best`` or on the first ``require`` metric; passes when no version holds it),
    ``require_no_drift`` (a ``no-drift`` check on the candidate's version newer than the end of its training run).
    ``maximize`` (True/False) overrides which direction is better. ``dry_run`` evaluates and changes nothing.
    ``serve_check`` serves the candidate with ``mlflow models serve`` and checks its answers on ``serve_data``
    (default: the sample ``%evaluate`` kept, else the run's data snapshot) before anything moves; a pass tags
    the version ``nbops.serve_check=passed`` with the latency (see :mod:`nbops.registry.serve`).
    ``who``: ``(user, source)`` to record in the audit instead of :func:`nbops.registry.audit.who` (the
    Jupyter server names its logged-in user: ``(name, "jupyter")``).

    Returns a :class:`PromotionResult`; raises :class:`~nbops.errors.GateFailed` (with ``.result``) when a gate
    fails and :class:`~nbops.errors.PromotionError` when the promotion cannot be done as asked.
    """
    name, alias, must_beat, exprs, s, w = preflight(name, alias, must_beat, require, dry_run, check_name)
    _check_which_run(run, best)
    c = w.client
    notes: list[str] = []
    if run:
        cand = candidates.get(c, run)
    else:
        cand, notes = candidates.best(c, experiment or s.experiment, best, _direction(best, maximize, exprs),
                                      needs=[e.metric for e in exprs])
    rm = registered_model(c, name)
    aliases = dict(getattr(rm, "aliases", {}) or {}) if rm else {}
    existing = _existing_version(c, name, cand, aliases.values()) if rm else None
    holder = aliases.get(alias)
    holder = str(holder) if holder is not None else None

    gates = _gates(c, name, cand, exprs, best, maximize, must_beat, require_no_drift, aliases, existing)

    serve = None
    if serve_check:
        if all(g.passed for g in gates):
            serve = _serve_gate(c, cand, serve_data, gates)
        else:
            notes.append("serve check not run: other gates failed")
    user, src = who or audit.who(s)
    res = PromotionResult(name, alias, "promote", "dry-run" if dry_run else "pending",
                          str(existing.version) if existing else None, holder, cand, gates, dry_run=dry_run,
                          reason=reason, who=user, who_source=src, notebook=_notebook(notebook),
                          tracking_uri=s.tracking_uri, notes=notes)
    if serve is not None:
        res.serve = serve
        if serve.passed:
            res.version_tags.update(serve.tags())
    if existing is not None:
        res.notes.append(f"reusing version {existing.version}, already registered from this run's model")
    if dry_run:
        if holder and holder != res.version:
            res.previous_alias_to = holder
        return res
    if res.passed and existing is not None and holder == str(existing.version):
        res.status = "unchanged"
        return res
    with _event_run(res, cand.experiment or s.experiment, log_run):
        if not res.passed:
            res.status = "gate-failed"
            failed = "; ".join(f"{g.name}: {g.detail}" for g in res.failed_gates)
            raise GateFailed(f"Not promoted: {failed}. '{alias}' of {name} is unchanged "
                             f"({'v' + holder if holder else 'no version'}).", result=res, exit_code=1)
        _apply(w, c, res, candidate=cand, existing_version=existing, registered=rm, aliases=aliases)
    return res


def rollback(name: str, alias: str = "champion", *, reason: str | None = None, dry_run: bool = False,
             notebook: str | None = None, log_run: bool = True,
             who: tuple[str, str] | None = None) -> PromotionResult:
    """Move ``alias`` back to the version ``previous-<alias>`` points at. ``previous-<alias>`` then points at the
    version *that* one had replaced (so repeated rollbacks walk back through the promotions), or is removed.
    ``who``: ``(user, source)`` for the audit, as for :func:`promote`."""
    name, alias, _, _, s, w = preflight(name, alias, None, (), dry_run, check_name, "rollback")
    c = w.client
    rm = registered_model(c, name)
    if rm is None:
        raise PromotionError(f"No registered model {name!r} in {s.tracking_uri}: nothing to roll back.", model=name)
    aliases = {k: str(v) for k, v in (getattr(rm, "aliases", {}) or {}).items()}
    target = aliases.get(PREVIOUS + alias)
    if target is None:
        raise PromotionError(f"{name!r} has no '{PREVIOUS}{alias}' alias: there is no earlier version to roll "
                             f"'{alias}' back to (see `nbops promote history {name}`).", model=name)
    holder = aliases.get(alias)
    tv = _version(c, name, target)
    if tv is None:
        raise PromotionError(f"'{PREVIOUS}{alias}' points at version {target} of {name!r}, which no longer exists.")
    back = None
    promos = sorted((e for e in audit.events(tv) if e.get("action") == "promote" and e.get("alias") == alias
                     and e.get("outcome") == "done"), key=lambda e: e["key"])
    if promos and promos[-1].get("replaced") not in (None, "", "none"):
        back = str(promos[-1]["replaced"])
        if back in (holder, target) or _version(c, name, back) is None:
            back = None
    cand = None
    if tv.run_id:
        try:
            cand = candidates.from_run(c, c.get_run(tv.run_id), require_model=False)
        except Exception:  # noqa: BLE001 - the source run may be gone; the version still serves
            cand = None
    user, src = who or audit.who(s)
    res = PromotionResult(name, alias, "rollback", "dry-run" if dry_run else "pending", target, holder, cand, [],
                          dry_run=dry_run, reason=reason, who=user, who_source=src, notebook=_notebook(notebook),
                          tracking_uri=s.tracking_uri, previous_alias_to=back)
    if dry_run:
        return res
    with _event_run(res, (cand.experiment if cand else None) or s.experiment, log_run):
        _apply_rollback(w, c, res, tv, aliases, back)
    return res


def _serve_gate(client, cand, data, gates: list) -> object:
    """Serve the candidate for real (:func:`nbops.registry.serve.serve_check`); appends its gate."""
    from .serve import ServeCheck, sample_for, serve_check

    sample = sample_for(client, cand, data)
    if sample is None or len(sample) == 0:
        sc = ServeCheck(False, "no sample to send: run %evaluate on the model (it keeps one), track the "
                               "training data with --data df --snapshot, or pass serve_data=", cand.model_uri)
    else:
        sc = serve_check(cand.model_uri, sample)
    gates.append(GateResult("serve-check", "serve", sc.passed, sc.latency_p95_ms, None, sc.detail))
    return sc


# -- writes -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _event_run(res: PromotionResult, experiment: str, log_run: bool):
    """A small ``kind=promote`` run around the writes; a store that refuses it does not stop the promotion."""
    if not log_run:
        yield None
        return
    from ..tracking.run import Tracker

    c = res.candidate
    params = {"model": res.name, "alias": res.alias, "action": res.action}
    if c:
        params["candidate_run_id"] = c.run_id
    t = Tracker(experiment, f"{res.action} {res.name}@{res.alias}", kind="promote", params=params,
                tags={"nbops.promote.model": res.name, "nbops.promote.alias": res.alias})
    try:
        t.start()
    except (TrackingError, NbopsError) as exc:
        res.notes.append(f"the {res.action} event run was not recorded: {exc}")
        yield None
        return
    res.event_run_id = t.run_id
    try:
        yield t
    except BaseException as exc:
        t.set_tags({"nbops.promote.status": res.status})
        t.finish(exc=exc)
        raise
    for i, g in enumerate(res.gates, 1):
        if isinstance(g.measured, (int, float)):
            t.log_metric(f"gate.{i}.measured", float(g.measured))
        t.set_tag(f"nbops.promote.gate.{i}", f"{'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}"[:4000])
    t.set_tags({"nbops.promote.status": res.status, "nbops.promote.version": res.version or "",
                "nbops.promote.replaced": res.replaced or "none"})
    t.finish()


def _event(res: PromotionResult, action: str, run_id: str | None, model_id: str | None = None) -> dict:
    user, src = (res.who, res.who_source) if res.who and res.who_source else audit.who(config.settings())
    when = audit.now()
    res.when = audit.iso(when)
    return {"key": audit.event_key(when), "action": action, "alias": res.alias, "who": user, "who_source": src,
            "when": res.when, "notebook": res.notebook, "run_id": run_id, "reason": res.reason or "",
            "replaced": res.replaced, "event_run_id": res.event_run_id, "model_id": model_id}


def _set_tags(w, c, name: str, version: str, tags: dict, old_tags: dict, gates) -> None:
    for k in audit.stale_gate_keys(old_tags or {}, gates):
        w.call(c.delete_model_version_tag, name, version, k)
    for k, v in tags.items():
        w.call(c.set_model_version_tag, name, version, k, v)


def _restore_alias(w, c, name: str, alias: str, was: str | None) -> None:
    try:
        if was is None:
            w.call(c.delete_registered_model_alias, name, alias)
        else:
            w.call(c.set_registered_model_alias, name, alias, was)
    except Exception as exc:  # noqa: BLE001
        log.warning("nbops: could not restore alias %s of %s to %s: %s", alias, name, was, exc)


def _mark_failed(w, c, res: PromotionResult, version: str, key: str, tags: dict, exc) -> None:
    why = (f"failed: moving '{res.alias}' to this version was refused or lost at {res.when} "
           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
           f"'{res.alias}' stayed on {('v' + res.replaced) if res.replaced else 'no version'}")
    try:
        w.call(c.set_model_version_tag, res.name, version, audit.STATUS, why)
        w.call(c.set_model_version_tag, res.name, version, key, audit.finished(tags, key, why))
    except Exception as exc2:  # noqa: BLE001 - the registry is gone: the 'pending' status tag says why
        log.warning("nbops: could not mark version %s of %s as failed (its status tag still says pending): %s",
                    version, res.name, exc2)


def _move(w, c, res: PromotionResult, version: str, aliases: dict, new_previous: str | None,
          drop_previous: bool) -> None:
    """Move ``previous-<alias>`` then ``<alias>``; on failure put ``previous-<alias>`` back and re-raise."""
    name, alias = res.name, res.alias
    prev_was = aliases.get(PREVIOUS + alias)
    prev_was = str(prev_was) if prev_was is not None else None
    touched = False
    try:
        if new_previous is not None and new_previous != prev_was:
            touched = True
            w.call(c.set_registered_model_alias, name, PREVIOUS + alias, new_previous)
        elif drop_previous and prev_was is not None:
            touched = True
            w.call(c.delete_registered_model_alias, name, PREVIOUS + alias)
        w.call(c.set_registered_model_alias, name, alias, version)
    except Exception:
        if touched:
            _restore_alias(w, c, name, PREVIOUS + alias, prev_was)
        raise


def _apply(writer, client, res: PromotionResult, candidate, existing_version, registered,
           aliases: dict) -> None:
    """Register ``candidate`` as a new version of ``res.name`` (or, when its run already made
    ``existing_version``, write the audit onto that one), then move the alias. ``registered`` is the
    registered model (None: create it first), ``aliases`` its aliases before the move."""
    name, alias = res.name, res.alias
    event = _event(res, "promote", candidate.run_id, candidate.model_id)
    tags = {**audit.event_tags(event, res.gates), **res.version_tags}
    created_rm = False
    try:
        if registered is None:
            created_rm = _create_registered_model(writer, client, name)
        if existing_version is None:
            mv = writer.call(client.create_model_version, name, source=candidate.model_uri,
                             run_id=candidate.run_id, tags=tags, model_id=candidate.model_id,
                             description=f"Registered by nbops from run {candidate.run_id} "
                                         f"({candidate.run_name}).")
            res.created = True
        else:
            mv = existing_version
            _set_tags(writer, client, name, str(mv.version), tags, existing_version.tags, res.gates)
    except Exception as exc:
        if created_rm and not res.created:
            with contextlib.suppress(Exception):
                writer.call(client.delete_registered_model, name)
        if res.created or existing_version is not None:
            raise _registry_error(exc, client, "write the audit tags on version "
                                  f"{existing_version.version if existing_version else '?'}",
                                  f"'{alias}' was not moved.") from None
        raise _registry_error(exc, client, f"register run {candidate.run_id} as a version of {name!r}") from None
    version = str(mv.version)
    res.version = version
    new_prev = res.replaced if res.replaced and res.replaced != version else None
    try:
        _move(writer, client, res, version, aliases, new_prev, drop_previous=False)
    except Exception as exc:
        _mark_failed(writer, client, res, version, event["key"], tags, exc)
        made = "was registered" if res.created else "exists"
        raise _registry_error(
            exc, client, f"move '{alias}' to version {version}",
            f"Version {version} {made} with its audit tags but no '{alias}' alias (its nbops.promote.status tag "
            f"says why); '{alias}' is still on {('v' + res.replaced) if res.replaced else 'no version'}. Run the "
            f"same promotion again to finish: it reuses version {version}.") from None
    res.previous_alias_to = new_prev or (str(aliases[PREVIOUS + alias]) if PREVIOUS + alias in aliases else None)
    res.status = "promoted"
    _confirm(writer, client, res, version, event, tags, "promoted")


def _apply_rollback(w, c, res: PromotionResult, tv, aliases: dict, back: str | None) -> None:
    name, alias, target = res.name, res.alias, res.version
    event = _event(res, "rollback", tv.run_id)
    tags = audit.event_tags(event, [])
    try:
        _set_tags(w, c, name, target, tags, tv.tags, [])
    except Exception as exc:
        raise _registry_error(exc, c, f"write the rollback audit on version {target}",
                              f"'{alias}' was not moved.") from None
    try:
        _move(w, c, res, target, aliases, back, drop_previous=back is None)
    except Exception as exc:
        _mark_failed(w, c, res, target, event["key"], tags, exc)
        raise _registry_error(exc, c, f"move '{alias}' back to version {target}",
                              f"'{alias}' is still on {('v' + res.replaced) if res.replaced else 'no version'}.") \
            from None
    res.status = "rolled-back"
    _confirm(w, c, res, target, event, tags, "promoted (rollback)")


def _confirm(w, c, res: PromotionResult, version: str, event: dict, tags: dict, status: str) -> None:
    """After the alias moved: mark the event done and the replaced version; a failure here is only a note."""
    try:
        w.call(c.set_model_version_tag, res.name, version, audit.STATUS, status)
        w.call(c.set_model_version_tag, res.name, version, event["key"], audit.finished(tags, event["key"], "done"))
        if res.replaced and res.replaced != version:
            what = "rolled back" if res.action == "rollback" else f"replaced by v{version}"
            w.call(c.set_model_version_tag, res.name, res.replaced, audit.STATUS,
                   f"{what} as '{res.alias}' at {res.when} by {res.who}")
    except Exception as exc:  # noqa: BLE001
        msg = (f"'{res.alias}' moved to v{version} and its audit is on the version, but marking the event done "
               f"failed ({exc}); history shows it as pending")
        res.notes.append(msg)
        log.warning("nbops: %s", msg)


def _create_registered_model(w, c, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        w.call(c.create_registered_model, name, description="Promoted with nbops (%promote).")
        return True
    except MlflowException as exc:
        if already_exists(exc):
            return False
        raise

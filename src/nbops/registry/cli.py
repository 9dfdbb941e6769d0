"""``nbops promote``: the same options as ``%promote``, so a scheduled job can promote too.

    nbops promote NAME --run RUN_ID | --best METRIC [-e E] [--max|--min] [--alias A] [--require EXPR ...]
                  [--must-beat ALIAS] [--require-no-drift] [--reason TEXT] [--dry-run] [--json]
    nbops promote NAME --rollback [--alias A]
    nbops promote history NAME [--alias A] [--json]
    nbops promote prompt NAME [--version N] [--alias A] [--require EXPR ...] [--must-beat ALIAS] | --rollback | --history

Exit codes: 0 promoted / unchanged / rolled back / dry run whose gates pass; 1 a gate failed (nothing changed;
also a dry run whose gates would fail); 2 a promotion that cannot be done as asked (the message says why).
"""
from __future__ import annotations

import argparse
import json
import sys


def add_cli(sub) -> None:
    p = sub.add_parser("promote", help="Promote a run's model in the MLflow Model Registry (gates, audit, "
                                       "rollback); `nbops promote history NAME` lists promotions.",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("name", metavar="NAME", help="Registered model name (or `history` followed by NAME).")
    p.add_argument("history_name", nargs="?", metavar="HISTORY_NAME", help=argparse.SUPPRESS)
    p.add_argument("--rollback", action="store_true", help="Move ALIAS back to the version previous-ALIAS holds.")
    p.add_argument("--history", action="store_true", help="With `prompt NAME`: list its promotions.")
    p.add_argument("--version", type=int, help="With `prompt NAME`: the prompt version to promote (default: the "
                                               "latest).")
    p.add_argument("--run", help="The run whose logged model is promoted.")
    p.add_argument("--best", metavar="METRIC", help="Promote the finished run with the best METRIC that logged a "
                                                    "model.")
    p.add_argument("-e", "--experiment", help="Experiment searched by --best (default: NBOPS_EXPERIMENT or "
                                              "'Default').")
    p.add_argument("--max", dest="maximize", action="store_const", const=True, default=None,
                   help="Higher METRIC is better (default: from a --require on it, else from its name).")
    p.add_argument("--min", dest="maximize", action="store_const", const=False, help="Lower METRIC is better.")
    p.add_argument("--alias", default="champion", help="The alias to move (default: champion).")
    p.add_argument("--require", metavar="EXPR", nargs="+", action="extend", default=[],
                   help="Metric gates, e.g. 'accuracy>=0.85' 'latency_ms<50' (quote them for the shell).")
    p.add_argument("--must-beat", metavar="ALIAS", help="Beat the version holding ALIAS on the --best metric (or "
                                                        "the first --require metric).")
    p.add_argument("--require-no-drift", action="store_true", help="Needs a no-drift check on the candidate's "
                                                                   "version newer than its training run.")
    p.add_argument("--serve-check", action="store_true", help="Serve the candidate with `mlflow models serve` "
                                                          "and check its answers before the alias moves.")
    p.add_argument("--reason", help="Why (kept in the audit trail).")
    p.add_argument("--dry-run", action="store_true", help="Evaluate everything, change nothing.")
    p.add_argument("--no-log", action="store_true", help="Do not record a run of kind 'promote'.")
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    p.set_defaults(func=_promote)


def _promote(a) -> int:
    from ..errors import GateFailed, NbopsError
    from . import history, promote, rollback

    if a.name == "prompt" and a.history_name:
        return _prompt(a)
    if a.history or a.version is not None:
        raise NbopsError("--history and --version are for prompts: nbops promote prompt NAME ...; a model's history "
                         "is `nbops promote history NAME`.")
    if a.name == "history" and a.history_name:
        h = history(a.history_name, alias=a.alias if a.alias != "champion" else None)
        print(json.dumps(h.rows(), indent=2, default=str) if a.json else repr(h))
        return 0
    if a.history_name:
        raise NbopsError(f"Unexpected argument {a.history_name!r}: nbops promote NAME [options], or nbops promote "
                         f"history NAME.")
    if a.rollback:
        res = rollback(a.name, a.alias, reason=a.reason, dry_run=a.dry_run, log_run=not a.no_log)
    else:
        try:
            res = promote(a.name, a.run, best=a.best, experiment=a.experiment, maximize=a.maximize, alias=a.alias,
                          require=a.require, must_beat=a.must_beat, require_no_drift=a.require_no_drift,
                          reason=a.reason, dry_run=a.dry_run, log_run=not a.no_log,
                          serve_check=a.serve_check)
        except GateFailed as exc:
            if getattr(exc, "result", None) is not None:
                _out(exc.result, a.json)
            raise
    _out(res, a.json)
    return 0 if res.passed else 1


def _prompt(a) -> int:
    from ..errors import GateFailed, NbopsError
    from . import prompts

    name = a.history_name
    for opt in ("run", "best", "experiment", "require_no_drift", "serve_check"):
        if getattr(a, opt):
            raise NbopsError(f"--{opt.replace('_', '-')} is for models: a prompt's gates read the runs that evaluated "
                             f"or used the prompt version.")
    if a.history:
        h = prompts.history(name, alias=a.alias if a.alias != "champion" else None)
        print(json.dumps(h.rows(), indent=2, default=str) if a.json else repr(h))
        return 0
    if a.rollback:
        res = prompts.rollback_prompt(name, a.alias, reason=a.reason, dry_run=a.dry_run, log_run=not a.no_log)
    else:
        try:
            res = prompts.promote_prompt(name, a.alias, version=a.version, require=a.require, must_beat=a.must_beat,
                                         maximize=a.maximize, reason=a.reason, dry_run=a.dry_run,
                                         log_run=not a.no_log)
        except GateFailed as exc:
            if getattr(exc, "result", None) is not None:
                _out(exc.result, a.json)
            raise
    _out(res, a.json)
    return 0 if res.passed else 1


def _out(res, as_json: bool) -> None:
    if as_json:
        c = res.candidate
        print(json.dumps({"name": res.name, "alias": res.alias, "action": res.action, "status": res.status,
                          "version": res.version, "replaced": res.replaced, "passed": res.passed,
                          "run_id": c.run_id if c else None, "model_uri": c.model_uri if c else None,
                          "gates": [g.as_dict() for g in res.gates], "who": res.who, "when": res.when,
                          "event_run_id": res.event_run_id, "notes": res.notes}, indent=2, default=str))
    else:
        print(repr(res), file=sys.stdout)

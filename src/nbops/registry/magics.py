"""``%promote``: parse the arguments, call :mod:`nbops.registry`, show the result. No logic of its own.

Imports IPython and light nbops modules only (``%load_ext nbops`` stays fast); MLflow is imported on use.
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import GateFailed, NbopsError
from ..magics import parse


@magics_class
class PromoteMagics(Magics):

    @magic_arguments()
    @argument("name", help="Registered model name (or `prompt` followed by a prompt name).")
    @argument("prompt_name", nargs="?", metavar="PROMPT", help="With `prompt`: the prompt whose alias moves.")
    @argument("--version", type=int, help="With `prompt`: the prompt version to promote (default: the latest).")
    @argument("--rollback", action="store_true", help="Move ALIAS back to the version previous-ALIAS points at.")
    @argument("--history", action="store_true", help="List the promotions and rollbacks of NAME.")
    @argument("--pick", action="store_true", help="Choose the run from a table of candidates (a notebook "
                                                  "frontend is needed; headless, pass --run or --best).")
    @argument("--run", help="The run whose logged model is promoted.")
    @argument("--best", metavar="METRIC", help="Promote the finished run with the best METRIC that logged a model.")
    @argument("-e", "--experiment", help="Experiment searched by --best / --pick (default: the last %%track "
                                         "run's, else NBOPS_EXPERIMENT or 'Default').")
    @argument("--max", dest="maximize", action="store_const", const=True, default=None,
              help="Higher METRIC is better (default: from a --require on it, else from its name).")
    @argument("--min", dest="maximize", action="store_const", const=False, help="Lower METRIC is better.")
    @argument("--alias", default="champion", help="The alias to move (default: champion).")
    @argument("--require", metavar="EXPR", nargs="+", action="extend", default=[],
              help="Metric gates on the candidate run, e.g. accuracy>=0.85 latency_ms<50 (repeatable).")
    @argument("--must-beat", metavar="ALIAS", help="Beat the version holding ALIAS on the --best metric (or the "
                                                   "first --require metric); passes when none holds it.")
    @argument("--require-no-drift", action="store_true",
              help="Needs a no-drift check on the candidate's version newer than the end of its training run.")
    @argument("--serve-check", action="store_true", help="Before the alias moves, serve the candidate with `mlflow "
                                                        "models serve` and compare its answers with in-process "
                                                        "predictions; tags the version nbops.serve_check=passed.")
    @argument("--reason", help="Why (kept in the audit trail).")
    @argument("--dry-run", action="store_true", help="Evaluate everything, change nothing.")
    @argument("--no-log", action="store_true", help="Do not record the promotion as a run of kind 'promote'.")
    @line_magic
    def promote(self, line: str):
        """Promote a tracked run's model in the MLflow 3 Model Registry: register it and move an alias
        (champion by default) to it -- only when every gate passes. The old holder keeps previous-ALIAS,
        so `%promote NAME --rollback` undoes it; the audit (who, when, notebook, run, reason, gates, replaced
        version) is kept as tags on the version. A failed gate changes nothing and fails the cell.

            %promote churn --best accuracy --require accuracy>=0.85 --must-beat champion --reason "Q3 retrain"
            %promote churn --run 3f2a... --dry-run
            %promote churn --rollback        %promote churn --history        %promote churn --pick

        Prompts (MLflow's prompt registry): the gates read the metrics of the latest evaluation of the prompt
        version (nbops.evaluate(prompt, ...)), else of the latest tracked run that loaded it:

            %promote prompt qa --alias production --require "eval_grounded>=0.9" --must-beat production
            %promote prompt qa --alias production --rollback      %promote prompt qa --history
        """
        from .. import registry
        from ..display import show

        a = parse(self.promote, line)
        if a.name == "prompt" and a.prompt_name:
            return self._prompt(a)
        if a.prompt_name:
            raise NbopsError(f"Unexpected argument {a.prompt_name!r}: %promote NAME [options], or %promote prompt "
                             f"NAME [options] for a prompt.")
        if a.version is not None:
            raise NbopsError("--version picks a prompt version: %promote prompt NAME --version N ...")
        modes = [m for m in ("rollback", "history", "pick") if getattr(a, m)]
        if len(modes) > 1:
            raise NbopsError(f"--{modes[0]} and --{modes[1]} cannot be combined: pick one.")
        if a.history:
            show(registry.history(a.name))
            return None
        if a.rollback:
            if a.run or a.best or a.require or a.must_beat or a.require_no_drift:
                raise NbopsError("--rollback takes only --alias, --reason and --dry-run: it moves the alias back "
                                 "without gates.")
            show(registry.rollback(a.name, a.alias, reason=a.reason, dry_run=a.dry_run,
                                   notebook=self._notebook(), log_run=not a.no_log))
            return None
        experiment = a.experiment or self._last_experiment()
        opts = dict(alias=a.alias, require=a.require, must_beat=a.must_beat, require_no_drift=a.require_no_drift,
                    reason=a.reason, maximize=a.maximize, log_run=not a.no_log, notebook=self._notebook())
        if a.serve_check:
            opts["serve_check"] = True
        if a.pick:
            if a.run or a.best:
                raise NbopsError("--pick chooses the run from a table: drop --run/--best, or drop --pick.")
            from .picker import headless_reason

            why = headless_reason()
            if why:
                raise NbopsError(f"--pick needs a notebook frontend to show its table ({why}): pass --run RUN_ID "
                                 f"or --best METRIC instead.")
            show(registry.pick(a.name, experiment, dry_run=a.dry_run, **opts))
            return None
        try:
            result = registry.promote(a.name, a.run, best=a.best, experiment=experiment, dry_run=a.dry_run, **opts)
        except GateFailed as exc:
            if getattr(exc, "result", None) is not None:
                show(exc.result)
            raise
        show(result)
        return None

    def _prompt(self, a):
        from ..display import show
        from . import prompts

        for opt in ("run", "best", "pick", "require_no_drift", "serve_check", "experiment"):
            if getattr(a, opt):
                raise NbopsError(f"--{opt.replace('_', '-')} is for models: a prompt's gates read the runs that "
                                 f"evaluated or used the prompt version.")
        if a.history:
            show(prompts.history(a.prompt_name))
            return None
        if a.rollback:
            if a.require or a.must_beat or a.version is not None:
                raise NbopsError("--rollback takes only --alias, --reason and --dry-run: it moves the alias back "
                                 "without gates.")
            show(prompts.rollback_prompt(a.prompt_name, a.alias, reason=a.reason, dry_run=a.dry_run,
                                         notebook=self._notebook(), log_run=not a.no_log))
            return None
        try:
            result = prompts.promote_prompt(a.prompt_name, a.alias, version=a.version, require=a.require,
                                            must_beat=a.must_beat, maximize=a.maximize, reason=a.reason,
                                            dry_run=a.dry_run, notebook=self._notebook(), log_run=not a.no_log)
        except GateFailed as exc:
            if getattr(exc, "result", None) is not None:
                show(exc.result)
            raise
        show(result)
        return None

    def _last_experiment(self):
        last = self.shell.user_ns.get("_nbops_last_run") if self.shell else None
        return getattr(last, "experiment", None)

    def _notebook(self):
        from ..tracking.notebook import notebook_path

        try:
            return notebook_path(self.shell.user_ns if self.shell else None)
        except Exception:  # noqa: BLE001
            return None

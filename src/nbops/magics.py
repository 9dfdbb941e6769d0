"""The front end of every magic: one argument reader and one error boundary. ``%%track`` and ``%nbops`` live
here too: parse the arguments, call the API, show the result. No logic of their own.

Each domain keeps its magics beside its code (``nbops/<domain>/magics.py``); :data:`MAGIC_CLASSES` lists them
so ``%load_ext nbops`` registers them all, importing only IPython-level modules. Every magic reads its line
with :func:`parse` (shell quoting rules, as a terminal user expects) and every :class:`~nbops.errors.NbopsError`
a magic raises is shown as one line by the boundary :func:`install_error_boundary` puts on the shell.
"""
from __future__ import annotations

import shlex
import sys

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, real_name

from .errors import NbopsError, OptionError
from .api import SYNC_OPTIONS, sync_args
from .argtypes import number

MAGIC_CLASSES = [
    "nbops.magics:TrackMagics",
    "nbops.data.magics:DataMagics",
    "nbops.drift.magics:DriftMagics",
    "nbops.telemetry.magics:TelemetryMagics",
    "nbops.registry.magics:PromoteMagics",
    "nbops.validation.magics:ValidateMagics",
    "nbops.evaluation.magics:EvaluateMagics",
    "nbops.llm.magics:PromptMagics",
]


# ---- arguments ----------------------------------------------------------------------------------------------
def arguments(options):
    """``@argument`` for each ``(flags, keywords)`` in ``options``: options declared once for a magic and its CLI
    command (e.g. :data:`nbops.api.SYNC_OPTIONS`)."""
    def decorate(func):
        for flags, kw in reversed(options):
            func = argument(*flags, **kw)(func)
        return func
    return decorate



def split(line: str, magic: str = "magic") -> list[str]:
    """The magic's line split and unquoted with shell rules: ``-e "my exp"`` is one word ``my exp``,
    ``--tag team="growth team"`` is ``team=growth team``, ``--query 'up{job="x"}'`` keeps its inner quotes."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise OptionError(f"%{magic}: cannot read the line ({exc}): close every quote, or escape it with \\.",
                          option=line) from None


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _unknown_option(parser, argv: list[str]) -> str | None:
    """The first word that looks like an option the parser does not know (checked before argparse, which would
    complain about missing positionals first and never name the bad option)."""
    known = parser._option_string_actions
    for i, tok in enumerate(argv):
        if tok == "--":
            return None
        if not tok.startswith("-") or tok == "-" or _is_number(tok):
            continue
        name = tok.split("=", 1)[0]
        if name in known or (name.startswith("--") and any(o.startswith(name) for o in known)):
            continue
        if not name.startswith("--") and name[:2] in known:  # -e'my exp' -> -emy exp
            continue
        prev = known.get(argv[i - 1]) if i else None
        if prev is not None and prev.nargs != 0:  # the value of the previous option, e.g. --p-val -1
            continue
        return tok
    return None


def parse(magic, line: str):
    """Read a magic's line: split with shell rules (:func:`split`), name any unknown option, parse with the
    magic's ``@argument`` declarations; an empty value (``-e ''``) is refused. Mistakes are one-line
    :class:`~nbops.errors.OptionError`\\ s that say what to do."""
    parser = magic.parser
    name = real_name(magic)
    argv = split(line, name)
    see = f"See %{name}? for the options."
    if any(t in ("-h", "--help") for t in argv):
        raise OptionError(see, option="--help")
    bad = _unknown_option(parser, argv)
    if bad is not None:
        raise OptionError(f"%{name}: unknown option {bad}. {see}", option=bad)
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # argparse exits on some errors even with error() overridden
        raise OptionError(f"%{name}: cannot read {line!r}. {see}", option=line) from None
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - IPython's parser raises UsageError(argparse's message)
        raise OptionError(f"%{name}: {exc}. {see}") from None
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            opt = action.option_strings[-1] if action.option_strings else action.dest
            raise OptionError(f"%{name}: {opt} is empty: give it a value, or leave it out.", option=opt)
    return args


# ---- the error boundary -------------------------------------------------------------------------------------

_BOUNDARY: dict[int, tuple] = {}  # id(shell) -> (custom_exceptions, CustomTB) found before nbops


def _handler(previous):
    exc_types, previous_tb = previous

    def handle(shell, etype, value, tb, tb_offset=None):
        if isinstance(value, NbopsError):  # a user's mistake: one line, as IPython does for UsageError
            sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # %debug still works
            stb = [f"{etype.__name__}: {value}"]
            shell._showtraceback(etype, value, stb)
            return stb
        user_tb = getattr(value, "_nbops_user_tb", None)
        if user_tb is not None:  # a tracked cell failed: its own frames only, as without nbops
            del value._nbops_user_tb
            value.__traceback__ = user_tb
            shell.showtraceback((etype, value, user_tb), tb_offset=0)
            return None
        from .tracking.mlflow_errors import store_down_for

        down = store_down_for(value, tb)
        if down is not None:  # a magic met a tracking store that does not answer: one line, not MLflow's pages
            sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
            stb = [f"{type(down).__name__}: {down}"]
            shell._showtraceback(type(down), down, stb)
            return stb
        if exc_types and isinstance(value, exc_types) and previous_tb is not None:
            return previous_tb(etype, value, tb, tb_offset)
        shell.showtraceback(running_compiled_code=True)  # what IPython does without nbops
        return None

    return handle


def install_error_boundary(shell) -> None:
    """Show NbopsErrors as one line and failed tracked cells with the user's frames only
    (``set_custom_exc``; any handler set before is kept for its exceptions and restored by the uninstall)."""
    if id(shell) in _BOUNDARY or not hasattr(shell, "set_custom_exc"):
        return
    previous = (tuple(shell.custom_exceptions or ()), getattr(shell, "CustomTB", None))
    _BOUNDARY[id(shell)] = previous
    shell.set_custom_exc((BaseException,), _handler(previous))


def uninstall_error_boundary(shell) -> None:
    previous = _BOUNDARY.pop(id(shell), None)
    if previous is None:
        return
    exc_types, custom_tb = previous
    shell.custom_exceptions = exc_types
    if custom_tb is not None:
        shell.CustomTB = custom_tb


@magics_class
class TrackMagics(Magics):

    @magic_arguments()
    @argument("-e", "--experiment", help="MLflow experiment; it becomes the notebook's experiment for the magics "
                                         "that follow (default: the last %%%%track -e, NBOPS_EXPERIMENT, "
                                         "MLFLOW_EXPERIMENT_NAME or 'Default').")
    @argument("-n", "--name", dest="run_name", help="Run name (default: MLflow picks one).")
    @argument("--params", help="Comma-separated variables to log as parameters (default: literal assignments in "
                               "the cell, plus papermill's injected parameters).")
    @argument("--metrics", help="Comma-separated variables to log as metrics (default: numbers the cell assigns "
                                "to metric-like names: accuracy, auc, f1, loss, rmse, ...).")
    @argument("--data", help="Comma-separated DataFrames to version and log as dataset inputs.")
    @argument("--snapshot", action="store_true", help="Also store the --data frames as parquet artifacts (a "
                                                      "later drift check can use them as its reference).")
    @argument("--model", help="Variable holding the fitted model to log (sklearn flavour, pyfunc otherwise). "
                              "Without it the cell's model is the last estimator it builds or fits that predicts "
                              "(its class tagged, not logged); every estimator's hyperparameters are params.")
    @argument("--validate", metavar="REF", help="Check every --data frame against REF's data contract (a %%dataversion name, run:ID, models:/NAME@ALIAS or a YAML file) before the body runs; a violation stops the cell.")
    @argument("--tag", action="append", metavar="K=V", help="A run tag; repeat for more.")
    @argument("--budget-usd", type=number(float, above=0), metavar="USD",
              help="Stop the cell before an LLM call that would take its run's cost past USD (prices: "
                   "NBOPS_LLM_PRICES or nbops.llm.prices()); the run ends FAILED, tagged nbops.budget_exceeded.")
    @cell_magic
    def track(self, line: str, cell: str):
        """Run the cell and record it as one MLflow run: source, parameters, metrics, stdout/stderr, figures,
        notebook, git state, environment, data versions and model; LLM calls made through the OpenAI SDK as traces
        linked to the run. Shows a run summary under the cell.

        The cell's own exception is re-raised unchanged (the run ends FAILED); Ctrl-C ends it KILLED.
        If the tracking store does not answer, records are spooled locally; `nbops sync` pushes them later.
        """
        from .hooks import CELL_HOOKS
        from .tracking.cell import CellOptions, parse_tags, run_cell, split_names

        a = parse(self.track, line)
        opts = CellOptions(experiment=a.experiment, run_name=a.run_name, params=split_names(a.params),
                           metrics=split_names(a.metrics), data=split_names(a.data) or [], model=a.model,
                           tags=parse_tags(a.tag), snapshot=a.snapshot, validate=a.validate,
                           budget_usd=a.budget_usd)
        if opts.model and not opts.model.isidentifier():
            raise NbopsError(f"--model {opts.model!r} is not a variable name.")
        return run_cell(self.shell, cell, opts, hooks=CELL_HOOKS)

    @magic_arguments()
    @argument("command", choices=["runs", "status", "sync", "compare"],
              help="runs: recent runs of this notebook; status: store, experiment, versions; sync: push the spool; "
                   "compare RUN RUN...: params, metrics and data versions side by side.")
    @argument("run_ids", nargs="*", metavar="RUN", help="For `compare`: 2 to 10 run ids (the first is the baseline).")
    @argument("-n", type=number(int, 1), default=10, help="How many runs (for `runs`; 1 or more).")
    @argument("-e", "--experiment", help="Experiment (for `runs`; default: every experiment).")
    @argument("--all", action="store_true", help="For `runs`: runs of every notebook, not only this one.")
    @argument("-o", "--output", metavar="VAR", help="For `runs`: also store the runs DataFrame in VAR; for "
                                                   "`compare`: the comparison (a RunComparison).")
    @arguments(SYNC_OPTIONS)
    @line_magic
    def nbops(self, line: str):
        """%nbops runs [-n N] [-e EXPERIMENT] [--all] [-o VAR] | %nbops status | %nbops sync [--to URI] [--spool DIR] |
        %nbops compare RUN RUN... [-o VAR]

        runs: the most recent runs of this notebook (of every notebook with --all), newest first.
        compare: what differs between runs (the first is the baseline): params, metrics, data versions."""
        from . import api
        from .display import show

        a = parse(self.nbops, line)
        if a.run_ids and a.command != "compare":
            raise NbopsError(f"%nbops {a.command} takes no run ids ({' '.join(a.run_ids)}): "
                             f"did you mean `%nbops compare {' '.join(a.run_ids)}`?")
        given = [flags[-1] for flags, kw in SYNC_OPTIONS if getattr(a, kw["dest"]) is not None]
        if given and a.command != "sync":
            raise NbopsError(f"%nbops {a.command} takes no {' '.join(given)}: that is for `%nbops sync`.")
        if a.command == "compare":
            from .api.compare import compare

            result = compare(a.run_ids)
            if a.output:
                self.shell.user_ns[a.output] = result
            show(result)
            return None
        if a.command == "runs":
            from .tracking.summary import RunsTable
            from .tracking.notebook import notebook_path

            nb = None if a.all else notebook_path(self.shell.user_ns)
            table = RunsTable(api.runs(notebook=nb, n=a.n, experiment=a.experiment), nb)
            if a.output:
                self.shell.user_ns[a.output] = table.to_frame()
            show(table)
            return None
        if a.command == "status":
            st = api.status()
            last = self.shell.user_ns.get("_nbops_last_run")
            if last is not None:
                from .tracking.flusher import resolve

                st.last_run = f"{resolve(last.run_id)} ({last.status}) in experiment {last.experiment!r}"
            show(st)
            return None
        show(api.sync(**sync_args(a)))
        return None

"""``%%track`` and ``%nbops``: parse the arguments, call the API, show the result. No logic of their own.

Each domain keeps its magics beside its code (``nbops/<domain>/magics.py``); :data:`MAGIC_CLASSES` lists them
so ``%load_ext nbops`` registers them all, importing only IPython-level modules.
"""
from __future__ import annotations

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import NbopsError

MAGIC_CLASSES = [
    "nbops.magics:TrackMagics",
    "nbops.data.magics:DataMagics",
    "nbops.drift.magics:DriftMagics",
    "nbops.telemetry.magics:TelemetryMagics",
    "nbops.registry.magics:PromoteMagics",
]


def parse(magic, line: str):
    """``parse_argstring`` with argparse's exit turned into a UsageError that says what to do."""
    try:
        return parse_argstring(magic, line)
    except SystemExit as exc:  # argparse exits on --help
        raise NbopsError(f"See %{magic.__name__}? for the options.") from exc


@magics_class
class TrackMagics(Magics):

    @magic_arguments()
    @argument("-e", "--experiment", help="MLflow experiment (default: NBOPS_EXPERIMENT, MLFLOW_EXPERIMENT_NAME or "
                                         "'Default').")
    @argument("-n", "--name", dest="run_name", help="Run name (default: MLflow picks one).")
    @argument("--params", help="Comma-separated variables to log as parameters (default: literal assignments in "
                               "the cell, plus papermill's injected parameters).")
    @argument("--metrics", help="Comma-separated variables to log as metrics (default: numbers the cell assigns "
                                "to metric-like names: accuracy, auc, f1, loss, rmse, ...).")
    @argument("--data", help="Comma-separated DataFrames to version and log as dataset inputs.")
    @argument("--snapshot", action="store_true", help="Also store the --data frames as parquet artifacts (a "
                                                      "later drift check can use them as its reference).")
    @argument("--model", help="Variable holding the fitted model to log (sklearn flavour, pyfunc otherwise).")
    @argument("--tag", action="append", metavar="K=V", help="A run tag; repeat for more.")
    @cell_magic
    def track(self, line: str, cell: str):
        """Run the cell and record it as one MLflow run: source, parameters, metrics, stdout/stderr, figures,
        notebook, git state, environment, data versions and model. Shows a run summary under the cell.

        The cell's own exception is re-raised unchanged (the run ends FAILED); Ctrl-C ends it KILLED.
        If the tracking store does not answer, records are spooled locally; `nbops sync` pushes them later.
        """
        from .tracking.cell import CellOptions, parse_tags, run_cell, split_names

        a = parse(self.track, line)
        opts = CellOptions(experiment=a.experiment, run_name=a.run_name, params=split_names(a.params),
                           metrics=split_names(a.metrics), data=split_names(a.data) or [], model=a.model,
                           tags=parse_tags(a.tag), snapshot=a.snapshot)
        if opts.model and not opts.model.isidentifier():
            raise NbopsError(f"--model {opts.model!r} is not a variable name.")
        return run_cell(self.shell, cell, opts)

    @magic_arguments()
    @argument("command", choices=["runs", "status", "sync"], help="runs: recent runs of this notebook; status: "
                                                                   "store, experiment, versions; sync: push the spool.")
    @argument("-n", type=int, default=10, help="How many runs (for `runs`).")
    @argument("-e", "--experiment", help="Experiment (for `runs`; default: every experiment).")
    @argument("--all", action="store_true", help="For `runs`: runs of every notebook, not only this one.")
    @argument("-o", "--output", metavar="VAR", help="For `runs`: also store the runs DataFrame in VAR.")
    @line_magic
    def nbops(self, line: str):
        """%nbops runs [-n N] [-e EXPERIMENT] [--all] [-o VAR] | %nbops status | %nbops sync

        runs: the most recent runs of this notebook (of every notebook with --all), newest first."""
        from . import api
        from .display import show

        a = parse(self.nbops, line)
        if a.command == "runs":
            from .display.runs import RunsTable
            from .tracking.notebook import notebook_path

            nb = None if a.all else notebook_path(self.shell.user_ns)
            table = RunsTable(api.runs(notebook=nb, n=a.n, experiment=a.experiment), nb)
            if a.output:
                self.shell.user_ns[a.output] = table.to_frame()
            show(table)
            return None
        if a.command == "status":
            show(api.status())
            return None
        show(api.sync())
        return None

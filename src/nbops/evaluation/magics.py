"""``%evaluate MODEL DATA --target COL``: parse, resolve the variables, call :func:`nbops.evaluate`, show.

Imports IPython and light nbops modules only (``%load_ext nbops`` stays instant).
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..magics import parse
from .errors import EvaluationError


@magics_class
class EvaluateMagics(Magics):

    @magic_arguments()
    @argument("model", help="Model variable (logged with %%track --model), runs:/RUN_ID/model, models:/NAME@ALIAS "
                            "or models:/NAME/VERSION.")
    @argument("data", help="DataFrame variable with the model's input columns and the target.")
    @argument("--target", required=True, help="The target column.")
    @argument("--task", choices=["regression", "classification"], help="Override the inferred task.")
    @argument("--slices", metavar="COLS", help="Comma-separated columns whose groups are scored apart "
                                               "(<metric>_worst_slice, <metric>_slice_gap).")
    @argument("--latency", action="store_true", help="Also time single-row and batch predictions "
                                                     "(latency_p50_ms, latency_p95_ms, batch_rows_per_s).")
    @argument("--run", help="Run to log on when the model's run cannot be found.")
    @argument("--no-log", action="store_true", help="Do not record anything in MLflow.")
    @argument("-e", "--experiment", help="Experiment for an evaluation run of its own (untracked models).")
    @argument("-o", "--output", metavar="VAR", help="Store the EvaluationResult in this variable.")
    @line_magic
    def evaluate(self, line: str):
        """Evaluate a model on labelled data: the task's metrics (r2/rmse/mae or accuracy/f1/precision/recall),
        per group of each --slices column (fairlearn MetricFrame) with the worst group and the gap, and with
        --latency the prediction latency. Logged on the model's run, so %promote --require can gate on them:

        %evaluate model holdout --target cnt --slices season --latency
        %promote bike --run RUN --require "latency_p95_ms<50" "r2_slice_gap<0.1"
        """
        a = parse(self.evaluate, line)
        if a.output and not a.output.isidentifier():
            raise EvaluationError(f"-o {a.output!r} is not a variable name.")
        ns = self.shell.user_ns
        model = a.model
        if not model.startswith(("runs:/", "models:/")):
            if model not in ns:
                raise EvaluationError(f"%evaluate {model}: no variable named {model!r}; give the fitted model, or "
                                      f"runs:/... / models:/NAME@ALIAS.", variable=model)
            model = ns[model]
        if a.data not in ns:
            raise EvaluationError(f"%evaluate: no variable named {a.data!r}; give the DataFrame with the features "
                                  f"and the target (assign an expression to a variable first).", variable=a.data)
        from ..display import show
        from .api import evaluate

        slices = [s.strip() for s in (a.slices or "").split(",") if s.strip()]
        res = evaluate(model, ns[a.data], a.target, task=a.task, slices=slices, latency=a.latency, run=a.run,
                       log_run=not a.no_log, experiment=a.experiment, name=a.data)
        if a.output:
            ns[a.output] = res
        show(res)

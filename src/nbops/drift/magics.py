"""``%drift REFERENCE CURRENT [options]``: parse, resolve the variables, call :func:`nbops.check_drift`, show.

Imports IPython and light nbops modules only (``%load_ext nbops`` must stay instant).
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import DriftError
from ..argtypes import number
from ..magics import parse


@magics_class
class DriftMagics(Magics):

    @magic_arguments()
    @argument("reference", help="DataFrame variable, a prepared Reference, run:<run_id> (that run's data "
                                "snapshot) or models:/<name>@<alias> (the data that model version trained on).")
    @argument("current", help="DataFrame variable holding the new batch (pandas, or a Spark DataFrame: the "
                              "tests then run as Spark jobs).")
    @argument("--features", help="Comma-separated columns to check (default: all; the frames must then match).")
    @argument("--categorical", help="Comma-separated columns to test as categories.")
    @argument("--numeric", help="Comma-separated columns to test as numbers.")
    @argument("--target", help="Target column(s), reported apart from the features.")
    @argument("--prediction", help="Prediction column(s), reported apart from the features.")
    @argument("--p-val", type=number(float, maximum=1, above=0), default=0.05, help="Significance level after correction (default 0.05).")
    @argument("--correction", default="bonferroni", choices=["bonferroni", "fdr", "none"],
              help="Multiple-testing correction across all tests (default bonferroni).")
    @argument("--min-effect", type=number(float, 0, 1), default=None,
              help="Smallest effect that counts as drift: KS distance, total variation distance or change in the "
                   "missing share (default 0.05, i.e. 5%% of rows).")
    @argument("--test", default="ks", choices=["ks", "cvm"], help="Test for numeric columns (default ks).")
    @argument("--sample", type=number(int, 1), help="Test a random sample of at most N rows per side.")
    @argument("--engine", default="nbops", choices=["nbops", "alibi"],
              help="nbops (default: scipy, nothing extra) or alibi (alibi-detect's detectors; needs "
                   "pip install \"nbops[alibi]\").")
    @argument("--sketch", action="store_true", help="Spark DataFrames: test numbers on mergeable KLL quantile "
                                                    "sketches (fast; their rank error is carried into the decision) "
                                                    "instead of an exact distributed sort.")
    @argument("--mmd", action="store_true", help="Also run multivariate MMD (needs nbops[alibi] and PyTorch).")
    @argument("--fail", action="store_true", help="Raise DriftDetected when drift is found (a scheduled run fails).")
    @argument("--on-drift", metavar="NOTEBOOK", help="Run this notebook with papermill when drift is found; it "
                                                    "gets the drift run's id as parameter drift_run_id.")
    @argument("--no-log", action="store_true", help="Do not record the check in MLflow.")
    @argument("-e", "--experiment", help="Experiment for the drift run (outside %%track).")
    @argument("-n", "--name", dest="run_name", help="Run name for the drift run.")
    @argument("-o", "--output", metavar="VAR", help="Store the DriftReport in this variable.")
    @argument("--quiet", action="store_true", help="Do not display the report.")
    @line_magic
    def drift(self, line: str):
        """Compare a new batch with reference data, column by column: test, statistic, p-value, effect size,
        drifted or not; a verdict; plots of the drifted columns; recorded in MLflow.

        %drift train_df new_batch
        %drift models:/churn@champion today --target churned --fail
        %drift run:3f2a9c... batch --on-drift retrain.ipynb -o report
        """
        a = parse(self.drift, line)
        if a.output and not a.output.isidentifier():
            raise DriftError(f"-o {a.output!r} is not a variable name.")
        ref = self._value(a.reference, "reference", allow_reference=True)
        cur = self._value(a.current, "current")
        from . import check_drift
        from .stats import DEFAULT_MIN_EFFECT

        opts = dict(features=a.features, categorical=a.categorical, numeric=a.numeric, target=a.target,
                    prediction=a.prediction, p_val=a.p_val, correction=a.correction,
                    min_effect=DEFAULT_MIN_EFFECT if a.min_effect is None else a.min_effect, test=a.test,
                    engine=a.engine, sample=a.sample, mmd=a.mmd, sketch=a.sketch, log=not a.no_log, experiment=a.experiment, run_name=a.run_name,
                    on_drift=a.on_drift)
        try:
            report = check_drift(ref, cur, **opts, fail=a.fail)
        except Exception as exc:
            report = getattr(exc, "report", None)
            if report is not None:  # --fail: show what drifted, then fail the cell
                self._publish(report, a)
            raise
        self._publish(report, a)
        return None

    def _publish(self, report, a) -> None:
        from ..display import show

        if a.output:
            self.shell.user_ns[a.output] = report
        if a.quiet:
            return
        show(report)  # verdict, table and (when drifted) the plots: one output

    def _value(self, text: str, side: str, allow_reference: bool = False):
        text = text.strip()
        if allow_reference and (text.startswith("run:") or text.startswith("models:")):
            return text
        ns = self.shell.user_ns
        if text in ns:
            return ns[text]
        if text.isidentifier():
            raise DriftError(f"%drift: no variable named {text!r} for the {side} data; define it first"
                             + (" or pass run:<run_id> / models:/<name>@<alias>." if allow_reference else "."))
        try:
            return eval(text, ns)  # an expression such as df[df.yr == 0]
        except Exception as exc:  # noqa: BLE001
            raise DriftError(f"%drift: could not evaluate {text!r} for the {side} data ({type(exc).__name__}: "
                             f"{exc}).") from exc

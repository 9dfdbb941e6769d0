"""``%validate DATA --against REF``: parse, resolve the variable, call :func:`nbops.validate`, show.

Imports IPython and light nbops modules only (``%load_ext nbops`` stays instant); pandera loads on use.
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import DataError
from ..magics import parse


def names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@magics_class
class ValidateMagics(Magics):

    @magic_arguments()
    @argument("data", help="DataFrame variable (or expression) to check.")
    @argument("--against", required=True, metavar="REF",
              help="A data-version name (%%dataversion), run:ID, models:/NAME@ALIAS, a contract YAML file, or a "
                   "DataFrame variable (contract inferred from it).")
    @argument("--fail", action="store_true", help="Raise ValidationFailed on any violation (a scheduled run "
                                                  "fails).")
    @argument("--ignore", metavar="COLS", help="Comma-separated columns to leave out of the check.")
    @argument("--keys", metavar="COLS", help="Key columns that must be unique (when the contract is inferred "
                                             "from a DataFrame variable).")
    @argument("--no-log", action="store_true", help="Do not record the check in MLflow.")
    @argument("-e", "--experiment", help="Experiment for the validation run (outside %%track).")
    @argument("-o", "--output", metavar="VAR", help="Store the ValidationResult in this variable.")
    @line_magic
    def validate(self, line: str):
        """Check DATA against a data contract: columns (missing / unexpected), dtypes, missing values, numeric
        ranges, category sets, unique keys, row count. Violations are shown first, per column, with counts
        and offending values; the result is recorded in MLflow.

        %validate batch --against bike-2011
        %validate batch --against models:/bike-demand@champion --fail
        %validate batch --against contract.yaml --ignore notes -o result
        """
        from ..evaluation.magics import frame_arg, lift_expression

        line, expr = lift_expression(line, 0)
        a = parse(self.validate, line)
        if a.output and not a.output.isidentifier():
            raise DataError(f"-o {a.output!r} is not a variable name.")
        ns = self.shell.user_ns
        data = frame_arg(self.shell, expr or line, 0, a.data, "validate", DataError)
        label = expr or a.data
        against = ns[a.against] if a.against.isidentifier() and a.against in ns and \
            not isinstance(ns[a.against], str) else a.against
        from .api import validate

        try:
            result = validate(data, against, fail=a.fail, ignore=names(a.ignore), keys=names(a.keys) or None,
                              name=label, log_run=not a.no_log, experiment=a.experiment)
        except DataError as exc:
            res = getattr(exc, "result", None)
            if res is not None:  # --fail: show the violations, then fail the cell
                self._publish(res, a)
            raise
        self._publish(result, a)

    def _publish(self, result, a) -> None:
        from ..display import show

        if a.output:
            self.shell.user_ns[a.output] = result
        show(result)

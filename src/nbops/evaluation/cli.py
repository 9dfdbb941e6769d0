"""``nbops evaluate MODEL DATA --target COL``: evaluate a registered or logged model on a CSV/parquet file."""
from __future__ import annotations


def add_cli(sub) -> None:
    p = sub.add_parser("evaluate", help="Evaluate a model (runs:/..., models:/NAME@ALIAS) on a labelled CSV/parquet "
                                        "file; metrics, slices and latency go on the model's run.")
    p.add_argument("model", help="runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION.")
    p.add_argument("path", help="CSV or parquet file with the model's inputs and the target.")
    p.add_argument("--target", required=True)
    p.add_argument("--task", choices=["regression", "classification"])
    p.add_argument("--slices", metavar="COLS")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--no-log", action="store_true")
    p.set_defaults(func=_evaluate)


def _evaluate(a) -> int:
    from ..validation.cli import read_table
    from .api import evaluate

    slices = [s.strip() for s in (a.slices or "").split(",") if s.strip()]
    print(repr(evaluate(a.model, read_table(a.path), a.target, task=a.task, slices=slices, latency=a.latency,
                        log_run=not a.no_log, name=a.path)))
    return 0

"""``nbops validate DATA --against REF`` and ``nbops data contract NAME``: the contract as YAML on stdout.

    nbops data contract bike-2011 > contract.yaml      # edit it, then: %validate df --against contract.yaml
    nbops validate data/new.csv --against contract.yaml [--fail]
"""
from __future__ import annotations

import sys


def add_cli(sub) -> None:
    p = sub.add_parser("validate", help="Check a CSV/parquet file against a data contract (exit 1 on violations "
                                        "with --fail).")
    p.add_argument("path", help="CSV or parquet file to check.")
    p.add_argument("--against", required=True, metavar="REF", help="Data-version name, run:ID, "
                                                                    "models:/NAME@ALIAS or a contract YAML file.")
    p.add_argument("--ignore", metavar="COLS", help="Comma-separated columns to leave out.")
    p.add_argument("--fail", action="store_true", help="Exit 1 when anything is violated.")
    p.add_argument("--no-log", action="store_true", help="Do not record the check in MLflow.")
    p.set_defaults(func=_validate)
    data = sub.choices.get("data")
    dsub = None
    if data is not None:  # `nbops data contract NAME`, beside `nbops data history`
        dsub = next((a for a in data._actions if a.__class__.__name__ == "_SubParsersAction"), None)
    c = (dsub or sub).add_parser("contract" if dsub else "data-contract",
                                 help="Print the data contract of a data-version name, run:ID, models:/NAME@ALIAS "
                                      "or a CSV/parquet file as YAML (pandera's schema format).")
    c.add_argument("ref", metavar="NAME")
    c.add_argument("--keys", metavar="COLS", help="Key columns (when inferring from a file).")
    c.set_defaults(func=_contract)


def read_table(path: str):
    import pandas as pd

    from ..errors import DataError

    low = path.lower()
    try:
        if low.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"No file {path}.", path=path) from None


def _contract(a) -> int:
    from pathlib import Path

    from .magics import names
    from .store import resolve

    ref = a.ref
    if Path(ref).is_file() and not ref.lower().endswith((".yaml", ".yml")):
        ref = read_table(ref)
    contract, _ = resolve(ref, keys=names(a.keys) or None)
    sys.stdout.write(contract.to_yaml())
    return 0


def _validate(a) -> int:
    from .api import validate
    from .errors import ValidationFailed
    from .magics import names

    try:
        res = validate(read_table(a.path), a.against, fail=a.fail, ignore=names(a.ignore), name=a.path,
                       log_run=not a.no_log)
    except ValidationFailed as exc:
        print(repr(exc.result))
        return 1
    print(repr(res))
    return 0

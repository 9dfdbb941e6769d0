"""The ``nbops`` command: parse options, call the API, print the result, exit with the right code.

Each domain adds its subcommands through an ``add_cli(subparsers)`` function in its own module (listed in
:data:`CLI_MODULES`); a subcommand sets ``func`` to a callable taking the parsed namespace and returning an
exit code. A user's mistake (an :class:`~nbops.errors.NbopsError`) prints one line and exits 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys

from . import config
from .argtypes import number  # noqa: F401 - re-exported: runner imports it from here
from .errors import NbopsError

CLI_MODULES = ["nbops.cli", "nbops.data.cli", "nbops.registry.cli", "nbops.runner", "nbops.server.cli",
               "nbops.validation.cli", "nbops.evaluation.cli"]


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (what was wrong, and where to read more), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_cli(sub) -> None:
    p = sub.add_parser("ui", help="Start the MLflow UI on the configured store (the embedded one by default).")
    p.add_argument("--port", type=number(int, 1, 65535), default=5000)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_ui)
    p = sub.add_parser("status", help="Show the store, the experiment, the spool and the versions in use.")
    p.set_defaults(func=lambda a: _print(__import__("nbops.api", fromlist=["status"]).status()))
    p = sub.add_parser("runs", help="List recent runs.")
    p.add_argument("-n", type=number(int, 1), default=10, help="How many runs (1 or more; default 10).")
    p.add_argument("-e", "--experiment")
    p.add_argument("--notebook", help="Only runs of this notebook path.")
    p.set_defaults(func=_runs)
    p = sub.add_parser("sync", help="Push spooled records (made while the store was unreachable) to the store each "
                                    "run was recorded for.")
    from .api import SYNC_OPTIONS

    for flags, kw in SYNC_OPTIONS:
        p.add_argument(*flags, **kw)
    p.set_defaults(func=_sync)


def _print(obj) -> int:
    print(obj if isinstance(obj, str) else repr(obj))
    return 0


def _ui(a) -> int:
    s = config.settings()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", s.tracking_uri, "--host", a.host,
           "--port", str(a.port)]
    if s.embedded:
        s.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", s.artifact_root]
    print(f"MLflow UI on http://{a.host}:{a.port} for {s.describe()} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def _runs(a) -> int:
    from .api import runs
    import pandas as pd

    df = runs(notebook=a.notebook, n=a.n, experiment=a.experiment)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False) if len(df) else "no runs")
    return 0


def _sync(a) -> int:
    from .api import sync, sync_args

    # MLflow prints "View run ... / View experiment ..." for every run it ends on a server: the report says it once
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    report = sync(**sync_args(a))
    print(report)
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nbops", description="Notebook-native MLOps over MLflow.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """The CLI on ``argv``; the exit code. ``own_process``: this is the ``nbops`` command's own process (see
    :func:`console`), which a command may set up for itself; called from a user's Python, nothing of the kind."""
    parser = build_parser()
    a = parser.parse_args(argv)
    a.own_process = own_process
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="%(message)s")
    from .tracking.redact import Filter  # what the console shows is masked too (cron keeps it in a log file)

    for h in logging.getLogger().handlers:
        if not any(isinstance(f, Filter) for f in h.filters):
            h.addFilter(Filter())
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        return int(a.func(a) or 0)
    except NbopsError as exc:
        from .tracking.redact import text

        print(f"nbops: {text(str(exc))}", file=sys.stderr)
        code = getattr(exc, "exit_code", None)  # a declared field: None when the error did not set one
        return 2 if code is None else int(code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a store that does not answer is one line; anything else as is
        from .tracking.mlflow_errors import store_down_for

        down = store_down_for(exc)
        if down is None:
            raise
        print(f"nbops: {down}", file=sys.stderr)
        return 2


def console() -> None:
    """The ``nbops`` command (and ``python -m nbops.cli``): a process of its own, so a command may change what
    only concerns that process (``nbops run`` adopts the orphans of its tree)."""
    sys.exit(main(own_process=True))


if __name__ == "__main__":
    console()

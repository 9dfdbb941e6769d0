"""Small public functions that do not belong to one domain: recent runs, status, sync. Above the domains, beside
them: :mod:`.runview` (runs as JSON-ready records for the server API) and :mod:`.compare` (``%nbops compare``)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from .. import config


def runs(notebook: str | None = None, n: int = 10, experiment: str | None = None):
    """The ``n`` most recent runs (of ``notebook`` when given) as a DataFrame, newest first. Runs still being
    written in the background are waited for first (the writer's client does, bounded by
    ``NBOPS_FLUSH_TIMEOUT_S``)."""
    from ..tracking.writer import get_writer

    w = get_writer()
    client = w.client
    if experiment:
        exp = client.get_experiment_by_name(experiment)
        ids = [exp.experiment_id] if exp else []
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        import pandas as pd
        return pd.DataFrame()
    flt = ""
    if notebook:
        from ..tracking.mlflow_errors import quote

        flt = f"tags.`mlflow.source.name` = {quote(notebook)}"
    import mlflow

    with w.reading():
        df = mlflow.search_runs(experiment_ids=ids, filter_string=flt, max_results=n, order_by=["start_time DESC"])
    keep = [c for c in df.columns if c in ("run_id", "experiment_id", "tags.mlflow.runName", "status", "start_time",
                                           "end_time", "tags.nbops.incidents")
            or c.startswith(("params.", "metrics.")) and not c.startswith("metrics.nbops.")
            and not c.startswith("metrics.system/")]
    return df[keep].rename(columns={"tags.mlflow.runName": "run_name", "tags.nbops.incidents": "incidents"}) \
        .dropna(axis=1, how="all")


@dataclass
class Status:
    store: str
    experiment: str
    spool: str
    pending: int
    versions: dict
    last_run: str | None = None     # the kernel's last tracked run and its experiment (set by %nbops status)
    writing: int = 0                # spooled runs a live process is still writing to the store itself

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("store", self.store), ("experiment", f"{self.experiment} (the default for new runs)")]
        if self.last_run:
            rows.append(("last run", self.last_run))
        writing = f", {self.writing} being written by running kernels" if self.writing else ""
        return rows + [("spool", f"{self.spool} ({self.pending} runs waiting for `nbops sync`{writing})"),
                       ("versions", ", ".join(f"{k} {x}" for k, x in self.versions.items()))]

    def __repr__(self) -> str:
        from ..display.views import kv_text
        return kv_text(self._rows(), "nbops status")

    def _repr_html_(self) -> str:
        import html
        from ..display.views import kv_html
        return kv_html([(k, html.escape(v)) for k, v in self._rows()], "nbops status")


def status() -> Status:
    """Where records go and which versions are in use (does not import mlflow)."""
    from ..tracking.spool import Spool

    s = config.settings()
    versions = {"nbops": _version("nbops"), "python": sys.version.split()[0]}
    for pkg in ("mlflow", "alibi-detect", "pandas", "numpy", "papermill"):
        versions[pkg] = _version(pkg)
    spool = Spool(s.spool_dir)
    return Status(s.describe(), s.experiment, str(s.spool_dir), spool.pending(), versions, writing=spool.writing())


def _version(pkg: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


# The options of `nbops sync` and `%nbops sync`, declared once: (flags, argparse keywords); each ``dest`` is a
# keyword of sync(), so both front ends call ``sync(**sync_args(parsed))``.
SYNC_OPTIONS = (
    (("--spool",), {"dest": "spool_dir", "metavar": "DIR",
                    "help": "The spool folder to replay (default: NBOPS_SPOOL_DIR or .nbops/spool)."}),
    (("--to",), {"dest": "to", "metavar": "URI",
                 "help": "Replay every spooled run into this tracking URI instead of the store it was recorded for "
                         "(on purpose: e.g. the server moved)."}),
)


def sync_args(parsed) -> dict:
    """sync()'s keywords from a namespace parsed with :data:`SYNC_OPTIONS`."""
    return {kw["dest"]: getattr(parsed, kw["dest"], None) for _, kw in SYNC_OPTIONS}


def sync(spool_dir: str | None = None, to: str | None = None):
    """Push each spooled run to the store it was recorded for (``to``: to that tracking URI instead, on purpose);
    a store that does not answer leaves its runs waiting (see :mod:`nbops.tracking.sync`)."""
    from ..tracking.sync import sync as _sync
    from ..tracking.writer import Writer
    return _sync(Writer, spool_dir=spool_dir, to=to)

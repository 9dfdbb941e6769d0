"""Links to the MLflow UI for what nbops shows: runs, experiments, model versions.

Where the UI is: the tracking server itself when the store is one (``MLFLOW_TRACKING_URI=http...``);
for the embedded store, the MLflow UI JupyterLab serves at ``<base_url>mlflow/`` through jupyter-server-proxy
(``NBOPS_UI_URL``, exported by the nbops server extension to the kernels it starts); elsewhere (papermill,
``nbops run``, a terminal), ``nbops ui``'s address. Set ``NBOPS_UI_URL`` to point every link somewhere else.
"""
from __future__ import annotations

import html
import os

ENV_UI = "NBOPS_UI_URL"
DEFAULT_UI = "http://127.0.0.1:5000/"   # `nbops ui`


def ui_base(settings=None) -> str | None:
    """The MLflow UI's base URL (ending in ``/``), or None for a spool-only (offline) setup."""
    from .. import config

    s = settings or config.settings()
    if s.is_server:
        return s.tracking_uri.rstrip("/") + "/"
    env = os.environ.get(ENV_UI, "").strip()
    return (env.rstrip("/") + "/") if env else DEFAULT_UI


def run_url(run_id: str | None, experiment_id: str | None = None, settings=None) -> str | None:
    base = ui_base(settings) if run_id else None
    if base is None:
        return None
    if experiment_id is None:
        return f"{base}#/runs/{run_id}"  # the UI finds the experiment itself
    return f"{base}#/experiments/{experiment_id}/runs/{run_id}"


def experiment_url(experiment_id: str | None, settings=None) -> str | None:
    base = ui_base(settings) if experiment_id is not None else None
    return f"{base}#/experiments/{experiment_id}" if base else None


def model_url(name: str, version=None, settings=None) -> str | None:
    base = ui_base(settings)
    if base is None:
        return None
    from urllib.parse import quote

    return f"{base}#/models/{quote(name)}" + (f"/versions/{version}" if version is not None else "")


def a(url: str | None, text: str, title: str | None = None) -> str:
    """``text`` (escaped) as a link opening in a new tab; plain text when there is no URL."""
    if not url:
        return html.escape(text)
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener"{t}>{html.escape(text)}</a>'


def run_link(run_id: str | None, experiment_id: str | None = None, text: str | None = None) -> str:
    """The run id as a link to the run in the MLflow UI."""
    if not run_id:
        return ""
    return a(run_url(run_id, experiment_id), text or run_id, "open in the MLflow UI")

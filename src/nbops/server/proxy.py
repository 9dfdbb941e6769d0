"""The MLflow UI inside JupyterLab: a ``jupyter-server-proxy`` entry (``<base_url>mlflow/``, a launcher tile).

jupyter-server-proxy finds :func:`mlflow_ui` through the ``jupyter_serverproxy_servers`` entry point, starts
``mlflow ui`` on the project's store the first time the path is visited (behind Jupyter's authentication) and
proxies to it. The kernels this server starts get ``NBOPS_UI_URL`` (set by :mod:`nbops.server.extension`), so
every run id nbops shows links to this UI when the store is the embedded one. Wiring only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PREFIX = "mlflow"  # the proxied path under the server's base URL


def mlflow_ui() -> dict:
    """The server-process spec jupyter-server-proxy reads (the store as the kernels resolve it)."""
    from .. import config

    s = config.settings()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", s.tracking_uri, "--host", "127.0.0.1",
           "--port", "{port}", "--workers", "1", "--static-prefix", "{base_url}" + PREFIX, "--allowed-hosts", "*"]
    if s.embedded and s.sqlite_path is not None:
        s.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", s.artifact_root]
    return {
        "command": cmd,
        "timeout": 180,           # `import mlflow` and the first store migration take a while on a busy host
        "absolute_url": True,     # --static-prefix: the UI itself serves under <base_url>mlflow
        "environment": {"MLFLOW_TRACKING_URI": s.tracking_uri},
        "new_browser_tab": True,
        "launcher_entry": {"title": "MLflow", "icon_path": str(Path(__file__).with_name("static") / "mlflow.svg"),
                           "category": "Other"},
    }


def ui_path(base_url: str) -> str:
    """``<base_url>mlflow/``: where this server shows the MLflow UI."""
    return base_url.rstrip("/") + "/" + PREFIX + "/"


def export_ui_url(base_url: str) -> None:
    """Tell the kernels this server starts where the UI is (unless the user set it)."""
    os.environ.setdefault("NBOPS_UI_URL", ui_path(base_url))

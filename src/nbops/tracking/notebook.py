"""Which notebook is this kernel running? Tried in order, first answer wins:

1. ``NBOPS_NOTEBOOK_PATH`` (set by ``nbops run`` for its kernel);
2. VS Code's ``__vsc_ipynb_file__`` in the user namespace;
3. ``__session__`` (ipykernel) or ``JPY_SESSION_NAME`` (set by Jupyter Server for the kernels it starts);
4. JupyterLab's session list: the running servers' ``/api/sessions`` matched on this kernel's id;
5. papermill: the output notebook papermill keeps saving in the kernel's working folder carries
   ``metadata.papermill.input_path`` while it runs (plain ``papermill`` tells the kernel nothing else).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from ..config import ENV_NOTEBOOK

_cache: dict[str, str | None] = {}


def notebook_path(ns: dict | None = None) -> str | None:
    ns = ns or {}
    for candidate in (os.environ.get(ENV_NOTEBOOK), ns.get("__vsc_ipynb_file__")):
        if candidate:
            return str(candidate)
    session = ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if session and str(session).endswith(".ipynb"):
        p = Path(session)
        return str(p if p.is_absolute() or not p.exists() else p.resolve())
    if "lab" not in _cache:
        _cache["lab"] = _from_jupyter_sessions()
    if _cache["lab"]:
        return _cache["lab"]
    return _from_papermill_output(Path.cwd())


def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file
        m = re.search(r"kernel-([\w-]+)\.json", get_connection_file())
        return m.group(1) if m else None
    except Exception:  # noqa: BLE001 - not in a kernel
        return None


def _from_jupyter_sessions() -> str | None:
    kid = _kernel_id()
    if not kid:
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
        import requests
    except ImportError:
        return None
    for srv in list_running_servers():
        try:
            r = requests.get(srv["url"].rstrip("/") + "/api/sessions",
                             headers={"Authorization": f"token {srv.get('token', '')}"}, timeout=1)
            for s in r.json():
                if s.get("kernel", {}).get("id") == kid:
                    return os.path.join(srv.get("root_dir") or srv.get("notebook_dir") or "", s["path"])
        except Exception:  # noqa: BLE001 - a stale server file; try the next
            continue
    return None


def _from_papermill_output(folder: Path) -> str | None:
    now = time.time()
    best = None
    try:
        candidates = [p for p in folder.glob("*.ipynb") if now - p.stat().st_mtime < 24 * 3600]
    except OSError:
        return None
    for p in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True)[:20]:
        try:
            meta = json.loads(p.read_text()).get("metadata", {}).get("papermill", {})
        except (OSError, ValueError):
            continue
        if meta.get("start_time") and not meta.get("end_time") and meta.get("input_path"):
            best = meta["input_path"]
            if not os.path.isabs(best):
                best = str((folder / best).resolve()) if (folder / best).exists() else best
            break
    return best

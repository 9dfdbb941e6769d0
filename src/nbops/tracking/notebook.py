"""Which notebook is this kernel running? Tried in order, first answer wins:

1. ``NBOPS_NOTEBOOK_PATH`` (set by ``nbops run`` for its kernel);
2. VS Code's ``__vsc_ipynb_file__`` in the user namespace;
3. ``__session__`` (ipykernel) or ``JPY_SESSION_NAME`` (set by Jupyter Server for the kernels it starts);
4. JupyterLab's session list: the running servers' ``/api/sessions`` matched on this kernel's id;
5. papermill: papermill tells the kernel nothing (no environment variable, no parameter), but it saves the
   output notebook -- ``metadata.papermill.input_path``, a ``start_time`` and no ``end_time`` while it runs --
   before the kernel starts. It is looked for among the notebooks named on the launching process's command line
   (the kernel's parent: ``papermill in.ipynb out/run.ipynb``), then in the kernel's and the parent's working
   folders (``papermill.execute_notebook`` from a script). A relative ``input_path`` is resolved where papermill
   was started (its cwd, or ``PWD`` when ``--cwd`` moved it).
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
    if "papermill" not in _cache:  # a papermill kernel runs one notebook for its life: asked once per process
        _cache["papermill"] = _from_papermill()
    return _cache["papermill"]


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


def _parent() -> tuple[list[str], list[Path]]:
    """The kernel's parent process (papermill, or the script calling it): its arguments and the folders a relative
    path among them may be relative to (its cwd, its ``PWD``)."""
    try:
        import psutil

        p = psutil.Process(os.getppid())
        args, folders = p.cmdline(), [Path(p.cwd())]
        pwd = p.environ().get("PWD")
    except Exception:  # noqa: BLE001 - no psutil, or the parent is gone / not ours to read
        return [], []
    if pwd:
        folders.append(Path(pwd))
    return args, folders


def _from_papermill() -> str | None:
    args, folders = _parent()
    here = Path.cwd()
    named = [f / a for a in args if a.endswith(".ipynb") for f in ([Path()] if os.path.isabs(a) else folders)]
    for found in (_running_papermill([p for p in named if p.is_file()]),
                  _running_papermill(_recent(here)),
                  *(_running_papermill(_recent(f)) for f in folders if f != here)):
        if found:
            meta, out = found
            inp = meta["input_path"]
            if os.path.isabs(inp):
                return inp
            for base in (*folders, here, out.parent):
                if (base / inp).is_file():
                    return str((base / inp).resolve())
            return inp
    return None


def _recent(folder: Path) -> list[Path]:
    now = time.time()
    try:
        found = [p for p in folder.glob("*.ipynb") if now - p.stat().st_mtime < 24 * 3600]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:20]


def _running_papermill(paths: list[Path]) -> tuple[dict, Path] | None:
    """(papermill metadata, path) of the first notebook papermill is executing right now."""
    for p in paths:
        try:
            meta = json.loads(p.read_text()).get("metadata", {}).get("papermill", {})
        except (OSError, ValueError):
            continue
        if meta.get("start_time") and not meta.get("end_time") and meta.get("input_path"):
            return meta, p
    return None


CELL_ID_TAG = "nbops.cell_id"


def cell_id(shell, body: str, nb: str | None) -> str | None:
    """The notebook cell id (nbformat 4.5 ``id``) of the ``%%track`` cell running now, or None.

    1. JupyterLab (and any front end that does) sends it in the execute request's metadata (``cellId``);
       ipykernel keeps that message as the kernel's parent.
    2. papermill (and ``nbops run``) sends no cell id: the cell is found in the notebook being run (``nb``) by
       its source, the ``%%track`` line included. Several cells with the same source: papermill runs each cell
       once, in order, so the n-th time the kernel runs that source (its input history) is the n-th such cell;
       past the last of them, None rather than a guess.
    """
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent("shell") if kernel is not None else None
    except Exception:  # noqa: BLE001 - an older or different kernel: fall back on the notebook file
        parent = None
    cid = ((parent or {}).get("metadata") or {}).get("cellId")
    if cid:
        return str(cid)
    if nb and os.path.isfile(nb):
        try:
            history = list(shell.history_manager.input_hist_raw)
        except AttributeError:
            history = []
        return _cell_in_file(nb, body, history)
    return None


def _cell_in_file(path: str, body: str, history: list[str]) -> str | None:
    """The id of the code cell of notebook ``path`` now running: its source is the last input of ``history``
    (the kernel's raw inputs, this cell's last) and its body after the magic line is ``body``."""
    raw = history[-1].strip() if history else ""
    if raw.partition("\n")[2].strip() != body.strip():
        return None  # not run from a cell as such (e.g. run_cell_magic from code): no source to look for
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells") or []
    except (OSError, ValueError, AttributeError):
        return None

    def source(c) -> str:
        s = c.get("source") or ""
        return ("".join(s) if isinstance(s, list) else str(s)).strip()

    hits = [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code" and source(c) == raw]
    nth = sum(1 for h in history if h.strip() == raw)
    if len(hits) == 1:  # one cell has this source (run again and again in a long-lived kernel): that one
        cid = hits[0].get("id")
    else:
        cid = hits[nth - 1].get("id") if 0 < nth <= len(hits) else None
    return str(cid) if cid else None

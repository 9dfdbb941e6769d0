"""Wiring of the server extension: the ``Nbops`` settings and the routes. No logic of its own.

Configure it like any Jupyter Server setting, in ``jupyter_server_config.py``::

    c.Nbops.tracking_uri = "http://mlflow.internal:5000"
    c.Nbops.max_runs = 200

or on the command line: ``jupyter lab --Nbops.tracking_uri=sqlite:///$PWD/.nbops/mlflow.db``.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from traitlets import Bool, Int, Unicode, validate, TraitError
from traitlets.config import Configurable

log = logging.getLogger("nbops")

API_PREFIX = "nbops/api"


class Nbops(Configurable):
    """nbops inside Jupyter Server: where the REST API reads runs from, and its limits."""

    tracking_uri = Unicode(
        "",
        help="MLflow tracking URI that /nbops/api/runs and /nbops/api/status read. Empty (the default): the same "
             "resolution as the kernels use -- MLFLOW_TRACKING_URI when set, else the embedded SQLite store "
             "(.nbops/mlflow.db) of the project the server was started in. When set, it is also exported as "
             "MLFLOW_TRACKING_URI into the server's environment, which the kernels it starts inherit, so "
             "%%track in JupyterLab and this API see the same store.",
    ).tag(config=True)

    default_runs = Int(
        10, help="How many runs /nbops/api/runs returns when the request gives no n.",
    ).tag(config=True)

    max_runs = Int(
        200, help="The largest n a client may ask /nbops/api/runs for; larger requests are refused with 400.",
    ).tag(config=True)

    telemetry = Bool(
        True,
        help="Serve /nbops/api/telemetry: the Jupyter host's own CPU, memory, disk and network samples from the "
             "same sampler as `%telemetry --source local`. False: the route answers 404.",
    ).tag(config=True)

    sample_at_start = Bool(
        True,
        help="Start the host sampler when the server starts (in a background thread), so the first "
             "/nbops/api/telemetry request already has history. False: it starts on the first request.",
    ).tag(config=True)

    mlflow_ui = Bool(
        True,
        help="Point the run links of the kernels this server starts at the MLflow UI it serves at "
             "<base_url>mlflow/ (started on first visit by jupyter-server-proxy, on the store the kernels use; "
             "also a JupyterLab launcher tile). A tracking server's own UI always wins. False: links go to "
             "NBOPS_UI_URL, else `nbops ui`'s http://127.0.0.1:5000/.",
    ).tag(config=True)

    workers = Int(
        2, help="Threads that run the blocking work (MLflow queries, sampling) off the server's event loop.",
    ).tag(config=True)

    @validate("default_runs", "max_runs", "workers")
    def _positive(self, proposal):
        if proposal["value"] < 1:
            raise TraitError(f"Nbops.{proposal['trait'].name} must be at least 1, not {proposal['value']}.")
        return proposal["value"]


def load(serverapp) -> Nbops:
    """Read ``c.Nbops`` from the server's config, export the store (when set), add the handlers."""
    from jupyter_server.utils import url_path_join

    from . import handlers

    conf = Nbops(parent=serverapp)
    if conf.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = conf.tracking_uri
    web_app = serverapp.web_app
    web_app.settings["nbops"] = conf
    web_app.settings["nbops_executor"] = executor(conf.workers)
    web_app.settings["nbops_root_dir"] = getattr(serverapp, "root_dir", "") or os.getcwd()
    if conf.mlflow_ui:  # run ids the kernels show link to the MLflow UI jupyter-server-proxy serves here
        from .proxy import export_ui_url

        export_ui_url(web_app.settings["base_url"])
    base = url_path_join(web_app.settings["base_url"], API_PREFIX)
    web_app.add_handlers(".*$", [(url_path_join(base, name), cls) for name, cls in handlers.ROUTES])
    if conf.telemetry and conf.sample_at_start:
        executor(conf.workers).submit(handlers.start_sampler)
    _exit_without_idle_anyio_workers()
    serverapp.log.info("nbops %s: REST API at %s/{%s} (store: %s)", _version(), base,
                       ",".join(n for n, _ in handlers.ROUTES), conf.tracking_uri or "as the kernels resolve it")
    return conf


def _exit_without_idle_anyio_workers() -> None:
    """Let the server process end on SIGTERM / Ctrl-C once a notebook has been opened.

    Jupyter Server reads checkpoints through ``anyio.to_thread.run_sync``, whose worker threads are not daemons
    and are stopped only when the task anyio takes for the root finishes, which never happens under tornado: the
    interpreter then waits for them forever at exit (jupyterlab/jupyterlab#10442, agronholm/anyio#321). At the
    start of interpreter shutdown (``threading._register_atexit``, where concurrent.futures stops its own
    workers), each such thread is handed anyio's own stop item (``None``): an idle one ends at once, a busy one
    after its job."""
    def stop_workers():
        for t in threading.enumerate():
            if type(t).__module__.startswith("anyio.") and hasattr(t, "queue"):
                t.queue.put_nowait(None)

    register = getattr(threading, "_register_atexit", None)
    if register is not None and not getattr(_exit_without_idle_anyio_workers, "done", False):
        register(stop_workers)
        _exit_without_idle_anyio_workers.done = True


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}


def executor(workers: int) -> ThreadPoolExecutor:
    """The process's pool for blocking API work (one per size: a server restarted in-process reuses it)."""
    if workers not in _EXECUTORS:
        _EXECUTORS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="nbops-api")
    return _EXECUTORS[workers]


def _version() -> str:
    from .. import __version__
    return __version__

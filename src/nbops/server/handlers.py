"""REST handlers under ``/nbops/api/``: ``runs``, ``telemetry``, ``status``. JSON in, JSON out.

Every handler is an :class:`~jupyter_server.base.handlers.APIHandler` method guarded by ``@web.authenticated``
and Jupyter's ``@authorized`` (resource ``nbops``), so the server's token, cookie, XSRF and authorizer rules
apply unchanged. Blocking work (MLflow queries, psutil sampling) runs in the extension's thread pool, never on
the event loop. A bad query parameter is a 400 whose ``message`` says what to send instead; a store that does
not answer is a 503 naming the store.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import NbopsError, TrackingError

log = logging.getLogger("nbops")



class Unavailable(Exception):
    """A part of nbops this installation lacks (answered 503, not 400: the request itself was fine)."""


class NbopsHandler(APIHandler):
    auth_resource = "nbops"

    @property
    def conf(self):
        return self.settings["nbops"]

    async def blocking(self, fn, *args):
        """Run ``fn(*args)`` in the extension's thread pool; NbopsErrors become 400/503 with their message."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.settings["nbops_executor"], fn, *args)
        except (TrackingError, Unavailable) as exc:
            raise http_error(503, str(exc), "Service Unavailable") from exc
        except NbopsError as exc:
            raise http_error(400, str(exc)) from exc

    def bad(self, message: str) -> web.HTTPError:
        return http_error(400, message)

    def write_error(self, status_code: int, **kwargs) -> None:
        """JSON ``{"message", "reason"}`` like Jupyter's APIHandler, with the message's ``%`` args applied
        (messages travel as an argument so that a ``%`` in them cannot break tornado's logging)."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            self.set_header("Content-Type", "application/json")
            message = exc.log_message % exc.args if exc.args else exc.log_message
            self.finish(json.dumps({"message": message, "reason": exc.reason}))
            return
        super().write_error(status_code, **kwargs)

    def int_arg(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.bad(f"{name}={raw!r} is not a whole number: send e.g. {name}={default}.") from None
        if not lo <= value <= hi:
            raise self.bad(f"{name}={value} is out of range: send a number from {lo} to {hi} "
                           f"(the server's limit is c.Nbops.max_runs={hi}).")
        return value


def http_error(status: int, message: str, reason: str | None = None) -> web.HTTPError:
    return web.HTTPError(status, "%s", message, reason=reason)


class StatusHandler(NbopsHandler):
    """``GET /nbops/api/status``: the store, default experiment, spool and versions (``nbops.api.status()``)."""

    @web.authenticated
    @authorized
    async def get(self):
        status = await self.blocking(_status)
        status["extension"] = {"tracking_uri": self.conf.tracking_uri or None,
                               "telemetry": self.conf.telemetry, "max_runs": self.conf.max_runs}
        self.finish(json.dumps(status))


class RunsHandler(NbopsHandler):
    """``GET /nbops/api/runs?path=<notebook>&n=10&experiment=E``: recent runs of that notebook, newest first.

    ``path`` is the notebook's path as JupyterLab names it (relative to the server's root dir) or an absolute
    path; kernels record ``mlflow.source.name`` as the absolute path, so both spellings are looked up. Without
    ``path``: the most recent runs of every notebook.
    """

    @web.authenticated
    @authorized
    async def get(self):
        path = self.get_query_argument("path", None)
        n = self.int_arg("n", self.conf.default_runs, 1, self.conf.max_runs)
        experiment = self.get_query_argument("experiment", None) or None
        candidates = notebook_candidates(path, self.settings.get("nbops_root_dir", "")) if path else [None]
        runs = await self.blocking(recent_runs, candidates, n, experiment)
        self.finish(json.dumps({"path": path, "n": n, "experiment": experiment, "store": _store(),
                                "runs": runs}))


class TelemetryHandler(NbopsHandler):
    """``GET /nbops/api/telemetry?last=5m&metric=cpu*``: the host's samples as tidy records
    (``timestamp``, ``metric``, ``labels``, ``value``) from the same sampler as ``%telemetry --source local``."""

    @web.authenticated
    @authorized
    async def get(self):
        if not self.conf.telemetry:
            raise http_error(404, "telemetry is switched off on this server (c.Nbops.telemetry = False).")
        last = self.get_query_argument("last", None)
        seconds = None
        if last:
            from ..telemetry.timeparse import duration

            try:
                seconds = duration(last)
            except NbopsError:
                seconds = -1.0
            if not math.isfinite(seconds) or seconds < 0:
                raise self.bad(f"last={last!r} is not a duration: send e.g. last=90s, last=5m or last=1h.")
        metrics = [m for m in self.get_query_arguments("metric") if m]
        body = await self.blocking(telemetry_records, seconds, metrics)
        self.finish(json.dumps(body))


ROUTES = [("status", StatusHandler), ("runs", RunsHandler), ("telemetry", TelemetryHandler)]


# ---- the blocking parts (run in the thread pool; plain functions a test can call) -------------------------

def _status() -> dict:
    from dataclasses import asdict
    from .. import api

    return asdict(api.status())


def _store() -> str:
    from .. import config
    return config.settings().tracking_uri


def notebook_candidates(path: str, root_dir: str) -> list[str]:
    """The spellings a kernel may have recorded for the notebook at API path ``path``."""
    out = []
    if os.path.isabs(path):
        out.append(os.path.normpath(path))
    else:
        rel = path.lstrip("/")
        if root_dir:
            out.append(os.path.normpath(os.path.join(os.path.expanduser(root_dir), rel)))
        out.append(rel)
    return list(dict.fromkeys(out))


def recent_runs(notebooks: list[str | None], n: int, experiment: str | None) -> list[dict]:
    """``nbops.api.runs`` for each spelling of the notebook, merged newest first, as JSON-ready dicts."""
    from .. import api

    try:
        frames = [api.runs(notebook=nb, n=n, experiment=experiment) for nb in notebooks]
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow's many ways of saying "cannot reach the store"
        from .. import config
        uri = config.settings().tracking_uri
        raise TrackingError(f"could not read runs from {uri}: {exc}. Check that the store is reachable and "
                            f"c.Nbops.tracking_uri / MLFLOW_TRACKING_URI points at it.", uri=uri) from exc
    rows: dict[str, dict] = {}
    for df in frames:
        for rec in frame_records(df):
            rows.setdefault(rec["run_id"], rec)
    return sorted(rows.values(), key=lambda r: r.get("start_time") or "", reverse=True)[:n]


def frame_records(df) -> list[dict]:
    """A runs DataFrame (``nbops.api.runs``) as records: params and metrics nested, NaN dropped, ISO times."""
    out = []
    if df is None or not len(df):
        return out
    for row in df.to_dict("records"):
        rec: dict = {"params": {}, "metrics": {}}
        for k, v in row.items():
            v = _jsonable(v)
            if v is None:
                continue
            if k.startswith("params."):
                rec["params"][k[7:]] = v
            elif k.startswith("metrics."):
                rec["metrics"][k[8:]] = v
            else:
                rec[k] = v
        out.append(rec)
    return out


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if hasattr(v, "isoformat"):
        try:
            import pandas as pd
            if pd.isna(v):
                return None
        except (ImportError, TypeError, ValueError):
            pass
        if getattr(v, "tzinfo", False) is None and hasattr(v, "tz_localize"):
            v = v.tz_localize("UTC")  # pandas timestamps from MLflow and the sampler are UTC
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalar
        return _jsonable(v.item())
    if isinstance(v, (str, int, bool, list, dict)):
        return v
    return str(v)


def start_sampler():
    """Start the host sampler of ``nbops.telemetry.local`` (``None`` when that module is not installed)."""
    try:
        from ..telemetry.local import get_sampler
    except ImportError as exc:
        log.info("nbops: host telemetry unavailable: %s", exc)
        return None
    return get_sampler()


def telemetry_records(last_s: float | None, metrics: list[str]) -> dict:
    """The sampler's tidy frame as records (timestamps in UTC ISO 8601); ``metrics`` are names or globs."""
    import fnmatch
    import time

    sampler = start_sampler()
    if sampler is None:
        raise Unavailable("host telemetry is not available in this nbops installation (nbops.telemetry.local "
                          "is missing): install nbops with its telemetry module.")
    unknown = [m for m in metrics if not any(fnmatch.fnmatch(k, m) for k in sampler.metrics)]
    if unknown:
        raise NbopsError(f"unknown metric {', '.join(unknown)}: this host samples {', '.join(sampler.metrics)} "
                         "(names or glob patterns such as metric=cpu* are accepted).")
    since = time.time() - last_s if last_s is not None else None
    df = sampler.frame(since=since, metrics=metrics or None)
    samples = [{k: _jsonable(v) for k, v in row.items()} for row in df.to_dict("records")]
    return {"host": socket.gethostname(), "interval_s": getattr(sampler, "interval", None),
            "metrics": sorted({s["metric"] for s in samples}), "count": len(samples), "samples": samples}

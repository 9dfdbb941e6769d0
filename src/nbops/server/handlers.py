"""REST handlers under ``/nbops/api/``: ``status``, ``runs``, ``run/<id>``, ``compare``, ``models``, ``promote``,
``rollback``, ``telemetry``. JSON in, JSON out; the shapes are in docs/server-api.md.

Every handler is an :class:`~jupyter_server.base.handlers.APIHandler` method guarded by ``@web.authenticated``
and Jupyter's ``@authorized`` (resource ``nbops``), so the server's token, cookie, XSRF and authorizer rules
apply unchanged. Blocking work (MLflow queries, psutil sampling) runs in the extension's thread pool, never on
the event loop. A bad query parameter is a 400 whose ``message`` says what to send instead; a store that does
not answer is a 503 naming the store. POSTs need Jupyter's XSRF token (APIHandler's check) like any Jupyter API;
no CORS header is added. The logic lives in plain functions (nbops.api.runview, nbops.api.compare,
nbops.registry): a handler only parses the request and writes the answer.
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

from ..errors import NbopsError, RunNotFound, TrackingError

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
        except RunNotFound as exc:
            raise http_error(404, str(exc)) from exc
        except NbopsError as exc:
            # said in one line by nbops, but about a store that did not answer (the registry's errors): a 503
            if isinstance(exc.cause, BaseException) and _unreachable(exc.cause):
                raise http_error(503, str(exc), "Service Unavailable") from exc
            raise http_error(400, str(exc)) from exc
        except Exception as exc:
            from ..tracking.mlflow_errors import store_down

            if _unreachable(exc):  # the store went away under a read or a registry call: one line, not a 500
                raise http_error(503, str(store_down()), "Service Unavailable") from exc
            raise

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise self.bad("the request body is not JSON: send an object such as "
                           '{"model": "churn", "alias": "champion", "dry_run": true}.') from None
        if not isinstance(body, dict):
            raise self.bad("the request body must be a JSON object, e.g. {\"model\": \"churn\"}.")
        return body

    @property
    def user_name(self) -> str:
        """The logged-in Jupyter user (recorded in the registry's audit trail)."""
        user = self.current_user
        return str(getattr(user, "username", None) or getattr(user, "name", None) or user or "unknown")

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


def _unreachable(exc: BaseException) -> bool:
    from ..tracking.mlflow_errors import unreachable

    return unreachable(exc)


def http_error(status: int, message: str, reason: str | None = None) -> web.HTTPError:
    return web.HTTPError(status, "%s", message, reason=reason)


class StatusHandler(NbopsHandler):
    """``GET /nbops/api/status``: the store, default experiment, spool and versions (``nbops.api.status()``)."""

    @web.authenticated
    @authorized
    async def get(self):
        status = await self.blocking(_status, self.conf.telemetry)
        status["extension"] = {"tracking_uri": self.conf.tracking_uri or None,
                               "telemetry": self.conf.telemetry, "max_runs": self.conf.max_runs}
        self.finish(json.dumps(status))


class RunsHandler(NbopsHandler):
    """``GET /nbops/api/runs?path=<notebook>&n=10&experiment=E``: recent runs of that notebook, newest first.

    ``path`` is the notebook's path as JupyterLab names it (relative to the server's root dir) or an absolute
    path; kernels record ``mlflow.source.name`` as the absolute path, so both spellings are looked up. Without
    ``path``: the most recent runs of every notebook. Runs still in the spool are merged in (``"spooled"``).
    ``since=<updated>``: when nothing changed, a small ``{"unchanged": true}`` answer (cheap polling).
    """

    @web.authenticated
    @authorized
    async def get(self):
        from ..api.runview import updated_token

        path = self.get_query_argument("path", None)
        n = self.int_arg("n", self.conf.default_runs, 1, self.conf.max_runs)
        experiment = self.get_query_argument("experiment", None) or None
        since = self.get_query_argument("since", None)
        candidates = notebook_candidates(path, self.settings.get("nbops_root_dir", "")) if path else [None]
        runs = await self.blocking(recent_runs, candidates, n, experiment)
        token = self._updated = updated_token(runs)
        body = {"path": path, "n": n, "experiment": experiment, "store": _store(), "updated": token}
        if since and since == token:
            body.update(unchanged=True, runs=None)
        else:
            body["runs"] = runs
        self.finish(json.dumps(body))

    def compute_etag(self):
        """The ``updated`` token: ``If-None-Match`` with it gets a 304 (tornado compares it in ``finish``)."""
        token = getattr(self, "_updated", None)
        return f'"{token}"' if token else super().compute_etag()


class RunHandler(NbopsHandler):
    """``GET /nbops/api/run/<run_id>``: one run in full (store or spool); 404 when neither has it."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str):
        from ..api.runview import run_detail

        self.finish(json.dumps(await self.blocking(run_detail, run_id)))


class CompareHandler(NbopsHandler):
    """``GET /nbops/api/compare?runs=a,b[,c]``: params / metrics diff and data-version diff, the baseline first
    (the same :func:`nbops.api.compare.compare` as ``%nbops compare``)."""

    @web.authenticated
    @authorized
    async def get(self):
        from ..api.compare import compare

        ids = [i.strip() for raw in self.get_query_arguments("runs") for i in raw.split(",") if i.strip()]
        result = await self.blocking(compare, ids)
        self.finish(json.dumps(result.to_dict(), default=str))


class ModelsHandler(NbopsHandler):
    """``GET /nbops/api/models``: registered models, their aliases -> version -> run, newest versions."""

    @web.authenticated
    @authorized
    async def get(self):
        from ..registry.overview import models

        self.finish(json.dumps({"store": _store(), "models": await self.blocking(models)}, default=str))


class PromoteHandler(NbopsHandler):
    """``POST /nbops/api/promote``: the gates of ``%promote`` previewed (``dry_run``, the default) or applied, with
    the audit trail naming the logged-in Jupyter user."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        self.finish(json.dumps(await self.blocking(promote_request, body, self.user_name), default=str))


class RollbackHandler(NbopsHandler):
    """``POST /nbops/api/rollback``: ``%promote --rollback`` (dry run by default), audited as the Jupyter user."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        self.finish(json.dumps(await self.blocking(rollback_request, body, self.user_name), default=str))


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


ROUTES = [("status", StatusHandler), ("runs", RunsHandler), (r"run/([^/]+)", RunHandler),
          ("compare", CompareHandler), ("models", ModelsHandler), ("promote", PromoteHandler),
          ("rollback", RollbackHandler), ("telemetry", TelemetryHandler)]


# ---- the blocking parts (run in the thread pool; plain functions a test can call) -------------------------

def _status(telemetry: bool = True) -> dict:
    """``nbops.api.status()`` plus what JupyterLab's status bar shows: the store's kind, whether a server store
    answers, and the host's incidents."""
    from dataclasses import asdict
    from .. import api, config

    out = asdict(api.status())
    s = config.settings()
    out["tracking_uri"] = s.tracking_uri
    out["store_kind"] = "offline" if s.offline else "server" if s.is_server else \
        "embedded" if s.is_sqlite else "file"
    out["store_down"] = None if s.offline else server_store_down(s.tracking_uri)
    out["incidents"] = host_incidents() if telemetry else {"sampling": False, "active": 0, "items": []}
    return out


STORE_PROBE_SECONDS = 2.0  # the status is polled every 15 s by every open Lab page: a dead server must not hold it


def server_store_down(uri: str) -> str | None:
    """The one line for an MLflow server at ``uri`` that does not answer ``GET /health`` (refused, no answer within
    :data:`STORE_PROBE_SECONDS`, or a 5xx: what MLflow's client counts as down); None when it answers (any other
    reply, a 401 too) and for local stores (SQLite, files), which the sidebar's reads judge. One try, no retries;
    TLS as MLflow's client sets it (MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH)."""
    if not uri.startswith(("http://", "https://")):
        return None
    import requests

    from ..tracking.mlflow_errors import store_down

    verify: bool | str = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        verify = False
    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=STORE_PROBE_SECONDS, verify=verify)
    except requests.RequestException:
        return store_down(uri).message
    return store_down(uri).message if answer.status_code >= 500 else None


def host_incidents() -> dict:
    """The host's incidents of the last 15 minutes from the server's sampler (``sampling`` False, no items, when
    the telemetry module or psutil is missing or the sampler cannot start)."""
    try:
        from ..telemetry.api import host_incidents as incidents

        return incidents()
    except Exception as exc:  # noqa: BLE001 - the status must answer even when telemetry cannot
        log.info("nbops: host incidents unavailable: %s", exc)
        return {"sampling": False, "active": 0, "items": []}


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
    """The notebook's runs (each spelling in ``notebooks``), store and spool merged, newest first, as records."""
    from ..api.runview import notebook_runs

    return notebook_runs(notebooks, n, experiment)


_PROMOTE_KEYS = {"model", "alias", "run", "version", "best", "experiment", "maximize", "require", "must_beat",
                 "require_no_drift", "reason", "dry_run", "notebook"}


def _checked(body: dict, allowed: set[str]) -> dict:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise NbopsError(f"unknown field(s) {', '.join(unknown)}: send only {', '.join(sorted(allowed))}.")
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise NbopsError('"model" is required: send the registered model\'s name, e.g. {"model": "churn"}.')
    dry = body.get("dry_run", True)
    if not isinstance(dry, bool):
        raise NbopsError(f'"dry_run" must be true or false, not {dry!r}.')
    return body


def promotion_json(res, moved: bool) -> dict:
    """A :class:`~nbops.registry.core.PromotionResult` as the API answers it."""
    c = res.candidate
    return {"status": res.status, "moved": moved, "passed": res.passed, "headline": res.headline(),
            "model": res.name, "alias": res.alias, "version": res.version, "replaced": res.replaced,
            "candidate": {"run_id": c.run_id, "run_name": c.run_name} if c else None,
            "gates": [_jsonable_dict(g.as_dict()) for g in res.gates], "who": res.who, "when": res.when,
            "event_run_id": res.event_run_id, "notes": list(res.notes)}


def _jsonable_dict(d: dict) -> dict:
    return {k: _jsonable(v) for k, v in d.items()}


def promote_request(body: dict, user: str) -> dict:
    """``POST promote``: ``nbops.promote`` with the body's fields; a failed gate is an answer (``gate-failed``,
    nothing moved), not an error."""
    from ..errors import GateFailed
    from ..registry.core import promote
    from ..tracking.writer import get_writer

    body = _checked(body, _PROMOTE_KEYS)
    which = [k for k in ("run", "version", "best") if body.get(k) not in (None, "")]
    if len(which) != 1:
        raise NbopsError('send exactly one of "run" (a run id), "version" (an existing version of the model) or '
                         f'"best" (a metric: the best run of "experiment"), not {" and ".join(which) or "none"}.')
    require = body.get("require") or []
    if isinstance(require, str):
        require = [require]
    if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
        raise NbopsError('"require" must be a list of gate expressions, e.g. ["accuracy>=0.85"].')
    run = body.get("run")
    if body.get("version") not in (None, ""):
        from ..registry.core import _version, registered_model

        c = get_writer().client
        if registered_model(c, body["model"]) is None:
            raise NbopsError(f"no registered model {body['model']!r}: check the name (GET /nbops/api/models).")
        mv = _version(c, body["model"], str(body["version"]))
        if mv is None or not mv.run_id:
            raise NbopsError(f"{body['model']!r} has no version {body['version']!r} made from a run: pick one of "
                             f"GET /nbops/api/models.")
        run = mv.run_id
    kw = dict(best=body.get("best") or None, experiment=body.get("experiment") or None,
              maximize=body.get("maximize"), alias=body.get("alias") or "champion", require=require,
              must_beat=body.get("must_beat") or None, require_no_drift=bool(body.get("require_no_drift")),
              reason=body.get("reason") or None, dry_run=body.get("dry_run", True),
              notebook=body.get("notebook") or None, who=(user, "jupyter"))
    try:
        res = promote(body["model"], run, **kw)
    except GateFailed as exc:
        return promotion_json(exc.result, moved=False)
    return promotion_json(res, moved=res.status == "promoted")


def rollback_request(body: dict, user: str) -> dict:
    """``POST rollback``: ``nbops.rollback`` (dry run unless ``"dry_run": false``)."""
    from ..registry.core import rollback

    body = _checked(body, {"model", "alias", "reason", "dry_run", "notebook"})
    res = rollback(body["model"], body.get("alias") or "champion", reason=body.get("reason") or None,
                   dry_run=body.get("dry_run", True), notebook=body.get("notebook") or None, who=(user, "jupyter"))
    return promotion_json(res, moved=res.status == "rolled-back")


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

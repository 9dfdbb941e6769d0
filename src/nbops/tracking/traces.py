"""MLflow traces as nbops records: one call (an LLM request, a tool step) recorded by a domain becomes one MLflow 3
trace of one span, written through the one writer (redacted, spooled when the store is down, replayed by
``nbops sync``). Domain-free: a trace record is a plain JSON-safe dict a domain builds with :func:`record`::

    {"trace_id": "tr-<32 hex>", "name", "span_type", "start_ns", "end_ns", "error" (None or text),
     "inputs", "outputs", "attributes" (span attributes, JSON values), "metadata", "tags" (str -> str)}

The trace id is made here, on the client, once: replaying the record (the flusher, ``nbops sync`` after a crash,
twice) writes the same trace id, and a trace already on the store is not written again. The store's run id and
experiment are filled in when the trace is written (a spooled run's id is local until then): the trace's
``mlflow.sourceRun`` metadata links it to the run, as MLflow's own tracing does inside ``mlflow.start_run()``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from . import redact

log = logging.getLogger("nbops")

SOURCE_RUN = "mlflow.sourceRun"        # mlflow.tracing.constant.TraceMetadataKey.SOURCE_RUN
LINKED_PROMPTS = "mlflow.linkedPrompts"   # mlflow.tracing.constant.TraceTagKey.LINKED_PROMPTS
NBOPS_TRACE_TAG = "nbops.trace"         # on every trace nbops writes: the kind of record (e.g. "llm")
PREVIEW = 1000


def new_id() -> str:
    """A fresh MLflow 3 trace id (``tr-`` + the 32-hex OpenTelemetry trace id)."""
    return "tr-" + uuid.uuid4().hex


def record(name: str, span_type: str, start_ns: int, end_ns: int, inputs: Any = None, outputs: Any = None,
           error: str | None = None, attributes: dict | None = None, metadata: dict | None = None,
           tags: dict | None = None, trace_id: str | None = None, prompts: list | None = None) -> dict:
    """A trace record (see the module's docstring); ``prompts``: ``(name, version)`` of the registered prompt
    versions the call used, linked to the trace as MLflow links them (its ``mlflow.linkedPrompts`` tag and the
    store's trace-to-prompt association, so ``search_traces`` can filter by prompt)."""
    tags = dict(tags or {})
    if prompts:
        tags[LINKED_PROMPTS] = json.dumps([{"name": str(n), "version": str(v)} for n, v in prompts])
    return {"trace_id": trace_id or new_id(), "prompts": [[str(n), int(v)] for n, v in prompts or []], "name": name, "span_type": span_type, "start_ns": int(start_ns),
            "end_ns": int(end_ns), "error": error, "inputs": inputs, "outputs": outputs,
            "attributes": dict(attributes or {}), "metadata": {str(k): str(v) for k, v in (metadata or {}).items()},
            "tags": {str(k): str(v) for k, v in (tags or {}).items()}}


def masked(v: Any, depth: int = 0, _secret: dict | None = None) -> Any:
    """``v`` (JSON-like) with every string through the redactor, structure kept; a string under a secret-named key
    (``api_key``, ``Authorization``) is masked whole. Numbers, and MLflow's own keys, are never secret."""
    if isinstance(v, str):
        return redact.text(v)
    if depth > 20:
        return redact.text(json.dumps(v, default=str))
    if _secret is None:
        _secret = {}  # key -> secret-named, for this value (keys repeat: role, content, ...)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            k = str(k)
            if isinstance(x, str) and x:
                if k not in _secret:
                    _secret[k] = redact.is_secret_name(k) and not k.startswith(("mlflow.", "nbops."))
                out[k] = redact.MASK if _secret[k] else redact.text(x)
            else:
                out[k] = masked(x, depth + 1, _secret)
        return out
    if isinstance(v, (list, tuple)):
        return [masked(x, depth + 1, _secret) for x in v]
    if v is None or isinstance(v, (bool, int, float)):
        return v
    return redact.text(str(redact.plain(v)))


def mask_record(rec: dict) -> dict:
    """A copy of a trace record with its free text masked (inputs, outputs, error, attributes, metadata, tags)."""
    out = dict(rec)
    secret: dict = {}
    for k in ("inputs", "outputs", "attributes"):
        out[k] = masked(rec.get(k), 0, secret)
    out["error"] = redact.text(rec["error"]) if rec.get("error") else rec.get("error")
    out["metadata"] = {k: redact.text(v) for k, v in (rec.get("metadata") or {}).items()}
    out["tags"] = {k: redact.text(v) for k, v in (rec.get("tags") or {}).items()}
    out["name"] = redact.text(str(rec.get("name") or "call"))
    return out


def _b64(hexid: str) -> str:
    return base64.b64encode(bytes.fromhex(hexid)).decode()


def _preview(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s[:PREVIEW]


def to_mlflow(rec: dict, experiment_id: str, run_id: str):
    """``(TraceInfo, [Span])`` of a record, linked to ``run_id`` in ``experiment_id``."""
    from mlflow.entities import Span, TraceInfo, TraceLocation, TraceState

    trace_id = rec["trace_id"]
    hexid = trace_id.removeprefix("tr-")
    span_id = hashlib.sha1(trace_id.encode()).hexdigest()[:16]  # the same on every replay
    dumps = lambda v: json.dumps(v, default=str)  # noqa: E731
    attrs = {"mlflow.traceRequestId": dumps(trace_id), "mlflow.spanType": dumps(rec["span_type"]),
             "mlflow.spanInputs": dumps(rec.get("inputs")), "mlflow.spanOutputs": dumps(rec.get("outputs"))}
    attrs.update({k: dumps(v) for k, v in (rec.get("attributes") or {}).items()})
    events = []
    if rec.get("error"):
        etype, _, msg = str(rec["error"]).partition(": ")
        events.append({"name": "exception", "time_unix_nano": rec["end_ns"],
                       "attributes": {"exception.type": etype, "exception.message": msg or etype}})
    span = Span.from_dict({
        "trace_id": _b64(hexid), "span_id": _b64(span_id), "parent_span_id": None, "name": rec["name"],
        "start_time_unix_nano": rec["start_ns"], "end_time_unix_nano": rec["end_ns"], "events": events,
        "status": {"code": "STATUS_CODE_ERROR" if rec.get("error") else "STATUS_CODE_OK",
                   "message": rec.get("error") or ""},
        "attributes": attrs, "links": []})
    metadata = {**rec.get("metadata", {}), SOURCE_RUN: run_id, "mlflow.trace_schema.version": "3",
                "mlflow.traceInputs": _preview(rec.get("inputs")), "mlflow.traceOutputs": _preview(rec.get("outputs"))}
    usage = (rec.get("attributes") or {}).get("mlflow.chat.tokenUsage")
    if usage:
        metadata["mlflow.trace.tokenUsage"] = json.dumps(usage)
    info = TraceInfo(trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
                     request_time=rec["start_ns"] // 1_000_000,
                     state=TraceState.ERROR if rec.get("error") else TraceState.OK,
                     request_preview=_preview(rec.get("inputs")), response_preview=_preview(rec.get("outputs")),
                     execution_duration=max(0, (rec["end_ns"] - rec["start_ns"]) // 1_000_000),
                     trace_metadata=metadata,
                     tags={**rec.get("tags", {}), "mlflow.traceName": rec["name"]})
    return info, [span]


def write(tracing_client, call, recs: list[dict], experiment_id: str, run_id: str) -> int:
    """Write records as traces with ``tracing_client`` (an ``mlflow.tracing.client.TracingClient``), each store
    operation through ``call`` (the writer's lock and retries): the spans of all of them in one write, then each
    trace's info. Traces already on the store (a replay) are left as they are: nothing is written twice. Returns
    how many were written."""
    done = on_store(tracing_client, call, [r["trace_id"] for r in recs])
    todo = [r for r in recs if r["trace_id"] not in done]
    if not todo:
        return 0
    from mlflow.entities import TraceData

    built = [to_mlflow(r, experiment_id, run_id) for r in todo]
    logged_spans = True
    try:
        call(tracing_client.log_spans, experiment_id, [s for _, spans in built for s in spans])
    except NotImplementedError:  # a store without span logging: the spans go to each trace's artifacts
        logged_spans = False
    for rec, (info, spans) in zip(todo, built):
        returned = call(tracing_client.start_trace, info)
        if not logged_spans or returned.tags.get("mlflow.trace.spansLocation") != "TRACKING_STORE":
            call(tracing_client._upload_trace_data, returned, TraceData(spans))
        if rec.get("prompts"):
            _link_prompts(tracing_client, call, rec)
    return len(todo)


def _link_prompts(tracing_client, call, rec: dict) -> None:
    """The store's trace -> prompt version associations (what ``search_traces(filter_string='prompt = "qa/1"')``
    reads); the trace's tag says the same for stores without them."""
    from mlflow.entities.model_registry import PromptVersion

    try:
        call(tracing_client.store.link_prompts_to_trace, rec["trace_id"],
             [PromptVersion(name=n, version=int(v), template="") for n, v in rec["prompts"]])
    except Exception as exc:  # noqa: BLE001 - a store without the association: the tag carries the link
        log.debug("nbops: prompts not linked to trace %s on the store: %s", rec["trace_id"], exc)


def on_store(tracing_client, call, trace_ids: list[str]) -> set[str]:
    """Those of ``trace_ids`` on the store, linked to their run (spans logged without their trace info do not
    count: a write cut short between the two is written again, which MLflow merges)."""
    try:
        infos = call(tracing_client.store.batch_get_trace_infos, trace_ids)
    except NotImplementedError:  # an older store: one by one
        from mlflow.exceptions import MlflowException

        infos = []
        for t in trace_ids:
            try:
                infos.append(call(tracing_client.store.get_trace_info, t))
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                    raise
    return {i.trace_id for i in infos if i.trace_metadata.get(SOURCE_RUN)}


def now_ns() -> int:
    return time.time_ns()

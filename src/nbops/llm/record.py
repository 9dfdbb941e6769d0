"""A recorded LLM call as an MLflow trace record and as run metrics.

The trace uses MLflow's own vocabulary so its UI and ``mlflow.search_traces`` read it as they read MLflow's OpenAI
autologging: span type ``CHAT_MODEL`` (``LLM`` for the responses API), inputs = the request (model, messages or
input, parameters), outputs = the SDK's answer (for a stream: the text that arrived), ``mlflow.chat.tokenUsage``,
``mlflow.llm.cost`` where the model has a price, ``mlflow.llm.model``, ``mlflow.message.format`` = ``openai``.
nbops's own attributes: ``nbops.llm.base_url_host``, ``nbops.llm.usage_source`` (``reported`` by the server, or
``counted``: a stream without usage, output tokens = pieces with content that arrived, input tokens estimated from
the request's text), ``nbops.llm.latency_ms``, ``nbops.llm.ttft_ms`` (streams) and ``nbops.llm.prompts`` (the
prompt versions the cell had loaded, ``name/version``; also in the trace's metadata).
"""
from __future__ import annotations

import json

from ..tracking import traces
from . import cost
from .capture import Call, tokens

KIND = "llm"
NAMES = {"chat": "openai.chat.completions.create", "responses": "openai.responses.create"}
SPAN_TYPES = {"chat": "CHAT_MODEL", "responses": "LLM"}


def _dump(obj):
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        try:
            return dump(exclude_none=True, mode="json")
        except Exception:  # noqa: BLE001 - an answer that does not dump: its text
            pass
    return obj if isinstance(obj, (dict, list, str, int, float, bool)) or obj is None else str(obj)


def output_text(call: Call) -> str | None:
    if call.stream:
        return "".join(call.parts)
    r = call.result
    if r is None:
        return None
    if call.kind == "responses":
        return getattr(r, "output_text", None)
    try:
        return r.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


def call_cost(call: Call) -> dict | None:
    tin, tout = tokens(call)
    if tin is None:
        return None
    return cost.cost(call.model, tin, tout or 0)


def trace_record(call: Call) -> dict:
    tin, tout = tokens(call)
    inputs = {"model": call.model, **call.request, **call.params}
    if call.stream:
        inputs["stream"] = True
        text = "".join(call.parts)
        outputs = ({"object": "chat.completion", "model": call.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
                   if call.kind == "chat" else {"output_text": text})
    else:
        outputs = _dump(call.result) if call.result is not None else None
    attrs = {"mlflow.llm.model": call.model, "mlflow.message.format": "openai", "nbops.llm.base_url_host": call.host,
             "nbops.llm.latency_ms": call.latency_ms}
    if call.ttft_ms is not None:
        attrs["nbops.llm.ttft_ms"] = call.ttft_ms
    if tin is not None:
        attrs["mlflow.chat.tokenUsage"] = {"input_tokens": tin, "output_tokens": tout or 0,
                                           "total_tokens": tin + (tout or 0)}
        attrs["nbops.llm.usage_source"] = "reported" if call.reported is not None else "counted"
        c = cost.cost(call.model, tin, tout or 0)
        if c is not None:
            attrs["mlflow.llm.cost"] = c
    prompts = [f"{n}/{v}" for n, v in call.prompts]
    if prompts:
        attrs["nbops.llm.prompts"] = prompts
    end_ns = call.start_ns + int((call.latency_ms or 0) * 1e6)
    return traces.record(NAMES[call.kind], SPAN_TYPES[call.kind], call.start_ns, end_ns, inputs=inputs,
                         outputs=outputs, error=call.error, attributes=attrs,
                         metadata={"nbops.llm.prompts": json.dumps(prompts)} if prompts else None,
                         tags={traces.NBOPS_TRACE_TAG: KIND}, prompts=call.prompts)


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def metrics(calls: list[Call]) -> dict[str, float]:
    """The run's LLM metrics: llm_calls (every call made, failed ones included), llm_errors, llm_input_tokens,
    llm_output_tokens, llm_latency_p50_ms / llm_latency_p95_ms (answered calls), and -- when every call with tokens
    has a price -- llm_cost_usd and llm_cost_per_call_usd (cost / calls)."""
    if not calls:
        return {}
    out = {"llm_calls": len(calls), "llm_errors": sum(c.error is not None for c in calls)}
    tin = tout = 0
    usd, priced = 0.0, True
    for c in calls:
        i, o = tokens(c)
        if i is None:
            continue
        tin, tout = tin + i, tout + (o or 0)
        cst = cost.cost(c.model, i, o or 0)
        if cst is None:
            priced = False
        else:
            usd += cst["total_cost"]
    out["llm_input_tokens"], out["llm_output_tokens"] = tin, tout
    lat = [c.latency_ms for c in calls if c.error is None and c.latency_ms is not None]
    if lat:
        out["llm_latency_p50_ms"], out["llm_latency_p95_ms"] = _pct(lat, 0.5), _pct(lat, 0.95)
    if priced:
        out["llm_cost_usd"] = usd
        out["llm_cost_per_call_usd"] = usd / len(calls)
    return out

"""``nbops.llm.calls(run or experiment)``: the LLM calls tracked cells recorded, read back from the store's traces,
one row a call (a frame ``%drift`` can compare)."""
from __future__ import annotations

import json

from ..errors import NbopsError
from ..tracking.traces import NBOPS_TRACE_TAG, SOURCE_RUN

COLUMNS = ["run_id", "trace_id", "time", "model", "base_url_host", "input", "output", "input_tokens",
           "output_tokens", "usage_source", "latency_ms", "ttft_ms", "error", "cost_usd", "prompts", "params"]


def _text(v) -> str | None:
    """The text of a request or answer: the messages' contents (one line each), the responses API's input."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        if "messages" in v or "input" in v:
            parts = []
            if v.get("instructions"):
                parts.append(str(v["instructions"]))
            body = v.get("messages", v.get("input"))
            parts.append(_text(body) or "")
            return "\n".join(p for p in parts if p)
        if "choices" in v:
            return "\n".join(str((c.get("message") or {}).get("content") or "") for c in v["choices"])
        if "output_text" in v:
            return v["output_text"]
        if "output" in v:  # responses API object
            return "".join(c.get("text", "") for o in v["output"] or [] for c in (o.get("content") or [])
                           if isinstance(c, dict))
        return str(v.get("content", "")) if "content" in v else json.dumps(v)
    if isinstance(v, list):
        return "\n".join(_text(x) or "" for x in v)
    return str(v)


def _row(trace) -> dict:
    span = trace.data.spans[0] if trace.data.spans else None
    a = span.attributes if span is not None else {}
    inputs, outputs = (span.inputs, span.outputs) if span is not None else (None, None)
    usage = a.get("mlflow.chat.tokenUsage") or {}
    cost = a.get("mlflow.llm.cost") or {}
    err = None
    if span is not None and str(span.status.status_code).endswith("ERROR"):
        err = span.status.description or "error"
    params = {k: v for k, v in (inputs or {}).items() if k not in ("model", "messages", "input", "instructions")} \
        if isinstance(inputs, dict) else {}
    return {"run_id": trace.info.trace_metadata.get(SOURCE_RUN), "trace_id": trace.info.trace_id,
            "time": trace.info.request_time, "model": a.get("mlflow.llm.model"),
            "base_url_host": a.get("nbops.llm.base_url_host"), "input": _text(inputs),
            "output": None if err else _text(outputs), "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"), "usage_source": a.get("nbops.llm.usage_source"),
            "latency_ms": a.get("nbops.llm.latency_ms"), "ttft_ms": a.get("nbops.llm.ttft_ms"), "error": err,
            "cost_usd": cost.get("total_cost"), "prompts": a.get("nbops.llm.prompts") or [], "params": params}


def calls(run_or_experiment: str):
    """The recorded LLM calls of a run (its id) or of an experiment (its name), oldest first, as a pandas
    DataFrame: run_id, trace_id, time, model, base_url_host, input, output, input/output_tokens, usage_source,
    latency_ms, ttft_ms, error, cost_usd, prompts (``name/version``), params."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from ..tracking.flusher import resolve
    from ..tracking.mlflow_errors import not_found
    from ..tracking.writer import get_writer

    writer = get_writer()
    client = writer.client  # waits for this process's background writes
    key = resolve(str(run_or_experiment)) if str(run_or_experiment).startswith("spool-") else str(run_or_experiment)
    run_id = None
    try:
        run = client.get_run(key)
        exp_ids, run_id = [run.info.experiment_id], run.info.run_id
    except MlflowException as exc:
        if not not_found(exc) and "invalid" not in str(exc).lower():
            raise
        exp = client.get_experiment_by_name(key)
        if exp is None:
            raise NbopsError(f"nbops.llm.calls({run_or_experiment!r}): no run with that id and no experiment with "
                             f"that name; give a run id or an experiment name.") from None
        exp_ids = [exp.experiment_id]
    filt = f"tag.`{NBOPS_TRACE_TAG}` = 'llm'"
    if run_id is not None:
        filt += f" AND metadata.`{SOURCE_RUN}` = '{run_id}'"
    found, token = [], None
    while True:
        page = client.search_traces(locations=exp_ids, filter_string=filt, max_results=500, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    rows = sorted((_row(t) for t in found), key=lambda r: r["time"])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame

"""The LLM mode of ``nbops.evaluate``: a function or a prompt run over a frame of inputs, each output scored.

``evaluate(fn_or_prompt, data, scorers=[...])`` -- ``fn_or_prompt`` is a plain function (called with the data's
columns named like its parameters) or a prompt (``nbops.prompt("qa@staging")``, or ``"prompts:/qa/2"``) sent to
``model`` on any OpenAI-compatible endpoint (``base_url`` / ``api_key``, or ``client=`` an ``openai.OpenAI``).
The data's other columns: ``expected`` (what the answer should be) and ``context`` (what it may use), optional.

Logged on a run of its own (kind ``evaluation``; a child of the tracked cell it runs in):

- metrics ``eval_<scorer>`` (the mean over items), per ``slices`` column ``<scorer>_worst_slice`` /
  ``<scorer>_slice_gap[.<column>]`` as for models (groups of at least :data:`MIN_SLICE_ROWS` rows);
  ``eval_latency_p50_ms`` / ``eval_latency_p95_ms`` (time per item) and, when it called a model,
  ``llm_calls``, ``llm_errors``, ``llm_input_tokens``, ``llm_output_tokens``, ``llm_latency_p50_ms``,
  ``llm_latency_p95_ms`` and, where the model's price is known, ``llm_cost_usd`` / ``llm_cost_per_call_usd``;
- the per-item table ``evaluation/items.json`` (MLflow's table format: ``columns`` / ``data``): inputs, output,
  expected, context, each scorer's value, latency, tokens, cost, error;
- tags ``nbops.evaluation.prompt`` = ``NAME/VERSION`` and the run's prompt links (``nbops.prompts``,
  ``mlflow.linkedPrompts``), so ``%promote prompt NAME --require eval_...`` finds it.

An item whose call fails scores 0 on every scorer (its error is in the table): a failure is never left out.
The API key is never logged; outputs and inputs go through the redactor like every artifact.
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import time
from dataclasses import dataclass, field

from .errors import EvaluationError
from .result import EvaluationResult

log = logging.getLogger("nbops")
MIN_SLICE_ROWS = 5          # LLM evaluation sets are small: a group of 5 items still says something
RESERVED = ("expected", "context")


def openai_client(client=None, base_url: str | None = None, api_key: str | None = None):
    """``client`` as given, else an ``openai.OpenAI`` for ``base_url`` (the key: ``api_key``, ``OPENAI_API_KEY``,
    or a placeholder that local servers accept)."""
    if client is not None:
        return client
    if not base_url:
        raise EvaluationError("A prompt needs a model endpoint: pass base_url= (any OpenAI-compatible server, e.g. "
                              "http://127.0.0.1:8080/v1) or client=openai.OpenAI(...).", option="--base-url")
    try:
        import openai
    except ImportError:
        raise EvaluationError("Calling a model needs the openai client: pip install \"nbops[llm]\".") from None
    import os

    return openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed")


@dataclass(repr=False)
class LLMEvaluationResult(EvaluationResult):
    """An :class:`EvaluationResult` of an LLM step, with the per-item table (``items``) and call figures."""
    items: object = None                      # DataFrame: one row per item
    calls: dict = field(default_factory=dict)  # llm_* / eval_latency_* metrics
    prompt: str | None = None                 # "NAME/VERSION" when a prompt was evaluated

    def logged_metrics(self) -> dict:
        out = super().logged_metrics()
        out.update({k: float(v) for k, v in self.calls.items() if v is not None and not _nan(v)})
        return out

    def headline(self) -> str:
        m = ", ".join(f"{k}={v:.3g}" for k, v in self.metrics.items())
        return f"Evaluation of {self.model} on {self.data} ({self.rows:,} items): {m}"

    def _lines(self) -> list[str]:
        out = []
        c = self.calls
        if c.get("llm_calls"):
            cost = (f", cost ${c['llm_cost_usd']:.6f} (${c['llm_cost_per_call_usd']:.6f} per call)"
                    if c.get("llm_cost_usd") is not None else ", cost unknown (no price for the model)")
            out.append(f"model calls: {c['llm_calls']:.0f} ({c.get('llm_errors', 0):.0f} failed), tokens "
                       f"{c.get('llm_input_tokens', 0):.0f} in / {c.get('llm_output_tokens', 0):.0f} out, latency p50 "
                       f"{c.get('llm_latency_p50_ms', 0):.0f} ms, p95 {c.get('llm_latency_p95_ms', 0):.0f} ms{cost}")
        return out + super()._lines()

    def _repr_html_(self) -> str:
        from ..display.views import frame_html

        html = super()._repr_html_()
        if self.items is not None:
            html += frame_html(self.items, "items", max_rows=50)
        return html


def _nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _target(fn_or_prompt):
    """(kind, label, prompt or function, variables)."""
    from ..llm.prompts import Prompt, load

    p = fn_or_prompt
    if isinstance(p, str):
        if not p.startswith("prompts:/"):
            raise EvaluationError(f"{p!r}: give a function, a prompt (nbops.prompt('NAME')) or prompts:/NAME[/V|@A].")
        p = load(p)
    if isinstance(p, Prompt):
        return "prompt", f"prompt {p.name} v{p.version}", p, p.variables
    if callable(p):
        try:
            params = inspect.signature(p).parameters.values()
        except (TypeError, ValueError):
            raise EvaluationError(f"{p!r}: nbops cannot read its parameters; wrap it in a def.") from None
        names = [q.name for q in params if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
        return "function", getattr(p, "__name__", "function"), p, names
    raise EvaluationError(f"{type(p).__name__} cannot be evaluated: give a function, or a prompt with model= and "
                          f"base_url=.")


def _messages(prompt, values: dict) -> list[dict]:
    filled = prompt.format(**values)
    return filled if isinstance(filled, list) else [{"role": "user", "content": filled}]


def evaluate_llm(target, data, scorers, *, model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, client=None, slices=None, max_tokens: int = 256,
                 temperature: float = 0.0, log_run: bool = True, experiment: str | None = None,
                 name: str | None = None) -> LLMEvaluationResult:
    """Run ``target`` over ``data`` and score every output (module docs). ``data`` is never modified."""
    import numpy as np
    import pandas as pd

    from ..llm.cost import cost
    from . import scorers as sc
    from .api import _slice_values, slice_columns

    if not isinstance(data, pd.DataFrame):
        raise EvaluationError(f"Evaluation data must be a pandas DataFrame of inputs, not a {type(data).__name__}.")
    if data.columns.duplicated().any():
        raise EvaluationError("The evaluation data has duplicate column names: rename them and evaluate again.")
    kind, label, obj, variables = _target(target)
    scs = sc.resolve(scorers)
    needs = sorted({n for s in scs for n in s.needs})
    missing = [c for c in needs if c not in data.columns]
    if missing:
        raise EvaluationError(f"Scorer(s) {', '.join(s.name for s in scs if set(s.needs) & set(missing))} need a "
                              f"{' and a '.join(missing)} column in the data.", columns=missing)
    inputs = [v for v in variables if v not in RESERVED or v in data.columns]
    absent = [v for v in inputs if v not in data.columns]
    if kind == "function":
        fn_params = inspect.signature(obj).parameters
        absent = [v for v in absent if fn_params[v].default is inspect.Parameter.empty]
        inputs = [v for v in inputs if v in data.columns]
    if absent:
        raise EvaluationError(f"{label} needs the column(s) {', '.join(absent)}; the data has "
                              f"{', '.join(map(str, data.columns[:20]))}.", columns=absent)
    slices = slice_columns(slices, data)
    if data.empty:
        raise EvaluationError("The evaluation data has no rows.")
    cl = None
    if kind == "prompt":
        if not model:
            raise EvaluationError(f"Evaluating {label} calls a model: pass model= (and base_url= or client=).",
                                  option="--model")
        cl = openai_client(client, base_url, api_key)

    rows = []
    for rec in data.to_dict(orient="records"):
        values = {v: rec[v] for v in inputs}
        row = {**values, **{k: rec[k] for k in RESERVED if k in rec}}
        item = {"input": None, "output": None, "latency_ms": None, "input_tokens": None, "output_tokens": None,
                "cost_usd": None, "error": None}
        t0 = time.perf_counter()
        try:
            if kind == "prompt":
                msgs = _messages(obj, values)
                item["input"] = "\n".join(m["content"] for m in msgs)
                r = cl.chat.completions.create(model=model, messages=msgs, max_tokens=max_tokens,
                                               temperature=temperature)
                item["output"] = r.choices[0].message.content or ""
                u = getattr(r, "usage", None)
                if u is not None:
                    item["input_tokens"], item["output_tokens"] = u.prompt_tokens, u.completion_tokens
                    if u.prompt_tokens is not None and u.completion_tokens is not None:
                        c = cost(model, u.prompt_tokens, u.completion_tokens)   # None: no price for the model
                        item["cost_usd"] = c and c["total_cost"]
            else:
                item["input"] = json.dumps(values, default=str)
                out = obj(**values)
                item["output"] = "" if out is None else str(out)
        except Exception as exc:  # noqa: BLE001 - one failed item is a result, not the end of the evaluation
            from ..errors import NbopsError

            if isinstance(exc, NbopsError):
                raise
            item["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        item["latency_ms"] = (time.perf_counter() - t0) * 1000
        row["input"] = item["input"]
        for s in scs:
            if item["error"] is not None:
                item[s.name] = 0.0
                continue
            try:
                item[s.name] = s(item["output"], row)
            except Exception as exc:  # noqa: BLE001 - a judge that fails on one item: NaN, said once in the notes
                item[s.name] = math.nan
                item.setdefault("_scorer_errors", []).append(f"{s.name}: {type(exc).__name__}: {exc}")
        rows.append({**values, **{k: rec[k] for k in RESERVED if k in rec}, **item,
                     **{c: rec[c] for c in slices if c not in values}})
    items = pd.DataFrame(rows)
    notes = []
    if "_scorer_errors" in items:
        errs = [e for x in items.pop("_scorer_errors").dropna() for e in x]
        notes.append(f"{len(errs)} scorer call(s) failed (scored NaN), first: {errs[0][:200]}")
    metrics = {s.name: float(np.nanmean(items[s.name])) if items[s.name].notna().any() else math.nan for s in scs}
    lat = items["latency_ms"].to_numpy(dtype=float)
    calls = {"eval_latency_p50_ms": float(np.percentile(lat, 50)), "eval_latency_p95_ms": float(np.percentile(lat, 95))}
    if kind == "prompt":
        ok = items[items["error"].isna()]
        calls.update({"llm_calls": float(len(items)), "llm_errors": float(items["error"].notna().sum()),
                      "llm_latency_p50_ms": calls["eval_latency_p50_ms"],
                      "llm_latency_p95_ms": calls["eval_latency_p95_ms"]})
        if ok["input_tokens"].notna().any():
            calls["llm_input_tokens"] = float(ok["input_tokens"].sum())
            calls["llm_output_tokens"] = float(ok["output_tokens"].sum())
        if len(ok) and ok["cost_usd"].notna().all():
            calls["llm_cost_usd"] = float(ok["cost_usd"].sum())
            calls["llm_cost_per_call_usd"] = calls["llm_cost_usd"] / len(items)
        else:
            notes.append(f"cost unknown: no price for model {model!r} (nbops.llm.prices)")
        failed = int(calls["llm_errors"])
        if failed:
            notes.append(f"{failed} call(s) failed and scored 0; see the error column of the items")
    elif items["error"].notna().any():
        notes.append(f"{int(items['error'].notna().sum())} item(s) raised and scored 0; see the error column")
    tables, summary = {}, {}
    for col in slices:
        groups = _slice_values(items[col] if col in items else data[col])
        by = items.assign(_g=groups.to_numpy()).groupby("_g")
        table = by[[s.name for s in scs]].mean().reset_index().rename(columns={"_g": col})
        table["rows"] = by.size().to_numpy()
        tables[col] = table
        okg = table[table["rows"] >= MIN_SLICE_ROWS]
        for s in scs:
            vals = okg[[col, s.name]].dropna()
            if vals.empty:
                continue
            worst = vals.loc[vals[s.name].idxmin()]
            summary[(col, s.name)] = {"worst_group": str(worst[col]), "worst": float(worst[s.name]),
                                      "gap": float(vals[s.name].max() - worst[s.name])}
    prompt_ref = f"{obj.name}/{obj.version}" if kind == "prompt" else None
    res = LLMEvaluationResult(label + (f" with {model}" if model else ""), name or "data", "llm", len(items),
                              "expected" if "expected" in data.columns else "-", metrics, tables, summary, {},
                              notes=notes, items=items, calls=calls, prompt=prompt_ref)
    if log_run:
        _record(res, obj if kind == "prompt" else None, model, experiment)
    return res


def _record(res: LLMEvaluationResult, prompt, model, experiment: str | None) -> None:
    from ..llm.prompts import link
    from ..registry.prompts import EVAL_TAG
    from ..tracking.run import track

    tags = {"nbops.evaluation.task": "llm", "nbops.evaluation.data": f"{res.data} ({res.rows:,} items)",
            "mlflow.loggedArtifacts": json.dumps([{"path": "evaluation/items.json", "type": "table"}])}
    if prompt is not None:
        tags[EVAL_TAG] = res.prompt
    params = {"model": model} if model else {}
    with track(experiment, f"evaluate:{res.model}", kind="evaluation", tags=tags, params=params) as t:
        if prompt is not None:
            link(prompt.name, prompt.version, tracker=t)
        t.log_metrics(res.logged_metrics())
        table = res.items.astype(object).where(res.items.notna(), None)
        t.log_text(json.dumps({"columns": [str(c) for c in table.columns], "data": table.values.tolist()},
                              default=str), "evaluation/items.json")
        t.log_dict(res.as_dict() | {"items": None}, "evaluation/metrics.json")
    res.run_id, res.logged_to = t.run_id, "own run"

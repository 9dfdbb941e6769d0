"""LLM calls in a tracked cell, against a real local OpenAI-compatible server (llama.cpp serving SmolLM2) through the
real openai SDK, in a real IPython shell, read back from the real SQLite store: each call is an MLflow trace linked
to the cell's run with the server's token usage, the run has the llm_* metrics, the API key is stored nowhere, the
store being down spools everything for `nbops sync` (once), and a budget stops the cell before the call that would
pass it."""
import json
import os
import secrets
from pathlib import Path

import pytest

import nbops
from nbops.api import sync

pytestmark = pytest.mark.llm
DEAD = "http://127.0.0.1:9/v1"


@pytest.fixture
def key():
    return "sk-test-" + secrets.token_hex(16)


@pytest.fixture
def shell(ip, llm_server, key):
    ip.user_ns.update(BASE=llm_server, KEY=key)
    return ip


def _run(client, experiment, name):
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}[name]


def _traces(run):
    import mlflow

    found = mlflow.search_traces(experiment_ids=[run.info.experiment_id], return_type="list")
    return [t for t in found if t.info.trace_metadata.get("mlflow.sourceRun") == run.info.run_id]


def _files_with(root: Path, needle: str) -> list[str]:
    hits = []
    for p in Path(root).rglob("*"):
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(str(p))
    return hits


def _sdk_untouched():
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.responses import Responses

    return not any(hasattr(c.__dict__["create"], "__nbops_wrapped__") for c in (Completions, AsyncCompletions,
                                                                                Responses))


THREE_CALLS = '''%%track -e llm -n calls
import openai
from nbops.llm import used
used.note("qa", 1)  # what nbops.prompt("qa") notes when it loads version 1
client = openai.OpenAI(base_url=BASE, api_key=KEY)
usage = []
for q in ("What colour is the sky?", "Repeat this key: " + KEY):
    a = client.chat.completions.create(model="smollm2", max_tokens=16, temperature=0.2,
                                       messages=[{"role": "user", "content": q}])
    usage.append((a.usage.prompt_tokens, a.usage.completion_tokens))
try:
    openai.OpenAI(base_url=DEAD, api_key=KEY, max_retries=0).chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "x"}])
except openai.APIConnectionError:
    failed = True
'''


def test_three_calls_are_traces_linked_to_the_run_with_the_servers_usage(shell, client, key, store, capfd):
    shell.user_ns["DEAD"] = DEAD
    assert shell.run_cell(THREE_CALLS).success
    assert _sdk_untouched()  # restored after the cell
    usage = shell.user_ns["usage"]
    run = _run(client, "llm", "calls")
    m = run.data.metrics
    assert (m["llm_calls"], m["llm_errors"]) == (3, 1)
    assert m["llm_input_tokens"] == sum(u[0] for u in usage)
    assert m["llm_output_tokens"] == sum(u[1] for u in usage)
    assert 0 < m["llm_latency_p50_ms"] <= m["llm_latency_p95_ms"]
    assert "llm_cost_usd" not in m  # no price for smollm2: tokens only

    traces = sorted(_traces(run), key=lambda t: t.info.request_time)
    assert len(traces) == 3
    spans = [t.data.spans[0] for t in traces]
    assert [s.span_type for s in spans] == ["CHAT_MODEL"] * 3
    assert [(s.attributes["mlflow.chat.tokenUsage"]["input_tokens"],
             s.attributes["mlflow.chat.tokenUsage"]["output_tokens"]) for s in spans[:2]] == usage
    assert {s.attributes["nbops.llm.usage_source"] for s in spans[:2]} == {"reported"}
    assert spans[0].inputs["temperature"] == 0.2 and spans[0].inputs["max_tokens"] == 16
    assert spans[0].attributes["nbops.llm.prompts"] == ["qa/1"]
    assert json.loads(traces[0].info.tags["mlflow.linkedPrompts"]) == [{"name": "qa", "version": "1"}]
    import mlflow

    by_prompt = mlflow.search_traces(experiment_ids=[run.info.experiment_id], filter_string='prompt = "qa/1"',
                                     return_type="list")
    assert sorted(t.info.trace_id for t in by_prompt) == sorted(t.info.trace_id for t in traces)
    assert spans[0].attributes["nbops.llm.base_url_host"] == "127.0.0.1"
    assert str(traces[2].info.state).endswith("ERROR") and "APIConnectionError" in spans[2].status.description
    assert "****" in spans[1].inputs["messages"][0]["content"]  # the key, asked back in a prompt: masked

    frame = nbops.llm.calls(run.info.run_id)
    assert list(frame["input_tokens"][:2]) == [u[0] for u in usage]
    assert frame["error"].notna().tolist() == [False, False, True]
    assert frame["prompts"][0] == ["qa/1"] and frame["model"].tolist() == ["smollm2"] * 3
    assert frame["output"][1] == shell.user_ns["a"].choices[0].message.content.replace(key, "****")
    assert nbops.llm.calls("llm")["trace_id"].tolist() == frame["trace_id"].tolist()

    out, err = capfd.readouterr()
    assert key not in out + err
    assert _files_with(Path(store.split("///")[1]).parent, key) == []  # store, artifacts, spool


def test_streamed_call_is_recorded_with_the_output_tokens_that_arrived(shell, client):
    assert shell.run_cell('''%%track -e llm -n streamed
import openai
pieces = 0
for chunk in openai.OpenAI(base_url=BASE, api_key=KEY).chat.completions.create(
        model="smollm2", max_tokens=16, stream=True, messages=[{"role": "user", "content": "Say hello."}]):
    pieces += bool(chunk.choices and chunk.choices[0].delta.content)
''').success
    run = _run(client, "llm", "streamed")
    assert run.data.metrics["llm_calls"] == 1
    assert run.data.metrics["llm_output_tokens"] == shell.user_ns["pieces"] > 0
    (trace,) = _traces(run)
    span = trace.data.spans[0]
    assert span.attributes["nbops.llm.usage_source"] == "counted"
    assert span.attributes["nbops.llm.ttft_ms"] > 0
    assert span.outputs["choices"][0]["message"]["content"]


def test_async_client_calls_are_recorded(shell, client):
    assert shell.run_cell('''%%track -e llm -n async
import asyncio, openai
async def ask():
    c = openai.AsyncOpenAI(base_url=BASE, api_key=KEY)
    a = await c.chat.completions.create(model="smollm2", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    s = await c.chat.completions.create(model="smollm2", max_tokens=8, stream=True,
                                        messages=[{"role": "user", "content": "Hello"}])
    return a, [x async for x in s]
answer, streamed = asyncio.run(ask())
''').success
    run = _run(client, "llm", "async")
    answer = shell.user_ns["answer"]
    traces = sorted(_traces(run), key=lambda t: t.info.request_time)
    assert len(traces) == 2
    usage = traces[0].data.spans[0].attributes["mlflow.chat.tokenUsage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (answer.usage.prompt_tokens,
                                                               answer.usage.completion_tokens)
    assert traces[1].data.spans[0].attributes["nbops.llm.usage_source"] == "counted"


def test_store_down_spools_everything_and_sync_replays_it_once(shell, client, key, store, monkeypatch):
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    shell.user_ns["DEAD"] = DEAD
    assert shell.run_cell(THREE_CALLS).success
    spool = Path(store.split("///")[1]).parent / "spool"
    journals = "".join(p.read_text() for p in spool.rglob("journal.jsonl"))
    assert journals.count('"op": "log_trace"') == 1 and journals.count('"trace_id"') == 3
    assert client.get_experiment_by_name("llm") is None
    assert _files_with(spool, key) == []

    monkeypatch.delenv("NBOPS_OFFLINE")
    sync()
    sync()  # twice = once
    run = _run(client, "llm", "calls")
    assert len(_traces(run)) == 3
    assert run.data.metrics["llm_calls"] == 3
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_budget_stops_the_cell_before_the_call_that_would_pass_it(shell, client, tmp_path, monkeypatch, capfd):
    prices = tmp_path / "prices.yaml"
    prices.write_text("smollm2:\n  input_per_million: 1000.0\n  output_per_million: 1000.0\n")
    monkeypatch.setenv("NBOPS_LLM_PRICES", str(prices))
    capfd.readouterr()
    r = shell.run_cell('''%%track -e llm -n over --budget-usd 0.1
import openai
c = openai.OpenAI(base_url=BASE, api_key=KEY)
first = c.chat.completions.create(model="smollm2", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
c.chat.completions.create(model="smollm2", max_tokens=200, messages=[{"role": "user", "content": "Hi"}])
sent = True''')
    out, err = capfd.readouterr()
    assert not r.success and "sent" not in shell.user_ns
    assert len((out + err).strip().splitlines()) <= 3 and "budget" in out + err
    run = _run(client, "llm", "over")
    assert run.info.status == "FAILED" and run.data.tags["nbops.budget_exceeded"] == "true"
    u = shell.user_ns["first"].usage
    assert run.data.metrics["llm_calls"] == 1  # the second call was never made
    assert run.data.metrics["llm_cost_usd"] == pytest.approx((u.prompt_tokens + u.completion_tokens) * 1e-3)
    assert run.data.metrics["llm_cost_per_call_usd"] == pytest.approx(run.data.metrics["llm_cost_usd"])
    (trace,) = _traces(run)
    assert trace.data.spans[0].attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(
        run.data.metrics["llm_cost_usd"])


def test_calls_outside_tracked_cells_are_not_recorded(shell, client):
    assert shell.run_cell('''import openai
a = openai.OpenAI(base_url=BASE, api_key=KEY).chat.completions.create(
    model="smollm2", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])''').success
    assert _sdk_untouched()
    import mlflow

    assert mlflow.search_traces(return_type="list") == []


def test_nbops_run_budget_stops_the_notebooks_tracked_cells(llm_server, store, client, tmp_path, monkeypatch):
    import subprocess
    import sys

    from nbops_testing import write_notebook

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"smollm2": {"input_per_million": 1000.0, "output_per_million": 1000.0}}))
    monkeypatch.setenv("NBOPS_LLM_PRICES", str(prices))
    ask = ("import openai\nopenai.OpenAI(base_url={url!r}, api_key='sk-x-123456').chat.completions.create("
           "model='smollm2', max_tokens={n}, messages=[{{'role': 'user', 'content': 'Hi'}}])")
    write_notebook(tmp_path / "spend.ipynb", [
        "%load_ext nbops",
        "%%track -n cheap\n" + ask.format(url=llm_server, n=4),
        "%%track -n dear\n" + ask.format(url=llm_server, n=100),   # ~$0.1 more: past the notebook's budget
        "print('never')"])
    r = subprocess.run([sys.executable, "-m", "nbops.cli", "run", "spend.ipynb", "-e", "sched", "--budget-usd",
                        "0.08"], cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "budget" in r.stdout + r.stderr
    runs = {x.info.run_name: x for x in client.search_runs([client.get_experiment_by_name("sched").experiment_id])}
    assert runs["cheap"].info.status == "FINISHED" and runs["cheap"].data.metrics["llm_calls"] == 1
    assert runs["dear"].info.status == "FAILED" and runs["dear"].data.tags["nbops.budget_exceeded"] == "true"
    assert "llm_calls" not in runs["dear"].data.metrics and runs["dear"].data.metrics["llm_cost_usd"] == 0


FRESH = '''
import sys
from IPython.core.interactiveshell import InteractiveShell
assert "openai" not in sys.modules
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "nbops")
ip.run_cell("""%%track -e fresh -n first
import openai
try:
    openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-a-123456", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}])
except openai.APIConnectionError:
    pass""")
from openai.resources.chat.completions import Completions
print("restored", not hasattr(Completions.__dict__["create"], "__nbops_wrapped__"))
'''


def test_a_cell_that_imports_the_sdk_itself_is_recorded(store, client, tmp_path):
    """openai not imported before the cell: the SDK is patched the moment the cell imports it."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", FRESH], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "NBOPS_WRITE_MODE": "sync"})
    assert "restored True" in r.stdout, r.stdout + r.stderr
    run = _run(client, "fresh", "first")
    assert (run.data.metrics["llm_calls"], run.data.metrics["llm_errors"]) == (1, 1)
    assert len(_traces(run)) == 1

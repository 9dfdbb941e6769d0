"""LLM calls of a tracked cell when the team's `mlflow server` is down: the cell returns, its traces are in the
spool, and once the server is back `nbops sync` puts them on it (through MLflow's REST trace API) exactly once,
linked to the synced run, however many times it runs."""
import secrets
from pathlib import Path

import pytest

from nbops.api import sync
from services import mlflow_server  # noqa: F401

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.llm]


def test_traces_spooled_for_a_dead_server_land_once_after_it_returns(ip, llm_server, mlflow_server, monkeypatch,
                                                                     tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    for k, v in mlflow_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NBOPS_WRITE_MODE", "sync")
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow_server.kill()
    key = "sk-test-" + secrets.token_hex(16)
    ip.user_ns.update(BASE=llm_server, KEY=key)
    assert ip.run_cell('''%%track -e llm-team -n down
import openai
c = openai.OpenAI(base_url=BASE, api_key=KEY)
answers = [c.chat.completions.create(model="smollm2", max_tokens=8, messages=[{"role": "user", "content": q}])
           for q in ("Hi", "Hello")]''').success
    journals = "".join(p.read_text() for p in Path(tmp_path / "spool").rglob("journal.jsonl"))
    assert journals.count('"trace_id"') == 2 and key not in journals

    mlflow_server.start()
    for _ in range(2):  # twice = once
        report = sync()
        assert not report.waiting, report.waiting
    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name("llm-team")
    (run,) = client.search_runs([exp.experiment_id])
    found = client.search_traces(locations=[exp.experiment_id])
    assert len(found) == 2
    assert {t.info.trace_metadata["mlflow.sourceRun"] for t in found} == {run.info.run_id}
    usage = sorted((a.usage.prompt_tokens, a.usage.completion_tokens) for a in ip.user_ns["answers"])
    got = sorted((t.data.spans[0].attributes["mlflow.chat.tokenUsage"]["input_tokens"],
                  t.data.spans[0].attributes["mlflow.chat.tokenUsage"]["output_tokens"]) for t in found)
    assert got == usage
    assert run.data.metrics["llm_calls"] == 2

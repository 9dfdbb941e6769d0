"""Traces (an LLM call's record) travel like every other record: through the one writer, masked, into the spool when
the store is down, replayed by `nbops sync` exactly once -- however many times it runs, and also when a sync
forgot how far it got (its state lost after the write). Domain-free: the records are made with
nbops.tracking.traces.record, as nbops.llm does."""
import json
import time
from pathlib import Path

import pytest

import nbops
from nbops.api import sync
from nbops.tracking import traces
from nbops.tracking.spool import Spool

SECRET = "sk-proj-" + "Q7v" * 12


def _record(i: int) -> dict:
    t = time.time_ns()
    return traces.record("openai.chat.completions.create", "CHAT_MODEL", t, t + 3_000_000,
                         inputs={"model": "m", "messages": [{"role": "user", "content": f"q{i} key={SECRET}"}]},
                         outputs={"choices": [{"message": {"role": "assistant", "content": f"a{i}"}}]},
                         attributes={"mlflow.chat.tokenUsage": {"input_tokens": 5 + i, "output_tokens": 2,
                                                                "total_tokens": 7 + i}},
                         tags={traces.NBOPS_TRACE_TAG: "llm"})


def _traces(client, run_id):
    exp = client.get_run(run_id).info.experiment_id
    return client.search_traces(locations=[exp], filter_string=f"metadata.`{traces.SOURCE_RUN}` = '{run_id}'")


@pytest.fixture
def offline(store, monkeypatch):
    nbops.secret(SECRET)
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    yield store


def test_spooled_traces_sync_once_linked_and_masked(offline, client, monkeypatch):
    with nbops.track("traced", "calls") as t:
        t.log_traces([_record(0), _record(1)])
    assert t.run.spooled
    spool = Path(offline.split("///")[1]).parent / "spool"
    journal = (spool / t.run_id / "journal.jsonl").read_text()
    assert journal.count('"op": "log_trace"') == 1 and journal.count('"trace_id"') == 2
    assert SECRET not in journal and "****" in journal
    assert client.get_experiment_by_name("traced") is None  # nothing reached the store

    monkeypatch.delenv("NBOPS_OFFLINE")
    sync()
    run = client.search_runs([client.get_experiment_by_name("traced").experiment_id])[0]
    got = _traces(client, run.info.run_id)
    assert sorted(t.data.spans[0].attributes["mlflow.chat.tokenUsage"]["input_tokens"] for t in got) == [5, 6]
    assert {t.data.spans[0].span_type for t in got} == {"CHAT_MODEL"}
    assert all(t.info.experiment_id == run.info.experiment_id for t in got)

    sync()  # twice = once
    state = spool / t.run_id / "state.json"
    st = json.loads(state.read_text())
    st["done"] = -1  # a sync that wrote everything, then died before saving how far it got
    state.write_text(json.dumps(st))
    sync()
    assert len(_traces(client, run.info.run_id)) == 2
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert Spool(spool).pending() == 0
    stored = json.dumps([t.to_dict() for t in _traces(client, run.info.run_id)])
    assert SECRET not in stored


def test_background_run_writes_its_traces_through_the_flusher(store, client, monkeypatch):
    monkeypatch.setenv("NBOPS_WRITE_MODE", "background")
    with nbops.Tracker("traced", "bg", kind="track") as t:
        t.log_traces([_record(2)])
    assert t.run.in_flight or not t.run.spooled
    from nbops.tracking.flusher import resolve

    run_id = resolve(t.run_id)
    got = _traces(client, run_id)
    assert [x.data.spans[0].outputs["choices"][0]["message"]["content"] for x in got] == ["a2"]

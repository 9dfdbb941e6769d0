"""``nbops.evaluate(fn_or_prompt, data, scorers=[...])`` and ``%evaluate ... --scorers``: the LLM mode, with a plain
Python function as the step (no model) and, marked ``llm``, a prompt sent to the real local llama.cpp server.
Stored metrics, tags and the per-item table are read back with MlflowClient."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nbops.evaluation.errors import EvaluationError
from nbops.llm.errors import PromptError

CONTEXT = "Paris is the capital of France. The Eiffel Tower was finished in 1889."


def _data():
    return pd.DataFrame({
        "question": ["Capital of France?", "When was the tower finished?", "Capital of Italy?", "Colour of sky?"],
        "expected": ["Paris", "1889", "Rome", "blue"],
        "context": [CONTEXT, CONTEXT, "Rome is the capital of Italy.", "The sky is blue."],
        "lang": ["en", "en", "it", "en"]})


def answer(question, context):
    """A hand-written 'LLM step': right twice, one invented year, one wrong colour."""
    if "France" in question:
        return "Paris"
    if "tower" in question:
        return "It was finished in 1899."
    if "Italy" in question:
        return "Rome"
    return "green"


def _run(client, run_id):
    r = client.get_run(run_id)
    path = client.download_artifacts(run_id, "evaluation/items.json")
    with open(path) as fh:
        table = json.load(fh)
    return r, pd.DataFrame(table["data"], columns=table["columns"])


def test_function_scored_and_logged(ip, client):
    import nbops

    data = _data()
    before = data.copy()
    res = nbops.evaluate(answer, data, scorers=["exact_match", "contains", "grounded"], slices="lang")
    pd.testing.assert_frame_equal(data, before)                             # the user's frame is untouched
    assert res.metrics == {"exact_match": 0.5, "contains": 0.5, "grounded": pytest.approx(0.75)}
    run, items = _run(client, res.run_id)
    m = run.data.metrics
    assert (m["eval_exact_match"], m["eval_contains"]) == (0.5, 0.5) and m["eval_grounded"] == pytest.approx(0.75)
    assert "eval_latency_p95_ms" in m and "llm_calls" not in m              # a function: no model calls counted
    assert run.data.tags["nbops.kind"] == "evaluation"
    assert list(items["output"]) == ["Paris", "It was finished in 1899.", "Rome", "green"]
    assert list(items["grounded"]) == [1.0, 0.0, 1.0, 1.0] and list(items["exact_match"]) == [1.0, 0.0, 1.0, 0.0]
    assert {"expected", "context", "latency_ms", "question", "lang"} <= set(items.columns)
    assert res.slice_tables["lang"].set_index("lang")["rows"].to_dict() == {"en": 3, "it": 1}


def test_a_failing_item_scores_zero_and_is_kept(ip, client):
    import nbops

    def flaky(question):
        if "Italy" in question:
            raise TimeoutError("model did not answer")
        return answer(question, "")

    res = nbops.evaluate(flaky, _data(), scorers=["exact_match"])
    assert res.metrics["exact_match"] == 0.25 and res.rows == 4
    _, items = _run(client, res.run_id)
    assert items["error"].tolist()[2] == "TimeoutError: model did not answer"


def test_mistakes_are_one_line(ip, client):
    import nbops

    with pytest.raises(EvaluationError, match="grounded need a context column"):
        nbops.evaluate(answer, _data().drop(columns="context"), scorers=["grounded"])
    with pytest.raises(EvaluationError, match="needs the column"):
        nbops.evaluate(lambda topic: topic, _data(), scorers=["exact_match"])
    with pytest.raises(EvaluationError, match="Unknown scorer"):
        nbops.evaluate(answer, _data(), scorers=["bleu"])
    ip.run_cell_magic("prompt", "qa", "Q: {{question}}")
    with pytest.raises(EvaluationError, match="pass model="):
        nbops.evaluate(nbops.prompt("qa"), _data(), scorers=["exact_match"])
    with pytest.raises(PromptError, match="needs"):
        nbops.prompt("qa").format()


def test_magic_llm_mode(ip, client, capsys):
    ip.user_ns.update(answer=answer, qs=_data())
    ip.run_line_magic("evaluate", "answer qs --scorers exact_match,grounded -o res")
    res = ip.user_ns["res"]
    assert client.get_run(res.run_id).data.metrics["eval_exact_match"] == 0.5
    assert "exact_match=0.5" in capsys.readouterr().out
    with pytest.raises(EvaluationError, match="--target"):
        ip.run_line_magic("evaluate", "answer qs")


@pytest.mark.llm
def test_prompt_against_the_local_model(ip, client, llm_server, monkeypatch):
    import nbops
    from nbops.evaluation.scorers import max_chars

    ip.run_cell_magic("prompt", "qa", "Answer with one word. {{question}}")
    res = nbops.evaluate(nbops.prompt("qa"), _data(), scorers=["contains", max_chars(400)], model="smollm2",
                         base_url=llm_server, api_key="sk-test-secret-key-0123456789abcdef", max_tokens=16)
    run, items = _run(client, res.run_id)
    m = run.data.metrics
    assert m["llm_calls"] == 4 and m["llm_errors"] == 0 and m["llm_input_tokens"] > 0 and m["llm_output_tokens"] > 0
    assert m["llm_output_tokens"] == items["output_tokens"].sum() and m["llm_latency_p95_ms"] > 0
    assert run.data.tags["nbops.evaluation.prompt"] == "qa/1" and run.data.tags["nbops.prompts"] == "qa/1"
    assert items["input"].tolist()[0] == "Answer with one word. Capital of France?"
    assert "sk-test-secret" not in json.dumps(run.data.to_dictionary())
    assert "llm_cost_usd" not in m  # no price known for the model
    monkeypatch.setattr("nbops.llm.cost._SET", {})  # the prices set here end with the test
    nbops.llm.prices({"smollm2": {"input_per_million": 2.0, "output_per_million": 10.0}})
    priced = _run(client, nbops.evaluate(nbops.prompt("qa"), _data(), scorers=["contains", max_chars(400)], model="smollm2",
                                         base_url=llm_server, api_key="sk-x", max_tokens=16).run_id)[0]
    pm = priced.data.metrics
    want = (pm["llm_input_tokens"] * 2.0 + pm["llm_output_tokens"] * 10.0) / 1e6
    assert pm["llm_cost_usd"] == pytest.approx(want) and pm["llm_cost_per_call_usd"] == pytest.approx(want / 4)
    ip.run_line_magic("promote", 'prompt qa --alias production --require "llm_calls>=4" "eval_max_chars>=1"')
    assert nbops.prompt("qa@production").version == 1


@pytest.mark.llm
def test_magic_with_a_prompt_and_a_judge(ip, client, llm_server, monkeypatch):
    from nbops.evaluation.scorers import llm_judge

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge-key-0123456789abcdef")
    ip.run_cell_magic("prompt", "qa", "- role: system\n  content: Answer with one word.\n"
                                      "- role: user\n  content: '{{question}}'\n")
    ip.user_ns.update(qs=_data(), judge=llm_judge("smollm2", base_url=llm_server))
    ip.run_line_magic("evaluate", f"prompts:/qa/1 qs --scorers contains,judge --model smollm2 --base-url {llm_server} "
                                  f"--max-tokens 8 -o res")
    res = ip.user_ns["res"]
    run, items = _run(client, res.run_id)
    assert run.data.metrics["llm_calls"] == 4 and run.data.params["model"] == "smollm2"
    assert items["input"].tolist()[0] == "Answer with one word.\nCapital of France?"
    grades = items["judge"].dropna()
    assert grades.between(0, 1).all() and set(grades) <= {0, 0.25, 0.5, 0.75, 1.0}
    assert "sk-test-judge-key" not in json.dumps(run.data.to_dictionary())

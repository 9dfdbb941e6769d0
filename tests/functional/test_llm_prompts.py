"""Prompts in MLflow's prompt registry through ``%%prompt`` / ``nbops.prompt`` in a real IPython shell; what was
stored is read back with MlflowClient and ``mlflow.genai.load_prompt``."""
from __future__ import annotations

import json

import pytest

from nbops.llm.errors import PromptError


def _load(uri):
    import mlflow

    return mlflow.genai.load_prompt(uri, cache_ttl_seconds=0)


def test_prompt_cell_registers_only_changes(ip, client, capsys):
    ip.run_cell_magic("prompt", 'qa -m "first version"', "Answer briefly: {{question}}\n")
    assert "Registered prompt qa version 1" in capsys.readouterr().out
    ip.run_cell_magic("prompt", "qa", "Answer briefly: {{question}}\n")          # same text: no new version
    assert "unchanged, version 1" in capsys.readouterr().out
    ip.run_cell_magic("prompt", 'qa -m "shorter" --alias staging', "Answer in 5 words: {{question}}")
    pv = _load("prompts:/qa@staging")
    assert (pv.version, pv.template, pv.commit_message) == (2, "Answer in 5 words: {{question}}", "shorter")
    assert _load("prompts:/qa/1").commit_message == "first version"
    assert [int(p.version) for p in client.search_prompt_versions("qa")] == [2, 1]


def test_chat_prompt_yaml_and_format(ip, client):
    ip.run_cell_magic("prompt", "chat", "- role: system\n  content: You answer about {{topic}}.\n"
                                        "- role: user\n  content: '{{question}}'\n")
    pv = _load("prompts:/chat/1")
    assert pv.template == [{"role": "system", "content": "You answer about {{topic}}."},
                           {"role": "user", "content": "{{question}}"}]
    import nbops

    p = nbops.prompt("chat")
    msgs = p.format(topic="cats", question="Why purr?")
    assert msgs == [{"role": "system", "content": "You answer about cats."}, {"role": "user", "content": "Why purr?"}]
    assert p.template[0]["content"] == "You answer about {{topic}}."            # the loaded prompt is not mutated
    with pytest.raises(PromptError, match="needs question"):
        p.format(topic="cats")


def test_load_by_alias_and_version_and_errors(ip, client):
    import nbops

    ip.run_cell_magic("prompt", "qa --alias production", "v1 {{q}}")
    ip.run_cell_magic("prompt", "qa", "v2 {{q}}")
    assert nbops.prompt("qa").version == 2 and nbops.prompt("qa").format(q="x") == "v2 x"
    assert nbops.prompt("qa@production").version == 1
    assert nbops.prompt("qa/1").template == "v1 {{q}}"
    with pytest.raises(PromptError, match="no version 7"):
        nbops.prompt("qa/7")
    with pytest.raises(PromptError, match="no alias 'gold'"):
        nbops.prompt("qa@gold")
    with pytest.raises(PromptError, match="No prompt 'nope'"):
        nbops.prompt("nope")


def test_missing_variable_is_one_line(ip, capsys):
    ip.run_cell_magic("prompt", "qa", "Hello {{name}}, about {{topic}}")
    r = ip.run_cell("import nbops\nnbops.prompt('qa').format(name='Ann')")
    assert not r.success
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert "needs topic" in text and "Traceback" not in text


def test_diff(ip, capsys):
    ip.run_cell_magic("prompt", "qa", "Line one\nAnswer: {{q}}")
    ip.run_cell_magic("prompt", "qa", "Line one\nAnswer briefly: {{q}}")
    capsys.readouterr()
    ip.run_line_magic("prompt", "qa --diff 1 2")
    out = capsys.readouterr().out
    assert "-Answer: {{q}}" in out and "+Answer briefly: {{q}}" in out and " Line one" in out


def test_secret_in_prompt_is_masked(ip, client):
    key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
    ip.run_cell_magic("prompt", "leaky", f"Use key {key} to answer {{{{q}}}}")
    pv = _load("prompts:/leaky/1")
    assert key not in pv.template and "{{q}}" in pv.template


def test_tracked_cell_links_prompt_versions_to_its_run(ip, client):
    ip.run_cell_magic("prompt", "qa", "Q: {{q}}")
    ip.run_cell_magic("prompt", "other", "O: {{q}}")
    ip.run_cell("%%track -e prompts -n used\nimport nbops\n"
                "a = nbops.prompt('qa').format(q='x')\nb = nbops.prompt('other').format(q='y')\n"
                "c = nbops.prompt('qa').format(q='z')\n")
    ip.run_line_magic("nbops", "runs")  # waits for the background writes
    exp = client.get_experiment_by_name("prompts")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["nbops.prompts"] == "qa/1,other/1"
    assert json.loads(run.data.tags["mlflow.linkedPrompts"]) == [{"name": "qa", "version": "1"},
                                                                 {"name": "other", "version": "1"}]
    ip.run_cell("%%track -e prompts -n second\nimport nbops\nd = nbops.prompt('other')\n")
    ip.run_line_magic("nbops", "runs")
    second = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "second"][0]
    assert second.data.tags["nbops.prompts"] == "other/1"                     # a new run starts its own list


def test_name_of_a_model_is_refused(ip, client):
    client.create_registered_model("churn")
    with pytest.raises(PromptError, match="registered model, not a prompt"):
        ip.run_cell_magic("prompt", "churn", "x {{y}}")


def test_offline_and_store_down_are_one_line(ip, client, monkeypatch, capsys):
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    with pytest.raises(PromptError, match="NBOPS_OFFLINE=1"):
        ip.run_cell_magic("prompt", "qa", "x {{y}}")
    monkeypatch.delenv("NBOPS_OFFLINE")
    from nbops_testing import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    capsys.readouterr()
    r = ip.run_cell("%%prompt qa\nx {{y}}")
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert not r.success and len(text.splitlines()) == 1 and "Traceback" not in text, text


def test_prompt_is_listed_in_the_notebooks_experiment(ip, client):
    ip.run_cell("%%track -e prompts -n first\nx = 1\n")
    ip.run_cell_magic("prompt", "qa", "Q: {{q}}")
    exp = client.get_experiment_by_name("prompts")
    assert [p.name for p in client.search_prompts(filter_string=f'experiment_id = "{exp.experiment_id}"')] == ["qa"]

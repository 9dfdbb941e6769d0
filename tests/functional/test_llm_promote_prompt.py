"""``%promote prompt NAME``: the model promotion's gates, audit trail and rollback moving a prompt alias in MLflow's
prompt registry; gates read the runs that evaluated or used the version. Real shell, real SQLite store read back
with MlflowClient and mlflow.genai.load_prompt."""
from __future__ import annotations

import json

import pytest

from nbops.errors import GateFailed, NbopsError


def _alias(uri):
    import mlflow

    try:
        return int(mlflow.genai.load_prompt(uri, cache_ttl_seconds=0).version)
    except Exception:  # noqa: BLE001 - no such alias
        return None


def _used(ref, metrics, evaluation=False, name="used"):
    """A finished run that loaded prompt ``ref`` (as a tracked cell does) with ``metrics``."""
    import nbops
    from nbops.llm import prompts
    from nbops.registry.prompts import EVAL_TAG

    with nbops.track("llm", name) as t:
        p = nbops.prompt(ref)
        if evaluation:
            t.set_tag(EVAL_TAG, f"{p.name}/{p.version}")
        t.log_metrics(metrics)
    assert prompts.RUN_TAG  # the tag the gates search
    return t.run_id


def test_gates_move_the_prompt_alias_or_nothing(ip, client, capsys):
    ip.run_cell_magic("prompt", "qa", "Answer: {{question}}")
    _used("qa", {"llm_calls": 2, "llm_latency_p95_ms": 420.0})
    with pytest.raises(GateFailed):
        ip.run_line_magic("promote", 'prompt qa --alias production --require "llm_latency_p95_ms<0.0001"')
    assert _alias("prompts:/qa@production") is None
    assert "FAIL" in capsys.readouterr().out
    ip.run_line_magic("promote", 'prompt qa --alias production --require "llm_calls>=1" --reason first')
    assert _alias("prompts:/qa@production") == 1
    tags = client.get_prompt_version("qa", 1).tags
    assert tags["nbops.promote.status"] == "promoted" and tags["nbops.promote.reason"] == "first"
    assert tags["nbops.promote.gate.1"].startswith("pass llm_calls>=1") and tags["nbops.promote.replaced"] == "none"
    assert tags["nbops.promote.who"] and tags["nbops.promote.when"]
    import nbops

    assert nbops.prompt("qa@production").version == 1


def test_evaluation_wins_over_use_must_beat_and_rollback(ip, client):
    import nbops

    ip.run_cell_magic("prompt", "qa", "v1 {{q}}")
    _used("qa/1", {"eval_exact_match": 0.6}, evaluation=True)
    ip.run_line_magic("promote", 'prompt qa --alias production --require "eval_exact_match>=0.5"')
    ip.run_cell_magic("prompt", "qa", "v2 {{q}}")
    _used("qa/2", {"eval_exact_match": 0.5}, evaluation=True, name="eval-v2")
    _used("qa/2", {"eval_exact_match": 0.9}, name="later use, not an evaluation")
    with pytest.raises(GateFailed, match="0.5 vs 0.6"):  # the evaluation counts, not the later tracked use
        ip.run_line_magic("promote", 'prompt qa --alias production --require "eval_exact_match>=0.1" '
                                     '--must-beat production')
    assert _alias("prompts:/qa@production") == 1
    _used("qa/2", {"eval_exact_match": 0.8}, evaluation=True, name="eval-v2-again")
    ip.run_line_magic("promote", 'prompt qa --alias production --require "eval_exact_match>=0.1" '
                                 '--must-beat production')
    assert (_alias("prompts:/qa@production"), _alias("prompts:/qa@previous-production")) == (2, 1)
    assert client.get_prompt_version("qa", 2).tags["nbops.promote.replaced"] == "1"
    ip.run_line_magic("promote", "prompt qa --alias production --rollback")
    assert _alias("prompts:/qa@production") == 1 and _alias("prompts:/qa@previous-production") is None
    assert nbops.prompt("qa@production").template == "v1 {{q}}"
    from nbops.registry.prompts import history

    h = history("qa")
    assert [r["action"] for r in h.rows()] == ["promote", "promote", "rollback"]


def test_no_run_used_the_version(ip, client):
    ip.run_cell_magic("prompt", "qa", "v1 {{q}}")
    with pytest.raises(NbopsError, match="No finished run used prompt qa v1"):
        ip.run_line_magic("promote", 'prompt qa --alias production --require "llm_calls>=1"')
    with pytest.raises(NbopsError, match="No prompt 'zz'"):
        ip.run_line_magic("promote", "prompt zz --alias production")
    with pytest.raises(NbopsError, match="is for models"):
        ip.run_line_magic("promote", "prompt qa --run abc")
    assert _alias("prompts:/qa@production") is None


def test_a_tracked_cell_that_loaded_the_prompt_is_the_evidence(ip, client):
    ip.run_cell_magic("prompt", "qa", "v1 {{q}}")
    ip.run_cell("%%track -e llm-acc -n calls\nimport nbops\ntext = nbops.prompt('qa').format(q='x')\n"
                "nbops.tracking.current().log_metric('llm_calls', 3)\n")
    ip.run_line_magic("promote", 'prompt qa --alias production --require "llm_calls>=1"')
    assert _alias("prompts:/qa@production") == 1


def test_cli(ip, client, capsys):
    from nbops.cli import main

    ip.run_cell_magic("prompt", "qa", "v1 {{q}}")
    _used("qa", {"llm_calls": 2.0})
    capsys.readouterr()
    assert main(["promote", "prompt", "qa", "--alias", "production", "--require", "llm_calls>=5"]) == 1
    assert _alias("prompts:/qa@production") is None and "llm_calls>=5" in capsys.readouterr().err
    assert main(["promote", "prompt", "qa", "--alias", "production", "--require", "llm_calls>=1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "promoted" and out["version"] == "1" and _alias("prompts:/qa@production") == 1
    assert main(["promote", "prompt", "qa", "--alias", "production", "--history"]) == 0
    assert "promote" in capsys.readouterr().out

"""`%%track --budget-usd` reads like every option: a bad value is one line and nothing runs or is recorded; a cell
without LLM calls under a budget runs and records no llm_* metrics. (No model needed.)"""
import pytest


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_budget_is_one_line_and_nothing_runs(ip, client, capfd, value):
    r = ip.run_cell(f"%%track -e b --budget-usd {value}\nran = True")
    out, err = capfd.readouterr()
    assert not r.success and "ran" not in ip.user_ns
    assert "--budget-usd" in out + err and len((out + err).strip().splitlines()) == 1
    assert client.get_experiment_by_name("b") is None


def test_a_budget_without_llm_calls_changes_nothing(ip, client):
    assert ip.run_cell("%%track -e b -n plain --budget-usd 0.5\naccuracy = 0.9").success
    run = client.search_runs([client.get_experiment_by_name("b").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.9
    assert not any(k.startswith("llm_") for k in run.data.metrics)
    assert "nbops.budget_exceeded" not in run.data.tags

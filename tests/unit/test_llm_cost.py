"""Prices come only from the user (a YAML/JSON file named by NBOPS_LLM_PRICES, or nbops.llm.prices()); a model
without one has no cost and is said once; the budget refuses a call whose estimate would pass it, in one line."""
import logging

import pytest

from nbops.errors import BudgetExceeded, ConfigError
from nbops.llm import cost


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(cost, "_SET", {})
    monkeypatch.setattr(cost, "_NOTED", set())
    monkeypatch.delenv(cost.ENV_PRICES, raising=False)


def test_prices_from_a_yaml_file_and_from_python(tmp_path, monkeypatch):
    f = tmp_path / "prices.yaml"
    f.write_text("gpt-4o-mini:\n  input_per_million: 0.15\n  output_per_million: 0.6\n")
    monkeypatch.setenv(cost.ENV_PRICES, str(f))
    assert cost.cost("gpt-4o-mini-2024-07-18", 1_000_000, 2_000_000) == pytest.approx(
        {"input_cost": 0.15, "output_cost": 1.2, "total_cost": 1.35})  # priced by the longest name it starts with
    cost.prices({"gpt-4o-mini": {"input_per_million": 1, "output_per_million": 2}})  # Python wins over the file
    assert cost.cost("gpt-4o-mini", 10**6, 0)["total_cost"] == pytest.approx(1.0)


def test_a_json_file(tmp_path, monkeypatch):
    f = tmp_path / "prices.json"
    f.write_text('{"m": {"input_per_million": 2, "output_per_million": 4}}')
    monkeypatch.setenv(cost.ENV_PRICES, str(f))
    assert cost.cost("m", 500_000, 250_000)["total_cost"] == pytest.approx(2.0)


@pytest.mark.parametrize("text", ["m: 3\n", "- a\n", "m: {input_per_million: x, output_per_million: 1}\n", "m: [\n"])
def test_a_bad_price_file_is_one_line_saying_what_to_write(tmp_path, monkeypatch, text):
    f = tmp_path / "prices.yaml"
    f.write_text(text)
    monkeypatch.setenv(cost.ENV_PRICES, str(f))
    with pytest.raises(ConfigError) as e:
        cost.prices()
    assert "\n" not in str(e.value) and cost.ENV_PRICES in str(e.value)


def test_unknown_model_has_no_cost_and_is_said_once(caplog):
    with caplog.at_level(logging.WARNING, logger="nbops"):
        assert cost.cost("mystery", 10, 10) is None
        assert cost.cost("mystery", 20, 20) is None
    assert sum("mystery" in r.getMessage() for r in caplog.records) == 1


def test_budget_refuses_the_call_that_would_pass_it():
    cost.prices({"m": {"input_per_million": 1000, "output_per_million": 1000}})
    b = cost.Budget(0.05)
    msgs = [{"role": "user", "content": "x" * 40}]      # ~10 tokens + 4 for the message
    b.check("m", msgs, 16)                                # ~30 tokens = $0.03: allowed
    b.add(0.03)
    with pytest.raises(BudgetExceeded) as e:
        b.check("m", msgs, 16)                            # $0.03 + $0.03 > $0.05
    assert "\n" not in str(e.value) and "--budget-usd 0.05" in str(e.value)
    assert e.value.spent_usd == pytest.approx(0.03) and e.value.budget_usd == 0.05
    cost.Budget(0.05).check("unpriced", msgs, 10**6)     # nothing to estimate with: the call goes


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(cost.ENV_BUDGET, "0.5")
    assert cost.budget_from_env() == 0.5
    for bad in ("lots", "0", "-1"):
        monkeypatch.setenv(cost.ENV_BUDGET, bad)
        with pytest.raises(ConfigError):
            cost.budget_from_env()

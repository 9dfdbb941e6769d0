"""What an LLM call costs, from prices the user gives (nothing is fetched from the network), and the budget a tracked
cell may spend.

Prices, in USD per million tokens: ``NBOPS_LLM_PRICES`` names a YAML or JSON file mapping a model name to
``{input_per_million: ..., output_per_million: ...}``, and :func:`prices` sets them from Python (they win over the
file). A model's price is looked up by its exact name, then by the longest priced name it starts with
(``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``). A model without a price: its tokens are logged and one
note says its cost is unknown.

The budget (``%%track --budget-usd X``, ``nbops run --budget-usd X`` -> ``NBOPS_BUDGET_USD`` in the kernel): before
each call, its cost is estimated from the request (input tokens ~ characters / 4 of the messages, output tokens =
``max_tokens`` or, without one, the same as the input) at the model's prices; a call that would take the run past
the budget is not made (:class:`~nbops.errors.BudgetExceeded`, one line).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BudgetExceeded, ConfigError

log = logging.getLogger("nbops")
ENV_PRICES = "NBOPS_LLM_PRICES"
ENV_BUDGET = "NBOPS_BUDGET_USD"
CHARS_PER_TOKEN = 4.0

_SET: dict[str, "Price"] = {}           # nbops.llm.prices({...})
_FILE: tuple[str, float, dict] | None = None   # (path, mtime, prices) of NBOPS_LLM_PRICES
_NOTED: set[str] = set()                 # models whose unknown cost was said already


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: float, output_tokens: float) -> tuple[float, float]:
        return input_tokens * self.input_per_million / 1e6, output_tokens * self.output_per_million / 1e6


def _parse(data, where: str) -> dict[str, Price]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: write a mapping of model name to {{input_per_million: ..., "
                          f"output_per_million: ...}} (USD per million tokens).")
    out = {}
    for model, p in data.items():
        try:
            out[str(model)] = Price(float(p["input_per_million"]), float(p["output_per_million"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{where}: the price of {model!r} needs numbers input_per_million and "
                              f"output_per_million (USD per million tokens), e.g. {{input_per_million: 0.15, "
                              f"output_per_million: 0.6}}.") from None
    return out


def prices(table: dict | None = None) -> dict[str, Price]:
    """Set prices (``{"gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6}}``, added to those set
    before) and return every price known now (the file's and these)."""
    if table is not None:
        _SET.update(_parse(table, "nbops.llm.prices()"))
    return {**_file_prices(), **_SET}


def _file_prices() -> dict[str, Price]:
    global _FILE
    path = os.environ.get(ENV_PRICES, "").strip()
    if not path:
        return {}
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"{ENV_PRICES}={path}: cannot read it ({(exc.strerror or str(exc)).lower()}); point it at "
                          f"a YAML or JSON file of model prices, or unset it.", path=path) from None
    if _FILE is not None and _FILE[0] == path and _FILE[1] == mtime:
        return _FILE[2]
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.endswith(".json") else _yaml(text)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PRICES}={path} does not parse ({exc}); fix the file or unset it.",
                          path=path) from None
    table = _parse(data, f"{ENV_PRICES}={path}")
    _FILE = (path, mtime, table)
    return table


def _yaml(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def price_of(model: str | None) -> Price | None:
    """The price of ``model``: by its name, else by the longest priced name it starts with; None if unpriced."""
    if not model:
        return None
    table = prices()
    if model in table:
        return table[model]
    best = max((m for m in table if model.startswith(m)), key=len, default=None)
    return table[best] if best else None


def cost(model: str | None, input_tokens: float, output_tokens: float) -> dict | None:
    """``{"input_cost", "output_cost", "total_cost"}`` in USD (MLflow's ``mlflow.llm.cost`` shape), or None for a
    model without a price (said once per model)."""
    try:
        p = price_of(model)
    except ConfigError as exc:  # a broken price file: the calls are still recorded, without a cost
        if exc.message not in _NOTED:
            _NOTED.add(exc.message)
            log.warning("nbops: %s", exc.message)
        return None
    if p is None:
        if model not in _NOTED:
            _NOTED.add(model)
            log.warning("nbops: no price for model %r: its tokens are logged, its cost is unknown (set one in "
                        "%s or with nbops.llm.prices()).", model, ENV_PRICES)
        return None
    i, o = p.cost(input_tokens, output_tokens)
    return {"input_cost": i, "output_cost": o, "total_cost": i + o}


def estimate_input_tokens(payload) -> int:
    """Input tokens of a request, estimated from its text (messages or ``input``): characters / 4, plus a few
    tokens per message for the chat template."""
    n, msgs = 0, 0
    stack = [payload]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            n += len(v)
        elif isinstance(v, dict):
            msgs += 1 if "role" in v else 0
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return int(n / CHARS_PER_TOKEN + 0.999) + 4 * msgs


def budget_from_env() -> float | None:
    raw = os.environ.get(ENV_BUDGET, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_BUDGET}={raw!r} is not a number of US dollars: set it to e.g. 0.50, or unset it.") \
            from None
    if not value > 0:
        raise ConfigError(f"{ENV_BUDGET}={raw!r}: a budget must be more than 0 USD.")
    return value


class Budget:
    """What a run may spend on LLM calls; ``check`` is called before each call."""

    def __init__(self, limit_usd: float | None):
        self.limit = limit_usd
        self.spent = 0.0

    def check(self, model: str | None, payload, max_tokens) -> None:
        if self.limit is None:
            return
        p = price_of(model)
        if p is None:  # nothing to estimate with: the call goes, its tokens are logged (and the cost said unknown)
            return
        tin = estimate_input_tokens(payload)
        tout = int(max_tokens) if isinstance(max_tokens, (int, float)) and max_tokens > 0 else tin
        est = sum(p.cost(tin, tout))
        if self.spent + est > self.limit:
            raise BudgetExceeded(
                f"budget: this call (~${est:.4g}) would take the run to ${self.spent + est:.4g} > --budget-usd "
                f"{self.limit:g}; raise the budget or lower max_tokens", spent_usd=self.spent, estimate_usd=est,
                budget_usd=self.limit)

    def add(self, usd: float | None) -> None:
        if usd:
            self.spent += usd

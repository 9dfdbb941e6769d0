"""Promotion gates: metric expressions on the candidate run, ``--must-beat ALIAS`` and ``--require-no-drift``.

Every gate is evaluated from values read beforehand (nothing here touches MLflow), so the gates of a promotion
are decided before anything is written and can be tested without a store. A gate is a :class:`GateResult`
carrying the measured value next to what it was held against.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import PromotionError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
       "!=": operator.ne}
_EXPR = re.compile(r"^\s*(?P<metric>[^<>=!\s]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*$")

# Metric names where a smaller value is the better one (used when --min/--max is not given).
_LOWER_IS_BETTER = ("loss", "error", "err", "rmse", "mse", "mae", "mape", "latency", "_ms", "time", "duration",
                    "perplexity", "logloss", "brier")

DRIFT_STATUS = "nbops.drift.status"
DRIFT_CHECKED_AT = "nbops.drift.checked_at"
DRIFT_RUN_ID = "nbops.drift.run_id"


@dataclass
class GateResult:
    """One gate's outcome: ``measured`` is the candidate's value, ``expected`` what it was held against."""
    name: str
    kind: str                 # "metric" | "must-beat" | "no-drift"
    passed: bool
    measured: object = None
    expected: object = None
    detail: str = ""

    def line(self) -> str:
        mark = "pass" if self.passed else "FAIL"
        return f"{mark}  {self.name}: {self.detail}"

    def as_dict(self) -> dict:
        return {"gate": self.name, "kind": self.kind, "passed": self.passed, "measured": _plain(self.measured),
                "expected": _plain(self.expected), "detail": self.detail}


@dataclass(frozen=True)
class MetricExpr:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{_fmt(self.threshold)}"


def parse_expr(text: str) -> MetricExpr:
    """``"accuracy>=0.85"`` -> ``MetricExpr("accuracy", ">=", 0.85)``; a clear error for anything else."""
    m = _EXPR.match(text or "")
    if not m:
        raise PromotionError(f"--require {text!r} is not a metric expression: write METRIC OP NUMBER, e.g. "
                             f"'accuracy>=0.85' or 'latency_ms<50' (OP is one of >= <= > < == !=).", expr=text)
    try:
        value = float(m["value"])
    except ValueError:
        raise PromotionError(f"--require {text!r}: {m['value']!r} is not a number.", expr=text) from None
    if math.isnan(value):
        raise PromotionError(f"--require {text!r}: compare with a number, not NaN.", expr=text)
    return MetricExpr(m["metric"], m["op"], value)


def lower_is_better(metric: str) -> bool:
    low = metric.lower()
    return any(k in low for k in _LOWER_IS_BETTER)


def unknown_metric(metric: str, run_id: str, available, what: str = "the candidate run") -> PromotionError:
    names = ", ".join(sorted(available)) or "none"
    return PromotionError(f"Metric {metric!r} is not logged on {what} {run_id} (it has: {names}). Fix the name, "
                          f"or log it in the training cell.", metric=metric, run_id=run_id)


def metric_gates(exprs, metrics: dict, run_id: str) -> list[GateResult]:
    """One gate per expression; a metric the run does not have is an error, never a silent pass."""
    out = []
    for e in exprs:
        e = parse_expr(e) if isinstance(e, str) else e
        if e.metric not in metrics:
            raise unknown_metric(e.metric, run_id, metrics)
        v = float(metrics[e.metric])
        ok = (not math.isnan(v)) and OPS[e.op](v, e.threshold)
        out.append(GateResult(str(e), "metric", ok, v, e.threshold,
                              f"{e.metric} = {_fmt(v)} (needs {e.op} {_fmt(e.threshold)})"))
    return out


def must_beat_gate(alias: str, metric: str, higher: bool, candidate_value: float, holder_version: str | None,
                   holder_value: float | None, candidate_version: str | None = None,
                   holder_run_id: str | None = None) -> GateResult:
    """Strictly better than the version holding ``alias`` now; passes when no version holds it yet or when the
    candidate *is* that version (promoting it again changes nothing)."""
    name = f"must-beat {alias} ({metric}, {'higher' if higher else 'lower'} is better)"
    if holder_version is None:
        return GateResult(name, "must-beat", True, candidate_value, None,
                          f"no version holds '{alias}' yet; {metric} = {_fmt(candidate_value)}")
    if candidate_version is not None and str(candidate_version) == str(holder_version):
        return GateResult(name, "must-beat", True, candidate_value, holder_value,
                          f"the candidate already is '{alias}' (version {holder_version})")
    if holder_value is None or math.isnan(holder_value):
        return GateResult(name, "must-beat", False, candidate_value, None,
                          f"'{alias}' (version {holder_version}, run {holder_run_id}) has no metric {metric!r}: "
                          f"nothing shows the candidate beats it")
    ok = candidate_value > holder_value if higher else candidate_value < holder_value
    return GateResult(name, "must-beat", ok, candidate_value, holder_value,
                      f"{metric} = {_fmt(candidate_value)} vs {_fmt(holder_value)} for '{alias}' "
                      f"(version {holder_version})")


def drift_gate(tags: dict | None, trained_at_ms: int | None, where: str) -> GateResult:
    """Passes only when the drift tags (written by ``%drift models:/NAME@alias ...`` on the candidate's model
    version) say ``no-drift`` *and* the check is newer than the training data: ``nbops.drift.checked_at`` later
    than the end of the candidate run (its start while it still runs). ``where`` names the version checked."""
    name = "require-no-drift"
    tags = tags or {}
    status, checked = tags.get(DRIFT_STATUS), tags.get(DRIFT_CHECKED_AT)
    trained = _iso(trained_at_ms) if trained_at_ms else "unknown"
    if not status or not checked:
        return GateResult(name, "no-drift", False, None, f"no-drift after {trained}",
                          f"no drift check on record for {where}: register it under a test alias "
                          f"(e.g. --alias challenger), run %drift models:/NAME@challenger CURRENT_DATA, then "
                          f"promote again")
    when = parse_iso(checked)
    if when is None:
        return GateResult(name, "no-drift", False, status, trained,
                          f"{DRIFT_CHECKED_AT}={checked!r} on {where} is not an ISO-8601 time")
    run = tags.get(DRIFT_RUN_ID)
    src = f" (drift run {run})" if run else ""
    if trained_at_ms and when.timestamp() * 1000 <= trained_at_ms:
        return GateResult(name, "no-drift", False, f"{status} at {checked}", f"no-drift after {trained}",
                          f"the last drift check{src} at {checked} is not newer than the training run "
                          f"(ended {trained}): check the candidate against current data again")
    if status != "no-drift":
        return GateResult(name, "no-drift", False, f"{status} at {checked}", f"no-drift after {trained}",
                          f"the drift check{src} at {checked} found {status!r}")
    return GateResult(name, "no-drift", True, f"{status} at {checked}", f"no-drift after {trained}",
                      f"no drift found at {checked}{src}, after training ended {trained}")


def parse_iso(text: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)  # the contract says UTC


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v

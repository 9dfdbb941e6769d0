"""Gates, validation, audit tags and result views: pure functions, no store."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from nbops.errors import NbopsError, PromotionError
from nbops.registry import audit
from nbops.registry.candidates import Candidate
from nbops.registry.core import PromotionResult, _direction, check_alias, check_name
from nbops.registry.gates import (GateResult, drift_gate, metric_gates, must_beat_gate, parse_expr, parse_iso)


@pytest.mark.parametrize("text,metric,op,value", [
    ("accuracy>=0.85", "accuracy", ">=", 0.85),
    (" latency_ms < 50 ", "latency_ms", "<", 50.0),
    ("system/cpu.pct!=1e-3", "system/cpu.pct", "!=", 0.001),
    ("f1==1", "f1", "==", 1.0),
    ("rmse<=-2.5", "rmse", "<=", -2.5),
])
def test_parse_expr(text, metric, op, value):
    e = parse_expr(text)
    assert (e.metric, e.op, e.threshold) == (metric, op, value)


@pytest.mark.parametrize("text", ["accuracy", "accuracy>=", ">=0.5", "accuracy=>0.5", "accuracy>=high",
                                  "accuracy>=nan", "", "a b>=1"])
def test_parse_expr_rejects_with_a_hint(text):
    with pytest.raises(PromotionError, match="metric expression|not a number|NaN"):
        parse_expr(text)


def test_metric_gates_pass_fail_and_measured_values():
    gates = metric_gates(["accuracy>=0.9", "latency_ms<50"], {"accuracy": 0.93, "latency_ms": 61.0}, "r1")
    assert [g.passed for g in gates] == [True, False]
    assert gates[1].measured == 61.0 and gates[1].expected == 50.0
    assert "61" in gates[1].detail and "< 50" in gates[1].detail


def test_boundary_and_nan():
    assert metric_gates(["accuracy>=0.9"], {"accuracy": 0.9}, "r")[0].passed
    assert not metric_gates(["accuracy>0.9"], {"accuracy": 0.9}, "r")[0].passed
    assert not metric_gates(["loss<1"], {"loss": float("nan")}, "r")[0].passed  # NaN never passes


def test_unknown_metric_is_an_error_naming_what_exists():
    with pytest.raises(PromotionError) as e:
        metric_gates(["acuracy>=0.9"], {"accuracy": 0.93, "f1": 0.9}, "run42")
    assert "acuracy" in str(e.value) and "accuracy, f1" in str(e.value) and "run42" in str(e.value)
    assert isinstance(e.value, NbopsError)


def test_must_beat():
    assert must_beat_gate("champion", "acc", True, 0.8, None, None).passed            # nobody holds it
    assert must_beat_gate("champion", "acc", True, 0.8, "3", 0.7).passed
    assert not must_beat_gate("champion", "acc", True, 0.8, "3", 0.8).passed          # a tie does not beat
    assert not must_beat_gate("champion", "acc", True, 0.7, "3", 0.8).passed
    assert must_beat_gate("champion", "rmse", False, 1.0, "3", 2.0).passed            # lower is better
    assert not must_beat_gate("champion", "rmse", False, 3.0, "3", 2.0).passed
    g = must_beat_gate("champion", "acc", True, 0.8, "3", None, holder_run_id="abc")
    assert not g.passed and "no metric 'acc'" in g.detail
    assert must_beat_gate("champion", "acc", True, 0.8, "3", 0.9, candidate_version="3").passed


def _iso(dt):
    return dt.isoformat()


def test_drift_gate_contract():
    end = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    end_ms = int(end.timestamp() * 1000)
    later, earlier = _iso(end + timedelta(hours=1)), _iso(end - timedelta(hours=1))
    ok = drift_gate({"nbops.drift.status": "no-drift", "nbops.drift.checked_at": later,
                     "nbops.drift.run_id": "d1"}, end_ms, "version 2")
    assert ok.passed and "d1" in ok.detail
    assert not drift_gate({"nbops.drift.status": "drift", "nbops.drift.checked_at": later}, end_ms, "v").passed
    stale = drift_gate({"nbops.drift.status": "no-drift", "nbops.drift.checked_at": earlier}, end_ms, "v")
    assert not stale.passed and "not newer" in stale.detail
    same = drift_gate({"nbops.drift.status": "no-drift", "nbops.drift.checked_at": _iso(end)}, end_ms, "v")
    assert not same.passed  # "newer" is strict
    none = drift_gate({}, end_ms, "run r (no version)")
    assert not none.passed and "%drift models:/" in none.detail
    bad = drift_gate({"nbops.drift.status": "no-drift", "nbops.drift.checked_at": "yesterday"}, end_ms, "v")
    assert not bad.passed and "ISO-8601" in bad.detail
    # the drift engineer writes second-resolution UTC with an offset; "Z" and naive (UTC) are read too
    assert parse_iso("2025-01-01T13:00:00Z") == parse_iso("2025-01-01T13:00:00+00:00") == \
        parse_iso("2025-01-01T13:00:00")


def test_direction_rules():
    assert _direction("accuracy", None, []) is True
    assert _direction("val_loss", None, []) is False
    assert _direction("latency_ms", None, []) is False
    assert _direction("accuracy", False, []) is False                       # --min wins
    assert _direction("score", None, [parse_expr("score<3")]) is False      # from the --require operator


@pytest.mark.parametrize("alias", ["", "previous-champion", "latest", "v3", "has space", "a/b"])
def test_bad_aliases(alias):
    with pytest.raises(PromotionError):
        check_alias(alias)


@pytest.mark.parametrize("name", ["", "a/b", "x@y", "it's"])
def test_bad_names(name):
    with pytest.raises(PromotionError):
        check_name(name)


def test_event_tags_put_status_first_and_hold_a_json_record():
    when = datetime(2025, 5, 1, tzinfo=timezone.utc)
    ev = {"key": audit.event_key(when), "action": "promote", "alias": "champion", "who": "ann", "who_source": "os",
          "when": audit.iso(when), "notebook": "/nb/train.ipynb", "run_id": "r1", "reason": "better",
          "replaced": "2", "event_run_id": "e1"}
    gates = [GateResult("accuracy>=0.9", "metric", True, 0.95, 0.9, "accuracy = 0.95 (needs >= 0.9)")]
    tags = audit.event_tags(ev, gates)
    assert next(iter(tags)) == audit.STATUS and tags[audit.STATUS].startswith("pending")
    assert tags["nbops.promote.who"] == "ann" and tags["nbops.promote.replaced"] == "2"
    assert tags["nbops.promote.gate.1"].startswith("pass accuracy>=0.9")
    rec = json.loads(tags[ev["key"]])
    assert rec["outcome"] == "pending" and rec["gates"][0]["measured"] == 0.95
    assert json.loads(audit.finished(tags, ev["key"], "done"))["outcome"] == "done"
    assert audit.stale_gate_keys({"nbops.promote.gate.1": "", "nbops.promote.gate.3": ""}, gates) == \
        ["nbops.promote.gate.3"]


def test_who_prefers_the_mlflow_user_on_a_server(monkeypatch):
    class S:
        is_server = True
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    assert audit.who(S()) == ("carol", "mlflow")
    S.is_server = False
    assert audit.who(S())[1] == "os"


def test_result_views():
    cand = Candidate("abcdef1234", "strong", "1", "promo", "FINISHED", 1, 2, {"accuracy": 0.9},
                     model_uri="models:/m-1")
    g = [GateResult("accuracy>=0.95", "metric", False, 0.9, 0.95, "accuracy = 0.9 (needs >= 0.95)")]
    r = PromotionResult("wine", "champion", status="gate-failed", replaced="1", candidate=cand, gates=g)
    text = repr(r)
    assert "Not promoted" in text and "FAIL  accuracy>=0.95" in text and "stays on v1" in text
    html = r._repr_html_()
    assert "<table" in html and "FAIL" in html and "accuracy&gt;=0.95" in html
    assert '<a href="http://127.0.0.1:5000/#/experiments/1/runs/abcdef1234"' in html
    df = r.to_frame()
    assert list(df["passed"]) == [False] and df.loc[0, "measured"] == 0.9
    assert r.uri == "models:/wine@champion" and not r.passed

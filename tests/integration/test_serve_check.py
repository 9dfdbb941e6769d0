"""%promote --serve-check starts a REAL `mlflow models serve` process, waits for /ping (no sleeps), compares its
answers with in-process predictions and always stops it."""
from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import GateFailed

pytestmark = pytest.mark.slow


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def candidate(store, monkeypatch):
    from sklearn.ensemble import RandomForestRegressor

    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    df["y"] = df.a * 3 + df.b ** 2
    with nbops.track("serve", "cand") as t:
        model = RandomForestRegressor(n_estimators=20, random_state=0).fit(df[["a", "b"]], df.y)
        t.log_model(model)
    nbops.evaluate(model, df, "y", run=t.run_id, latency=True)   # keeps the sample the check sends
    return t.run_id, df


def test_serve_check_passes_tags_the_version_and_stops_the_server(client, candidate):
    rid, _ = candidate
    res = nbops.promote("served", rid, require=["latency_p95_ms<100000"], serve_check=True)
    assert res.status == "promoted" and res.serve.passed, res.serve
    mv = client.get_model_version_by_alias("served", "champion")
    assert mv.run_id == rid
    assert mv.tags["nbops.serve_check"] == "passed"
    assert float(mv.tags["nbops.serve_check.latency_p95_ms"]) >= float(mv.tags["nbops.serve_check.latency_p50_ms"]) > 0
    assert res.serve.rows == 50 and res.serve.max_abs_diff < 1e-6
    assert port_closed(res.serve.port)                 # the server was stopped
    assert any(g.kind == "serve" and g.passed for g in res.gates)


def test_a_failing_serve_check_moves_nothing_and_says_why(client, candidate):
    rid, df = candidate
    with pytest.raises(GateFailed) as e:
        nbops.promote("served2", rid, serve_check=True, serve_data=df[["a"]])   # a column the model needs is gone
    assert "serve-check" in str(e.value) and "does not predict" in str(e.value)
    assert not client.search_registered_models("name='served2'") or not client.get_registered_model("served2").aliases

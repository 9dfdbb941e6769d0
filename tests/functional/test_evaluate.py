"""%evaluate on a real store: metrics, slices (fairlearn) and latency on the model's run; gates use them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(ip, client, monkeypatch):
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "grp": rng.choice(["a", "b"], n)})
    df["y"] = 2 * df.x1 - df.x2 + np.where(df.grp == "b", rng.normal(0, 2, n), rng.normal(0, 0.1, n))
    train = df[["x1", "x2", "y"]]
    ip.user_ns.update(df=df, train=train)
    r = ip.run_cell("%%track -e ev -n cand --data train --model model\nfrom sklearn.linear_model import LinearRegression\n"
                    "model = LinearRegression().fit(train[['x1','x2']], train.y)")
    assert r.success
    run = client.search_runs([client.get_experiment_by_name("ev").experiment_id])[0]
    ip.user_ns["rid"] = run.info.run_id
    return df, run.info.run_id


def test_metrics_slices_and_latency_land_on_the_model_run(ip, client, trained):
    df, rid = trained
    assert ip.run_cell("%evaluate model df --target y --slices grp --latency -o ev").success
    m = client.get_run(rid).data.metrics
    pred = ip.user_ns["model"].predict(df[["x1", "x2"]])
    by = {g: r2_score(df.y[df.grp == g], pred[df.grp == g]) for g in ("a", "b")}
    assert m["eval_r2"] == pytest.approx(r2_score(df.y, pred))
    assert m["r2_worst_slice"] == pytest.approx(min(by.values()))
    assert m["r2_slice_gap"] == pytest.approx(abs(by["a"] - by["b"]))
    assert m["r2_slice_gap.grp"] == pytest.approx(m["r2_slice_gap"])
    assert m["rmse_slice_gap"] > 0 and m["latency_p95_ms"] >= m["latency_p50_ms"] > 0 and m["batch_rows_per_s"] > 0
    arts = [a.path for a in client.list_artifacts(rid, "evaluation")]
    assert "evaluation/sample.parquet" in arts and "evaluation/metrics.json" in arts
    ev = ip.user_ns["ev"]
    frame = ev.to_frame()
    assert {"all", "grp=a", "grp=b", "latency"} <= set(frame["scope"]) and "worst" in repr(ev)
    # the gates read them like any metric
    r = ip.run_cell('%promote evm --run {rid} --require "r2_slice_gap<0.01"')
    assert not r.success and type(r.error_in_exec).__name__ == "GateFailed"
    assert not client.search_registered_models("name='evm'") or not client.get_registered_model("evm").aliases


def test_registered_model_reference_classification_and_contract(ip, client, trained, monkeypatch):
    df, rid = trained
    assert ip.run_cell("%promote evm --run {rid}").success
    assert ip.run_cell("%evaluate models:/evm@champion df --target y --no-log -o ev").success
    assert ip.user_ns["ev"].task == "regression" and ip.user_ns["ev"].metrics["r2"] > 0.5
    # the contract of the data that trained the champion
    ip.user_ns["shifted"] = df[["x1", "x2", "y"]].assign(x1=df.x1 + 100)
    assert ip.run_cell("%validate shifted --against models:/evm@champion --no-log -o v").success
    assert ("x1", "out of range") in {(x["column"], x["check"]) for x in ip.user_ns["v"].violations}
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import nbops

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=5000).fit(X, y)
    data = X.assign(target=y, size=np.where(X["mean radius"] > 14, "big", "small"))
    res = nbops.evaluate(clf, data.drop(columns=["size"]).assign(size=data["size"]), "target", slices=["size"],
                         log_run=True, experiment="ev-clf")
    assert res.task == "classification" and 0.9 < res.metrics["accuracy"] <= 1
    assert "accuracy_slice_gap" in res.logged_metrics()
    own = client.get_run(res.run_id)
    assert own.data.tags["nbops.kind"] == "evaluation" and "accuracy_worst_slice" in own.data.metrics


def test_clear_errors(ip, trained):
    r = ip.run_cell("%evaluate model df --target nope")
    assert not r.success and "no such column" in str(r.error_in_exec)
    r = ip.run_cell("%evaluate model df --target y --slices nope")
    assert not r.success and "--slices" in str(r.error_in_exec)
    ip.user_ns["thin"] = pd.DataFrame({"x1": [1.0], "y": [1.0]})
    r = ip.run_cell("%evaluate model thin --target y")
    assert not r.success and "x2" in str(r.error_in_exec)

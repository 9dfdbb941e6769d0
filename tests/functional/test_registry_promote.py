"""``nbops.promote`` / ``rollback`` / ``history`` on the real embedded SQLite store, read back with MlflowClient."""
from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone

import pytest

import nbops
from nbops.errors import GateFailed, PromotionError
from nbops.registry import history


def train(name, max_iter=5000, cols=13, experiment="promo", model=True, metrics=None):
    """A tracked run that fits a wine classifier and logs it (the way ``%%track --model m`` does)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    with nbops.track(experiment, name) as t:
        m = LogisticRegression(max_iter=max_iter).fit(X[:, :cols], y)
        t.log_metric("accuracy", float(m.score(X[:, :cols], y)))
        t.log_metrics(metrics or {})
        if model:
            t.log_model(m)
    return t.run_id


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Runs trained once per session in a store of their own (MLflow infers each model's pip requirements in a
    subprocess: seconds per model); each test gets a fresh copy of that store's database (see ``runs``).
    weak (accuracy ~0.6, 2 features), strong (~0.99, all features), middle (~0.9, 6 features), no-model."""
    d = tmp_path_factory.mktemp("registry-trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{d / 'mlflow.db'}")
        mp.setenv("NBOPS_SPOOL_DIR", str(d / "spool"))
        for var in ("NBOPS_OFFLINE", "NBOPS_PARENT_RUN_ID", "NBOPS_NOTEBOOK_PATH", "NBOPS_EXPERIMENT",
                    "MLFLOW_EXPERIMENT_NAME", "NBOPS_HOME"):
            mp.delenv(var, raising=False)
        mp.chdir(d)
        # pip-requirement inference re-imports each model in a subprocess (seconds each on a busy machine);
        # with a 1 s budget MLflow falls back to its default requirements -- same model, same loading.
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        ids = {"weak": train("weak", 20, 2, metrics={"latency_ms": 5.0}),
               "strong": train("strong", 5000, 13, metrics={"latency_ms": 40.0}),
               "middle": train("middle", 5000, 6, metrics={"latency_ms": 20.0}),
               "no-model": train("no-model", model=False, metrics={"accuracy": 1.0, "latency_ms": 1.0})}
        from mlflow.tracking import MlflowClient
        MlflowClient(f"sqlite:///{d / 'mlflow.db'}").create_experiment("empty")
    return d / "mlflow.db", ids


@pytest.fixture
def runs(store, trained):
    """The trained runs, in this test's own fresh store (a copy of the session's database)."""
    import sqlite3

    src, dst = sqlite3.connect(trained[0]), sqlite3.connect(store.split(":///", 1)[1])
    try:
        src.backup(dst)  # a consistent copy, WAL included
    finally:
        src.close()
        dst.close()
    return dict(trained[1])


@pytest.fixture
def client(runs, store):
    from mlflow.tracking import MlflowClient
    return MlflowClient(store)


def versions(client, name="wine"):
    try:
        return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    except Exception:  # noqa: BLE001
        return []


def aliases(client, name="wine"):
    try:
        return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    except Exception:  # noqa: BLE001
        return None


def promote_runs(client):
    exp = client.get_experiment_by_name("promo")
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("nbops.kind") == "promote"]


def test_failing_gate_moves_nothing_and_says_which(client, runs):
    with pytest.raises(GateFailed) as e:
        nbops.promote("wine", runs["weak"], require=["accuracy>=0.95", "latency_ms<50"])
    msg = str(e.value)
    assert "accuracy>=0.95" in msg and "latency_ms" not in msg.split("Not promoted:")[1].split("'champion'")[0]
    res = e.value.result
    assert res.status == "gate-failed" and [g.passed for g in res.gates] == [False, True]
    assert res.gates[0].measured == pytest.approx(client.get_run(runs["weak"]).data.metrics["accuracy"])
    assert aliases(client) is None and versions(client) == []          # the registry was not touched
    ev = promote_runs(client)                                            # the attempt itself is recorded
    assert len(ev) == 1 and ev[0].info.status == "FAILED" and ev[0].data.tags["nbops.promote.status"] == "gate-failed"


def test_promote_audit_champion_loads_and_predicts(client, runs, monkeypatch):
    import mlflow
    from sklearn.datasets import load_wine

    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", "/work/notebooks/train.ipynb")
    res = nbops.promote("wine", runs["strong"], require=["accuracy>=0.95"], reason="first release")
    assert res.status == "promoted" and res.version == "1" and res.created and res.replaced is None
    assert aliases(client) == {"champion": "1"}
    mv = client.get_model_version("wine", "1")
    assert mv.run_id == runs["strong"] and mv.source.startswith("models:/m-")
    t = mv.tags
    assert t["nbops.promote.status"] == "promoted"
    assert t["nbops.promote.who"] and t["nbops.promote.who_source"] == "os"
    assert datetime.fromisoformat(t["nbops.promote.when"].replace("Z", "+00:00")) <= datetime.now(timezone.utc)
    assert t["nbops.promote.notebook"] == "/work/notebooks/train.ipynb"
    assert t["nbops.promote.run_id"] == runs["strong"] and t["nbops.promote.reason"] == "first release"
    assert t["nbops.promote.replaced"] == "none" and t["nbops.promote.gate.1"].startswith("pass accuracy>=0.95")
    assert t["nbops.promote.event_run_id"] == res.event_run_id
    rec = json.loads(next(v for k, v in t.items() if k.startswith("nbops.audit.")))
    assert rec["outcome"] == "done" and rec["gates"][0]["passed"] and rec["gates"][0]["measured"] > 0.95
    ev = client.get_run(res.event_run_id)
    assert ev.info.status == "FINISHED" and ev.data.tags["nbops.kind"] == "promote"
    assert ev.data.params["candidate_run_id"] == runs["strong"]
    X, _ = load_wine(return_X_y=True)
    pred = mlflow.pyfunc.load_model("models:/wine@champion").predict(X[:7])
    assert len(pred) == 7 and set(pred) <= {0, 1, 2}


def test_second_promotion_keeps_previous_and_rollback_walks_back(client, runs):
    nbops.promote("wine", runs["weak"])
    nbops.promote("wine", runs["middle"])
    r3 = nbops.promote("wine", runs["strong"], reason="best")
    assert aliases(client) == {"champion": "3", "previous-champion": "2"}
    assert client.get_model_version("wine", "3").tags["nbops.promote.replaced"] == "2"
    assert client.get_model_version("wine", "2").tags["nbops.promote.status"].startswith("replaced by v3")
    assert r3.previous_alias_to == "2"
    dry = nbops.rollback("wine", dry_run=True)
    assert dry.status == "dry-run" and dry.version == "2" and aliases(client)["champion"] == "3"
    rb = nbops.rollback("wine", reason="v3 misbehaves")
    assert rb.status == "rolled-back" and rb.version == "2" and rb.replaced == "3"
    assert aliases(client) == {"champion": "2", "previous-champion": "1"}   # v2 had replaced v1
    assert client.get_model_version("wine", "3").tags["nbops.promote.status"].startswith("rolled back")
    t2 = client.get_model_version("wine", "2").tags
    assert t2["nbops.promote.action"] == "rollback" and t2["nbops.promote.reason"] == "v3 misbehaves"
    nbops.rollback("wine")
    assert aliases(client) == {"champion": "1"}                             # nothing further back
    with pytest.raises(PromotionError, match="no 'previous-champion'"):
        nbops.rollback("wine")
    assert aliases(client) == {"champion": "1"}
    h = history("wine")
    assert [(r["action"], r["version"], r["outcome"]) for r in h.rows()] == [
        ("promote", "1", "done"), ("promote", "2", "done"), ("promote", "3", "done"),
        ("rollback", "2", "done"), ("rollback", "1", "done")]
    assert h.to_frame().shape[0] == 5 and "rollback" in repr(h) and "<table" in h._repr_html_()


def test_dry_run_changes_nothing(client, runs):
    nbops.promote("wine", runs["middle"])
    before = (versions(client), aliases(client), client.get_model_version("wine", "1").tags, len(promote_runs(client)))
    ok = nbops.promote("wine", runs["strong"], require=["accuracy>=0.95"], must_beat="champion", dry_run=True)
    assert ok.status == "dry-run" and ok.passed and ok.version is None and ok.previous_alias_to == "1"
    bad = nbops.promote("wine", runs["weak"], require=["accuracy>=0.95"], dry_run=True)  # no raise in a dry run
    assert not bad.passed and "would NOT" in repr(bad)
    assert (versions(client), aliases(client), client.get_model_version("wine", "1").tags,
            len(promote_runs(client))) == before


def test_same_run_twice_makes_no_second_version(client, runs):
    a = nbops.promote("wine", runs["strong"])
    b = nbops.promote("wine", runs["strong"])
    assert a.status == "promoted" and b.status == "unchanged" and b.version == "1"
    assert versions(client) == [1]
    nbops.promote("wine", runs["weak"])
    c = nbops.promote("wine", runs["strong"], reason="back again")        # reuses version 1
    assert c.status == "promoted" and not c.created and c.version == "1" and versions(client) == [1, 2]
    assert aliases(client) == {"champion": "1", "previous-champion": "2"}
    assert client.get_model_version("wine", "1").tags["nbops.promote.reason"] == "back again"
    assert len([k for k in client.get_model_version("wine", "1").tags if k.startswith("nbops.audit.")]) == 2


def test_must_beat(client, runs):
    nbops.promote("wine", runs["middle"])
    with pytest.raises(GateFailed, match="must-beat champion"):
        nbops.promote("wine", runs["weak"], must_beat="champion", best=None, require=["accuracy>=0.1"])
    assert aliases(client) == {"champion": "1"} and versions(client) == [1]
    res = nbops.promote("wine", runs["strong"], require=["accuracy>=0.1"], must_beat="champion")
    g = res.gates[-1]
    assert g.kind == "must-beat" and g.passed and g.expected == pytest.approx(
        client.get_run(runs["middle"]).data.metrics["accuracy"])
    # lower-is-better metric: latency 40 (strong, champion) vs 5 (weak) -> weak beats it
    res = nbops.promote("wine", runs["weak"], require=["latency_ms<100"], must_beat="champion")
    assert res.status == "promoted" and "lower is better" in res.gates[-1].name
    with pytest.raises(PromotionError, match="needs a metric"):
        nbops.promote("wine", runs["middle"], must_beat="champion")


def test_best_picks_by_metric_and_direction(client, runs):
    res = nbops.promote("wine", best="accuracy", experiment="promo", dry_run=True)
    assert res.candidate.run_id == runs["strong"]
    res = nbops.promote("wine", best="latency_ms", experiment="promo", dry_run=True)   # name says lower
    assert res.candidate.run_id == runs["weak"]
    res = nbops.promote("wine", best="latency_ms", experiment="promo", maximize=True, dry_run=True)
    assert res.candidate.run_id == runs["strong"]
    no_model = runs["no-model"]
    res = nbops.promote("wine", best="accuracy", experiment="promo", dry_run=True)
    assert res.candidate.run_id != no_model and any("no logged model" in n for n in res.notes)


def test_require_no_drift(client, runs):
    w = nbops.tracking.writer.get_writer()
    end = client.get_run(runs["strong"]).info.end_time
    with pytest.raises(GateFailed, match="no drift check on record"):
        nbops.promote("wine", runs["strong"], require_no_drift=True)
    nbops.promote("wine", runs["strong"], alias="challenger")            # registered for the drift check
    assert versions(client) == [1]

    def drift_tags(status, at_ms):
        at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc).replace(microsecond=0).isoformat()
        for k, v in {"nbops.drift.status": status, "nbops.drift.checked_at": at, "nbops.drift.run_id": "d"}.items():
            w.call(client.set_model_version_tag, "wine", "1", k, v)      # what %drift models:/wine@challenger writes

    drift_tags("no-drift", end - 3_600_000)                              # older than the training run
    with pytest.raises(GateFailed, match="not newer than the training run"):
        nbops.promote("wine", runs["strong"], require_no_drift=True)
    drift_tags("drift", end + 3_600_000)
    with pytest.raises(GateFailed, match="found 'drift'"):
        nbops.promote("wine", runs["strong"], require_no_drift=True)
    assert "champion" not in aliases(client)
    drift_tags("no-drift", end + 3_600_000)
    res = nbops.promote("wine", runs["strong"], require_no_drift=True)
    assert res.status == "promoted" and aliases(client) == {"challenger": "1", "champion": "1"}
    assert versions(client) == [1]


def test_bad_input_is_an_error_and_writes_nothing(client, runs):
    no_model = runs["no-model"]
    cases = [
        (dict(run=no_model), "logged no model"),
        (dict(run="0123456789abcdef0123456789abcdef"), "does not exist"),
        (dict(run=runs["strong"], require=["acuracy>=0.9"]), "'acuracy' is not logged"),
        (dict(best="accuracy", experiment="nope"), "Experiment 'nope' does not exist"),
        (dict(best="f1", experiment="promo"), "'f1' is not logged on any finished run"),
        (dict(), "Pass --run RUN_ID or --best"),
        (dict(run=runs["strong"], best="accuracy"), "not both"),
        (dict(run=runs["strong"], require=["accuracy=>1"]), "not a metric expression"),
        (dict(run=runs["strong"], alias="previous-x"), "kept by nbops"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(PromotionError, match=msg):
            nbops.promote("wine", **kwargs)
    with pytest.raises(PromotionError, match="has no finished runs"):
        nbops.promote("wine", best="accuracy", experiment="empty")
    assert aliases(client) is None and versions(client) == [] and promote_runs(client) == []
    with pytest.raises(PromotionError, match="No registered model 'wine'"):
        history("wine")


def test_registry_that_rejects_the_write_leaves_it_as_before(client, runs, store):
    nbops.promote("wine", runs["middle"])
    before = (versions(client), aliases(client))
    db = store.split(":///", 1)[1]
    os.chmod(db, stat.S_IRUSR | stat.S_IRGRP)                            # the store now refuses writes
    try:
        if os.access(db, os.W_OK):
            pytest.skip("running as a user who can write read-only files (root): chmod does not refuse")
        with pytest.raises(PromotionError, match="refused to register"):
            nbops.promote("wine", runs["strong"], log_run=False)
    finally:
        os.chmod(db, stat.S_IRUSR | stat.S_IWUSR)
    assert (versions(client), aliases(client)) == before


def test_registry_refusing_the_new_version_removes_the_model_it_created(client, runs):
    """MLflow's own validation refuses the version (a tag value over its 100,000-character limit): the registered
    model nbops had just created for it is removed again, so the registry is as before."""
    with pytest.raises(PromotionError, match="refused to register") as e:
        nbops.promote("wine", runs["strong"], reason="x" * 100_001)
    assert "Nothing was changed" in str(e.value)
    assert client.search_registered_models() == [] and versions(client) == []


def test_alias_move_refused_after_register_leaves_a_version_with_no_alias_and_why(client, runs, monkeypatch):
    """The store takes the version and its audit, then rejects the alias move (a real MlflowException from the
    real store: the alias is made invalid at that moment), so the registry must say why and stay consistent."""
    from mlflow.tracking import MlflowClient

    nbops.promote("wine", runs["middle"])
    real = MlflowClient.set_registered_model_alias

    def reject_champion(self, name, alias, version):
        if alias == "champion":
            alias = "v99"                                                # MLflow itself refuses this alias
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", reject_champion)
    with pytest.raises(PromotionError, match="Version 2 was registered .* no 'champion' alias") as e:
        nbops.promote("wine", runs["strong"], reason="r")
    assert "Run the same promotion again" in str(e.value)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", real)
    assert aliases(client) == {"champion": "1"}                          # previous-champion put back too
    t = client.get_model_version("wine", "2").tags
    assert t["nbops.promote.status"].startswith("failed: moving 'champion'") and "v1" in t["nbops.promote.status"]
    assert t["nbops.promote.reason"] == "r"                              # the audit was there first
    res = nbops.promote("wine", runs["strong"])                          # finishing reuses version 2
    assert res.version == "2" and not res.created and versions(client) == [1, 2]
    assert aliases(client) == {"champion": "2", "previous-champion": "1"}
    outcomes = [r["outcome"] for r in history("wine").rows() if r["version"] == "2"]
    assert outcomes[0].startswith("failed") and outcomes[1] == "done"


def test_registry_writes_pass_through_the_redactor(client, runs, tmp_path):
    """A secret in the promotion reason or a version tag never reaches the registry: the version's tags, its
    audit record and the event run are masked like every other record (greps the whole store folder)."""
    from nbops.tracking import redact

    token = "ghp_" + "Zq7" * 12                                          # a GitHub token's shape
    redact.forget_all()
    try:
        nbops.secret("relpw-planted-81abc")
        res = nbops.promote("wine", runs["strong"], reason=f"rotated {token} and relpw-planted-81abc")
        t = client.get_model_version("wine", res.version).tags
        assert t["nbops.promote.reason"] == "rotated **** and ****"
        audit_rec = next(v for k, v in t.items() if k.startswith("nbops.audit."))
        assert json.loads(audit_rec)["reason"] == "rotated **** and ****"
        found = [str(p) for p in tmp_path.rglob("*") if p.is_file()
                 and any(s.encode() in p.read_bytes() for s in (token, "relpw-planted-81abc"))]
        assert found == []
    finally:
        redact.forget_all()


def test_best_twice_on_one_store_promotes_a_run_the_gates_can_judge(client, runs, monkeypatch):
    """`make demo` twice on one store: the first demo's retrain run (best r2, no latency metric: never evaluated)
    holds the alias; the second demo's `--best r2 --require ... latency_p95_ms<5000` passes over it (a run the
    gates cannot read is no candidate) and promotes the new forest run; the same promotion again changes nothing."""
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    gates = dict(best="r2", experiment="twice", require=["r2>=0.5", "latency_p95_ms<5000"])
    forest1 = train("forest", 200, experiment="twice", metrics={"r2": 0.8, "latency_p95_ms": 10.0})
    assert nbops.promote("wine", **gates).candidate.run_id == forest1
    retrain = train("retrain", 200, experiment="twice", metrics={"r2": 0.9})
    nbops.promote("wine", retrain, must_beat="champion", require=["r2>=0.5"])
    assert aliases(client) == {"champion": "2", "previous-champion": "1"}

    forest2 = train("forest", 200, experiment="twice", metrics={"r2": 0.8, "latency_p95_ms": 10.0})
    res = nbops.promote("wine", **gates)                                  # the second demo's %promote --best r2
    assert res.status == "promoted" and res.candidate.run_id == forest2 and res.replaced == "2"
    assert any(retrain[:8] in n and "latency_p95_ms" in n for n in res.notes)
    assert aliases(client) == {"champion": "3", "previous-champion": "2"} and versions(client) == [1, 2, 3]
    tags = client.get_model_version("wine", "3").tags
    assert tags["nbops.promote.status"] == "promoted" and tags["nbops.promote.run_id"] == forest2

    again = nbops.promote("wine", **gates)                               # and once more: nothing moves
    assert again.status == "unchanged" and again.version == "3" and "nothing to change" in repr(again).splitlines()[0]
    assert aliases(client) == {"champion": "3", "previous-champion": "2"} and versions(client) == [1, 2, 3]
    assert client.get_model_version("wine", "3").tags == tags

    with pytest.raises(PromotionError, match="has no 'f1'") as e:        # nothing the gates can judge: one line
        nbops.promote("wine", best="r2", experiment="twice", require=["f1>=0.5"])
    assert "\n" not in str(e.value) and aliases(client)["champion"] == "3"


def test_offline_refuses_promotions_and_rollbacks_in_one_line(client, runs, monkeypatch):
    from nbops.registry.prompts import rollback_prompt

    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    for call, what in ((lambda: nbops.promote("wine", runs["strong"]), "promotion"),
                       (lambda: nbops.rollback("wine"), "rollback"), (lambda: rollback_prompt("qa"), "rollback")):
        with pytest.raises(PromotionError, match=f"NBOPS_OFFLINE=1 is set: a {what} needs the registry") as e:
            call()
        assert "\n" not in str(e.value)
    assert aliases(client) is None and versions(client) == []

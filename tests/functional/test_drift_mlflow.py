"""%drift and check_drift against a real SQLite MLflow store, a real IPython shell and real kernels."""
import json

import numpy as np
import pandas as pd
import pytest

from nbops_testing import DATASETS, all_artifacts, run_notebook, write_notebook, isolated_store
from nbops.errors import DriftDetected, DriftError, NbopsError

FEATS = ["season", "mnth", "weekday", "workingday", "weathersit", "temp", "atemp", "hum", "windspeed", "casual",
         "registered", "cnt"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (creating a SQLite MLflow store costs seconds); tests keep apart by name."""
    with isolated_store(tmp_path_factory.mktemp("drift-store")) as uri:
        yield uri


@pytest.fixture(scope="module")
def client(store):
    from mlflow.tracking import MlflowClient
    return MlflowClient(store)


@pytest.fixture(scope="module")
def bike():
    day = pd.read_csv(DATASETS / "bike_sharing" / "day.csv")
    return day[day.yr == 0][FEATS].reset_index(drop=True), day[day.yr == 1][FEATS].reset_index(drop=True)


def all_runs(client):
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=1000) if exps else []


def test_check_drift_logs_a_drift_run(client, bike):
    import nbops

    ref, cur = bike
    r = nbops.check_drift(ref, cur, experiment="drift-log", run_name="bike check")
    run = client.get_run(r.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "bike check"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["nbops.kind"] == "drift" and tags["nbops.drift.is_drift"] == "true"
    assert set(tags["nbops.drift.drifted"].split(", ")) == set(r.drifted)
    assert metrics["drift.share_drifted"] == pytest.approx(r.share_drifted) and metrics["drift.is_drift"] == 1.0
    assert metrics["drift.cnt.effect"] == pytest.approx(r["cnt"].effect)
    assert metrics["drift.season.p_value"] == pytest.approx(r["season"].p_value)
    assert run.data.params["drift.correction"] == "bonferroni"
    arts = set(all_artifacts(client, r.run_id))
    assert {"drift/report.json", "drift/report.html", "drift/figures/drift.png"} <= arts
    local = client.download_artifacts(r.run_id, "drift/report.json")
    stored = json.load(open(local))
    assert stored["is_drift"] is True and stored["run_id"] == r.run_id
    assert {f["feature"] for f in stored["features"] if f["drifted"]} == set(r.drifted)
    html = open(client.download_artifacts(r.run_id, "drift/report.html")).read()
    assert "<table" in html and "data:image/png;base64" in html
    names = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert {"drift_reference", "drift_current"} <= set(names)
    assert r.data_versions["reference"] == names["drift_reference"].dataset.digest
    assert tags["nbops.drift.current_digest"] == r.data_versions["current"]


def test_inside_a_tracked_run_logs_into_it(client, bike):
    import nbops

    ref, cur = bike
    before = len(all_runs(client))
    with nbops.track("drift-inside", "training") as t:
        r = nbops.check_drift(ref, cur)
    assert r.run_id == t.run_id and len(all_runs(client)) == before + 1
    run = client.get_run(t.run_id)
    assert run.data.tags["nbops.kind"] == "track" and run.data.tags["nbops.drift.is_drift"] == "true"
    assert "drift.cnt.effect" in run.data.metrics


def test_no_drift_is_tagged_false(client):
    import nbops

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000)})
    cur = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000)})
    r = nbops.check_drift(ref, cur, experiment="drift-calm")
    run = client.get_run(r.run_id)
    assert run.data.tags["nbops.drift.is_drift"] == "false" and run.data.metrics["drift.share_drifted"] == 0.0


def test_bad_input_logs_nothing(client, bike):
    import nbops

    ref, cur = bike
    before = len(all_runs(client))
    for bad in (cur.drop(columns="cnt"), cur.assign(temp="warm"), cur.iloc[:1], cur.iloc[:0]):
        with pytest.raises(DriftError):
            nbops.check_drift(ref, bad, experiment="drift-bad")
    with pytest.raises(NbopsError):
        nbops.check_drift("run:does-not-exist", cur, experiment="drift-bad")
    assert len(all_runs(client)) == before


def test_magic_shows_stores_and_logs(ip, client, bike):
    ref, cur = bike
    ip.user_ns.update(ref=ref, cur=cur)
    before = len(all_runs(client))
    ip.run_line_magic("drift", "ref cur --no-log -o quiet_rep --quiet")
    assert len(all_runs(client)) == before and ip.user_ns["quiet_rep"].run_id is None
    ip.run_line_magic("drift", "ref cur -e drift-magic -n magic --correction fdr --min-effect 0.1 --target cnt -o rep")
    rep = ip.user_ns["rep"]
    assert rep.correction == "fdr" and rep.min_effect == 0.1 and rep["cnt"].role == "target"
    assert rep.output_drift and rep.feature_drift
    run = client.get_run(rep.run_id)
    assert run.info.run_name == "magic" and run.data.params["drift.min_effect"] == "0.1"
    with pytest.raises(DriftDetected) as e:
        ip.run_line_magic("drift", "ref cur -e drift-magic --fail -o failed")
    assert e.value.report.is_drift and ip.user_ns["failed"] is e.value.report
    assert client.get_run(e.value.report.run_id).data.tags["nbops.drift.is_drift"] == "true"  # logged, then failed
    with pytest.raises(DriftError, match="no variable named 'nope'"):
        ip.run_line_magic("drift", "nope cur")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--p-val"):
        ip.run_line_magic("drift", "ref cur --p-val")


def snapshot_run(ip, name: str, model: bool = False) -> str:
    """A %%track run that stores `train` as a data snapshot (and a fitted model)."""
    day = pd.read_csv(DATASETS / "bike_sharing" / "day.csv")
    ip.user_ns["day"] = day
    line = "-e drift-train --data train --snapshot" + (" --model m" if model else "")
    body = f"train = day[day.yr == 0][{FEATS!r}].reset_index(drop=True)\n"
    if model:
        body += ("from sklearn.linear_model import LinearRegression\n"
                 "m = LinearRegression().fit(train[['temp', 'hum']], train['cnt'])\n")
    ip.run_cell_magic("track", line, body)
    return ip.user_ns["_nbops_last_run"].run_id


def test_run_reference_uses_the_snapshot(ip, client, bike):
    _, cur = bike
    run_id = snapshot_run(ip, "train")
    ip.user_ns["cur"] = cur
    ip.run_line_magic("drift", f"run:{run_id} cur -e drift-ref -o rep")
    rep = ip.user_ns["rep"]
    assert rep.reference == f"run:{run_id}" and {"cnt", "registered"} <= set(rep.drifted)
    assert client.get_run(rep.run_id).data.tags["nbops.drift.reference_run_id"] == run_id
    # a run's snapshot never changes: loaded and prepared once per process, then reused
    import nbops
    from nbops.drift import check as check_mod

    again = nbops.check_drift(f"run:{run_id}", cur, log=False)
    cached = [r for k, r in check_mod._PREPARED.items() if run_id in k]
    assert len(cached) == 1 and again.drifted == rep.drifted
    nbops.check_drift(f"run:{run_id}", cur.sample(frac=0.5, random_state=0), log=False)
    assert [r for k, r in check_mod._PREPARED.items() if run_id in k] == cached
    ready = nbops.drift.prepare_reference(f"run:{run_id}")
    assert ready.run_id == run_id and ready.source == f"run:{run_id}"
    assert nbops.check_drift(ready, cur, log=False).drifted == rep.drifted
    # a run without a snapshot: a clear error, nothing logged
    ip.run_cell_magic("track", "-e drift-train", "x = 1\n")
    bare = ip.user_ns["_nbops_last_run"].run_id
    before = len(all_runs(client))
    with pytest.raises(NbopsError, match="snapshot"):
        ip.run_line_magic("drift", f"run:{bare} cur -e drift-ref")
    assert len(all_runs(client)) == before


def test_models_reference_tags_the_model_version(ip, client, bike):
    import mlflow

    import nbops

    _, cur = bike
    run_id = snapshot_run(ip, "train", model=True)
    model_uri = ip.user_ns["_nbops_last_run"].models[0]
    mv = mlflow.register_model(model_uri, "bikes")
    client.set_registered_model_alias("bikes", "champion", mv.version)
    r = nbops.check_drift("models:/bikes@champion", cur, experiment="drift-model")
    assert r.model["run_id"] == run_id and r.is_drift
    tags = client.get_model_version("bikes", mv.version).tags
    assert tags["nbops.drift.status"] == "drift" and tags["nbops.drift.run_id"] == r.run_id
    assert tags["nbops.drift.checked_at"].endswith("+00:00")
    assert client.get_run(r.run_id).data.tags["nbops.drift.model"] == f"bikes@champion v{mv.version}"
    calm = nbops.check_drift("models:/bikes@champion", cur.sample(frac=1.0, random_state=0), experiment="drift-model",
                             features=["season", "weekday"])
    assert not calm.is_drift
    assert client.get_model_version("bikes", mv.version).tags["nbops.drift.status"] == "no-drift"
    before = len(all_runs(client))
    with pytest.raises(DriftError, match="champion"):
        nbops.check_drift("models:/bikes@challenger", cur)
    with pytest.raises(DriftError, match="no registered model"):
        nbops.check_drift("models:/nosuchmodel@prod", cur)
    assert len(all_runs(client)) == before


def test_on_drift_runs_the_notebook_with_the_run_id(client, bike, tmp_path):
    import nbops

    ref, cur = bike
    out = tmp_path / "got.txt"
    nb = write_notebook(tmp_path / "retrain.ipynb",
                        [f"open({str(out)!r}, 'w').write(drift_run_id)"], parameters={"drift_run_id": ""})
    r = nbops.check_drift(ref, cur, experiment="drift-ondrift", on_drift=str(nb))
    assert out.read_text() == r.run_id
    tags = client.get_run(r.run_id).data.tags
    assert tags["nbops.drift.on_drift"] == str(nb) and tags["nbops.drift.on_drift_status"] == "ok"
    assert "drift/on_drift/retrain.out.ipynb" in all_artifacts(client, r.run_id)
    assert r.on_drift["status"] == "ok"
    child = client.get_run(tags["nbops.drift.on_drift_run_id"])  # the notebook's own run, a child of the check
    assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == r.run_id
    assert child.data.params["drift_run_id"] == r.run_id


def test_on_drift_failure_is_recorded_and_raised(client, bike, tmp_path):
    import nbops
    from nbops.errors import RunnerError

    ref, cur = bike
    nb = write_notebook(tmp_path / "broken.ipynb", ["raise ValueError('no retraining today')"],
                        parameters={"drift_run_id": ""})
    with pytest.raises(RunnerError, match="broken.ipynb"):
        nbops.check_drift(ref, cur, experiment="drift-ondrift-fail", on_drift=str(nb))
    exp = client.get_experiment_by_name("drift-ondrift-fail")
    drift_runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("nbops.kind") == "drift"]
    assert len(drift_runs) == 1
    tags = drift_runs[0].data.tags
    assert drift_runs[0].info.status == "FINISHED" and tags["nbops.drift.is_drift"] == "true"
    assert tags["nbops.drift.on_drift_status"] == "failed"
    assert client.get_run(tags["nbops.drift.on_drift_run_id"]).info.status == "FAILED"


@pytest.mark.slow
def test_fail_makes_a_papermill_run_fail(client, tmp_path, store):
    import papermill

    data = DATASETS / "bike_sharing" / "day.csv"
    nb = write_notebook(tmp_path / "monitor.ipynb", [
        "%load_ext nbops",
        f"import pandas as pd\nday = pd.read_csv({str(data)!r})\nref, cur = day[day.yr == 0], day[day.yr == 1]",
        "%drift ref cur -e drift-scheduled --features cnt,temp,season --fail",
        "reached = True",
    ])
    with pytest.raises(papermill.PapermillExecutionError) as e:
        run_notebook(nb, tmp_path, env={"MLFLOW_TRACKING_URI": store})
    assert e.value.ename == "DriftDetected"
    import nbformat  # the report was shown before the cell failed: HTML table and the figure of drifted columns
    cells = nbformat.read(str(tmp_path / "monitor.out.ipynb"), as_version=4).cells
    outs = next(c for c in cells if c.source.startswith("%drift")).outputs
    html = "".join(o.get("data", {}).get("text/html", "") for o in outs)
    assert "nbops-drift" in html and "data:image/png;base64," in html  # the figure, once, inside the report
    exp = client.get_experiment_by_name("drift-scheduled")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["nbops.drift.is_drift"] == "true"
    assert runs[0].info.status == "FINISHED"

"""The offline spool and `nbops sync` against a real SQLite MLflow store: everything a run logs comes back
exactly once, however many times sync runs, however it is interrupted; corrupt entries are skipped, not fatal."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nbops
from nbops.tracking.spool import Spool
from nbops.api import sync

from nbops_testing import all_artifacts


def _log_everything(i: int, parent=None):
    """One run with every kind of record the spool keeps; returns what it logged."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0) * 2 + i)
    with nbops.track("spooled", f"run-{i}", parent_run_id=parent, tags={"team": "ml"}) as t:
        t.log_params({"lr": 0.1 * (i + 1), "layers": 3})
        t.log_metric("accuracy", 0.5 + i / 100)
        for step in range(5):
            t.log_metric("loss", 1.0 / (step + 1) + i, step=step)
        t.log_text(f"notes {i}", "notes/readme.txt")
        t.log_dataset({"name": f"train-{i}", "digest": f"d{i:04d}", "source_type": "local",
                       "source": json.dumps({"uri": f"/data/{i}.csv"}), "context": "training"})
        t.log_model(model, name="model")
    return t


@pytest.fixture
def offline(store, monkeypatch):
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    yield store
    monkeypatch.delenv("NBOPS_OFFLINE", raising=False)


def _runs(client, experiment="spooled"):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _check_run(client, run, i):
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": str(0.1 * (i + 1)), "layers": "3"}
    assert run.data.metrics["accuracy"] == pytest.approx(0.5 + i / 100)
    hist = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
    assert hist == [(s, pytest.approx(1.0 / (s + 1) + i)) for s in range(5)]  # steps kept, no duplicates
    assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 1
    assert run.data.tags["team"] == "ml"
    assert "notes/readme.txt" in all_artifacts(client, run.info.run_id)
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [f"d{i:04d}"]
    models = [m for m in client.search_logged_models([run.info.experiment_id], max_results=1000)
              if m.source_run_id == run.info.run_id]
    assert [m.name for m in models] == ["model"]
    import mlflow

    pred = mlflow.pyfunc.load_model(models[0].model_uri).predict(np.array([[3.0]]))
    assert float(np.ravel(pred)[0]) == pytest.approx(6.0 + i)


def test_offline_run_then_three_syncs_lands_exactly_once(offline, client, monkeypatch):
    parent = None
    with nbops.track("spooled", "parent") as p:
        p.log_param("schedule", "nightly")
        parent = p.run_id
        ts = [_log_everything(i) for i in range(2)]
    assert p.run.spooled and all(t.run.spooled for t in ts)
    assert parent.startswith("spool-")
    assert _runs(client) == []  # nothing reached the store
    assert Spool(Path(offline.split("///")[1]).parent / "spool").pending() == 3

    monkeypatch.delenv("NBOPS_OFFLINE")
    first = sync()
    assert first.ok and len(first.created) == 3 and first.records > 0
    assert set(first.mapping) == {parent, ts[0].run_id, ts[1].run_id}
    for _ in range(2):
        again = sync()
        assert again.ok and again.records == 0 and again.created == [] and again.resumed == []
        assert again.up_to_date == 3
    runs = {r.info.run_name: r for r in _runs(client)}
    assert sorted(runs) == ["parent", "run-0", "run-1"] and len(_runs(client)) == 3
    for i in range(2):
        _check_run(client, runs[f"run-{i}"], i)
        # the child points at the parent's server id, not its local one
        assert runs[f"run-{i}"].data.tags["mlflow.parentRunId"] == runs["parent"].info.run_id
    assert runs["parent"].data.params == {"schedule": "nightly"}
    idmap = json.loads((Path(offline.split("///")[1]).parent / "spool" / "idmap.json").read_text())
    assert idmap["stores"][offline][parent] == runs["parent"].info.run_id  # one id map per store
    assert Spool(Path(offline.split("///")[1]).parent / "spool").pending() == 0
    assert "3 runs created" in str(first) and "log_model" in str(first)


def test_sync_resumes_after_a_crash_between_a_write_and_its_state(offline, client, monkeypatch):
    """The crash windows, made exactly: (a) a run created on the store before its state was saved,
    (b) records replayed before ``done`` was saved. Resuming duplicates nothing."""
    ts = [_log_everything(i) for i in range(3)]
    spool = Path(offline.split("///")[1]).parent / "spool"
    monkeypatch.delenv("NBOPS_OFFLINE")
    sync()
    st0 = spool / ts[0].run_id / "state.json"
    st1 = spool / ts[1].run_id / "state.json"
    st0.unlink()                                   # (a): the spool-id tag must find the run again
    s1 = json.loads(st1.read_text())
    s1["done"] = -1                                # (b): every record of this run is replayed
    st1.write_text(json.dumps(s1))
    (spool / "idmap.json").write_text("{not json")  # and a torn id map
    report = sync()
    assert report.ok and report.created == []
    runs = {r.info.run_name: r for r in _runs(client)}
    assert len(_runs(client)) == 3
    for i in range(3):
        _check_run(client, runs[f"run-{i}"], i)


@pytest.mark.slow
def test_sync_killed_midway_by_sigkill_resumes_without_loss(offline, client, monkeypatch, tmp_path):
    for i in range(8):
        _log_everything(i)
    spool = tmp_path / "spool"
    monkeypatch.delenv("NBOPS_OFFLINE")
    nbops_cli = Path(sys.executable).with_name("nbops")
    proc = subprocess.Popen([str(nbops_cli), "sync"], env=dict(os.environ), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # kill it as soon as it has pushed something (a state file says a record is on the store)
    while proc.poll() is None:
        states = [json.loads(p.read_text()) for p in spool.glob("*/state.json") if p.stat().st_size]
        if any(s.get("done", -1) >= 1 for s in states):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    partial = len(_runs(client))
    report = sync()
    assert report.ok
    runs = {r.info.run_name: r for r in _runs(client)}
    assert len(_runs(client)) == 8 and sorted(runs) == [f"run-{i}" for i in range(8)]
    for i in range(8):
        _check_run(client, runs[f"run-{i}"], i)
    if killed:  # the resumed sync finished what the killed one started
        assert partial < 8 or report.records > 0


def test_corrupt_entries_are_skipped_with_a_message_and_the_rest_synced(offline, monkeypatch, tmp_path):
    ts = [_log_everything(i) for i in range(4)]
    spool = tmp_path / "spool"
    j1 = spool / ts[1].run_id / "journal.jsonl"
    lines = j1.read_bytes().splitlines(keepends=True)
    j1.write_bytes(lines[0] + b"{garbage\n" + b"".join(lines[1:]))            # corrupt in the middle
    (spool / ts[2].run_id / "meta.json").write_text("not json")                # corrupt meta
    j3 = spool / ts[3].run_id / "journal.jsonl"
    j3.write_bytes(j3.read_bytes() + b'{"op": "log_batch", "par')              # torn last line: harmless
    monkeypatch.delenv("NBOPS_OFFLINE")
    r = subprocess.run([str(Path(sys.executable).with_name("nbops")), "sync"], cwd=tmp_path, env=dict(os.environ),
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"skipped {ts[1].run_id}: spool entry {ts[1].run_id} is corrupt: journal line 2" in r.stdout
    assert f"skipped {ts[2].run_id}: spool entry {ts[2].run_id} has a corrupt meta.json" in r.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = {x.info.run_name: x for x in _runs(client)}
    assert sorted(runs) == ["run-0", "run-3"]
    _check_run(client, runs["run-0"], 0)
    _check_run(client, runs["run-3"], 3)
    # repairing the journal and syncing again brings the skipped run in, once
    j1.write_bytes(b"".join(lines))
    again = sync()
    assert [k for k, _ in again.skipped] == [ts[2].run_id]
    runs = {x.info.run_name: x for x in _runs(client)}
    assert sorted(runs) == ["run-0", "run-1", "run-3"]
    _check_run(client, runs["run-1"], 1)


def _spool_one(name: str, uri: str, monkeypatch, model: bool = False):
    """A run spooled (offline) while MLFLOW_TRACKING_URI is ``uri``: its meta.json records ``uri`` as its store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    with nbops.track("routed", name) as t:
        t.log_metric("accuracy", 0.77)
        if model:
            from sklearn.linear_model import LinearRegression

            t.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), name="model")
    monkeypatch.delenv("NBOPS_OFFLINE")
    return t.run_id


def _names(uri):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    ids = [e.experiment_id for e in c.search_experiments()]
    return sorted(r.info.run_name for r in c.search_runs(ids, max_results=1000)) if ids else []


def test_each_spooled_run_goes_to_the_store_it_was_recorded_for(store, tmp_path, monkeypatch):
    """Two real stores: a run spooled for A and one spooled for B land each in its own store, whatever
    MLFLOW_TRACKING_URI says at sync time; the process's MLFLOW_TRACKING_URI is left as it was."""
    a, b = store, f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
    _spool_one("for-a", a, monkeypatch, model=True)
    _spool_one("for-b", b, monkeypatch)
    assert os.environ["MLFLOW_TRACKING_URI"] == b
    report = sync()
    assert report.ok, str(report)
    assert len(report.created) == 2 and a in report.target and b in report.target
    assert _names(a) == ["for-a"] and _names(b) == ["for-b"]
    assert os.environ["MLFLOW_TRACKING_URI"] == b  # syncing A's run did not repoint this process at A
    import mlflow

    assert mlflow.get_tracking_uri() != a
    again = sync()
    assert again.ok and again.records == 0 and again.up_to_date == 2
    idmaps = json.loads((tmp_path / "spool" / "idmap.json").read_text())["stores"]
    assert sorted(idmaps) == sorted([a, b]) and len(idmaps[a]) == len(idmaps[b]) == 1


def test_sync_to_another_store_on_purpose_never_marks_the_run_synced_for_its_own(store, tmp_path, monkeypatch):
    a, other = store, f"sqlite:///{tmp_path / 'other.db'}"
    local = _spool_one("for-a", a, monkeypatch)
    sent = sync(to=other)
    assert sent.ok and len(sent.created) == 1 and _names(other) == ["for-a"] and _names(a) == []
    assert Spool(tmp_path / "spool").pending() == 1  # still waiting for its own store
    home = sync()
    assert home.ok and len(home.created) == 1 and home.up_to_date == 0, str(home)
    assert _names(a) == ["for-a"] and _names(other) == ["for-a"]  # once each
    assert sync(to=other).up_to_date == 1 and sync().up_to_date == 1
    assert json.loads((tmp_path / "spool" / local / "state.json").read_text())["target"] == a


def test_a_run_once_pushed_into_the_wrong_store_by_an_older_version_still_reaches_its_own(store, tmp_path,
                                                                                          monkeypatch):
    """The reported bug's leftovers: state.json and a flat idmap.json written when an older `nbops sync` pushed
    the run into another store. They name no store, so they prove nothing: the run is delivered to its own."""
    a = store
    local = _spool_one("for-a", a, monkeypatch)
    d = tmp_path / "spool" / local
    last = max(r["seq"] for r in __import__("nbops.tracking.spool", fromlist=["x"]).read_journal(d))
    (d / "state.json").write_text(json.dumps({"server_run_id": "0" * 32, "done": last}))
    (tmp_path / "spool" / "idmap.json").write_text(json.dumps({local: "0" * 32}))
    report = sync()
    assert report.ok and len(report.created) == 1 and report.up_to_date == 0, str(report)
    assert _names(a) == ["for-a"]


def test_a_push_never_lands_in_a_store_the_run_was_not_recorded_for(store, tmp_path, monkeypatch):
    """The one path every pusher takes (sync, the background flusher, nbops run's parent): a writer for B refuses
    a run recorded for A, and push_run with B's writer delivers it to A."""
    from nbops import config
    from nbops.tracking.sync import SyncReport, WrongStore, locked, push
    from nbops.tracking.writer import Writer, push_run

    a, b = store, f"sqlite:///{tmp_path / 'b.db'}"
    local = _spool_one("for-a", a, monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", b)
    wb = Writer(config.settings())
    with locked(tmp_path / "spool", b) as idmap, pytest.raises(WrongStore):
        push(wb, tmp_path / "spool" / local, idmap, SyncReport(b))
    assert _names(b) == []
    out = push_run(local, wb)
    assert out.get("run_id") and _names(a) == ["for-a"] and _names(b) == []


def test_magic_and_cli_sync_take_the_same_to_and_spool(ip, store, tmp_path, monkeypatch, capsys):
    """`%nbops sync --to URI --spool DIR` and `nbops sync --to URI --spool DIR` (options declared once, in
    nbops.api): the spooled run lands once in the --to store and nowhere else; syncing again pushes nothing."""
    from mlflow.tracking import MlflowClient

    from nbops.cli import main
    from nbops.errors import NbopsError

    a, b, c = store, f"sqlite:///{tmp_path / 'b.db'}", f"sqlite:///{tmp_path / 'c.db'}"
    _spool_one("for-a", a, monkeypatch)
    monkeypatch.setenv("NBOPS_SPOOL_DIR", str(tmp_path / "elsewhere"))  # found only through --spool
    spool = tmp_path / "spool"

    def history(uri):
        cl = MlflowClient(uri)
        (run,) = cl.search_runs([cl.get_experiment_by_name("routed").experiment_id])
        return [m.value for m in cl.get_metric_history(run.info.run_id, "accuracy")]

    for uri, push in ((b, lambda: ip.run_line_magic("nbops", f"sync --to {b} --spool {spool}")),
                      (c, lambda: main(["sync", "--to", c, "--spool", str(spool)]))):
        capsys.readouterr()
        assert push() in (None, 0)
        assert "1 runs created" in capsys.readouterr().out
        assert _names(uri) == ["for-a"] and history(uri) == [0.77]
        assert push() in (None, 0)                                        # again: nothing pushed
        assert "0 records pushed, 0 runs created, 0 runs updated, 1 already synced" in capsys.readouterr().out
        assert _names(uri) == ["for-a"] and history(uri) == [0.77]
    assert _names(a) == [] and Spool(spool).pending() == 1                # still waiting for its own store
    with pytest.raises(NbopsError, match="takes no --to"):
        ip.run_line_magic("nbops", f"status --to {b}")

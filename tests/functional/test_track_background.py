"""Background writes (issue 19): a tracked cell returns once its records are durable in the local spool; one
flusher thread writes them to the store in order. Real shell, real SQLite store and real `mlflow server`,
read back with MlflowClient. The store is held busy with its own write lock where a test must see the cell
return before the store is written -- no timing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import nbops

from nbops_testing import ROOT, all_artifacts, free_port

CELL = "%%track -e bg -n {name}\nlr = {lr}\naccuracy = {acc}\nprint('trained {name}')\n"


def _runs(client, experiment="bg"):
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture
def background(monkeypatch):
    monkeypatch.setenv("NBOPS_WRITE_MODE", "background")
    yield
    from nbops.tracking.flusher import flush

    flush()


class HeldStore:
    """Hold the SQLite store's write lock (the one every nbops writer takes) from another thread until released:
    while held, the flusher cannot write, so what the test sees is what the cell left before any store write."""

    def __init__(self):
        from nbops.tracking.writer import Writer

        self._held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(Writer(),), daemon=True)
        self._thread.start()
        self._held.wait()

    def _hold(self, writer):
        with writer.guard():
            self._held.set()
            self._release.wait()

    def release(self):
        self._release.set()
        self._thread.join()


def test_the_cell_returns_before_the_store_is_written_and_nothing_is_lost(ip, client, store, tmp_path, background):
    client.create_experiment("bg")  # the schema exists; the store is then held busy
    held = HeldStore()
    try:
        ip.run_cell(CELL.format(name="first", lr=0.1, acc=0.75))
        summary = ip.user_ns["_nbops_last_run"]
        assert ip.user_ns["accuracy"] == 0.75                     # the cell's own work is done
        assert summary.writing and summary.run_id.startswith("spool-")
        assert "being written to the store" in repr(summary)
        assert _runs(client) == []                                 # ... and the store has not been written
        from nbops.tracking.spool import read_journal

        journal = read_journal(tmp_path / "spool" / summary.run_id)  # durable: fsync'ed before the cell returned
        assert [r["op"] for r in journal] == ["log_batch", "log_artifacts", "end_run"], journal
        assert journal[-1]["status"] == "FINISHED"
        st = nbops.status()  # in flight, not waiting for `nbops sync`
        assert (st.pending, st.writing) == (0, 1) and "1 being written by running kernels" in repr(st)
    finally:
        held.release()
    # %unload_ext flushes: once it returns, the run is on the store (no polling)
    ip.run_line_magic("unload_ext", "nbops")
    try:
        runs = _runs(client)
        assert len(runs) == 1
        run = runs[0]
        assert run.info.status == "FINISHED" and run.info.run_name == "first"
        assert run.data.params["lr"] == "0.1"
        assert run.data.metrics["accuracy"] == 0.75
        assert run.data.tags["nbops.kind"] == "track"
        arts = all_artifacts(client, run.info.run_id)
        assert "cell/source.py" in arts and "cell/stdout.txt" in arts
        assert "trained first" in open(client.download_artifacts(run.info.run_id, "cell/stdout.txt")).read()
        # the summary under the cell now names the store's run, and the spool holds nothing of it
        assert summary.run_id == run.info.run_id and not summary.writing
        assert summary.experiment_id == run.info.experiment_id
        left = [p.name for p in (tmp_path / "spool").iterdir() if p.is_dir()]
        assert left == [], left
    finally:
        ip.run_line_magic("load_ext", "nbops")


def test_runs_right_after_the_cells_are_all_there_in_order(ip, client, background):
    for i in range(6):
        ip.run_cell(CELL.format(name=f"r{i}", lr=i / 10, acc=0.5 + i / 100))
    ip.run_cell("%nbops runs --all -n 20 -o df")           # no flush by the test: %nbops runs waits for them
    df = ip.user_ns["df"]
    assert sorted(df["run_name"]) == [f"r{i}" for i in range(6)], df
    runs = _runs(client)
    assert [r.info.run_name for r in runs] == [f"r{i}" for i in range(6)]    # in the cells' order
    assert [r.data.metrics["accuracy"] for r in runs] == [0.5 + i / 100 for i in range(6)]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len({r.info.run_id for r in runs}) == 6


def test_a_failing_cell_and_a_nested_run_keep_status_and_parent(ip, client, background):
    ip.run_cell("%%track -e bg -n outer\nimport nbops\nwith nbops.track('bg', 'inner') as t:\n"
                "    t.log_metric('inner_m', 3.0)\naccuracy = 1.5\n")
    ip.run_cell("%%track -e bg -n broken\nx = 1\nraise ValueError('no good')\n")
    from nbops.tracking.flusher import flush

    assert flush()
    runs = {r.info.run_name: r for r in _runs(client)}
    assert set(runs) == {"outer", "inner", "broken"}
    assert runs["inner"].data.tags["mlflow.parentRunId"] == runs["outer"].info.run_id
    assert runs["inner"].data.metrics["inner_m"] == 3.0 and runs["outer"].data.metrics["accuracy"] == 1.5
    assert runs["broken"].info.status == "FAILED"
    assert "ValueError: no good" in runs["broken"].data.tags["nbops.error"]
    tb = open(client.download_artifacts(runs["broken"].info.run_id, "error/traceback.txt")).read()
    assert "no good" in tb


def test_sync_mode_is_kept_behind_a_setting(ip, client, monkeypatch):
    monkeypatch.setenv("NBOPS_WRITE_MODE", "sync")
    ip.run_cell(CELL.format(name="synced", lr=0.3, acc=0.9))
    summary = ip.user_ns["_nbops_last_run"]
    assert not summary.writing and not summary.run_id.startswith("spool-")
    assert [r.info.run_id for r in _runs(client)] == [summary.run_id]      # written before the cell returned


def test_mode_defaults_and_a_bad_value_is_one_line(ip, monkeypatch):
    from nbops.tracking import flusher

    assert flusher.mode() == "auto"
    assert flusher.background() is False          # a shell with no notebook frontend: nobody waits on cells live
    monkeypatch.setenv("NBOPS_WRITE_MODE", "background")
    assert flusher.background() is True
    monkeypatch.setenv("NBOPS_WRITE_MODE", "later")
    from test_frontend import printed

    out = printed(ip, "%%track -n x\nx = 1\n").strip()
    assert out.startswith("ConfigError: NBOPS_WRITE_MODE='later': use background") and "\n" not in out, out


def test_a_store_that_does_not_answer_keeps_the_runs_for_the_next_write(ip, monkeypatch, tmp_path):
    from services import start_mlflow_server

    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NBOPS_WRITE_MODE", "background")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    ip.run_cell(CELL.format(name="while-down", lr=0.1, acc=0.6))
    assert ip.user_ns["accuracy"] == 0.6
    from nbops.tracking.flusher import flush

    assert flush()                                 # tried, and left in the spool
    summary = ip.user_ns["_nbops_last_run"]
    assert summary.writing
    entry = tmp_path / "spool" / summary.run_id
    assert (entry / "journal.jsonl").exists()
    server = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts", port=port,
                                 workers=1)
    try:
        ip.run_cell(CELL.format(name="after", lr=0.2, acc=0.7))   # the next write takes the waiting run first
        assert flush()
        from mlflow.tracking import MlflowClient

        c = MlflowClient(server.url)
        runs = _runs(c)
        assert [r.info.run_name for r in runs] == ["while-down", "after"]
        assert [r.data.metrics["accuracy"] for r in runs] == [0.6, 0.7]
        assert not entry.exists() and not summary.writing and summary.run_id == runs[0].info.run_id
        import nbops

        report = nbops.sync()                      # nothing left for nbops sync, nothing written twice
        assert report.records == 0 and not report.created, str(report)
        assert len(_runs(c)) == 2
    finally:
        server.close()


CRASH = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from IPython.testing.globalipapp import start_ipython
    ip = start_ipython()
    ip.run_line_magic("load_ext", "nbops")
    from test_track_background import HeldStore
    held = HeldStore()          # the flusher cannot write before the process dies
    ip.run_cell("%%track -e bg -n crashed\\nlr = 0.5\\naccuracy = 0.8\\n")
    print(ip.user_ns["_nbops_last_run"].run_id, flush=True)
    os._exit(0)                  # a crash: no atexit, no flush
""")


def test_a_crash_after_the_cell_leaves_the_run_for_nbops_sync(store, client, tmp_path):
    env = {**os.environ, "NBOPS_WRITE_MODE": "background", "PYTHONPATH": str(ROOT / "tests")}
    r = subprocess.run([sys.executable, "-c", CRASH.format(tests=str(ROOT / "tests" / "functional"))], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    local = r.stdout.strip().splitlines()[-1]
    assert local.startswith("spool-") and _runs(client) == []
    meta = json.loads((tmp_path / "spool" / local / "meta.json").read_text())
    assert meta["run_name"] == "crashed"
    from nbops.tracking.spool import Spool

    spool = Spool(tmp_path / "spool")
    assert (spool.pending(), spool.writing()) == (1, 0)  # its writer is gone: it waits for `nbops sync`
    done = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "nbops")), "sync"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _runs(client)
    assert len(runs) == 1 and runs[0].info.run_name == "crashed" and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["accuracy"] == 0.8 and runs[0].data.params["lr"] == "0.5"


def test_a_kernel_that_shuts_down_loses_nothing(store, client, tmp_path):
    """A real kernel (papermill) writing in the background, shut down right after its last tracked cell: its exit
    flushes; whatever a slow exit could not write (the kernel manager kills a kernel that takes too long to stop)
    is in the spool, and `nbops sync` brings it. Either way: every run once, complete."""
    from nbops_testing import run_notebook, write_notebook

    cells = ["%load_ext nbops"] + [CELL.format(name=f"k{i}", lr=i / 10, acc=0.5 + i / 10) for i in range(3)]
    nb = write_notebook(tmp_path / "bg.ipynb", cells)
    run_notebook(nb, tmp_path, env={"NBOPS_WRITE_MODE": "background"})
    done = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "nbops")), "sync"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _runs(client)
    assert [r.info.run_name for r in runs] == ["k0", "k1", "k2"]
    assert [r.data.metrics["accuracy"] for r in runs] == [0.5, 0.6, 0.7]
    assert all(r.info.status == "FINISHED" and r.data.tags["nbops.spool_id"].startswith("spool-") for r in runs)

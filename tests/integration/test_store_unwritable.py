"""A store that cannot be written: a disk that fills up while the embedded store is being created (made real with
RLIMIT_FSIZE in a subprocess: every write past the limit fails with EFBIG, as on a full disk), a store left
half-made by such a creation, and a read-only ``.nbops``. Every test runs real processes on a real project folder
and reads back what the stores and the spool hold."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

NBOPS = str(Path(sys.executable).with_name("nbops"))
SRC = str(Path(__file__).resolve().parents[2] / "src")
LIMIT = 200_000  # bytes: an MLflow schema is ~950 kB, a spool journal a few kB

FULL_DISK = """import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""
TRACK = """import nbops
with nbops.track('full', {name!r}) as t:
    t.log_param('lr', 0.1)
    t.log_metric('accuracy', {acc})
    t.log_text('kept', 'notes/a.txt')
print('cell done')
"""


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBOPS_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _py(code, cwd, **kw):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True, **kw)


def _runs(db):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{db}")
    exp = c.get_experiment_by_name("full")
    return {r.info.run_name: r for r in c.search_runs([exp.experiment_id])} if exp else {}


@pytest.fixture
def proj(tmp_path):
    (tmp_path / ".nbops").mkdir()
    return tmp_path


def _assert_delivered(db, names):
    from mlflow.tracking import MlflowClient

    runs = _runs(db)
    assert sorted(runs) == sorted(names)
    for r in runs.values():
        assert r.info.status == "FINISHED" and r.data.params == {"lr": "0.1"}
        assert [a.path for a in MlflowClient(f"sqlite:///{db}").list_artifacts(r.info.run_id, "notes")] \
            == ["notes/a.txt"]


def test_a_disk_full_while_the_store_is_created_spools_the_cell_and_breaks_nothing(proj):
    db = proj / ".nbops" / "mlflow.db"
    r = _py(FULL_DISK.format(limit=LIMIT) + TRACK.format(name="while-full", acc=0.5), proj)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "cell done" in r.stdout, out
    warnings = [x for x in r.stderr.splitlines() if "spooled" in x]
    assert len(warnings) == 1 and "could not be written" in warnings[0], out  # one line, says why
    assert "Traceback" not in out and "CREATE TABLE" not in out, out
    assert not db.exists() and not list((proj / ".nbops").glob(".mlflow.db.creating*"))  # nothing half-made
    assert len(list((proj / ".nbops" / "spool").glob("spool-*/journal.jsonl"))) == 1

    # space is back: a fresh process writes to the store at once, then `nbops sync` delivers the spooled run
    r = _py(TRACK.format(name="after", acc=0.9), proj)
    assert r.returncode == 0 and "already exists" not in r.stderr and "spooled" not in r.stderr, r.stderr
    assert sorted(_runs(db)) == ["after"]
    r = subprocess.run([NBOPS, "sync"], cwd=proj, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0 and "1 runs created" in r.stdout, r.stdout + r.stderr
    _assert_delivered(db, ["after", "while-full"])
    assert _runs(db)["while-full"].data.metrics == {"accuracy": 0.5}


def test_a_store_left_half_made_by_an_older_version_is_made_afresh(proj):
    db = proj / ".nbops" / "mlflow.db"
    # what the old code did: MLflow builds the schema in place, and the disk fills up half-way
    _py(FULL_DISK.format(limit=LIMIT) + f"from mlflow.tracking import MlflowClient\n"
        f"MlflowClient('sqlite:///{db}').search_experiments()", proj)
    assert db.exists()
    for f in (proj / ".nbops").glob("mlflow.db*"):   # left by an older version: it stopped changing long ago
        os.utime(f, (time.time() - 3600,) * 2)
    probe = Path(tempfile.mkdtemp()) / "copy.db"
    try:  # the precondition, on a copy: MLflow itself cannot open such a store any more
        shutil.copy(db, probe)
        r = _py(f"from mlflow.tracking import MlflowClient\nMlflowClient('sqlite:///{probe}').search_experiments()",
                proj)
        assert r.returncode != 0 and "already exists" in r.stderr, r.stderr[-500:]
    finally:
        shutil.rmtree(probe.parent)

    r = _py(TRACK.format(name="after", acc=0.9), proj)
    assert r.returncode == 0 and "cell done" in r.stdout, r.stderr
    assert "already exists" not in r.stderr and "Traceback" not in r.stderr and "spooled" not in r.stderr, r.stderr
    assert [x for x in r.stderr.splitlines() if "half-made" in x], r.stderr  # said once, with where it was kept
    _assert_delivered(db, ["after"])
    assert len(list((proj / ".nbops").glob("mlflow.db.half-made-*"))) == 1  # kept for inspection, not deleted


def _as_plain_user() -> list[str]:
    """A prefix that runs a command without root's power to write anywhere: root is mapped to an ordinary user in
    a user namespace (nothing privileged; the files keep their owner). Empty when the tests do not run as root."""
    if os.geteuid() != 0:
        return []
    prefix = ["unshare", "-U", "--map-user=1000", "--map-group=1000"]
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip("running as root and user namespaces are not available: cannot make a folder read-only")
    return prefix


READ_ONLY = """from IPython.core.interactiveshell import InteractiveShell
import nbops
ip = InteractiveShell.instance()
ip.run_line_magic('load_ext', 'nbops')
ip.run_line_magic('nbops', 'runs --all')
ip.run_cell_magic('track', '-e full -n blocked', 'print("body ran")')
try:
    with nbops.track('full', 'blocked-api') as t:
        t.log_metric('accuracy', 1.0)
except nbops.NbopsError as exc:
    print('API:', type(exc).__name__, exc)
"""


def test_a_read_only_nbops_folder_reads_without_a_lock_and_writes_say_what_to_do(proj):
    prefix = _as_plain_user()
    r = _py(TRACK.format(name="before", acc=0.7), proj)
    assert r.returncode == 0, r.stderr
    offline = dict(_env(), NBOPS_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", TRACK.format(name="spooled", acc=0.6)], cwd=proj, env=offline,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["chmod", "-R", "a-w", str(proj / ".nbops")], check=True)
    try:
        env = _env()
        st = subprocess.run([*prefix, NBOPS, "status"], cwd=proj, env=env, capture_output=True, text=True)
        assert st.returncode == 0 and "1 runs waiting" in st.stdout, st.stdout + st.stderr
        sy = subprocess.run([*prefix, NBOPS, "sync"], cwd=proj, env=env, capture_output=True, text=True)
        waiting = [x for x in (sy.stdout + sy.stderr).splitlines() if "waiting:" in x]
        assert sy.returncode == 1 and len(waiting) == 1 and "read-only" in waiting[0], sy.stdout + sy.stderr
        assert "Traceback" not in sy.stdout + sy.stderr
        runs = subprocess.run([*prefix, NBOPS, "runs", "-e", "full"], cwd=proj, env=env, capture_output=True,
                              text=True)
        assert runs.returncode == 0 and "before" in runs.stdout, runs.stdout + runs.stderr
        r = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY], cwd=proj, env=env, capture_output=True,
                           text=True)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "Traceback" not in out, out
        assert "before" in r.stdout and "body ran" in r.stdout, out  # %nbops runs lists; the cell body runs
        api = [x for x in r.stdout.splitlines() if x.startswith("API:")]
        assert len(api) == 1 and f"cannot write to {proj / '.nbops'}" in api[0] and "chmod u+w" in api[0], out
        assert "Reading runs works" in api[0]
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(proj / ".nbops")], check=True)
    assert sorted(_runs(proj / ".nbops" / "mlflow.db")) == ["before"]  # nothing half-written


def test_a_store_that_fills_up_later_spools_the_cell_and_sync_delivers_it(proj):
    db = proj / ".nbops" / "mlflow.db"
    assert _py(TRACK.format(name="first", acc=0.9), proj).returncode == 0
    # the store exists; now every file may grow by 2 kB at most: the store's next page write fails
    r = _py(FULL_DISK.format(limit=2000) + TRACK.format(name="while-full", acc=0.4), proj)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "cell done" in r.stdout and "Traceback" not in out, out
    assert len([x for x in r.stderr.splitlines() if "spooled" in x]) == 1, out
    assert sorted(_runs(db)) == ["first"]
    r = subprocess.run([NBOPS, "sync"], cwd=proj, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0 and "1 runs created" in r.stdout, r.stdout + r.stderr
    _assert_delivered(db, ["first", "while-full"])


def test_a_store_plain_mlflow_is_creating_right_now_is_waited_for_not_moved_aside(tmp_path, monkeypatch):
    """Plain MLflow (a second process, the user's own script) builds a SQLite schema in place, migration by
    migration; an nbops process opening the store meanwhile sees a short schema with no runs. That is not an
    interrupted creation: nbops waits for it (while its files keep changing) and never moves it aside."""
    import sqlite3
    import threading

    from nbops.tracking import sqlite_store

    monkeypatch.setattr(sqlite_store, "SETTLE_S", 3600.0)  # "still changing" for the whole test, however slow
    db = tmp_path / "mlflow.db"
    con = sqlite3.connect(db)  # what MLflow's first migration leaves: a revision short of the head, no runs
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    con.execute("INSERT INTO alembic_version VALUES ('451aebb31d03')")
    con.commit()
    con.close()
    assert sqlite_store.state(db) == "half-made"
    waiter = threading.Thread(target=sqlite_store.ensure, args=(db, str(tmp_path / "artifacts")))
    waiter.start()
    # the other process reaches the head revision (its schema built elsewhere and swapped in, so that this test
    # never shows nbops a file in between)
    done = tmp_path / "other.db"
    r = _py(f"from mlflow.tracking import MlflowClient\nMlflowClient('sqlite:///{done}').search_experiments()",
            tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    assert waiter.is_alive()   # nbops is still waiting: it did not judge a store that keeps changing
    os.replace(done, db)
    waiter.join()
    assert sqlite_store.state(db) == "ready"
    assert not list(tmp_path.glob("mlflow.db.half-made-*"))

"""Data versions through the real IPython shell and a real SQLite MLflow store, read back with MlflowClient."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nbops_testing import all_artifacts, isolated_store, nbops_loaded
from nbops.errors import DataError, NbopsError

# Creating a fresh MLflow SQLite store takes seconds (schema migrations); the tests of this module share one
# store and one shell, and keep apart by experiment, run and dataset names.


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (creating a SQLite MLflow store costs seconds); tests keep apart by name."""
    with isolated_store(tmp_path_factory.mktemp("data-store")) as uri:
        yield uri


@pytest.fixture(scope="module")
def client(store):
    from mlflow.tracking import MlflowClient
    return MlflowClient(store)


@pytest.fixture(scope="module")
def ip(_ipython, store):
    with nbops_loaded(_ipython) as shell:
        yield shell


def run_named(client, experiment, name):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'")
    assert len(runs) == 1
    return runs[0]


def inputs(run):
    return {di.dataset.name: di for di in run.inputs.dataset_inputs}


def frame(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "k": rng.integers(0, 9, size=n),
                         "city": rng.choice(["Oslo", "Lima", "Pune"], size=n)})


def test_track_data_logs_nbops_digest_schema_profile(ip, client):
    import nbops

    df = frame()
    ip.user_ns["df"] = df
    ip.run_cell_magic("track", "-e exp -n train --data df", "model_score = float(df.x.mean())")
    r = run_named(client, "exp", "train")
    di = inputs(r)["df"]
    expected = nbops.fingerprint(df)
    assert di.dataset.digest == expected.digest  # the full 128-bit nbops digest, not MLflow's 8 hex digits
    assert {t.key: t.value for t in di.tags}["mlflow.data.context"] == "training"
    schema = json.loads(di.dataset.schema)
    assert [c["name"] for c in schema["mlflow_colspec"]] == ["x", "k", "city"]
    assert schema["nbops"]["columns"][2] == {"name": "city", "dtype": str(df.city.dtype), "type": "string"}
    assert di.dataset.digest.startswith("v2:") and schema["nbops"]["digest_scheme"] == 2
    prof = json.loads(di.dataset.profile)
    assert prof["num_rows"] == 500
    cols = {c["name"]: c for c in prof["nbops"]["columns"]}
    assert cols["x"]["mean"] == pytest.approx(df.x.mean()) and cols["k"]["max"] == df.k.max()
    assert sum(n for _, n in cols["city"]["top"]) == 500
    assert json.loads(di.dataset.source)["variable"] == "df"
    assert "data/df.parquet" not in all_artifacts(client, r.info.run_id)  # no snapshot unless asked
    summary = ip.user_ns["_nbops_last_run"]
    assert summary.run_id == r.info.run_id


def test_track_data_snapshot_roundtrip_and_load_snapshot(ip, client):
    from nbops.data import fingerprint, load_snapshot

    df = frame(300)
    df["when"] = pd.date_range("2024-01-01", periods=300, freq="D")
    df["grade"] = pd.Categorical(np.array(["a", "b", "c"])[np.arange(300) % 3])
    ip.user_ns.update(df=df, other=frame(10, seed=1))
    ip.run_cell_magic("track", "-e exp -n snap --data df,other --snapshot", "n = len(df)")
    r = run_named(client, "exp", "snap")
    arts = all_artifacts(client, r.info.run_id)
    assert {"data/df.parquet", "data/other.parquet"} <= set(arts)
    assert r.data.tags["nbops.data.snapshot.df"] == "data/df.parquet"
    back = load_snapshot(r.info.run_id, "df")
    pd.testing.assert_frame_equal(back, df)
    assert fingerprint(back).digest == inputs(r)["df"].dataset.digest == back.attrs["nbops.digest"]
    with pytest.raises(DataError, match="several snapshots"):
        load_snapshot(r.info.run_id)
    with pytest.raises(DataError, match="no snapshot of 'nope'"):
        load_snapshot(r.info.run_id, "nope")
    # a polars frame versions and snapshots too (it loads back as pandas)
    import polars as pl
    ip.user_ns["pdf"] = pl.DataFrame({"a": [1, 2, None], "s": ["x", None, "z"]})
    ip.run_cell_magic("track", "-e exp -n polarsnap --data pdf --snapshot", "pass")
    rp = run_named(client, "exp", "polarsnap")
    assert inputs(rp)["pdf"].dataset.digest == fingerprint(ip.user_ns["pdf"]).digest
    back = load_snapshot(rp.info.run_id)
    assert back["a"].isna().tolist() == [False, False, True] and back["s"].isna().tolist() == [False, True, False]
    assert back["s"].dropna().tolist() == ["x", "z"]  # pandas 3 reads text as str (NaN missing), pandas 2 as object
    # v2 digests do not depend on the container: the text column is the same column in polars and in pandas
    assert fingerprint(back["s"]).profile["columns"][0]["digest"] == fingerprint(ip.user_ns["pdf"]["s"]).profile[
        "columns"][0]["digest"]


def test_load_snapshot_without_snapshot_says_how(ip, client):
    from nbops.data import load_snapshot

    ip.user_ns["df_nosnap"] = frame(20)
    ip.run_cell_magic("track", "-e exp -n nosnap --data df_nosnap", "pass")
    r = run_named(client, "exp", "nosnap")
    with pytest.raises(DataError, match=r"stored no data snapshot: re-run the training cell with "
                                        r"`%%track --data df --snapshot`"):
        load_snapshot(r.info.run_id)
    with pytest.raises(DataError, match="No run 0123"):
        load_snapshot("0123456789abcdef0123456789abcdef")


def test_bad_data_is_refused_and_nothing_half_logged(ip, client):
    class Thing:
        pass
    ip.user_ns.update(good=frame(10), cfg={"lr": 0.1},
                      weird=pd.DataFrame({"a": [1, 2], "o": [Thing(), Thing()]}),
                      dup=pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(DataError, match=r"`cfg` \(a builtins.dict\)"):
        ip.run_cell_magic("track", "-e exp -n baddict --data good,cfg", "y = 1")
    with pytest.raises(DataError, match="Column 'o' of `weird`"):
        ip.run_cell_magic("track", "-e exp -n badcol --data weird", "y = 1")
    # duplicate names version fine, but parquet cannot hold them: refused before the body runs, nothing recorded
    with pytest.raises(DataError, match="duplicate column names a; parquet needs one name per column"):
        ip.run_cell_magic("track", "-e exp -n baddup --data dup --snapshot", "body_ran = True")
    assert "body_ran" not in ip.user_ns
    assert not client.search_runs([client.get_experiment_by_name("exp").experiment_id],
                                  "attributes.run_name = 'baddup'")
    with pytest.raises(NbopsError, match="no variable named 'missing'"):
        ip.run_cell_magic("track", "-e exp -n nodata --data missing", "y = 1")
    for name in ("baddict", "badcol"):
        r = run_named(client, "exp", name)
        assert r.info.status == "FAILED"
        assert not [d for d in r.inputs.dataset_inputs if d.dataset.name != "good"], name
        assert not [a for a in all_artifacts(client, r.info.run_id) if a.startswith("data/")], name
    # a version with duplicate names (without snapshot) is logged, by position
    ip.run_cell_magic("track", "-e exp -n dupok --data dup", "y = 1")
    assert "dup" in inputs(run_named(client, "exp", "dupok"))


def test_reads_are_versioned_automatically_and_pandas_restored(ip, client, tmp_path):
    import nbops

    df = frame(50)
    df.to_csv(tmp_path / "train.csv", index=False)
    df.to_parquet(tmp_path / "eval.parquet")
    orig = pd.read_csv, pd.read_parquet
    ip.run_cell_magic("track", "-e exp -n reads",
                      "import pandas as pd\n"
                      f"a = pd.read_csv({str(tmp_path / 'train.csv')!r})\n"
                      f"b = pd.read_parquet({str(tmp_path / 'eval.parquet')!r})\n"
                      f"a2 = pd.read_csv({str(tmp_path / 'train.csv')!r})\n"
                      "import io\nc = pd.read_csv(io.StringIO('q\\n1\\n'))")
    assert (pd.read_csv, pd.read_parquet) == orig  # the very same functions are back
    assert not hasattr(pd.read_csv, "__nbops_wrapped__")
    r = run_named(client, "exp", "reads")
    got = inputs(r)
    assert set(got) == {"train.csv", "eval.parquet"}  # a buffer is not a file; a second read is not a new input
    tr = got["train.csv"]
    assert tr.dataset.digest == nbops.fingerprint(ip.user_ns["a"]).digest
    src = json.loads(tr.dataset.source)
    assert src["path"] == str(tmp_path / "train.csv") and src["reader"] == "pandas.read_csv"
    assert src["file_digest"] == nbops.fingerprint(tmp_path / "train.csv").digest
    assert tr.dataset.source_type == "local"
    assert {t.key: t.value for t in tr.tags}["mlflow.data.context"] == "read"


def test_read_errors_stay_the_users_and_fingerprint_failures_are_warnings(ip, client, tmp_path):
    (tmp_path / "objs.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(FileNotFoundError):
        ip.run_cell_magic("track", "-e exp -n missingfile", "import pandas as pd\npd.read_csv('nope.csv')")
    assert run_named(client, "exp", "missingfile").info.status == "FAILED"
    # a frame nbops cannot version (arbitrary objects): the user still gets it; the run says why in a warning
    ip.run_cell_magic("track", "-e exp -n objread",
                      "import pandas as pd\nclass Obj: pass\n"
                      f"t = pd.read_csv({str(tmp_path / 'objs.csv')!r}, converters={{'b': lambda s: Obj()}})")
    assert len(ip.user_ns["t"]) == 2
    r = run_named(client, "exp", "objread")
    assert r.info.status == "FINISHED" and not r.inputs.dataset_inputs
    assert any("could not version" in w for w in ip.user_ns["_nbops_last_run"].warnings)


def test_autoversion_costs_nothing_without_pandas(tmp_path):
    """In a fresh interpreter that never imported pandas, a tracked cell's hook imports neither pandas nor numpy,
    and patches pandas when the cell imports it."""
    code = (
        "import sys\n"
        "from nbops.data.autoversion import versions_reads\n"
        "class T:\n    warnings = []\n    data_versions = []\n"
        "with versions_reads(T()):\n"
        "    assert 'pandas' not in sys.modules and 'numpy' not in sys.modules, 'imported early'\n"
        "    import pandas as pd\n"
        "    assert hasattr(pd.read_csv, '__nbops_wrapped__')\n"
        "assert not hasattr(pd.read_csv, '__nbops_wrapped__')\n"
        "assert not any(type(f).__name__ == '_ImportHook' for f in sys.meta_path)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_dataversion_records_lineage_and_diff(ip, client, capsys):
    from nbops.data import history, runs_using

    df = frame(400)
    ip.user_ns["df"] = df
    ip.run_line_magic("dataversion", "df --name customers --snapshot")
    out = capsys.readouterr().out
    assert "new: this exact content was not recorded before" in out and "first version" in out
    first = history("customers")
    assert len(first) == 1 and first[0]["snapshot"] and first[0]["kind"] == "dataversion"
    run1 = client.get_run(first[0]["run_id"])
    assert run1.data.tags["nbops.kind"] == "dataversion" and run1.info.status == "FINISHED"
    assert run1.info.run_name == "dataversion:customers"
    # same content again: no new run, and the report says where it already is
    ip.run_line_magic("dataversion", "df --name customers")
    out = capsys.readouterr().out
    assert "seen before in 1 run(s)" in out and f"already recorded in run {run1.info.run_id}" in out
    assert len(history("customers")) == 1
    # a changed version: diff against the previous one, with exact row counts from its snapshot
    df2 = df.copy()
    df2.loc[10:14, "x"] = 100.0
    df2 = pd.concat([df2, frame(3, seed=9)], ignore_index=True).drop(columns="k")
    df2["extra"] = 1
    ip.user_ns["df2"] = df2
    ip.run_line_magic("dataversion", "df2 --name customers")
    out = capsys.readouterr().out
    assert "+8 / -5 rows" in out                      # 5 rows changed, 3 appended
    assert "columns added: extra" in out and "columns removed: k" in out and "content changed in: x" in out
    hist = history("customers")
    assert len(hist) == 2 and hist[0]["rows"] == 403 and hist[1]["rows"] == 400
    assert [v.rows for v in hist.versions()] == [403, 400]
    assert runs_using(hist[1]["digest"]).run_ids == [run1.info.run_id]
    assert runs_using(hist[1]["digest"][:12]).run_ids == [run1.info.run_id]
    assert hist.to_frame().shape[0] == 2 and "<table" in hist._repr_html_()


def test_dataversion_html_leaves_figures_that_do_not_apply_empty(ip):
    """%dataversion's HTML of an all-numeric frame: no literal None (or nan) where distinct / top do not apply."""
    from IPython.utils.capture import capture_output

    ip.user_ns["nums"] = pd.DataFrame({"x": [1.5, 2.5, np.nan], "n": [1, 2, 3]})
    with capture_output() as cap:
        ip.run_line_magic("dataversion", "nums")
    html = next(o.data["text/html"] for o in cap.outputs if "text/html" in o.data)
    cells = [c.split("</td>")[0] for c in html.split("<td>")[1:]]
    assert len(cells) == 20 and "None" not in cells and "nan" not in cells and "<NA>" not in cells, cells
    assert cells[:4] == ["x", "float64", "float64", "1"] and cells[7:9] == ["", ""]


def test_dataversion_inside_a_tracked_cell_logs_on_that_run(ip, client):
    from nbops.data import history

    ip.user_ns["df_in"] = frame(30)
    ip.run_cell_magic("track", "-e exp -n withdv", "%dataversion df_in --name inside\nz = 1")
    r = run_named(client, "exp", "withdv")
    assert "inside" in inputs(r)
    assert {t.key: t.value for t in inputs(r)["inside"].tags}["mlflow.data.context"] == "dataversion"
    assert history("inside").run_ids == [r.info.run_id]  # no separate dataversion run


def test_dataversion_bad_input(ip):
    with pytest.raises(NbopsError, match="no variable named 'nothere'"):
        ip.run_line_magic("dataversion", "nothere")
    ip.user_ns["cfg"] = {"a": 1}
    with pytest.raises(DataError, match="`cfg` \\(a builtins.dict\\)"):
        ip.run_line_magic("dataversion", "cfg")
    with pytest.raises(DataError, match="No file or folder"):
        ip.run_line_magic("dataversion", "'data/none.csv'")


def test_dataversion_of_a_file_path(ip, client, tmp_path, capsys):
    from nbops.data import history

    p = tmp_path / "raw.csv"
    p.write_text("a,b\n1,2\n")
    ip.run_line_magic("dataversion", f"'{p}'")
    assert "raw.csv" in capsys.readouterr().out
    h = history("raw.csv")
    assert len(h) == 1 and json.loads(h[0]["_dataset"].source)["path"] == str(p)


def test_cli_history_and_runs(ip, client, store, tmp_path, capsys):
    from nbops.cli import main

    ip.user_ns["cli_df"] = frame(40)
    ip.run_cell_magic("track", "-e exp -n clirun --data cli_df", "pass")
    digest = inputs(run_named(client, "exp", "clirun"))["cli_df"].dataset.digest
    capsys.readouterr()
    # the installed command, in its own process
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    out = subprocess.run([sys.executable, "-m", "nbops.cli", "data", "history", "cli_df"], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "history of cli_df: 1 record(s)" in out.stdout and digest[:12] in out.stdout and "clirun" in out.stdout
    # the same entry point in process for the other cases
    assert main(["data", "runs", digest[:12]]) == 0 and "clirun" in capsys.readouterr().out
    assert main(["data", "history", "unknown"]) == 1 and "none recorded" in capsys.readouterr().out
    assert main(["data", "runs", "zz"]) == 2 and "is not a digest" in capsys.readouterr().err
    p = tmp_path / "f.csv"
    p.write_text("a\n1\n")
    assert main(["data", "fingerprint", str(p)]) == 0 and "f.csv" in capsys.readouterr().out


def test_offline_versions_are_spooled_then_synced(ip, client, monkeypatch):
    from nbops.api import sync
    from nbops.data import history, record_version

    df = frame(25, seed=4)
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    report = record_version(df, "offline_set")
    assert any("offline" in w for w in report.warnings) and any("spooled" in w for w in report.warnings)
    assert report.recorded_in and report.seen_in is None
    monkeypatch.delenv("NBOPS_OFFLINE")
    assert len(history("offline_set")) == 0          # not in the store yet
    assert sync().ok
    h = history("offline_set")
    assert len(h) == 1 and h[0]["digest"] == report.version.digest and h[0]["kind"] == "dataversion"


def test_a_v1_record_then_v2_says_scheme_changed(ip, client, capsys):
    """A version recorded by nbops before digest scheme v2 (bare 32-hex digest, container dtypes) and the same
    data versioned now: the report, the history and the diff say the digest scheme changed, not the data."""
    import nbops
    from nbops.data import history, record_version, runs_using
    from nbops.data.compare import compare

    df = frame(50, seed=4)
    v = nbops.fingerprint(df, "legacy")
    rec = v.to_record("legacy", "dataversion")
    schema = json.loads(rec["schema"])
    schema["nbops"] = {"version": 1, "kind": "frame", "columns": [{"name": c["name"], "dtype": c["dtype"]}
                                                                  for c in v.schema]}
    old_digest = "4c277888bd2227bef62acb3916fd50c3"   # what v1 stored: 32 hex digits, no scheme
    rec.update(digest=old_digest, schema=json.dumps(schema))
    with nbops.track("exp", "legacy-v1", kind="dataversion") as t:
        t.log_dataset(rec)
    ip.user_ns["legacy_df"] = df
    ip.run_line_magic("dataversion", "legacy_df --name legacy")
    out = capsys.readouterr().out
    assert "digest scheme changed (v1 -> v2)" in out and "new under digest scheme v2" in out
    assert "content changed" not in out.replace("no content change", "")
    hist = history("legacy")
    assert [r["digest"] for r in hist] == [v.digest, old_digest]
    assert hist.scheme_changes == [1] and hist.to_frame()["scheme"].tolist() == [2, 1]
    assert "digest scheme changed: v2 above, v1 below" in repr(hist)
    new, old = hist.versions()
    d = compare(old, new)
    assert d.scheme_changed and d.columns_changed == [] and d.columns_retyped == []
    # the same data again: already recorded under v2, nothing new
    assert record_version(df, "legacy").already_in == hist[0]["run_id"]
    # lookups by the hex digits alone find the v2 record, by the old digest the v1 one
    assert runs_using(v.digest[3:15]).run_ids == [hist[0]["run_id"]]
    assert runs_using(v.short).run_ids == [hist[0]["run_id"]]
    assert runs_using(old_digest).run_ids == [hist[1]["run_id"]]

"""Nothing secret reaches the store: each leak path of issue 13, driven through a real IPython shell and a real
SQLite MLflow store. Every test plants fake values, runs, then greps EVERYTHING the test folder holds (the store
file and its WAL, the artifacts tree, the spool) plus what MLflow returns. Also: where records land (the Default
experiment's artifacts), a torn spool journal, numeric CLI options."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nbops.tracking import redact


@pytest.fixture(autouse=True)
def _fresh_redactor():
    redact.forget_all()
    yield
    redact.forget_all()


def leaks(root: Path, planted, skip=()) -> list[str]:
    """``planted`` values found in any file under ``root`` (raw bytes: SQLite pages, WAL, JSON, HTML, ...)."""
    found = []
    for p in Path(root).rglob("*"):
        if not p.is_file() or any(str(p).startswith(str(s)) for s in skip):
            continue
        data = p.read_bytes()
        found += [f"{v!r} in {p.relative_to(root)}" for v in planted if v.encode() in data]
    return found


def run_of(client, experiment, name):
    exp = client.get_experiment_by_name(experiment)
    return next(r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == name)


def test_url_passwords_in_params_tags_lists_and_dicts(ip, client, tmp_path):
    ip.run_cell_magic("track", "-e sec -n urls --tag db=postgresql://tag_user:tagpw-planted-11@db/x",
                      "db_url = 'postgresql://u:urlpw-planted-12@db.example/app'\n"
                      "mirrors = ['https://m:listpw-planted-13@mirror.example/x', 'b']\n"
                      "lr = 0.1\n")
    ip.run_cell_magic("track", "-e sec -n dict --params conf",
                      "conf = {'db': 'mysql://root:dictpw-planted-14@h/db', 'n': 3}\n")
    r = run_of(client, "sec", "urls")
    assert r.data.params["db_url"] == "postgresql://****@db.example/app"   # the rest of the URL is kept
    assert "mirror.example/x" in r.data.params["mirrors"] and r.data.tags["db"] == "postgresql://****@db/x"
    assert "h/db" in run_of(client, "sec", "dict").data.params["conf"]
    assert not leaks(tmp_path, ["tagpw-planted-11", "urlpw-planted-12", "listpw-planted-13", "dictpw-planted-14"])


def test_secret_values_reappearing_in_errors_stdout_and_later_cells(ip, client, tmp_path):
    ip.run_cell("api_token = 'tok-planted-21xyz'\nsettings = {'auth': {'secret_key': 'dictkey-planted-22'}}")
    with pytest.raises(RuntimeError):
        ip.run_cell_magic("track", "-e sec -n err",
                          "print('calling with', api_token, settings['auth']['secret_key'])\n"
                          "raise RuntimeError(f'401 for token {api_token}')\n")
    ip.run_cell_magic("track", "-e sec -n later", "check = 'tok-planted-21xyz'.upper()\nprint(check.lower())\n"
                      "accuracy = 0.5\n")
    r = run_of(client, "sec", "err")
    assert r.info.status == "FAILED" and r.data.tags["nbops.error"] == "RuntimeError: 401 for token ****"
    later = run_of(client, "sec", "later")
    assert later.info.status == "FINISHED"
    assert ip.user_ns["check"] == "TOK-PLANTED-21XYZ"  # masking never changes what the code computes
    assert not leaks(tmp_path, ["tok-planted-21xyz", "dictkey-planted-22", "TOK-PLANTED-21XYZ".lower()])


def test_keyword_arguments_and_environment_set_in_the_cell(ip, client, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYMENTS_API_KEY", "envvar-planted-31")
    ip.run_cell_magic("track", "-e sec -n kw",
                      "import os\ndef connect(host, password):\n    return f'{host}:{password}'\n"
                      "login = 'kwarg-planted-32'\nc = connect('db', password=login)\n"
                      "os.environ['SERVICE_X_TOKEN'] = 'envcell-planted-33'\n"
                      "print(c, os.environ['SERVICE_X_TOKEN'], os.environ['PAYMENTS_API_KEY'])\n"
                      "del os.environ['SERVICE_X_TOKEN']  # gone by the time nbops looks at the environment\n")
    os.environ.pop("SERVICE_X_TOKEN", None)
    assert run_of(client, "sec", "kw").info.status == "FINISHED"
    assert not leaks(tmp_path, ["envvar-planted-31", "kwarg-planted-32", "envcell-planted-33"])


def test_git_diff_of_a_credential_in_an_uncommitted_file(ip, client, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*a):
        subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (repo / "settings.py").write_text("DEBUG = True\n")
    git("add", "settings.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c1")
    (repo / "settings.py").write_text('DEBUG = True\nDB_PASSWORD = "diffpw-planted-41"\n'
                                      'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n')
    os.chdir(repo)
    ip.run_cell_magic("track", "-e sec -n diff", "accuracy = 1.0")
    r = run_of(client, "sec", "diff")
    assert r.data.tags["nbops.git.dirty"] == "true"
    diff = Path(client.download_artifacts(r.info.run_id, "git/diff.patch", str(tmp_path / "dl"))).read_text()
    assert '+DB_PASSWORD = "****"' in diff and "DEBUG = True" in diff
    assert not leaks(tmp_path, ["diffpw-planted-41", "AKIAIOSFODNN7EXAMPLE"], skip=[repo / "settings.py"])


def test_offline_spool_holds_no_secret_and_sync_pushes_none(ip, client, tmp_path, monkeypatch):
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    ip.run_cell("db_password = 'spoolpw-planted-51'")
    ip.run_cell_magic("track", "-e sec -n off --tag url=https://u:spooltag-planted-52@h/x",
                      "print('pw', db_password)\nmirrors = ['ftp://a:spoollist-planted-53@h']\naccuracy = 0.7\n")
    planted = ["spoolpw-planted-51", "spooltag-planted-52", "spoollist-planted-53"]
    spool = tmp_path / "spool"
    assert list(spool.glob("*/journal.jsonl")) and not leaks(spool, planted)
    monkeypatch.delenv("NBOPS_OFFLINE")
    import nbops
    report = nbops.sync()
    assert report.ok and len(report.created) == 1
    assert run_of(client, "sec", "off").data.metrics["accuracy"] == 0.7
    assert not leaks(tmp_path, planted)


def test_profile_of_a_secret_named_column(ip, client, tmp_path):
    ip.run_cell("import pandas as pd")
    ip.run_cell_magic("track", "-e sec -n data --data users",
                      "users = pd.DataFrame({'password': ['colpw-planted-61', 'colpw-planted-62'] * 5,\n"
                      "                      'city': ['Paris', 'Lyon'] * 5})\n")
    r = run_of(client, "sec", "data")
    profile = json.loads(r.inputs.dataset_inputs[0].dataset.profile)
    assert "Paris" in json.dumps(profile)  # ordinary columns keep their top values
    assert not leaks(tmp_path, ["colpw-planted-61", "colpw-planted-62"])


def test_numpy_scalar_params_are_stored_as_plain_values(ip, client):
    ip.run_cell("import numpy as np")
    ip.run_cell_magic("track", "-e np -n scalars --params alpha,n,flag,grid",
                      "alpha = np.float64(0.5)\nn = np.int64(3)\nflag = np.bool_(True)\n"
                      "grid = [np.float64(0.1), np.float32(0.25)]\n")
    assert run_of(client, "np", "scalars").data.params == {"alpha": "0.5", "n": "3", "flag": "True",
                                                          "grid": "[0.1, 0.25]"}


def test_cwd_is_not_masked(ip, client, tmp_path, monkeypatch):
    monkeypatch.setenv("PWD", str(tmp_path))
    ip.run_cell_magic("track", "-e sec -n cwd", "import os\nprint(os.getcwd())\naccuracy = 0.1\n")
    r = run_of(client, "sec", "cwd")
    out = Path(client.download_artifacts(r.info.run_id, "cell/stdout.txt", str(tmp_path / "dl"))).read_text()
    assert out.strip() == str(tmp_path)


# -- where records land ----------------------------------------------------------------------------------------
def test_default_experiment_artifacts_stay_in_the_project_from_a_folder_above(tmp_path, monkeypatch):
    from nbops import config
    from nbops.tracking.run import Tracker

    proj = tmp_path / "proj"
    (proj / "nb").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    for var in ("MLFLOW_TRACKING_URI", "NBOPS_HOME", "NBOPS_SPOOL_DIR", "NBOPS_EXPERIMENT", "NBOPS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # the folder above the project, as `nbops run proj/nb/x.ipynb` from there
    s = config.settings(proj / "nb")
    assert s.embedded
    with Tracker(None, "d", settings=s) as t:
        t.log_text("hello", "x.txt")
    from mlflow.tracking import MlflowClient
    c = MlflowClient(s.tracking_uri)
    default = c.get_experiment_by_name("Default")
    assert default.artifact_location.startswith((proj / ".nbops" / "artifacts").as_uri())
    assert c.get_run(t.run_id).info.artifact_uri.startswith((proj / ".nbops" / "artifacts").as_uri())
    assert (proj / ".nbops" / "artifacts").is_dir()
    assert not [p for p in tmp_path.rglob("*") if "mlruns" in p.parts and p.is_file()]


def test_torn_end_of_run_record_syncs_to_a_failed_incomplete_run(tmp_path, client, monkeypatch):
    import nbops
    from nbops import config
    from nbops.tracking.run import Tracker

    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    with Tracker("torn", "crashed", settings=config.settings()) as t:
        t.log_metric("accuracy", 0.4)
    journal = next((tmp_path / "spool").glob("*/journal.jsonl"))
    lines = journal.read_bytes().splitlines(keepends=True)
    assert b'"end_run"' in lines[-1]
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # the crash mid-append
    monkeypatch.delenv("NBOPS_OFFLINE")
    from nbops.tracking.spool import Spool
    assert Spool(tmp_path / "spool").pending() == 1
    report = nbops.sync()
    assert not report.ok and len(report.incomplete) == 1 and "incomplete" in str(report)
    r = run_of(client, "torn", "crashed")
    assert r.info.status == "FAILED" and r.data.tags["nbops.incomplete"] == "true"
    assert r.data.metrics["accuracy"] == 0.4  # the records before the tear are there
    again = nbops.sync()  # idempotent: nothing left, nothing said twice
    assert again.ok and again.up_to_date == 1 and Spool(tmp_path / "spool").pending() == 0


@pytest.mark.parametrize("argv", [["run", "x.ipynb", "--timeout", "-5"], ["runs", "-n", "-5"], ["runs", "-n", "0"],
                                  ["ui", "--port", "70000"], ["run", "x.ipynb", "--timeout", "nan"],
                                  ["data", "history", "d", "-n", "-1"]])
def test_numeric_cli_options_are_range_checked(argv, capsys):
    from nbops.cli import main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out of range" in err, err


def test_run_notebook_rejects_a_negative_timeout(tmp_path):
    from nbops.errors import RunnerError
    from nbops.runner import run_notebook
    with pytest.raises(RunnerError, match="greater than 0"):
        run_notebook(tmp_path / "x.ipynb", timeout=-5)


def test_secret_values_are_never_params(ip, client, tmp_path):
    ip.run_cell_magic("track", "-e sec -n p", "api_key = 'param-planted-71'\nlr = 0.5\n")
    assert run_of(client, "sec", "p").data.params == {"lr": "0.5"}
    assert not leaks(tmp_path, ["param-planted-71"])


@pytest.mark.parametrize("magic,line", [("nbops", "runs -n -5"), ("drift", "a a --p-val 0"), ("drift", "a a --p-val 2"),
                                        ("drift", "a a --sample 0"), ("drift", "a a --min-effect -1"),
                                        ("telemetry", "--source local --live -3")])
def test_numeric_magic_options_are_range_checked(ip, magic, line):
    from nbops.errors import NbopsError
    with pytest.raises(NbopsError, match="out of range") as exc:
        ip.run_line_magic(magic, line)
    assert len(str(exc.value).splitlines()) == 1


# -- issue 23 ----------------------------------------------------------------------------------------------------
def test_a_contract_over_secret_named_columns_round_trips(ip, client, tmp_path, store):
    import yaml
    import pandas as pd
    ip.user_ns["users"] = pd.DataFrame({"user": ["ann", "bob", "cyd", "dan"],
                                        "api_key": ["k1aaaa", "k2bbbb", "k3cccc", None],
                                        "token_count": [10, 20, 30, 40]})
    ip.run_line_magic("dataversion", "users --name users_v")
    ip.run_line_magic("validate", "users --against users_v -o rep")  # a YAML ScannerError before
    assert ip.user_ns["rep"].ok
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    cli = subprocess.run([str(Path(__import__("sys").executable).parent / "nbops"), "data", "contract", "users_v"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "****" not in cli.stdout and yaml.safe_load(cli.stdout)["columns"]["api_key"]["nullable"] is True


@pytest.mark.parametrize("offline", [False, True])
def test_kinds_new_in_issue_23_reach_nothing_online_and_offline_then_synced(ip, client, tmp_path, monkeypatch,
                                                                          offline):
    """A Databricks token in a plain variable, an Azure connection string, a password under a short name, a
    secret-named column of a --snapshot frame, a secret-named variable computed at run time."""
    import pandas as pd
    dapi = "dapi" + "0123456789abcdef" * 2
    planted = [dapi, "azkey-planted-61==", "shortpw-planted-62", "snapcol-planted-63", "computed-planted-64"]
    if offline:
        monkeypatch.setenv("NBOPS_OFFLINE", "1")
    ip.run_cell(f"pw = 'shortpw-planted-62'\ndb_password = bytes.fromhex('{planted[4].encode().hex()}').decode()")
    ip.user_ns["users"] = pd.DataFrame({"api_key": ["snapcol-planted-63", None, "x"], "n": [1, 2, 3]})
    ip.run_cell_magic("track", "-e sec -n kinds --data users --snapshot",
                      f"workspace = '{dapi}'\n"
                      "storage = 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=azkey-planted-61==;'\n"
                      "print(workspace, storage, pw, db_password, users)\naccuracy = 0.5\n")
    if offline:
        assert list((tmp_path / "spool").glob("*/journal.jsonl"))
        assert not leaks(tmp_path, planted)
        monkeypatch.delenv("NBOPS_OFFLINE")
        import nbops
        assert nbops.sync().ok
    r = run_of(client, "sec", "kinds")
    assert r.data.params["workspace"] == "****"
    assert r.data.params["storage"] == "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=****;"
    from nbops.data import load_snapshot
    snap = load_snapshot(r.info.run_id, "users")
    assert list(snap.columns) == ["api_key", "n"] and snap["n"].tolist() == [1, 2, 3]
    assert snap["api_key"].tolist()[0] == "****" and snap["api_key"].isna().tolist() == [False, True, False]
    assert not leaks(tmp_path, planted)

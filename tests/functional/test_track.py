"""%%track driven through a real IPython shell, read back from a real SQLite MLflow store."""
import os
import subprocess
import sys

import pytest

from nbops_testing import all_artifacts
from nbops.errors import NbopsError


def runs_of(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])} if exp else {}


def read(client, run_id, path, tmp_path):
    return open(client.download_artifacts(run_id, path, str(tmp_path)), encoding="utf-8").read()


def test_auto_capture_params_metrics_source_stdout(ip, client, tmp_path):
    value = ip.run_cell_magic("track", "-e exp -n first", "lr = 0.1\nn_trees = 7\naccuracy = 0.5 + lr\n"
                              "print('hello from the cell')\naccuracy * 2")
    assert value == pytest.approx(1.2)  # the cell's value comes back to the user
    r = runs_of(client, "exp")["first"]
    assert r.info.status == "FINISHED"
    assert r.data.params == {"lr": "0.1", "n_trees": "7"}
    assert r.data.metrics["accuracy"] == pytest.approx(0.6)
    assert r.data.metrics["nbops.wall_time_s"] >= 0 and r.data.metrics["nbops.peak_rss_mb"] > 10
    assert r.data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert int(r.data.tags["nbops.cell.execution_count"]) >= 0
    arts = all_artifacts(client, r.info.run_id)
    assert "cell/source.py" in arts and "environment/requirements.txt" in arts
    assert "n_trees = 7" in read(client, r.info.run_id, "cell/source.py", tmp_path)
    assert "hello from the cell" in read(client, r.info.run_id, "cell/stdout.txt", tmp_path)
    assert "mlflow==" in read(client, r.info.run_id, "environment/requirements.txt", tmp_path).lower()
    assert ip.user_ns["_nbops_last_run"].run_id == r.info.run_id


def test_explicit_lists_and_tags(ip, client):
    ip.run_cell_magic("track", "-e exp -n explicit --params a --metrics m --tag team=growth --tag stage=dev",
                      "a = 1\nb = 2\nm = 0.5\naccuracy = 0.9")
    r = runs_of(client, "exp")["explicit"]
    assert r.data.params == {"a": "1"}
    assert {k for k in r.data.metrics if not k.startswith("nbops.")} == {"m"}
    assert r.data.tags["team"] == "growth" and r.data.tags["stage"] == "dev"


def test_failing_cell_is_failed_and_reraised_unchanged(ip, client, tmp_path):
    class Boom(Exception):
        pass
    ip.user_ns["Boom"] = Boom
    with pytest.raises(Boom) as err:
        ip.run_cell_magic("track", "-e exp -n bad", "x = 1\nraise Boom('boom')")
    assert str(err.value) == "boom"
    r = runs_of(client, "exp")["bad"]
    assert r.info.status == "FAILED"
    assert "Boom: boom" in r.data.tags["nbops.error"]
    assert "raise Boom('boom')" in read(client, r.info.run_id, "error/traceback.txt", tmp_path)
    assert ip.user_ns["x"] == 1  # the work before the error is still there


def test_ctrl_c_is_killed(ip, client):
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("track", "-e exp -n interrupted", "raise KeyboardInterrupt")
    assert runs_of(client, "exp")["interrupted"].info.status == "KILLED"


def test_hundred_failing_cells_leave_no_run_active(ip, client):
    for i in range(100):
        with pytest.raises(ZeroDivisionError):
            ip.run_cell_magic("track", f"-e many -n f{i}", "1/0")
    ip.run_cell_magic("track", "-e many -n after", "accuracy = 1.0")
    runs = runs_of(client, "many")
    assert len(runs) == 101
    assert sum(r.info.status == "FAILED" for r in runs.values()) == 100
    assert runs["after"].info.status == "FINISHED"
    assert "mlflow.parentRunId" not in runs["after"].data.tags  # nothing was left active to nest under
    from nbops.tracking import current
    assert current() is None


def test_nested_track_and_surrounding_mlflow_run_are_parent_child(ip, client):
    import mlflow
    import nbops
    with nbops.track("nest", "outer") as outer:
        ip.run_cell_magic("track", "-e nest -n inner", "accuracy = 0.7")
    with mlflow.start_run(run_name="fluent", experiment_id=mlflow.set_experiment("nest").experiment_id) as fl:
        ip.run_cell_magic("track", "-e nest -n under-fluent", "accuracy = 0.8")
    runs = runs_of(client, "nest")
    assert runs["inner"].data.tags["mlflow.parentRunId"] == outer.run_id
    assert runs["under-fluent"].data.tags["mlflow.parentRunId"] == fl.info.run_id
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_figures_are_png_artifacts(ip, client):
    ip.run_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nold = plt.figure()")
    ip.run_cell_magic("track", "-e exp -n figs", "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\n"
                      "plt.figure()\nplt.plot([3, 2])")
    arts = all_artifacts(client, runs_of(client, "exp")["figs"].info.run_id)
    pngs = [a for a in arts if a.endswith(".png")]
    assert len(pngs) == 2  # the two new figures, not the one that existed before the cell


def test_the_tour_cell_records_the_estimator_not_the_accumulator(ip, client):
    """Issue 23 item 6: the README tour's training cell logged params {} and a loop accumulator as a param."""
    import numpy as np
    rng = np.random.default_rng(0)
    ip.user_ns.update(X_tr=rng.normal(size=(60, 2)), y_tr=rng.normal(size=60))
    ip.run_cell_magic("track", "-e tour -n forest",
                      "from sklearn.ensemble import RandomForestRegressor\n"
                      "model = RandomForestRegressor(n_estimators=20, max_depth=4).fit(X_tr, y_tr)\n"
                      "x = 0\nfor i in range(3):\n    x += i\nr2 = model.score(X_tr, y_tr)\n")
    r = runs_of(client, "tour")["forest"]
    p = r.data.params
    assert p["n_estimators"] == "20" and p["max_depth"] == "4" and p["criterion"] == "squared_error"
    assert "x" not in p and "i" not in p                       # the accumulator and the loop variable
    assert r.data.tags["estimator_class"] == "sklearn.ensemble.RandomForestRegressor"
    assert r.data.tags["estimator_name"] == "RandomForestRegressor"
    assert "r2" in r.data.metrics and "r2" not in p


def test_model_option_and_autodetection_agree(ip, client):
    """--model names the model (its class tagged, its params plain); without it the last predictor the cell
    built is the model; a scaler fitted beside it is an estimator too (prefixed params), never the model."""
    import numpy as np
    ip.user_ns.update(X=np.arange(40.0).reshape(-1, 2), y=np.arange(20.0))
    body = ("from sklearn.preprocessing import StandardScaler\nfrom sklearn.linear_model import Ridge\n"
            "scaler = StandardScaler().fit(X)\nreg = Ridge(alpha=2.0).fit(scaler.transform(X), y)\n")
    ip.run_cell_magic("track", "-e agree -n auto", body)
    ip.run_cell_magic("track", "-e agree -n named --model reg", body)
    runs = runs_of(client, "agree")
    for name in ("auto", "named"):
        r = runs[name]
        assert r.data.tags["estimator_name"] == "Ridge"
        assert r.data.params["reg.alpha"] == "2.0" and r.data.params["scaler.with_mean"] == "True"
    assert client.search_logged_models(experiment_ids=[runs["named"].info.experiment_id],
                                       filter_string=f"source_run_id = '{runs['named'].info.run_id}'")


def test_figures_shown_with_plt_show_are_logged_once(ip, client):
    """Issue 23 item 7: in Jupyter, plt.show() displays and closes the figure; it is logged all the same, once,
    beside the one left open; the figure open before the cell is not; matplotlib is left as it was."""
    ip.run_cell("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
                "import matplotlib.pyplot as plt\nfrom matplotlib._pylab_helpers import Gcf\nold = plt.figure()\n"
                "before = (Gcf.__dict__['destroy'], Gcf.__dict__['destroy_all'])")
    ip.run_cell_magic("track", "-e figs -n shown",
                      "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()\n"
                      "fig2, ax2 = plt.subplots()\nax2.bar([1, 2], [3, 4])\nplt.show()\n"
                      "plt.figure()\nplt.plot([3, 2])\nplt.close('all')\nplt.figure()\nplt.plot([5, 1])\n")
    arts = all_artifacts(client, runs_of(client, "figs")["shown"].info.run_id)
    pngs = sorted(a for a in arts if a.endswith(".png"))
    assert len(pngs) == 4 and all(a.startswith("figures/") for a in pngs)
    Gcf = ip.user_ns["Gcf"]
    assert (Gcf.__dict__["destroy"], Gcf.__dict__["destroy_all"]) == ip.user_ns["before"]  # put back as it was
    ip.run_cell("plt.close('all')\nmatplotlib.use('Agg')")


def test_the_last_track_experiment_is_the_notebooks(ip, client):
    """Issue 23 item 8: after %%track -e bike, %dataversion and nbops.track() without -e go to 'bike', not
    'Default'; %unload_ext forgets it."""
    import pandas as pd
    ip.user_ns["frame"] = pd.DataFrame({"a": [1, 2, 3]})
    ip.run_cell_magic("track", "-e bike -n t", "accuracy = 0.5")
    ip.run_line_magic("dataversion", "frame --name frame_v")
    ip.run_cell("import nbops\nwith nbops.track(run_name='plain') as t:\n    t.log_metric('m', 1.0)")
    ip.run_cell_magic("track", "-n follows", "accuracy = 0.6")
    names = set(runs_of(client, "bike"))
    assert {"t", "follows", "plain"} <= names and any(n.startswith("dataversion:") for n in names)
    assert not runs_of(client, "Default")
    from nbops import config
    ip.run_line_magic("unload_ext", "nbops")
    assert config.settings().experiment == "Default"
    ip.run_line_magic("load_ext", "nbops")


def test_nbops_runs_shows_this_notebooks_runs_with_the_columns_that_matter(ip, client, monkeypatch):
    """Issue 23 item 8: %nbops runs lists this notebook's runs (--all: every notebook's) with run, status, start,
    duration and the few params / metrics that differ across them; the DataFrame keeps everything."""
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", "/nb/other.ipynb")
    ip.run_cell_magic("track", "-e rt -n elsewhere", "lr = 0.5\naccuracy = 0.1")
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", "/nb/this.ipynb")
    for i in range(3):
        ip.run_cell_magic("track", f"-e rt -n here{i}", "\n".join(
            [f"lr = {i / 10}", "seed = 7", f"accuracy = {0.5 + i / 10}", f"loss = {1 - i / 10}"]
            + [f"p{k} = {k}" for k in range(8)] + [f"m{k}_score = {i + k}" for k in range(8)]))
    ip.run_line_magic("nbops", "runs -o df")
    df = ip.user_ns["df"]
    assert sorted(df["run_name"]) == ["here0", "here1", "here2"]              # not the other notebook's
    table = ip.user_ns["df"]
    from nbops.tracking.summary import RunsTable
    view = RunsTable(table, "/nb/this.ipynb")._view()
    assert list(view.columns[:5]) == ["run_name", "run_id", "status", "start", "duration"]
    keys = list(view.columns[5:])
    assert keys == ["accuracy", "loss", "m0_score", "m1_score", "m2_score", "lr"]  # only what differs, params too
    assert "params.p3" in table.columns                                             # the frame keeps all
    ip.run_line_magic("nbops", "runs --all -o every")
    assert "elsewhere" in set(ip.user_ns["every"]["run_name"])


def test_secrets_never_reach_the_store(ip, client, tmp_path, store, monkeypatch):
    monkeypatch.setenv("PAYMENTS_API_KEY", "env-planted-9f8e7d6c5b4a")
    leak = "4eC39HqLyjWDarjtT1zdp7dc"
    ip.run_cell_magic("track", "-e sec -n s --tag token=abc", f"api_token = 'sk-live-{leak}'\n"
                      "aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n"
                      "import os\nprint('using', api_token, os.environ['PAYMENTS_API_KEY'])\nlr = 0.3")
    r = runs_of(client, "sec")["s"]
    assert r.data.params == {"lr": "0.3"} and "token" not in r.data.tags
    texts = [read(client, r.info.run_id, a, tmp_path) for a in all_artifacts(client, r.info.run_id)]
    planted = (leak, "wJalrXUtnFEMI/K7MDENG", "env-planted-9f8e7d6c5b4a")
    for secret in planted:
        assert not any(secret in t for t in texts), secret
        db = store.replace("sqlite:///", "")
        assert secret.encode() not in open(db, "rb").read()
    # and the whole artifact tree on disk
    for root, _, files in os.walk(tmp_path):
        for f in files:
            if f.endswith((".py", ".txt", ".patch", ".json")):
                content = open(os.path.join(root, f), errors="replace").read()
                assert leak not in content, os.path.join(root, f)


def test_git_state_is_recorded(ip, client, tmp_path):
    def git(*a):
        return subprocess.run(["git", "-C", str(tmp_path), *a], capture_output=True, text=True, check=True).stdout
    git("init", "-q", "-b", "feature")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c1")
    (tmp_path / "train.py").write_text("x = 2\n")
    ip.run_cell_magic("track", "-e g -n dirty", "accuracy = 1.0")
    r = runs_of(client, "g")["dirty"]
    assert r.data.tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD").strip()
    assert r.data.tags["mlflow.source.git.branch"] == "feature"
    assert r.data.tags["nbops.git.dirty"] == "true"
    assert "+x = 2" in read(client, r.info.run_id, "git/diff.patch", tmp_path)


def test_model_is_logged_and_loads(ip, client):
    ip.run_cell("from sklearn.linear_model import LinearRegression\nimport numpy as np\n"
                "X = np.arange(20.0).reshape(-1, 2)\ny = X @ [1.0, 2.0]")
    ip.run_cell_magic("track", "-e m -n lin --model model", "model = LinearRegression().fit(X, y)")
    r = runs_of(client, "m")["lin"]
    models = client.search_logged_models(experiment_ids=[r.info.experiment_id],
                                         filter_string=f"source_run_id = '{r.info.run_id}'")
    assert len(models) == 1
    import mlflow
    loaded = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    assert loaded.predict(ip.user_ns["X"][:2]) == pytest.approx([2.0, 8.0])
    assert ip.user_ns["_nbops_last_run"].models == [f"models:/{models[0].model_id}"]


def test_object_with_predict_is_logged_as_pyfunc(ip, client):
    ip.run_cell("class Doubler:\n    def predict(self, x):\n        return [2 * v for v in x]")
    ip.run_cell_magic("track", "-e m -n pyf --model d", "d = Doubler()")
    r = runs_of(client, "m")["pyf"]
    models = client.search_logged_models(experiment_ids=[r.info.experiment_id],
                                         filter_string=f"source_run_id = '{r.info.run_id}'")
    import mlflow
    assert list(mlflow.pyfunc.load_model(f"models:/{models[0].model_id}").predict([1, 2])) == [2, 4]


@pytest.mark.parametrize("line,cell,message", [
    ("--bogus", "x = 1", "unknown option --bogus"),
    ("--data nope", "x = 1", "no variable named 'nope'"),
    ("--model m", "m = 5", "not a model"),
    ("--model s", "s = 'text'", "--model s: a str is not a model"),      # names the user's variable
    ("--model m", "from sklearn.linear_model import LinearRegression\nm = LinearRegression()", "not fitted"),
    ("--params a,", "a = 1", None),
    ("--params 1a", "a = 1", "not a variable name"),
    ("--tag novalue", "a = 1", "key=value"),
    ("--metrics name", "name = 'x'", "not a number"),
])
def test_bad_input_is_a_usage_error(ip, client, line, cell, message):
    from IPython.core.error import UsageError
    if message is None:  # a trailing comma is fine
        ip.run_cell_magic("track", "-e bad " + line, cell)
        return
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("track", "-e bad " + line, cell)
    assert message in str(err.value)
    assert isinstance(err.value, NbopsError)
    if "=" in cell and "nope" in line:
        assert ip.user_ns["x"] == 1  # the cell ran; its work is kept


def test_data_argument_must_name_a_frame(ip, client):
    with pytest.raises(NbopsError) as err:
        ip.run_cell_magic("track", "-e bad --data x", "x = 42")
    assert "x" in str(err.value)
    assert ip.user_ns["x"] == 42


def test_unreachable_server_spools_and_keeps_the_cell(ip, monkeypatch, tmp_path):
    from nbops_testing import free_port
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = ip.run_cell_magic("track", "-e off -n offline", "lr = 0.2\naccuracy = 0.75\naccuracy")
    assert result == 0.75 and ip.user_ns["lr"] == 0.2
    summary = ip.user_ns["_nbops_last_run"]
    assert summary.spooled and "did not answer" in summary.spool_reason
    assert "spooled" in repr(summary)
    journals = list((tmp_path / "spool").glob("*/journal.jsonl"))
    assert len(journals) == 1
    text = journals[0].read_text()
    assert '"accuracy"' in text and '"end_run"' in text


def test_unload_leaves_the_shell_as_it_was(_ipython, store):
    before = {k: set(v) for k, v in _ipython.magics_manager.magics.items()}
    registry = set(_ipython.magics_manager.registry)
    _ipython.run_line_magic("load_ext", "nbops")
    assert "track" in _ipython.magics_manager.magics["cell"]
    _ipython.run_line_magic("unload_ext", "nbops")
    assert {k: set(v) for k, v in _ipython.magics_manager.magics.items()} == before
    assert set(_ipython.magics_manager.registry) == registry


def test_load_ext_imports_no_heavy_library():
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "heavy = {'mlflow', 'alibi_detect', 'matplotlib', 'pandas', 'sklearn', 'scipy', 'torch', 'pyspark',\n"
            "         'datasketches', 'pyarrow'}\n"
            "before = heavy & set(sys.modules)\nip.run_line_magic('load_ext', 'nbops')\n"
            "print(sorted((heavy & set(sys.modules)) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_and_runs(ip, client, capsys):
    ip.run_cell_magic("track", "-e st -n one", "accuracy = 0.5")
    ip.run_line_magic("nbops", "runs -n 5 --all -o df")
    df = ip.user_ns["df"]
    assert "one" in set(df["run_name"]) and "metrics.accuracy" in df.columns
    ip.run_line_magic("nbops", "status")
    from nbops import status
    st = status()
    assert st.store.startswith("sqlite:///") and st.versions["mlflow"][0] == "3"


def test_embedded_default_store_without_tracking_uri(tmp_path, monkeypatch):
    """No MLFLOW_TRACKING_URI: runs go to <project root>/.nbops/mlflow.db, found from a subfolder."""
    project = tmp_path / "proj"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    code = ("from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'nbops')\nip.run_cell_magic('track', '-e emb -n e', 'accuracy = 0.9')")
    subprocess.run([sys.executable, "-c", code], cwd=project / "notebooks" / "deep", env=env, check=True,
                   capture_output=True)
    db = project / ".nbops" / "mlflow.db"
    assert db.exists()
    from mlflow.tracking import MlflowClient
    c = MlflowClient(f"sqlite:///{db}")
    r = c.search_runs([c.get_experiment_by_name("emb").experiment_id])[0]
    assert r.data.metrics["accuracy"] == 0.9
    assert r.info.artifact_uri.startswith((project / ".nbops" / "artifacts").as_uri())


def test_a_run_started_in_another_thread_does_not_nest_under_the_cell_or_capture_it(ip, client):
    """A live report's refresher thread starts runbook runs while the notebook runs a tracked cell: neither nests
    under the other. A worker thread the cell starts still logs to the cell's run."""
    import threading

    ip.user_ns["threading"] = threading
    ip.run_cell(
        "%%track -e threads -n cell\n"
        "import nbops\n"
        "seen = {}\n"
        "def side():\n"
        "    seen['cell_current'] = nbops.tracking.current().run_id      # the cell's run, from a worker\n"
        "    with nbops.track('threads', 'side') as t:\n"
        "        seen['side'] = t.run_id\n"
        "        seen['side_current'] = nbops.tracking.current().run_id\n"
        "th = threading.Thread(target=side); th.start(); th.join()\n"
        "seen['main_current'] = nbops.tracking.current().run_id\n"
        "accuracy = 0.5\n")
    seen = ip.user_ns["seen"]
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("threads").experiment_id])}
    cell, side = runs["cell"], runs["side"]
    assert seen["cell_current"] == seen["main_current"] == cell.info.run_id
    assert seen["side_current"] == seen["side"] == side.info.run_id
    assert "mlflow.parentRunId" not in side.data.tags, side.data.tags
    assert "mlflow.parentRunId" not in cell.data.tags

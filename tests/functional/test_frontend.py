"""The magics' front end in a real IPython shell and a real kernel: one argument reader with shell quoting rules,
one-line user mistakes, the user's own traceback for a failing tracked cell, a trailing ``;``."""
from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pandas as pd
import pytest

from nbops_testing import ROOT, all_artifacts, free_port, run_notebook, write_notebook


def printed(ip, cell: str) -> str:
    """What the shell shows for ``cell`` (stdout and stderr, colours stripped)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        ip.run_cell(cell, store_history=True)
    return re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())


# ---- arguments ------------------------------------------------------------------------------------------------

def test_split_follows_shell_rules():
    from nbops.magics import split

    assert split('-e "my exp" -n "first run"') == ["-e", "my exp", "-n", "first run"]
    assert split('--tag team="growth team" --tag k=a=b') == ["--tag", "team=growth team", "--tag", "k=a=b"]
    assert split("""--query 'up{job="x"}' --query 'rate(x[1m])'""") == ["--query", 'up{job="x"}', "--query",
                                                                          "rate(x[1m])"]
    assert split("--source '/path with space.csv'") == ["--source", "/path with space.csv"]
    assert split('-n "Größe – 測試"') == ["-n", "Größe – 測試"]
    assert split("-e ''") == ["-e", ""]


def test_quoted_names_tags_and_unicode_mean_what_a_shell_user_means(ip, client):
    ip.run_cell('%%track -e "my exp" -n "first run ü" --tag team="growth team" --tag expr="a=b c"\naccuracy = 0.5\n')
    exp = client.get_experiment_by_name("my exp")
    assert exp is not None, [e.name for e in client.search_experiments()]
    run = client.search_runs([exp.experiment_id])[0]
    assert run.info.run_name == "first run ü"
    assert run.data.tags["team"] == "growth team" and run.data.tags["expr"] == "a=b c"


def test_quoted_csv_path_with_a_space_and_a_quoted_query(ip, tmp_path):
    t = pd.date_range("2026-01-01", periods=400, freq="min")
    csv = tmp_path / "series one.csv"
    pd.DataFrame({"timestamp": t, "value": range(400)}).to_csv(csv, index=False)
    ip.run_cell(f"%telemetry --source '{csv}' -o rep")
    assert ip.user_ns["rep"].source and len(ip.user_ns["rep"].frame) == 400
    from nbops.magics import parse

    a = parse(ip.find_line_magic("telemetry"), """--source prometheus --query 'up{job="x"}'""")
    assert a.query == ['up{job="x"}']


def test_empty_values_and_unknown_options_are_one_line_errors(ip, client):
    out = printed(ip, "%%track -e ''\nx = 1\n")
    assert out.strip() == "OptionError: %track: --experiment is empty: give it a value, or leave it out."
    assert [e.name for e in client.search_experiments()] == ["Default"] or not client.search_runs(
        [e.experiment_id for e in client.search_experiments()])
    out = printed(ip, "%drift --nonsense")
    assert out.strip() == "OptionError: %drift: unknown option --nonsense. See %drift? for the options."


# ---- the catalogue of user mistakes: one line each, naming what to do ------------------------------------------

CATALOGUE = [
    ("%drift --nonsense", "unknown option --nonsense"),
    ("%drift ref", "required: current"),
    ("%drift nope cur", "no variable named 'nope'"),
    ("%drift ref cur --p-val abc", "--p-val: 'abc'"),
    ("%drift ref cur --correction maybe", "invalid choice: 'maybe'"),
    ("%drift ref cur -o 1x", "-o '1x' is not a variable name"),
    ("%%track -e ''\nx = 1", "--experiment is empty"),
    ("%%track -e \"unclosed\nx = 1", "close every quote"),
    ("%%track --data nothere\nz = 1", "no variable named 'nothere'"),
    ("%%track --model 1bad\nx = 1", "is not a variable name"),
    ("%%track --tag novalue\nx = 1", "write tags as key=value"),
    ("%%track --params a,1b\nx = 1", "1b is not a variable name"),
    ("%%track --metrics acc\nacc = 'high'", "is not a number"),
    ("%telemetry --last banana", "banana"),
    ("%telemetry --direction sideways", "invalid choice: 'sideways'"),
    ("%telemetry -o 1x --source frame_df", "-o '1x' is not a variable name"),
    ("%nbops frobnicate", "invalid choice: 'frobnicate'"),
    ("%nbops runs -n many", "'many'"),
    ("%nbops runs -e", "expected one argument"),
    ("%promote", "required: name"),
    ("%promote churn --rollback --history", "cannot be combined"),
    ("%dataversion nothere", "no variable named 'nothere'"),
    # a target, a model and a task that cannot be scored together (was 3.7k-13k characters of sklearn traceback)
    ("%evaluate reg evdf --target lab --no-log", "evaluate a classifier on it"),
    ("%evaluate reg evdf --target lab --task regression --no-log", "use --task classification"),
    ("%evaluate reg evdf --target y --task classification --no-log", "use --task regression"),
    # inputs checked before the body runs: the body's print would make a second line
    ("%%track --data dup --snapshot\nprint('the body ran')", "duplicate column names a; parquet needs one name"),
    ("%telemetry --last 5", "say the unit, e.g. 5s, 5m"),
    ("%telemetry --query nosuch_*", "nosuch_*: no local metric matches"),
]
# alibi-detect is optional: where it is missing, asking for it says which Python and install line work
ALIBI_MISSING = [
    ("%drift ref cur --engine alibi", 'Python <= 3.12'),
    ("%drift ref cur --mmd", 'or leave out --mmd'),
    ("%telemetry --source frame_df --detector sr", 'pip install "nbops[alibi]"'),
]


def test_catalogue_of_user_mistakes_prints_one_line_each(ip):
    import numpy as np

    rng = np.random.default_rng(0)
    ip.user_ns["ref"] = pd.DataFrame({"a": rng.normal(size=200)})
    ip.user_ns["cur"] = pd.DataFrame({"a": rng.normal(size=200)})
    ip.user_ns["frame_df"] = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=50, freq="min"),
                                           "value": range(50)})
    from sklearn.linear_model import LinearRegression

    evdf = pd.DataFrame({"x": rng.normal(size=100), "lab": rng.choice(["a", "b"], 100)})
    evdf["y"] = 2 * evdf.x
    ip.user_ns.update(evdf=evdf, reg=LinearRegression().fit(evdf[["x"]], evdf.y),
                      dup=pd.DataFrame([[1, 2]], columns=["a", "a"]))
    import importlib.util

    cases = CATALOGUE + (ALIBI_MISSING if importlib.util.find_spec("alibi_detect") is None else [])
    assert len(cases) >= 15
    for cell, expected in cases:
        out = printed(ip, cell)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in out, f"{cell!r} printed:\n{out}"
        assert expected in lines[0] and re.match(r"^\w+(Error|Failed|Detected): ", lines[0]), (cell, lines[0])
        assert "engine='alibi'" not in lines[0], lines[0]   # --mmd alone is not about an engine


def test_the_alibi_extra_is_declared_only_where_it_installs(monkeypatch):
    """alibi-detect declares no Python cap: on 3.13 pip built scikit-image for minutes and failed. The extra
    carries the marker, and the hint on a newer Python says which Python to make an environment with."""
    import tomllib

    from packaging.requirements import Requirement

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["alibi"]
    req = [Requirement(r) for r in extra if r.startswith("alibi-detect")][0]
    assert req.marker.evaluate({"python_version": "3.12"}) and not req.marker.evaluate({"python_version": "3.13"})
    from nbops.drift import alibi

    monkeypatch.setattr(alibi, "LAST_PYTHON", (3, 10))   # this kernel's Python is past the last supported one
    err = alibi.missing("--engine alibi")
    assert "this kernel runs Python 3.1" in str(err) and "make a Python 3.10 environment" in str(err)


# ---- a tracking store that does not answer, or cannot be written ----------------------------------------------

def _one_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in out, out[:3000]
    return lines[0]


def test_a_tracking_server_that_does_not_answer_is_one_line(ip, monkeypatch):
    import numpy as np
    from sklearn.linear_model import LinearRegression

    url = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    df = pd.DataFrame({"x": np.arange(50.0)})
    df["y"] = 2 * df.x
    ip.user_ns.update(df=df, reg=LinearRegression().fit(df[["x"]], df.y))
    for cell in ("%nbops runs", "%promote churn --run 0123456789abcdef", "%promote churn --history",
                 "%validate df --against df_v"):
        line = _one_line(printed(ip, cell))
        assert line.startswith(f"TrackingError: The tracking store at {url} does not answer: nothing can be read"), \
            (cell, line)
        assert "MLFLOW_TRACKING_URI" in line
    # results that do not need the store are shown, with one line saying what could not be done
    out = printed(ip, "%evaluate reg df --target y --run 0123456789abcdef")
    assert "r2=1" in out and f"not recorded on run 0123456789abcdef: The tracking store at {url} does not" in out
    assert "Traceback" not in out and "MlflowException" not in out, out
    out = printed(ip, "%dataversion df")
    lineage = [ln for ln in out.splitlines() if "lineage unavailable:" in ln]
    assert lineage and f"The tracking store at {url} does not answer" in lineage[0] and "Traceback" not in out
    # the user's own MLflow call is not reworded: its traceback is theirs
    out = printed(ip, "import mlflow\nmlflow.MlflowClient().search_experiments()")
    assert "Traceback" in out and "TrackingError" not in out
    # the command line: the same one line, exit code 2
    import subprocess
    import sys

    p = subprocess.run([str(Path(sys.executable).parent / "nbops"), "runs"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr[-2000:])
    assert _one_line(p.stderr).startswith(f"nbops: The tracking store at {url} does not answer"), p.stderr


def test_the_live_summary_says_when_the_store_does_not_answer(ip, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("NBOPS_WRITE_MODE", "background")
    ip.run_cell("%%track -n while-down\naccuracy = 0.5\n")
    from nbops.tracking.flusher import flush

    assert flush()   # the background write was tried and left in the spool
    text = repr(ip.user_ns["_nbops_last_run"])
    assert f"spooled: the tracking store at {url} does not answer" in text, text
    assert "being written to the store" not in text


def test_dataversion_and_drift_run_untracked_when_the_store_cannot_be_written(ip, monkeypatch, tmp_path):
    import numpy as np

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (proj / ".nbops").write_text("not a folder")   # the embedded store cannot be made
    monkeypatch.chdir(proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("NBOPS_SPOOL_DIR")
    rng = np.random.default_rng(0)
    ip.user_ns.update(ref=pd.DataFrame({"a": rng.normal(size=300)}), cur=pd.DataFrame({"a": rng.normal(1, 1, 300)}))
    out = printed(ip, "%dataversion ref")
    assert "DataVersion ref" in out and "Traceback" not in out and "Error:" not in out, out
    assert [ln for ln in out.splitlines() if "warning not recorded: tracking is unavailable" in ln], out
    out = printed(ip, "%drift ref cur")
    assert "DRIFT" in out and "Traceback" not in out and "Error:" not in out, out
    assert len([ln for ln in out.splitlines() if "not recorded: tracking is unavailable" in ln]) == 1, out


# ---- large values -------------------------------------------------------------------------------------------------

def test_a_long_parameter_is_kept_whole_as_an_artifact_and_the_summary_says_so(ip, client):
    out = printed(ip, "%%track -e big -n long --params long_text\nlong_text = 'abcdefghij' * 1000\n")
    run = client.search_runs([client.get_experiment_by_name("big").experiment_id])[0]
    assert len(run.data.params["long_text"]) == 6000   # what MLflow keeps
    full = Path(client.download_artifacts(run.info.run_id, "params/long_text.txt")).read_text()
    assert full == "abcdefghij" * 1000
    assert "param long_text has 10,000 characters; MLflow keeps the first 6,000" in out
    assert "params/long_text.txt" in out and len(out) < 3000, len(out)


def test_summaries_show_the_first_few_metrics_and_a_count(ip):
    out = printed(ip, "%%track -e many -n many\nimport nbops\n"
                      "nbops.tracking.current().log_metrics({f'm{i}': i for i in range(10000)})\n")
    assert "… and 9,990 more metrics" in out and len(out) < 2000, len(out)
    html = ip.user_ns["_nbops_last_run"]._repr_html_()
    assert "… and 9,990 more metrics" in html and len(html) < 5000, len(html)
    out = printed(ip, "%nbops runs --all")   # the table shows a few key columns and counts the rest
    assert re.search(r"… and 9,99\d more metrics", out) and len(out) < 3000, len(out)
    ip.run_line_magic("nbops", "runs --all -o every")
    assert sum(c.startswith("metrics.m") for c in ip.user_ns["every"].columns) == 10000  # -o keeps them all


def test_validate_against_a_name_shows_no_download_bars(ip):
    ip.user_ns["users"] = pd.DataFrame({"a": range(100), "b": list("xy") * 50})
    ip.run_line_magic("dataversion", "users --name users_v")
    out = printed(ip, "%validate users --against users_v")
    assert "Downloading artifacts" not in out and "Validation passed" in out, out


def test_unload_restores_the_shells_exception_handling(_ipython, store):
    before = (_ipython.custom_exceptions, _ipython.CustomTB)
    _ipython.run_line_magic("load_ext", "nbops")
    assert _ipython.custom_exceptions != before[0]
    _ipython.run_line_magic("unload_ext", "nbops")
    assert (_ipython.custom_exceptions, _ipython.CustomTB) == before
    out = printed(_ipython, "from nbops.errors import DriftError\nraise DriftError('boom')")
    assert "Traceback" in out  # without nbops loaded, IPython's own rules apply again


# ---- a failing tracked cell ------------------------------------------------------------------------------------

def test_failing_tracked_cell_shows_the_users_traceback_only(ip, client):
    out = printed(ip, "%%track -e tb -n bad\nx = 1\ndef f():\n    return 1 / 0\ny = f()\n")
    n = ip.execution_count - 1
    assert "ZeroDivisionError: division by zero" in out
    assert not re.search(r"nbops[/\\]|site-packages[/\\]IPython", out), out
    assert set(re.findall(r"In\s*\[(\d+)\]", out)) == {str(n)}
    assert f"Cell In[{n}], line 5" in out and "----> 5 y = f()" in out   # the notebook's line numbers
    assert "----> 4     return 1 / 0" in out
    run = client.search_runs([client.get_experiment_by_name("tb").experiment_id])[0]
    assert run.info.status == "FAILED" and run.data.tags["nbops.error"] == "ZeroDivisionError: division by zero"
    stored = Path(client.download_artifacts(run.info.run_id, "error/traceback.txt")).read_text()
    assert "ZeroDivisionError" in stored and "return 1 / 0" in stored and "nbops/tracking" not in stored


def test_trailing_semicolon_silences_the_tracked_cells_value(ip):
    out = printed(ip, "%%track -n quiet\nanswer = 987653\nanswer + 1;\n")
    assert "987654" not in out and "FINISHED" in out
    out = printed(ip, "%%track -n loud\nanswer = 987653\nanswer + 1\n")
    assert "987654" in out


# ---- declared error fields --------------------------------------------------------------------------------------

def test_every_error_keyword_used_in_the_code_is_a_declared_field():
    import nbops.errors as errors

    classes = {n: c for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, errors.NbopsError)}
    undeclared = []
    for path in (ROOT / "src" / "nbops").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                if name in classes:
                    undeclared += [f"{path.name}:{node.lineno} {name}({k.arg}=)" for k in node.keywords
                                   if k.arg and k.arg not in classes[name].declared()]
    assert not undeclared, undeclared
    e = errors.DriftError("x", column="a", side="current")
    assert (e.column, e.side, e.run_id, e.url) == ("a", "current", None, None) and e.fields == {"column": "a",
                                                                                                 "side": "current"}


# ---- the same in a real kernel ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_quoting_and_one_line_errors_in_a_real_kernel(tmp_path, store, client):
    csv = tmp_path / "series one.csv"
    pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=100, freq="min"), "value": range(100)}).to_csv(
        csv, index=False)
    nb = write_notebook(tmp_path / "q.ipynb", [
        "%load_ext nbops",
        '%%track -e "kernel exp" -n "run ü" --tag team="growth team"\naccuracy = 0.5\n',
        f"%telemetry --source '{csv}' -o rep\nassert len(rep.frame) == 100",
        "%%track -e kernel-tb\ndef f():\n    return 1 / 0\nf()\n",
    ])
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as e:
        run_notebook(nb, tmp_path)
    assert e.value.ename == "ZeroDivisionError"
    import nbformat

    out = nbformat.read(tmp_path / "q.out.ipynb", as_version=4)
    err = [o for o in out.cells[-1].outputs if o.output_type == "error"][0]
    tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback))
    assert "nbops" not in tb and "----> 4 f()" in tb, tb
    run = client.search_runs([client.get_experiment_by_name("kernel exp").experiment_id])[0]
    assert run.info.run_name == "run ü" and run.data.tags["team"] == "growth team"
    assert "cell/source.py" in all_artifacts(client, run.info.run_id)


@pytest.mark.slow
def test_on_drift_outcome_is_shown_and_the_child_kernel_stays_quiet(tmp_path, store):
    """%drift --on-drift runs a notebook in a second kernel: its outcome is part of the report the cell shows,
    and the child kernel's start-up warnings do not land in the cell's output."""
    write_notebook(tmp_path / "child.ipynb", ["print('retraining for', drift_run_id)"],
                   parameters={"drift_run_id": ""})
    nb = write_notebook(tmp_path / "parent.ipynb", [
        "%load_ext nbops",
        "import numpy as np, pandas as pd\nrng = np.random.default_rng(3)\n"
        "ref = pd.DataFrame({'a': rng.normal(size=2000)})\ncur = pd.DataFrame({'a': rng.normal(1, 1, size=2000)})",
        f"%drift ref cur -e ondrift --on-drift '{tmp_path / 'child.ipynb'}'",
    ])
    import json

    import nbformat

    out = nbformat.read(str(run_notebook(nb, tmp_path)), as_version=4)
    text = json.dumps(out.cells[-1].outputs)
    assert "Kernel is running over TCP" not in text and "INFO" not in text, text[:2000]
    html = "".join(o.get("data", {}).get("text/html", "") for o in out.cells[-1].outputs)
    assert "on drift" in html and "child.ipynb: ok (run " in html, html[:3000]


# ---- nbops sync's own report, not MLflow's links ------------------------------------------------------------------

@pytest.mark.slow
def test_nbops_sync_prints_its_report_not_mlflows_view_run_lines(tmp_path, store, monkeypatch):
    import os
    import subprocess
    import sys

    from services import start_mlflow_server

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("NBOPS_OFFLINE", "1")
    import nbops

    for i in range(2):
        with nbops.track("synced", f"offline-{i}") as t:
            t.log_metric("accuracy", 0.5 + i / 10)
    server = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts", port=port,
                                 workers=1)
    try:
        env = {k: v for k, v in os.environ.items() if k != "NBOPS_OFFLINE"}
        p = subprocess.run([str(Path(sys.executable).parent / "nbops"), "sync"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "View run" not in p.stdout + p.stderr and "View experiment" not in p.stdout + p.stderr, p.stdout
        from mlflow.tracking import MlflowClient

        c = MlflowClient(url)
        runs = c.search_runs([c.get_experiment_by_name("synced").experiment_id])
        assert sorted(r.info.run_name for r in runs) == ["offline-0", "offline-1"]
    finally:
        server.close()

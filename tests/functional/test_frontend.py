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

from nbops_testing import ROOT, all_artifacts, run_notebook, write_notebook


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
]


def test_catalogue_of_user_mistakes_prints_one_line_each(ip):
    import numpy as np

    rng = np.random.default_rng(0)
    ip.user_ns["ref"] = pd.DataFrame({"a": rng.normal(size=200)})
    ip.user_ns["cur"] = pd.DataFrame({"a": rng.normal(size=200)})
    ip.user_ns["frame_df"] = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=50, freq="min"),
                                           "value": range(50)})
    assert len(CATALOGUE) >= 15
    for cell, expected in CATALOGUE:
        out = printed(ip, cell)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in out, f"{cell!r} printed:\n{out}"
        assert expected in lines[0] and re.match(r"^\w+(Error|Failed|Detected): ", lines[0]), (cell, lines[0])


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

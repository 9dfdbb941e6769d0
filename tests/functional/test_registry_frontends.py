"""``%promote`` in a real IPython shell, ``nbops promote`` through the real CLI entry point, the ``--pick`` widget,
and ``%promote`` in a real kernel under papermill."""
from __future__ import annotations

import json

import pytest

from nbops.errors import GateFailed, NbopsError

from test_registry_promote import aliases, client, runs, trained, versions  # noqa: F401 - shared fixtures


@pytest.fixture
def two(runs):
    return {"weak": runs["weak"], "strong": runs["strong"]}


def test_magic_promote_history_rollback(ip, client, two, capsys):
    with pytest.raises(GateFailed):
        ip.run_line_magic("promote", f"wine --run {two['weak']} --require 'accuracy>=0.95'")
    assert aliases(client) is None
    out = capsys.readouterr().out
    assert "FAIL" in out and "accuracy>=0.95" in out                    # the table is shown before the error
    ip.run_line_magic("promote", f"wine --run {two['strong']} --require accuracy>=0.95 --reason \"Q3 retrain\"")
    assert aliases(client) == {"champion": "1"}
    assert client.get_model_version("wine", "1").tags["nbops.promote.reason"] == "Q3 retrain"
    ip.run_line_magic("promote", f"wine --run {two['weak']} --dry-run")
    assert "Dry run" in capsys.readouterr().out and versions(client) == [1]
    ip.run_line_magic("promote", f"wine --run {two['weak']}")
    ip.run_line_magic("promote", "wine --rollback")
    assert aliases(client)["champion"] == "1"
    capsys.readouterr()
    ip.run_line_magic("promote", "wine --history")
    out = capsys.readouterr().out
    assert out.count("promote ") >= 2 and "rollback" in out and "Q3 retrain" in out


def test_magic_best_defaults_to_the_last_tracked_experiment(ip, runs, client):
    ip.run_cell("from sklearn.datasets import load_wine\nfrom sklearn.linear_model import LogisticRegression\n"
                "X, y = load_wine(return_X_y=True)")
    ip.run_cell_magic("track", "-e cells -n fit --model m",
                      "m = LogisticRegression(max_iter=5000).fit(X, y)\naccuracy = float(m.score(X, y))")
    ip.run_line_magic("promote", "wine --best accuracy --require accuracy>=0.9")
    mv = client.get_model_version_by_alias("wine", "champion")
    assert client.get_run(mv.run_id).info.run_name == "fit"


def test_magic_errors(ip, client, two):
    for line, msg in [("wine", "Which run"), (f"wine --run {two['weak']} --rollback", "only --alias"),
                      ("wine --rollback --history", "cannot be combined"),
                      ("wine --pick", "needs a notebook frontend.*--run RUN_ID or --best")]:
        with pytest.raises(NbopsError, match=msg):
            ip.run_line_magic("promote", line)
    assert aliases(client) is None


def test_cli(client, two, capsys):
    from nbops.cli import main

    assert main(["promote", "wine", "--run", two["weak"], "--require", "accuracy>=0.95"]) == 1
    assert "accuracy>=0.95" in capsys.readouterr().err and aliases(client) is None
    assert main(["promote", "wine", "--run", two["weak"], "--require", "accuracy>=0.95", "--dry-run"]) == 1
    assert "would NOT be promoted" in capsys.readouterr().out
    assert main(["promote", "wine", "--best", "accuracy", "-e", "promo", "--require", "accuracy>=0.95",
                 "--reason", "cli", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "promoted" and out["run_id"] == two["strong"] and out["gates"][0]["passed"]
    assert main(["promote", "wine", "--run", two["weak"]]) == 0
    assert main(["promote", "wine", "--rollback"]) == 0
    assert aliases(client) == {"champion": "1"}
    capsys.readouterr()
    assert main(["promote", "history", "wine", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in rows] == ["promote", "promote", "rollback"] and rows[0]["reason"] == "cli"
    assert main(["promote", "wine", "--run", "nope"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pick_widget_table_and_button(client, runs, two):
    import ipywidgets

    from nbops.registry import pick

    p = pick("wine", "promo", require=["accuracy>=0.95"], reason="picked")
    rows = p.rows()
    assert {r["run_id"] for r in rows} == {two["weak"], two["strong"], runs["middle"]}  # no-model is not one
    assert all("accuracy" in r and r["drift"] == "unchecked" and r["registered"] == "-" for r in rows)
    assert "<table" in p._repr_html_() and "weak" in repr(p)
    w = p.widget()
    assert isinstance(w, ipywidgets.VBox)
    ctl = p._controls
    ctl["run"].value = two["weak"]
    ctl["button"].click()                                                # a failing gate: nothing changes
    assert p.last_result.status == "gate-failed" and aliases(client) is None
    ctl["run"].value = two["strong"]
    ctl["button"].click()
    assert p.last_result.status == "promoted" and aliases(client) == {"champion": "1"}
    assert client.get_model_version("wine", "1").tags["nbops.promote.reason"] == "picked"
    assert pick("wine", "promo").registered[two["strong"]] == "v1 (champion)"


@pytest.mark.slow
def test_in_a_papermill_kernel(tmp_path, client, two):
    """A real kernel: a failing gate fails the notebook (so a scheduled job exits non-zero), --pick refuses
    headless with the way out, and a passing promotion moves the alias."""
    import papermill as pm

    from nbops_testing import run_notebook, write_notebook

    nb = write_notebook(tmp_path / "gate.ipynb", ["%load_ext nbops",
                                                 f"%promote wine --run {two['weak']} --require 'accuracy>=0.95'"])
    with pytest.raises(pm.PapermillExecutionError) as e:
        run_notebook(nb, tmp_path)
    assert "accuracy>=0.95" in str(e.value) and aliases(client) is None
    nb = write_notebook(tmp_path / "pick.ipynb", ["%load_ext nbops", "%promote wine --pick"])
    with pytest.raises(pm.PapermillExecutionError) as e:
        run_notebook(nb, tmp_path)
    assert "headless" in str(e.value) and "--run RUN_ID or --best METRIC" in str(e.value)
    nb = write_notebook(tmp_path / "ok.ipynb", ["%load_ext nbops",
                                               f"%promote wine --run {two['strong']} --reason 'from a job'"])
    out = run_notebook(nb, tmp_path)
    assert aliases(client) == {"champion": "1"}
    tags = client.get_model_version("wine", "1").tags
    assert tags["nbops.promote.reason"] == "from a job" and tags["nbops.promote.notebook"].endswith("ok.ipynb")
    assert "Promoted run" in out.read_text()

"""`nbops run` / nbops.run_notebook on real kernels and a real SQLite MLflow store: the parent run and its
children, a failing cell, a dead kernel, and the bad-input cases with their messages and exit codes."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbops
from nbops.cli import main

from nbops_testing import all_artifacts, write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))


def _children(client, parent_id):
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_parent_run_with_tracked_children(store, client, tmp_path, caplog):
    nb = write_notebook(tmp_path / "train.ipynb", [
        "%load_ext nbops",
        "%%track -n fit\nlr = 0.05\naccuracy = 0.5 + k / 100\nprint('trained')",
        "import nbops\nwith nbops.track(run_name='eval') as t:\n    t.log_metric('rmse', 1.5)",
        "import os\nprint('warm-up', os.environ.get('NBOPS_WARM_IMPORTS'))",
    ], parameters={"k": 1, "label": "x"})
    (tmp_path / "out").mkdir()
    res = nbops.run_notebook(nb, tmp_path / "out" / "train.done.ipynb", {"k": 7, "extra": 3}, experiment="nightly")
    assert res.status == "FINISHED" and res.exit_code == 0 and not res.spooled
    assert res.cells == 6 and res.executed == 6  # parameters, papermill's injected parameters, 4 cells
    # an undeclared parameter is injected, with a warning naming what the notebook declares
    assert any("extra is not declared in train.ipynb (it declares only k, label)" in w for w in res.warnings)
    assert "extra is not declared" in caplog.text
    parent = client.get_run(res.run_id)
    assert client.get_experiment(parent.info.experiment_id).name == "nightly"
    assert parent.info.status == "FINISHED" and parent.info.run_name == "train"
    assert parent.data.params == {"k": "7", "extra": "3"}
    assert parent.data.tags["nbops.input_path"] == str(nb)
    assert parent.data.tags["nbops.output_path"] == str(tmp_path / "out" / "train.done.ipynb")
    assert parent.data.tags["nbops.kind"] == "notebook" and parent.data.tags["nbops.unknown_parameters"] == "extra"
    assert parent.data.metrics["nbops.cells_executed"] == 6 and parent.data.metrics["nbops.duration_s"] > 0
    arts = all_artifacts(client, res.run_id)
    assert {"notebook/train.done.ipynb", "notebook/train.done.html"} <= set(arts)
    executed = json.loads(Path(client.download_artifacts(res.run_id, "notebook/train.done.ipynb")).read_text())
    assert "trained" in json.dumps(executed["cells"])
    assert "warm-up 0" in json.dumps(executed["cells"])  # a scheduled kernel has no idle time to warm imports in
    page = Path(client.download_artifacts(res.run_id, "notebook/train.done.html")).read_text()
    assert "<html" in page and "trained" in page
    kids = {r.info.run_name: r for r in _children(client, res.run_id)}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", " ", page, flags=re.S)))
    assert kids["fit"].info.run_id in text and "accuracy" in text  # the tracked cell's summary, readable
    assert sorted(kids) == ["eval", "fit"]
    fit = kids["fit"]
    assert client.get_experiment(fit.info.experiment_id).name == "nightly"  # -e is the default inside
    assert fit.data.params["k"] == "7" and fit.data.metrics["accuracy"] == pytest.approx(0.57)
    assert fit.data.tags["mlflow.source.name"] == str(nb)
    assert kids["eval"].data.metrics["rmse"] == 1.5
    assert "FINISHED" in repr(res) and "nightly" in res._repr_html_()


def test_failing_cell_fails_the_parent_and_keeps_the_partial_output(store, client, tmp_path):
    write_notebook(tmp_path / "bad.ipynb", [
        "%load_ext nbops",
        "%%track -n before\nloss = 0.25",
        "token = 'sk-live-abcdefghijklmnopqrstuvwx'\nraise ValueError('bad batch ' + token)",
        "print('never')",
    ])
    r = subprocess.run([NBOPS, "run", "bad.ipynb", "-o", "bad.out.ipynb", "-e", "sched"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed at cell #2 (In [3]): ValueError: bad batch" in r.stderr
    out = json.loads((tmp_path / "bad.out.ipynb").read_text())  # the partial output is saved
    by_src = {"".join(c["source"]).split("\n")[0]: c for c in out["cells"] if c["cell_type"] == "code"}
    assert by_src["%%track -n before"]["outputs"]  # ran, showed its summary
    assert by_src["print('never')"].get("execution_count") is None
    exp = client.get_experiment_by_name("sched")
    parent = [x for x in client.search_runs([exp.experiment_id]) if x.data.tags.get("nbops.kind") == "notebook"][0]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["nbops.error.cell_index"] == "2" and parent.data.tags["nbops.error.ename"] == "ValueError"
    assert "sk-live" not in parent.data.tags["nbops.error"]  # secrets masked in what is stored
    src = Path(client.download_artifacts(parent.info.run_id, "error/cell_source.py")).read_text()
    assert "raise ValueError" in src and "sk-live" not in src
    tb = Path(client.download_artifacts(parent.info.run_id, "error/traceback.txt")).read_text()
    assert "ValueError" in tb and "\x1b[" not in tb
    assert "notebook/bad.out.ipynb" in all_artifacts(client, parent.info.run_id)
    assert [k.info.run_name for k in _children(client, parent.info.run_id)] == ["before"]


def test_dead_kernel_is_a_failure_with_a_clear_message(store, client, tmp_path):
    nb = write_notebook(tmp_path / "die.ipynb", ["x = 1", "import os\nos._exit(3)", "y = 2"])
    res = nbops.run_notebook(nb)
    assert res.status == "FAILED" and res.exit_code == 1
    assert res.error["ename"] == "DeadKernelError" and "kernel died" in res.error["evalue"]
    run = client.get_run(res.run_id)
    assert run.info.status == "FAILED" and run.data.tags["nbops.error.kind"] == "dead_kernel"
    assert Path(res.output).exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "missing.ipynb"], "missing.ipynb does not exist; check the path"),
    (["run", "ok.ipynb", "-p", "1x", "2"], "'1x' is not a valid parameter name"),
    (["run", "ok.ipynb", "-f", "bad.yaml"], "bad.yaml is not valid YAML"),
    (["run", "ok.ipynb", "-f", "list.yaml"], "holds a list, not a mapping"),
    (["run", "ok.ipynb", "-f", "nofile.yaml"], "nofile.yaml does not exist"),
    (["run", "notjson.ipynb"], "is not a readable Jupyter notebook"),
    (["run", "ok.ipynb", "-k", "no-such-kernel"], "No Jupyter kernel named 'no-such-kernel'"),
    (["run", "ok.ipynb", "-o", "nodir/x.ipynb"], "does not exist; create it"),
    (["run", "ok.ipynb", "-o", "ok.ipynb"], "is the input notebook"),
])
def test_bad_input_exits_2_with_a_message_and_records_nothing(store, client, tmp_path, capsys, argv, message):
    write_notebook(tmp_path / "ok.ipynb", ["x = 1"], parameters={"a": 1})
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "notjson.ipynb").write_text("{oops")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert client.search_experiments() == [] or client.search_runs(
        [e.experiment_id for e in client.search_experiments()]) == []


def test_malformed_p_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "x.ipynb", "-p", "alpha"])
    assert e.value.code == 2 and "expected 2 arguments" in capsys.readouterr().err


def test_parameters_are_typed_like_papermill_and_file_is_overridden(tmp_path):
    from nbops.runner import resolve_parameters

    (tmp_path / "p.yaml").write_text("alpha: 0.5\nname: base\nn: 3\n")
    got = resolve_parameters([["n", "10"], ["flag", "True"], ["x", "1e-3"], ["s", "abc"], ["z", "None"]],
                             [["raw", "10"]], tmp_path / "p.yaml")
    assert got == {"alpha": 0.5, "name": "base", "n": 10, "flag": True, "x": 0.001, "s": "abc", "z": None,
                   "raw": "10"}

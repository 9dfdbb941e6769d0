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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a subreaper is Linux's")
def test_the_cli_called_inside_a_python_process_leaves_that_process_as_it_was(tmp_path):
    """`nbops run` as a command adopts its tree's orphans (PR_SET_CHILD_SUBREAPER on its own process); main()
    called from a user's Python -- a notebook, a script, this test -- must not turn their process into one (its
    orphans would become its zombies, and count as its own work in the local sampler). The command still does."""
    import ctypes

    def subreaper() -> int:
        flag = ctypes.c_int(-1)
        assert ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0) == 0  # PR_GET_CHILD_...
        return flag.value

    assert subreaper() == 0
    assert main(["run", str(tmp_path / "missing.ipynb")]) == 2  # through the run command's set-up
    assert subreaper() == 0
    code = ("import ctypes, sys\nfrom nbops.cli import console\nsys.argv = ['nbops', 'run', sys.argv[1]]\n"
            "try:\n    console()\nfinally:\n    flag = ctypes.c_int(-1)\n"
            "    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)\n    print('subreaper', flag.value)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.ipynb")], capture_output=True, text=True)
    assert r.returncode == 2 and "subreaper 1" in r.stdout, (r.stdout, r.stderr)


def test_output_named_as_the_input_runs_the_notebook_in_place(store, client, tmp_path):
    """`nbops run nb.ipynb -o nb.ipynb` (papermill's in-place run): the same cells, now with their outputs, and
    the runs recorded once."""
    nb = write_notebook(tmp_path / "inplace.ipynb", ["%load_ext nbops", "%%track -e inplace -n once\nx = 41 + 1\nprint(x)"])
    sources = [c["source"] for c in json.loads(nb.read_text())["cells"]]
    res = nbops.run_notebook(nb, nb)
    assert res.status == "FINISHED" and Path(res.output) == nb.resolve()
    cells = json.loads(nb.read_text())["cells"]
    assert [c["source"] for c in cells] == sources
    assert "42" in json.dumps(cells[1]["outputs"])
    exp = client.get_experiment_by_name("inplace")
    assert [r.info.run_name for r in client.search_runs([exp.experiment_id])] == ["once"]


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


def _run_in_subprocess(code: str, cwd: Path, env: dict | None = None) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh Python: what a scheduler's ``nbops run`` is."""
    p = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, **(env or {})},
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_the_kernel_writes_the_parent_run_and_the_runner_never_imports_mlflow(store, client, tmp_path, mode):
    """The parent run is held in the spool: the kernel's first child puts its start on the store (children link
    to its store id, also when the kernel writes in the background), and once the notebook has run the kernel
    pushes the rest. The runner process never imports MLflow, and leaves nothing in the spool."""
    nb = write_notebook(tmp_path / "job.ipynb", [
        "%load_ext nbops",
        "%%track -n first\na = 1",
        "%%track -n second\nb = 2",
    ])
    code = ("import json, sys, nbops\n"
            f"r = nbops.run_notebook({str(nb)!r}, experiment='held')\n"
            "print(json.dumps({'status': r.status, 'run_id': r.run_id, 'spooled': r.spooled,\n"
            "                  'mlflow': 'mlflow' in sys.modules}))")
    out = _run_in_subprocess(code, tmp_path, {"NBOPS_WRITE_MODE": mode, "NBOPS_FLUSH_TIMEOUT_S": "3600"})
    assert out["status"] == "FINISHED" and not out["spooled"]
    assert out["mlflow"] is False
    parent = client.get_run(out["run_id"])  # the id reported is the store's
    assert parent.info.status == "FINISHED" and parent.data.tags["nbops.kind"] == "notebook"
    assert parent.data.metrics["nbops.cells_executed"] == 3
    assert {"notebook/job.out.ipynb", "notebook/job.out.html"} <= set(all_artifacts(client, out["run_id"]))
    kids = {r.info.run_name: r for r in _children(client, out["run_id"])}
    assert sorted(kids) == ["first", "second"]
    assert all(k.info.status == "FINISHED" for k in kids.values())
    assert [r.info.run_name for r in client.search_runs([parent.info.experiment_id])
            if r.data.tags.get("mlflow.parentRunId", "").startswith("spool-")] == []
    spool = tmp_path / "spool"
    assert not [d for d in spool.iterdir() if d.is_dir()] if spool.exists() else True


def test_a_notebook_without_nbops_still_gets_its_parent_run_from_the_kernel(store, client, tmp_path):
    nb = write_notebook(tmp_path / "plain.ipynb", ["x = 21 * 2\nprint(x)"])
    code = ("import json, sys, nbops\n"
            f"r = nbops.run_notebook({str(nb)!r}, experiment='held')\n"
            "print(json.dumps({'run_id': r.run_id, 'mlflow': 'mlflow' in sys.modules}))")
    out = _run_in_subprocess(code, tmp_path)
    assert out["mlflow"] is False
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED" and "notebook/plain.out.ipynb" in all_artifacts(client, out["run_id"])
    assert "42" in Path(client.download_artifacts(out["run_id"], "notebook/plain.out.ipynb")).read_text()


def test_sigterm_ends_the_parent_killed_and_stops_the_kernel(store, client, tmp_path):
    """A scheduler stopping the job: exit 130, the parent KILLED on the store, the kernel gone."""
    import signal
    import time

    started = tmp_path / "started"
    nb = write_notebook(tmp_path / "long.ipynb", [
        f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    time.sleep(0.2)",
    ])
    proc = subprocess.Popen([NBOPS, "run", str(nb), "-e", "held", "--no-progress"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (started.exists() and started.read_text()):  # the cell is running
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    kernel_pid = int(started.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    runs = client.search_runs([client.get_experiment_by_name("held").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("long", "KILLED")]
    while True:  # the kernel was shut down (its pid gone, or a zombie nobody reaps)
        try:
            with open(f"/proc/{kernel_pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.2)


def test_a_cell_past_timeout_fails_the_run_and_the_kernel_is_stopped(store, client, tmp_path):
    """nbclient leaves a timed-out cell running in the kernel: the kernel cannot write the parent (it is busy),
    so nbops stops it and writes the parent itself."""
    pid_file = tmp_path / "kernel.pid"
    nb = write_notebook(tmp_path / "slow.ipynb", [
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    time.sleep(0.1)",
    ])
    res = nbops.run_notebook(nb, timeout=1, experiment="held")
    assert res.status == "FAILED" and res.error["kind"] == "timeout" and not res.spooled
    run = client.get_run(res.run_id)
    assert run.info.status == "FAILED" and run.data.tags["nbops.error.kind"] == "timeout"
    assert not Path(f"/proc/{pid_file.read_text()}").exists() or \
        Path(f"/proc/{pid_file.read_text()}/stat").read_text().split(")")[-1].split()[0] == "Z"

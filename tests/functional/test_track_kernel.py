"""%%track in real kernels: notebooks executed with papermill, read back from the store."""
import json
import subprocess

import papermill as pm
import pytest

from nbops_testing import all_artifacts, run_notebook, write_notebook


def test_papermill_run_records_injected_parameters_and_notebook(store, client, tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    nb = write_notebook(tmp_path / "train.ipynb", [
        "%load_ext nbops",
        "%%track -e kern -n good\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "lr = 0.1\naccuracy = 0.5 + lr * alpha\nplt.plot([1, 2])\nprint('trained')",
        "%%track -e kern -n bad\nraise ValueError('boom')",
    ], parameters={"alpha": 0.5, "epochs": 3})
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "nb"], cwd=tmp_path,
                   check=True)
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook(nb, tmp_path, parameters={"alpha": 2.0})
    assert err.value.ename == "ValueError"  # the cell's own error reached papermill unchanged
    exp = client.get_experiment_by_name("kern")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    good, bad = runs["good"], runs["bad"]
    assert good.data.params["alpha"] == "2.0"          # papermill's injected value, not the default
    assert "epochs" not in good.data.params            # not injected, not assigned in the cell
    assert good.data.params["lr"] == "0.1"
    assert good.data.metrics["accuracy"] == pytest.approx(0.7)
    assert good.data.tags["mlflow.source.name"].endswith("train.ipynb")
    assert good.data.tags["mlflow.source.git.commit"]
    arts = all_artifacts(client, good.info.run_id)
    assert any(a.endswith(".png") for a in arts) and "notebook/train.ipynb" in arts
    assert bad.info.status == "FAILED" and good.info.status == "FINISHED"
    # the summary is in the output notebook as HTML and text, readable without a widget frontend
    out = json.loads((tmp_path / "train.out.ipynb").read_text())
    outputs = [o for c in out["cells"] for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    html = "".join("".join(o["data"].get("text/html", "")) for o in outputs)
    assert good.info.run_id in html and "nbops-run-summary" in html


def test_kernel_interrupt_mid_cell_is_killed(store, client, tmp_path):
    """A real Ctrl-C: interrupt the kernel while a tracked cell sleeps -- once its run exists in the store (the
    first tracked cell imports mlflow, which takes as long as the machine's load makes it)."""
    import os
    import time

    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path), env={**os.environ})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("%load_ext nbops", timeout=60)
        msg_id = kc.execute("%%track -e intr -n sleepy\nimport time\nfor i in range(6000):\n    time.sleep(0.1)")

        def running():
            exp = client.get_experiment_by_name("intr")
            return exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")

        while not running():  # the state we need, polled: the tracked run has started
            time.sleep(0.2)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=600)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=600)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        reply = kc.execute_interactive("%%track -e intr -n next\naccuracy = 1.0", timeout=600)
        assert reply["content"]["status"] == "ok"
        # the kernel has a frontend attached, so it writes in the background: wait for the run in the store
        # before the kernel is killed below (a killed kernel leaves its last records in the spool)
        while not client.search_runs([client.get_experiment_by_name("intr").experiment_id],
                                     "attributes.run_name = 'next' and attributes.status = 'FINISHED'"):
            time.sleep(0.2)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    exp = client.get_experiment_by_name("intr")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["sleepy"].info.status == "KILLED"
    assert runs["next"].info.status == "FINISHED" and "mlflow.parentRunId" not in runs["next"].data.tags


def test_plain_papermill_cli_run_records_its_notebook_figures_and_experiment(store, client, tmp_path):
    """Issue 23 items 7 and 8 in a real kernel started by the plain `papermill` command, the output notebook in
    another folder than the kernel's (--cwd): every run of the notebook -- %%track and %dataversion alike -- is
    tagged with the input notebook; the kernel's last %%track -e is the %dataversion's experiment; a figure
    shown with plt.show() (pyplot first imported inside the tracked cell) is logged."""
    import os
    import sys

    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    write_notebook(tmp_path / "tour.ipynb", [
        "%load_ext nbops",
        "%%track -e bike -n shown\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\n"
        "plt.show()\nlr = 0.1",
        "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2, 3]})\n%dataversion frame --name frame_v",
    ])
    papermill = os.path.join(os.path.dirname(sys.executable), "papermill")
    r = subprocess.run(["bash", "-c", f"cd {tmp_path} && {papermill} tour.ipynb out/run.ipynb --cwd work "
                                      "-k python3 --no-progress-bar"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    exp = client.get_experiment_by_name("bike")
    runs = {x.info.run_name: x for x in client.search_runs([exp.experiment_id])}
    assert "shown" in runs and "dataversion:frame_v" in runs                  # one experiment, as the notebook's
    for run in runs.values():
        assert run.data.tags["mlflow.source.name"] == str(tmp_path / "tour.ipynb")
    assert [a for a in all_artifacts(client, runs["shown"].info.run_id) if a.startswith("figures/")] \
        == ["figures/figure_1.png"]

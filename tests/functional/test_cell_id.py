"""Every %%track run records the notebook cell that made it (tag ``nbops.cell_id``), in real kernels: the cell id
JupyterLab sends with its execute request, and a papermill run's cells found in the notebook it runs."""
import json
import os
import time

import pytest

from nbops_testing import run_notebook, write_notebook

TAG = "nbops.cell_id"


def _execute(kc, code: str, metadata: dict) -> dict:
    """An execute request as JupyterLab sends it: the cell id in the request's metadata."""
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                         metadata=metadata)
    kc.shell_channel.send(msg)
    reply = kc.get_shell_msg(timeout=600)
    while reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
        reply = kc.get_shell_msg(timeout=600)
    return reply


def test_jupyterlab_cell_id_from_the_execute_request_is_tagged(store, client, tmp_path):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path), env={**os.environ, "NBOPS_WRITE_MODE": "sync"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=600)
        assert _execute(kc, "%load_ext nbops", {"cellId": "cell-load"})["content"]["status"] == "ok"
        ok = _execute(kc, "%%track -e cells -n fine\naccuracy = 0.9", {"cellId": "3c0e-fine", "recordTiming": False})
        bad = _execute(kc, "%%track -e cells -n broken\nraise ValueError('x')", {"cellId": "77aa-broken"})
        none = _execute(kc, "%%track -e cells -n anonymous\nloss = 1.0", {})
        assert ok["content"]["status"] == "ok" and bad["content"]["status"] == "error"
        assert none["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    exp = client.get_experiment_by_name("cells")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["fine"].data.tags[TAG] == "3c0e-fine"
    assert runs["broken"].data.tags[TAG] == "77aa-broken" and runs["broken"].info.status == "FAILED"
    assert TAG not in runs["anonymous"].data.tags          # no cell id sent, no notebook file: none recorded


def test_papermill_run_tags_each_cell_id_of_the_notebook(store, client, tmp_path):
    nb = write_notebook(tmp_path / "cells.ipynb", [
        "%load_ext nbops",
        "%%track -e pm-cells -n first\nacc = 0.5",
        "%%track -e pm-cells -n second\nacc = 0.6",
        "%%track -e pm-cells\nacc = 0.7",           # the same body twice: told apart by execution order
        "%%track -e pm-cells\nacc = 0.7",
    ], parameters={"alpha": 1})
    ids = [c["id"] for c in json.loads(nb.read_text())["cells"]]
    run_notebook(nb, tmp_path, parameters={"alpha": 2})     # papermill injects a parameters cell
    exp = client.get_experiment_by_name("pm-cells")
    runs = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    assert [r.data.tags.get(TAG) for r in runs] == ids[2:]

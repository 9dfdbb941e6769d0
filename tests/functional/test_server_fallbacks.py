"""Headless and exported: under papermill nbops sends no widget views (nothing a saved notebook could only show
through a widget manager and a CDN), and nbconvert's HTML export of the output shows every result as text."""
from __future__ import annotations

import re

import nbformat
import pytest

from nbops_testing import run_notebook, write_notebook

WIDGET = "application/vnd.jupyter.widget-view+json"


def visible_text(html: str) -> str:
    """What a reader of the page sees: scripts and styles stripped, tags removed."""
    html = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.slow
def test_papermill_output_and_html_export_show_every_result_as_text(tmp_path, store, client):
    nb = write_notebook(tmp_path / "headless.ipynb", [
        "%load_ext nbops",
        "%%track -e headless -n pm-run\naccuracy = 0.875",
        "import numpy as np, pandas as pd\nrng = np.random.default_rng(1)\n"
        "ref = pd.DataFrame({'a': rng.normal(size=2000)})\ncur = pd.DataFrame({'a': rng.normal(1, 1, size=2000)})",
        "%drift ref cur -e headless",
        "frame = pd.DataFrame({'timestamp': pd.date_range('2026-01-01', periods=300, freq='min'),\n"
        "                      'metric': 'cpu_utilization_percentage', 'labels': '',\n"
        "                      'value': np.r_[np.full(200, 20.0), np.full(10, 95.0), np.full(90, 20.0)]"
        " + rng.normal(0, 1, 300)})",
        "%telemetry --source frame",
        "%nbops runs --all",
    ])
    out = nbformat.read(str(run_notebook(nb, tmp_path)), as_version=4)
    outputs = [o for c in out.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if WIDGET in o.get("data", {})], "a headless output carries a widget view"
    assert "widgets" not in out.metadata
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("headless").experiment_id])}
    track, drift = runs["pm-run"], [r for r in runs.values() if r.data.tags.get("nbops.kind") == "drift"
                                    or "nbops.drift.is_drift" in r.data.tags][0]

    from nbconvert import HTMLExporter
    html, _ = HTMLExporter().from_notebook_node(out)
    text = visible_text(html)
    assert track.info.run_id in text and "accuracy=0.875" in text and "FINISHED" in text   # run summary
    assert "DRIFT -- 1 of 1 features drifted: a" in text and "yes (distribution)" in text   # drift verdict + table
    assert drift.info.run_id in text
    assert "Telemetry" in text and "incidents" in text and "cpu_utilization_percentage" in text   # telemetry
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", text) and not re.search(r"\d\d:\d\d:\d\d\.\d{6}", text)
    assert "nbops runs (" in text                                                              # runs table
    assert re.search(r'<a href="[^"]*#/experiments/\d+/runs/' + track.info.run_id, html)    # run ids are links
    for noise in ("INFO mlflow", "Kernel is running over TCP", "0%|", "Traceback"):
        assert noise not in text, noise

"""Headless and exported: the same notebook under papermill keeps HTML/text fallbacks beside the widget views,
and nbconvert's HTML export shows the run summary (with MLflow's run id) and tables without a widget manager."""
from __future__ import annotations

import nbformat
import pytest

from nbops_testing import run_notebook, write_notebook

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.slow
def test_papermill_output_and_html_export_read_well(tmp_path, store, client):
    nb = write_notebook(tmp_path / "headless.ipynb", [
        "%load_ext nbops",
        "%%track -e headless -n pm-run\naccuracy = 0.875",
        "import pandas as pd\nfrom nbops.display import show\nfrom nbops.display.views import FrameView\n"
        "show(FrameView(pd.DataFrame({'feature': ['a', 'b'], 'drifted': [True, False]}), 'check', "
        "highlight='drifted'))",
    ])
    out = nbformat.read(str(run_notebook(nb, tmp_path)), as_version=4)
    run = client.search_runs([client.get_experiment_by_name("headless").experiment_id])[0]
    track = [o for o in out.cells[1].outputs if o.output_type == "display_data"]
    assert len(track) == 1
    data = track[0]["data"]
    assert {"text/plain", "text/html", WIDGET} <= set(data)          # one bundle: widget + both fallbacks
    assert run.info.run_id in data["text/plain"] and run.info.run_id in data["text/html"]
    table = [o for o in out.cells[2].outputs if o.output_type == "display_data"][0]["data"]
    assert "background:#ffebe9" in table["text/html"] and WIDGET in table

    from nbconvert import HTMLExporter
    html, _ = HTMLExporter().from_notebook_node(out)
    assert f"data-run-id='{run.info.run_id}'" in html or f'data-run-id="{run.info.run_id}"' in html
    assert "accuracy=0.875" in html
    assert "nbops-table" in html

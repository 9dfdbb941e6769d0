"""End to end in a real browser: JupyterLab on a loopback port, headless Chromium, a notebook using nbops.

Debian's ``chromium`` (installed by .ci/run) driven by Python playwright -- playwright's own browser download is
never used. The test runs the cells one by one and asserts on what the page shows for each magic: the run
summary with the run id MLflow has (a link that opens the run in the MLflow UI JupyterLab serves through
jupyter-server-proxy), the data version, the drift table, the telemetry figure, the runs table, the promotion,
the status, and a failing tracked cell showing the user's own traceback; and that the extension's REST API
answers the page's authenticated session and refuses a request without credentials. Screenshots go to
``test-artifacts/browser/`` (git-ignored; ``docs/img`` holds copies). Skip it locally with ``-m "not browser"``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nbops_testing import ROOT, jupyter_lab, lab_page, run_cell as run_in_lab, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOK = "nbops-browser.ipynb"

CELLS = [
    "%load_ext nbops",
    # a real fit that runs a few seconds: long enough for the host sampler to start (and %telemetry to plot)
    "%%track -e browser -n lab-run --model model\n"
    "import numpy as np\n"
    "from sklearn.datasets import make_classification\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "X, y = make_classification(n_samples=6000, n_features=20, random_state=0)\n"
    "n_estimators = 300\n"
    "model = RandomForestClassifier(n_estimators=n_estimators, random_state=0).fit(X[:4000], y[:4000])\n"
    "accuracy = float(model.score(X[4000:], y[4000:]))\n"
    "print('trained on', len(X), 'rows')",
    "import pandas as pd\n"
    "rng = np.random.default_rng(0)\n"
    "ref = pd.DataFrame({'stable': rng.normal(size=3000), 'shifted': rng.normal(size=3000)})\n"
    "cur = pd.DataFrame({'stable': rng.normal(size=3000), 'shifted': rng.normal(loc=1.0, size=3000)})",
    "%drift ref cur",
    "%telemetry",
    "%dataversion ref --name reference-batch",
    "%nbops runs",
    '%promote browser-model --best accuracy -e browser --require "accuracy>=0.5" --reason "browser test"',
    "%nbops status",
    "%%track -e browser -n broken\nrows = 10\ndef share(part):\n    return part / (rows - 10)\nshare(3)",
]
TRACK, DRIFT, TELEMETRY, DATAVERSION, RUNS, PROMOTE, STATUS, FAILING = 1, 3, 4, 5, 6, 7, 8, 9


@pytest.fixture
def lab(tmp_path, store, client):
    """``jupyter lab`` from this environment on a free loopback port, rooted in a temp dir holding the test
    notebook (nbops_testing.jupyter_lab)."""
    # ``client`` first: MlflowClient makes the store's tables; the Lab's nbops must not meet them half-made
    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, CELLS)
    with jupyter_lab(tmp_path, root) as lab:
        yield {**lab, "store": store}


@pytest.fixture
def page(lab):
    with lab_page(lab, NOTEBOOK, len(CELLS), width=1280, height=2600) as pg:
        yield pg


def run_cell(page, i: int, fails: bool = False) -> None:
    """Run cell ``i`` through JupyterLab's own command and wait until the kernel answered it."""
    errors = run_in_lab(page, i)
    assert bool(errors) == fails, f"cell {i} ({CELLS[i].splitlines()[0]}) raised {errors}"


def output_of(page, i: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-Cell-outputArea")


def stored_run(client, experiment_id: str, name: str):
    """The run ``name`` once it is in the store: a live kernel writes tracked runs in the background, so poll
    the store for the state needed (pytest-timeout bounds a run that never comes)."""
    while True:
        found = client.search_runs([experiment_id], f"attributes.run_name = '{name}'")
        if found and found[0].info.status != "RUNNING":
            return found[0]
        time.sleep(0.2)


def shot(locator, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    assert path.stat().st_size > 1000
    return path


def test_jupyterlab_shows_nbops_widgets_and_serves_its_api(lab, page, client):
    for i in range(len(CELLS)):
        run_cell(page, i, fails=i == FAILING)

    # -- %%track: the run summary widget (the widget view, not the HTML fallback) with MLflow's run id
    exp_id = client.get_experiment_by_name("browser").experiment_id
    run = stored_run(client, exp_id, "lab-run")
    assert len(client.search_runs([exp_id], "attributes.run_name = 'lab-run'")) == 1
    assert run.data.tags["nbops.spool_id"].startswith("spool-")   # a live notebook: written in the background
    assert run.info.run_name == "lab-run" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.name"] == str(lab["root"] / NOTEBOOK)
    accuracy = run.data.metrics["accuracy"]
    assert 0.5 < accuracy <= 1.0 and run.data.params["n_estimators"] == "300"
    # a live notebook writes in the background: the summary first names the run's spool entry, then is redrawn
    # with the store's run id once the flusher wrote it
    summary = output_of(page, TRACK).locator(f".nbops-run-summary[data-run-id='{run.info.run_id}']")
    summary.wait_for(state="visible")
    text = summary.inner_text()
    assert "being written" not in text, text
    assert run.info.run_id in text and "lab-run" in text and "FINISHED" in text
    assert f"accuracy={accuracy:.6g}" in text
    link = summary.locator(f"a:text('{run.info.run_id}')")
    href = link.get_attribute("href")
    assert href == f"/mlflow/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}", href
    shot(output_of(page, TRACK), "run-summary")

    # -- %drift: the table says the shifted column drifted and the stable one did not
    drift = output_of(page, DRIFT)
    table = drift.locator("table").first
    table.wait_for(state="visible")
    header = [c.inner_text().strip() for c in table.locator("tr").first.locator("th").all()]
    col = header.index("drifted")
    rows = {cells[0]: cells[col] for cells in
            ([c.inner_text().strip() for c in r.locator("td").all()] for r in table.locator("tr").all()) if cells}
    assert rows["shifted"].startswith("yes") and rows["stable"] == "no", rows
    assert "1 of 2 features drifted" in drift.inner_text()
    assert drift.locator("img").count() == 1                                      # the plot, once
    shot(drift, "drift-report")

    # -- %telemetry: the figure is an image the browser decoded
    img = output_of(page, TELEMETRY).locator("img").first
    img.wait_for(state="visible")
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 200 && el.naturalHeight > 100",
                           arg=img.element_handle())
    text = output_of(page, TELEMETRY).inner_text()
    assert "Telemetry" in text and "from local" in text
    assert int(re.search(r"(\d+) points", text).group(1)) >= 6 * 3          # the sampler ran meanwhile
    shot(output_of(page, TELEMETRY), "telemetry")

    # -- the other magics each show their result
    assert "reference-batch" in output_of(page, DATAVERSION).inner_text()
    runs_out = output_of(page, RUNS)
    assert "lab-run" in runs_out.inner_text() and runs_out.locator(f"a:text('{run.info.run_id}')").count() == 1
    promoted = output_of(page, PROMOTE).inner_text()
    assert "browser-model" in promoted and "champion" in promoted, promoted
    status = output_of(page, STATUS).inner_text()
    assert "embedded SQLite store" in status or "MLFLOW_TRACKING_URI" in status
    assert "'browser'" in status                                                   # the last run's experiment
    shot(output_of(page, RUNS), "runs")

    # -- a failing tracked cell: the user's traceback only, with the notebook's cell number and line
    failing = output_of(page, FAILING)
    error = failing.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").last
    error.wait_for()
    tb = error.inner_text()
    n = page.evaluate("(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount",
                      FAILING)
    assert "ZeroDivisionError: division by zero" in tb and "FAILED" in failing.inner_text(), tb
    assert "nbops" not in tb and "site-packages" not in tb, tb
    assert f"Cell In[{n}], line 5" in tb and "return part / (rows - 10)" in tb, tb
    broken = stored_run(client, run.info.experiment_id, "broken")   # written by the kernel's flusher
    assert broken.info.status == "FAILED"
    shot(failing, "failing-cell")

    # -- the REST API: the page's session (token cookie) is let in, a request without credentials is not
    api = page.evaluate("""async (path) => {
        const ok = await fetch('/nbops/api/runs?path=' + encodeURIComponent(path));
        const no = await fetch('/nbops/api/runs?path=' + encodeURIComponent(path), {credentials: 'omit'});
        return {status: ok.status, body: await ok.json(), refused: no.status};
    }""", NOTEBOOK)
    assert api["status"] == 200 and api["refused"] == 403
    assert run.info.run_id in [r["run_id"] for r in api["body"]["runs"]]
    page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=True)

    # -- the run id's link opens the run in the MLflow UI that JupyterLab serves (jupyter-server-proxy)
    page.goto(f"{lab['base']}{href}")
    page.get_by_text("lab-run").first.wait_for(state="visible")
    page.get_by_text(run.info.run_id).first.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "mlflow-ui.png"))

"""The nbops JupyterLab extension end to end: JupyterLab on a loopback port, headless Debian Chromium (Python
playwright), a notebook with tracked cells run through JupyterLab's own commands.

What the page shows is checked against what the store holds (MlflowClient): the "nbops" sidebar lists the focused
notebook's runs newest first with their final status (one failing), a tracked cell's badge is RUNNING while it
runs and its final state after, clicking a run makes its cell the active, highlighted one, the filter narrows the
list, two ticked runs open a compare panel; promote from a run's details behind a failing gate moves nothing,
behind a passing one moves the alias with its audit tags. Screenshots (light and dark theme) go to
``test-artifacts/browser/`` (docs/img holds copies).

Needs the prebuilt extension installed in this environment (``pip install -e .`` builds it: Node.js + npm).
The compare data-version diff and the promote test need the server API of docs/server-api.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops_testing import CHROMIUM, CHROMIUM_ARGS, ROOT, jupyter_lab, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOK = "labext.ipynb"
WAIT_MS = 300_000
SIDEBAR = "#nbops-sidebar"

CELLS = [
    "%load_ext nbops",
    "%%track -e labext -n first-fit\nlr = 0.1\naccuracy = 0.81",
    # waits for a file the test writes once it saw the RUNNING badge (no timing involved)
    "%%track -e labext -n second-fit\nimport pathlib, time\n"
    "while not pathlib.Path('go').exists():\n    time.sleep(0.1)\nlr = 0.2\naccuracy = 0.93",
    "%%track -e labext -n broken-fit\nrows = 0\nlr = 0.3\naccuracy = 1 / rows",
    "x = 1  # not tracked: no badge",
]
FIRST, SECOND, BROKEN, PLAIN = 1, 2, 3, 4


def _extension_installed() -> str:
    out = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "labextension", "list"],
                         capture_output=True, text=True)
    return out.stdout + out.stderr


@pytest.fixture
def lab(tmp_path, store):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium (or deselect with "
                    "-m 'not browser')")
    listing = _extension_installed()
    assert "nbops" in listing and "enabled" in listing, (
        "the nbops labextension is not installed in this environment: `pip install -e .` builds it "
        f"(Node.js >= 20 and the npm registry):\n{listing}")
    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, CELLS)
    with jupyter_lab(tmp_path, root) as lab:
        yield {**lab, "store": store}


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            pg.set_default_timeout(WAIT_MS)
            pg.console_errors = []
            pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
            yield pg
        finally:
            browser.close()


def open_notebook(page, lab) -> None:
    page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.content"
                           " && window.jupyterapp.shell.currentWidget.content.widgets.length === %d" % len(CELLS))
    page.wait_for_function("() => { const k = window.jupyterapp.shell.currentWidget.context.sessionContext"
                           ".session?.kernel; return k && k.status === 'idle'; }")
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="nbops-sidebar"]')
    tab.click()
    page.locator(SIDEBAR).wait_for(state="visible")


def start_cell(page, i: int) -> None:
    """Run cell ``i`` through JupyterLab's own command (does not wait for it)."""
    page.evaluate("""(i) => {
        const app = window.jupyterapp, nb = app.shell.currentWidget;
        nb.content.activeCellIndex = i;
        nb.content.deselectAll();
        void app.commands.execute('notebook:run-cell');  // resolves when the cell ends: not awaited here
    }""", i)


def wait_cell(page, i: int) -> list[str]:
    page.wait_for_function("""(i) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
        const prompt = cell.node.querySelector('.jp-InputPrompt');
        return cell.model.executionCount !== null && prompt && !prompt.textContent.includes('*');
    }""", arg=i)
    return page.evaluate("""(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.toJSON()
        .filter(o => o.output_type === 'error').map(o => o.ename)""", i)


def errors_of(page, i: int) -> list[str]:
    return page.evaluate("""(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.toJSON()
        .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)""", i)


def run_item(page, name: str):
    return page.locator(f"{SIDEBAR} li.nbops-run", has=page.locator(".nbops-run-name", has_text=name))


def badge(page, i: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(i).locator(":scope > .nbops-badge")


def stored_run(client, name: str):
    """The run ``name`` once the kernel's background writer put it in the store with its final status."""
    import time

    while True:
        exp = client.get_experiment_by_name("labext")
        found = client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'") if exp else []
        if found and found[0].info.status != "RUNNING":
            return found[0]
        time.sleep(0.2)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 1000
    return path


def test_sidebar_lists_runs_badges_follow_them_and_a_run_leads_to_its_cell(lab, page, client):
    open_notebook(page, lab)
    assert "Open a notebook" not in page.locator(SIDEBAR).inner_text()
    for i in (0, FIRST):
        start_cell(page, i)
        assert wait_cell(page, i) == []

    # -- a tracked cell shows RUNNING (badge and sidebar) while it runs, then its final state
    start_cell(page, SECOND)
    badge(page, SECOND).locator("text=RUNNING").wait_for()
    assert "second-fit" in badge(page, SECOND).inner_text()
    assert run_item(page, "second-fit").get_attribute("data-status") == "RUNNING"
    (lab["root"] / "go").write_text("")
    assert wait_cell(page, SECOND) == []
    start_cell(page, BROKEN)
    assert wait_cell(page, BROKEN) == ["ZeroDivisionError"]

    runs = {name: stored_run(client, name) for name in ("first-fit", "second-fit", "broken-fit")}
    assert {n: r.info.status for n, r in runs.items()} == {
        "first-fit": "FINISHED", "second-fit": "FINISHED", "broken-fit": "FAILED"}
    # the sidebar lists the store's runs (their store ids), newest first, with the store's status
    for name, run in runs.items():
        page.locator(f"{SIDEBAR} li.nbops-run[data-run-id='{run.info.run_id}'][data-status='{run.info.status}']"
                     ).wait_for()
    names = page.locator(f"{SIDEBAR} li.nbops-run .nbops-run-name").all_inner_texts()
    assert names == ["broken-fit", "second-fit", "first-fit"], names
    assert "accuracy=0.93" in run_item(page, "second-fit").inner_text()

    # -- badges: the final state and name of each tracked cell's run; none on the untracked cell
    for i, name, status in ((FIRST, "first-fit", "FINISHED"), (SECOND, "second-fit", "FINISHED"),
                            (BROKEN, "broken-fit", "FAILED")):
        b = page.locator(f".jp-Notebook .jp-Cell >> nth={i} >> xpath=./div[contains(@class, 'nbops-badge')]"
                         f"[@data-status='{status}']")
        b.wait_for()
        assert name in b.inner_text() and b.get_attribute("data-run-id") == runs[name].info.run_id
    assert "accuracy=0.81" in badge(page, FIRST).get_attribute("title")
    assert badge(page, PLAIN).count() == 0
    shot(page, "lab-sidebar-light")

    # -- clicking a run makes its cell the active one, highlighted; its details link to the MLflow UI
    page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = 4; }")
    run_item(page, "first-fit").locator(".nbops-run-name").click()
    page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i", arg=FIRST)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(FIRST)
    assert "nbops-mod-highlight" in cell.get_attribute("class")
    link = run_item(page, "first-fit").locator("a.nbops-run-link")
    href = link.get_attribute("href")
    assert href.endswith(f"/runs/{runs['first-fit'].info.run_id}") and "mlflow/" in href, href
    # keyboard: Enter on a focused run does the same
    run_item(page, "broken-fit").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i", arg=BROKEN)

    # -- the filter narrows the list
    page.locator(f"{SIDEBAR} input.nbops-Sidebar-filter").fill("broken")
    page.wait_for_function("() => document.querySelectorAll('#nbops-sidebar li.nbops-run').length === 1")
    page.locator(f"{SIDEBAR} input.nbops-Sidebar-filter").fill("")

    # -- compare two ticked runs: a main-area panel with the params / metrics that differ
    run_item(page, "first-fit").locator("input.nbops-run-select").check()
    run_item(page, "second-fit").locator("input.nbops-run-select").check()
    page.locator(f"{SIDEBAR} button.nbops-Sidebar-compare").click()
    panel = page.locator(".nbops-Compare:visible")
    panel.locator("tr[data-key='accuracy'].nbops-mod-differs").wait_for()
    assert panel.locator("tr[data-key='lr'].nbops-mod-differs").count() == 1
    text = panel.inner_text()
    assert "baseline: first-fit" in text and "second-fit" in text and "0.93" in text
    shot(page, "lab-compare")

    # -- the dark theme: the same sidebar, JupyterLab's own variables only
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'"
                           " && !document.querySelector('#jupyterlab-splash')")
    page.evaluate("() => window.jupyterapp.shell.activateById('nbops-sidebar')")
    shot(page, "lab-sidebar-dark")
    errors = [e for e in page.console_errors if "nbops" in e.lower()]
    assert not errors, errors


PROMOTE_CELLS = [
    # sklearn imported before nbops's warm-up thread starts (it starts after this cell): a cell importing sklearn
    # while the warm-up imports can meet a half-imported polars (reported; not what this test is about)
    "%load_ext nbops\nimport sklearn.linear_model, sklearn.datasets",
    "%%track -e labext -n promo-fit --model model\nfrom sklearn.linear_model import LogisticRegression\n"
    "from sklearn.datasets import make_classification\nX, y = make_classification(n_samples=300, random_state=0)\n"
    "model = LogisticRegression(max_iter=500).fit(X, y)\naccuracy = float(model.score(X, y))",
]


def promote_in_dialog(page, run_name: str, model: str, require: str) -> str:
    """Open the run's Promote dialog from the sidebar, preview the gates, promote; return the result status."""
    item = run_item(page, run_name)
    if item.locator(".nbops-run-details").count() == 0:
        item.locator(".nbops-run-name").click()
    item.locator("button.nbops-run-promote").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input[name='model']").fill(model)
    dialog.locator("input[name='require']").fill(require)
    dialog.locator("input[name='reason']").fill("browser test")
    dialog.locator("button.nbops-Promote-previewButton").click()
    preview = dialog.locator(".nbops-Decision")
    preview.wait_for()
    assert preview.get_attribute("data-status") == "dry-run", preview.inner_text()
    dialog.locator("button.jp-mod-accept").click()
    result = page.locator(".jp-Dialog .nbops-Decision")
    result.wait_for()
    status = result.get_attribute("data-status")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    return status


def test_promote_from_the_sidebar_behind_gates(tmp_path, store, client):
    """Needs the promote / models routes of docs/server-api.md."""
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, PROMOTE_CELLS)
    with jupyter_lab(tmp_path, root) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_function("() => window.jupyterapp?.shell.currentWidget?.content?.widgets.length === 2")
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.context.sessionContext"
                                   ".session?.kernel?.status === 'idle'")
            page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="nbops-sidebar"]').click()
            for i in (0, 1):
                start_cell(page, i)
                assert wait_cell(page, i) == [], errors_of(page, i)
            run = stored_run(client, "promo-fit")
            page.locator(f"{SIDEBAR} li.nbops-run[data-run-id='{run.info.run_id}'][data-status='FINISHED']"
                         ).wait_for()

            # a gate that fails: nothing moves
            assert promote_in_dialog(page, "promo-fit", "labext-model", "accuracy>=1.5") == "gate-failed"
            from mlflow.exceptions import MlflowException
            try:
                mv = client.get_model_version_by_alias("labext-model", "champion")
            except MlflowException:
                mv = None
            assert mv is None

            # a gate that passes: the alias points at a version of this run, with the audit trail
            assert promote_in_dialog(page, "promo-fit", "labext-model", "accuracy>=0.5") == "promoted"
            mv = client.get_model_version_by_alias("labext-model", "champion")
            assert mv.run_id == run.info.run_id
            tags = mv.tags
            assert tags.get("nbops.promote.status") == "promoted", tags
            assert tags.get("nbops.promote.who_source") == "jupyter" and tags.get("nbops.promote.who"), tags

            # the models panel shows the alias and its run
            page.locator(f"{SIDEBAR} button.nbops-Sidebar-models").click()
            row = page.locator(".nbops-Models section[data-model='labext-model'] tr[data-alias='champion']")
            row.wait_for()
            assert "promo-fit" in row.inner_text() and str(mv.version) in row.inner_text()
        finally:
            browser.close()


def test_sidebar_degrades_to_one_line_without_the_server_extension(tmp_path, store):
    """The page of a server without nbops's server extension: the sidebar says so in one line, no error."""
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, ["x = 1"])
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"nbops": False}}}))
    with jupyter_lab(tmp_path, root) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="nbops-sidebar"]').click()
            msg = page.locator(f"{SIDEBAR} .nbops-Sidebar-message.nbops-mod-error")
            msg.wait_for()
            assert "server extension is not enabled" in msg.inner_text()
            assert page.locator(".nbops-StatusItem").inner_text().strip() == "nbops: unavailable"
        finally:
            browser.close()

"""The nbops JupyterLab extension end to end: JupyterLab on a loopback port, headless Debian Chromium (Python
playwright), a notebook with tracked cells run through JupyterLab's own commands. The extension is the one built
in this checkout (``nbops_testing.jupyter_lab`` puts ``src/nbops/labextension`` first on JUPYTER_PATH).

What the page shows is checked against what the store holds (MlflowClient): the "nbops" sidebar lists the focused
notebook's runs newest first with their final status (one failing), a tracked cell's badge is RUNNING while it
runs and its final state after, clicking a run makes its cell the active, highlighted one, the filter narrows the
list; the keyboard alone moves in the list, opens runs (and their cells), selects two and opens the compare
panel; JupyterLab Dark keeps the sidebar readable (contrast from computed styles). Against a remote ``mlflow
server``: the status bar says "server", promote behind a failing gate moves nothing, behind a passing one moves
the alias with its audit tags, the models panel rolls it back with the registry's audit event, and a real CPU hog
turns the status dot red (its click: the telemetry report with the incident). Screenshots go to
``test-artifacts/browser/`` (docs/img holds copies).

Needs the prebuilt extension built (``pip install -e .`` or ``jlpm build:prod`` in labextension/: Node.js + npm).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbops_testing import ROOT, Hog, jupyter_lab, lab_page, run_cell, start_cell, wait_cell, write_notebook
from services import mlflow_server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
NOTEBOOK = "labext.ipynb"
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


def start_lab(tmp_path, cells: list[str]):
    """A JupyterLab (nbops_testing.jupyter_lab: this checkout's built extension first) on NOTEBOOK of ``cells``."""
    listing = _extension_installed()
    assert "nbops" in listing and "enabled" in listing, (
        "the nbops labextension is not installed in this environment: `pip install -e .` builds it "
        f"(Node.js >= 20 and the npm registry):\n{listing}")
    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, cells)
    return jupyter_lab(tmp_path, root)


@pytest.fixture
def lab(tmp_path, store, client):
    # ``client`` first: MlflowClient makes the store's tables; the Lab's nbops must not meet them half-made
    with start_lab(tmp_path, CELLS) as lab:
        yield {**lab, "store": store}


@pytest.fixture
def page(lab):
    with lab_page(lab, NOTEBOOK, len(CELLS)) as pg:
        show_sidebar(pg)
        yield pg


def show_sidebar(page) -> None:
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="nbops-sidebar"]').click()
    page.locator(SIDEBAR).wait_for(state="visible")


def run_item(page, name: str):
    exact = re.compile(f"^{re.escape(name)}$")
    return page.locator(f"{SIDEBAR} li.nbops-run", has=page.locator(".nbops-run-name", has_text=exact))


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
    assert "Open a notebook" not in page.locator(SIDEBAR).inner_text()
    for i in (0, FIRST):
        assert run_cell(page, i) == []

    # -- a tracked cell shows RUNNING (badge and sidebar) while it runs, then its final state
    start_cell(page, SECOND)
    badge(page, SECOND).locator("text=RUNNING").wait_for()
    assert "second-fit" in badge(page, SECOND).inner_text()
    assert run_item(page, "second-fit").get_attribute("data-status") == "RUNNING"
    (lab["root"] / "go").write_text("")
    assert wait_cell(page, SECOND) == []
    start_cell(page, BROKEN)
    assert wait_cell(page, BROKEN) == ["ZeroDivisionError: division by zero"]

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

    # -- the filter narrows the list
    page.locator(f"{SIDEBAR} input.nbops-Sidebar-filter").fill("broken")
    page.wait_for_function("() => document.querySelectorAll('#nbops-sidebar li.nbops-run').length === 1")
    page.locator(f"{SIDEBAR} input.nbops-Sidebar-filter").fill("")
    page.wait_for_function("() => document.querySelectorAll('#nbops-sidebar li.nbops-run').length === 3")

    # -- the keyboard alone: the list is one Tab stop (the run last focused: first-fit, clicked above); arrows
    # move, Enter / ArrowRight open a run and take the notebook to its cell, ArrowLeft closes it, Space selects it
    # for compare; Shift+Tab back to the Compare button, Enter opens the compare panel
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", PLAIN)
    page.locator(f"{SIDEBAR} input.nbops-Sidebar-filter").focus()      # where the keyboard starts
    page.keyboard.press("Tab")
    assert focused(page) == {"run": runs["first-fit"].info.run_id, "role": "option", "expanded": "true"}
    assert page.locator(f"{SIDEBAR} [role='listbox'] [role='option'][tabindex='0']").count() == 1
    page.keyboard.press("ArrowLeft")                                     # close first-fit
    page.wait_for_function("() => document.activeElement.getAttribute('aria-expanded') === 'false'")
    page.keyboard.press("ArrowUp")
    assert focused(page)["run"] == runs["second-fit"].info.run_id
    page.keyboard.press("Enter")                                         # open second-fit: its cell
    page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i", arg=SECOND)
    page.wait_for_function("() => document.activeElement.getAttribute('aria-expanded') === 'true'")
    assert run_item(page, "second-fit").locator(".nbops-run-details").is_visible()
    page.keyboard.press(" ")                                             # select second-fit
    page.keyboard.press("ArrowUp")
    assert focused(page)["run"] == runs["broken-fit"].info.run_id
    page.keyboard.press("ArrowRight")                                    # open broken-fit: its cell
    page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i", arg=BROKEN)
    page.keyboard.press("End")
    assert focused(page)["run"] == runs["first-fit"].info.run_id
    page.keyboard.press(" ")                                             # select first-fit
    selected = page.locator(f"{SIDEBAR} [role='option'][aria-selected='true'] .nbops-run-name").all_inner_texts()
    assert selected == ["second-fit", "first-fit"], selected
    assert run_item(page, "first-fit").locator("input.nbops-run-select").is_checked()
    page.keyboard.press("Shift+Tab")                                     # the filter
    page.keyboard.press("Shift+Tab")                                     # Compare (2)
    assert page.evaluate("() => document.activeElement.textContent") == "Compare (2)"
    page.keyboard.press("Enter")
    panel = page.locator(".nbops-Compare:visible")
    panel.locator("tr[data-key='accuracy'].nbops-mod-differs").wait_for()
    assert panel.locator("tr[data-key='lr'].nbops-mod-differs").count() == 1
    text = panel.inner_text()
    assert "baseline: first-fit" in text and "second-fit" in text and "0.93" in text
    assert panel.locator(".nbops-Head .nbops-Head-title").count() == 1   # the views' shared head (dom.ts)
    shot(page, "lab-compare")

    # -- the dark theme: the same sidebar, readable (JupyterLab's own variables: its colours change with it)
    run_item(page, "broken-fit").locator(".nbops-run-kv").hover()        # a hovered row is measured too
    light = contrast(page)
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'"
                           " && !document.querySelector('#jupyterlab-splash')")
    page.evaluate("() => window.jupyterapp.shell.activateById('nbops-sidebar')")
    run_item(page, "broken-fit").locator(".nbops-run-kv").hover()
    dark = contrast(page)
    assert dark["background"] != light["background"], (light, dark)     # it follows the theme
    for what, ratio in dark["ratios"].items():
        # WCAG AA: 4.5 for text; 3 for the chips' bold labels (large-scale text's bar is what they meet)
        assert ratio >= (3.0 if what.startswith("chip") else 4.5), (what, ratio, dark)
    shot(page, "lab-sidebar-dark")
    errors = [e for e in page.console_errors if "nbops" in e.lower()]
    assert not errors, errors


def focused(page) -> dict:
    return page.evaluate("""() => { const a = document.activeElement;
        return {run: a.dataset.runId, role: a.getAttribute('role'), expanded: a.getAttribute('aria-expanded')}; }""")


def contrast(page) -> dict:
    """WCAG contrast ratios of the sidebar's texts against the background they are drawn on (computed styles;
    a colour with alpha is blended over that background; the lowest of each kind), and the sidebar's background."""
    return page.evaluate("""() => {
        const rgba = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
        const bg = (node) => {
            for (let n = node; n; n = n.parentElement) {
                const c = rgba(getComputedStyle(n).backgroundColor);
                if (c[3] > 0) return c;
            }
            return [255, 255, 255, 1];
        };
        const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                                     return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
        const ratio = (node) => {
            const b = bg(node), c = rgba(getComputedStyle(node).color);
            const fg = [0, 1, 2].map(i => c[i] * c[3] + b[i] * (1 - c[3]));
            const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
            return Math.round(((l1 + 0.05) / (l2 + 0.05)) * 100) / 100;
        };
        const side = document.querySelector('#nbops-sidebar');
        const out = {};
        const pick = {'heading': '.nbops-Head-title', 'notebook': '.nbops-Sidebar-notebook', 'filter': 'input.nbops-Sidebar-filter',
                      'run name': '.nbops-run-name', 'run duration': '.nbops-run-duration', 'run kv': '.nbops-run-kv',
                      'details': '.nbops-run-details td', 'link': 'a.nbops-run-link'};
        for (const [k, sel] of Object.entries(pick)) {   // the lowest of every row (one of them hovered)
            for (const n of side.querySelectorAll(sel)) out[k] = Math.min(out[k] ?? Infinity, ratio(n));
        }
        for (const chip of side.querySelectorAll('.nbops-chip')) out['chip ' + chip.textContent] = ratio(chip);
        return {background: getComputedStyle(side).backgroundColor, ratios: out};
    }""")


PROMOTE_CELLS = [
    # sklearn imported before nbops's warm-up thread starts (it starts after this cell): a cell importing sklearn
    # while the warm-up imports can meet a half-imported polars (reported; not what this test is about)
    "%load_ext nbops\nimport sklearn.linear_model, sklearn.datasets",
    "%%track -e labext -n promo-fit --model model\nfrom sklearn.linear_model import LogisticRegression\n"
    "from sklearn.datasets import make_classification\nX, y = make_classification(n_samples=300, random_state=0)\n"
    "model = LogisticRegression(max_iter=500).fit(X, y)\naccuracy = float(model.score(X, y))",
    "%%track -e labext -n promo-fit-2 --model model\nmodel = LogisticRegression(max_iter=500, C=0.5).fit(X, y)\n"
    "accuracy = float(model.score(X, y))",
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
    return close_result(page)


def close_result(page) -> str:
    """The status of the result dialog a promote / rollback ends with, once it is closed."""
    result = page.locator(".jp-Dialog .nbops-Promote-result .nbops-Decision")
    result.wait_for()
    status = result.get_attribute("data-status")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    return status


@pytest.mark.services
def test_server_store_sidebar_promote_rollback_the_incident_dot_and_a_store_outage(tmp_path, store, mlflow_server,
                                                                                   monkeypatch):
    """Against a remote `mlflow server`: tracked cells run in Lab write there, the sidebar lists them, the status
    bar says "server"; promote behind a failing gate moves nothing, behind a passing one moves the alias; the
    models panel rolls it back with the registry's audit trail; all read back from the server. Then a real CPU hog
    on the host: the status bar's dot turns red, and a click on it shows the telemetry report with the incident.
    Last, the server stops: the sidebar says so in one line with what to do, the status bar says "down"; started
    again, both recover on their next read, the page not reloaded."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    for k, v in mlflow_server.env().items():
        monkeypatch.setenv(k, v)                  # the Lab, its kernels and this test's reads: the server
    client = MlflowClient(mlflow_server.url)
    with start_lab(tmp_path, PROMOTE_CELLS) as lab, lab_page(lab, NOTEBOOK, len(PROMOTE_CELLS)) as page:
        show_sidebar(page)
        status = page.locator(".nbops-StatusItem")
        page.wait_for_function("() => document.querySelector('.nbops-StatusItem')?.textContent"
                               ".startsWith('nbops: server')")
        for i in range(len(PROMOTE_CELLS)):
            assert run_cell(page, i) == []
        runs = {n: stored_run(client, n) for n in ("promo-fit", "promo-fit-2")}
        for run in runs.values():
            page.locator(f"{SIDEBAR} li.nbops-run[data-run-id='{run.info.run_id}'][data-status='FINISHED']"
                         ).wait_for()
        assert mlflow_server.url in status.get_attribute("title")

        # a gate that fails: nothing moves
        assert promote_in_dialog(page, "promo-fit", "labext-model", "accuracy>=1.5") == "gate-failed"
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias("labext-model", "champion")
        # gates that pass: the alias on each run's version in turn, with the audit trail
        assert promote_in_dialog(page, "promo-fit", "labext-model", "accuracy>=0.5") == "promoted"
        assert promote_in_dialog(page, "promo-fit-2", "labext-model", "accuracy>=0.5") == "promoted"
        v1, v2 = (client.get_model_version_by_alias("labext-model", a) for a in ("previous-champion", "champion"))
        assert (v1.run_id, v2.run_id) == (runs["promo-fit"].info.run_id, runs["promo-fit-2"].info.run_id)
        assert v2.tags.get("nbops.promote.status") == "promoted", v2.tags
        assert v2.tags.get("nbops.promote.who_source") == "jupyter" and v2.tags.get("nbops.promote.who"), v2.tags

        # the models panel: the alias and its run; roll back from there
        page.locator(f"{SIDEBAR} button.nbops-Sidebar-models").click()
        row = page.locator(".nbops-Models section[data-model='labext-model'] tr[data-alias='champion']")
        row.locator("td:nth-child(3)", has_text="promo-fit-2").wait_for()
        assert row.locator("td").nth(1).inner_text() == str(v2.version)
        row.locator("button.nbops-Model-rollback").click()
        dialog = page.locator(".jp-Dialog")
        assert dialog.locator(".nbops-Decision").get_attribute("data-status") == "dry-run"
        dialog.locator("input[name='reason']").fill("ui rollback")
        dialog.locator("button.jp-mod-warn").click()
        assert close_result(page) == "rolled-back"
        back = client.get_model_version_by_alias("labext-model", "champion")
        assert back.version == v1.version
        # the registry's own audit trail (nbops.registry.core.rollback), as %promote --rollback leaves it
        from nbops.registry import audit

        (event,) = [e for e in audit.events(back) if e["action"] == "rollback"]
        assert event["alias"] == "champion" and event["outcome"] == "done" and event["reason"] == "ui rollback"
        assert event["who_source"] == "jupyter" and event["who"] == v2.tags["nbops.promote.who"]
        assert event["replaced"] == str(v2.version)
        assert back.tags["nbops.promote.action"] == "rollback"
        assert back.tags["nbops.promote.status"].startswith("promoted (rollback)")
        assert client.get_model_version("labext-model", v2.version).tags["nbops.promote.status"].startswith(
            "rolled back")
        row.locator("td:nth-child(3)", has_text=re.compile("^promo-fit$")).wait_for()   # the panel read it again
        assert row.locator("td").nth(1).inner_text() == str(v1.version)
        # the same request without Jupyter's auth (no cookie), and with the session's cookie but no XSRF header
        # (not what ServerConnection sends): refused, nothing moves
        refused = page.evaluate("""async () => {
            const body = JSON.stringify({model: 'labext-model', alias: 'champion', dry_run: false});
            const anonymous = await fetch('/nbops/api/rollback', {method: 'POST', body, credentials: 'omit'});
            const noXsrf = await fetch('/nbops/api/rollback', {method: 'POST', body});
            return [anonymous.status, noXsrf.status];
        }""")
        assert refused == [403, 403]
        assert client.get_model_version_by_alias("labext-model", "champion").version == v1.version

        # -- a live host incident: other processes take every core; the dot turns red (the item asks the server
        # every 15 s), and a click shows the report with the ongoing incident
        dot = status.locator(".nbops-dot")
        assert dot.get_attribute("data-state") in ("ok", "incident")    # the server's sampler is running
        hog = Hog()
        try:
            status.locator(".nbops-dot[data-state='incident']").wait_for()
            assert "live host incident" in status.get_attribute("aria-label")
            status.click()
            # the report (read again every 15 s while shown): live incidents counted, an ongoing one listed
            page.locator(".nbops-Telemetry:visible:not([data-active='0'])"
                         " .nbops-Telemetry-incident[data-ongoing='true']").first.wait_for()
        finally:
            hog.stop()
        shot(page, "lab-telemetry-incident")
        errors = [e for e in page.console_errors if "nbops" in e.lower()]
        assert not errors, errors

        # -- the store goes down (after the console check: the browser logs each 503 it is answered)
        mlflow_server.stop()
        msg = page.locator(f"{SIDEBAR} .nbops-Sidebar-message.nbops-mod-error")
        msg.wait_for()                                                  # the sidebar's next read (every 10 s)
        line = msg.inner_text()
        assert line.startswith(f"The tracking store at {mlflow_server.url} does not answer") and "Start it" in line
        assert "\n" not in line and msg.evaluate("n => n.childElementCount") == 0, line   # one line of plain text
        for dump in ("Traceback", "HTTPConnection", "<", "Errno"):
            assert dump not in line, line
        page.wait_for_function("() => document.querySelector('.nbops-StatusItem').textContent"
                               " === 'nbops: server · down'")
        assert "does not answer" in status.get_attribute("title")
        shot(page, "lab-store-down")
        # -- back: the next read clears the message, lists the store's runs, and the status bar follows
        mlflow_server.start()
        msg.wait_for(state="detached")
        page.wait_for_function("() => document.querySelector('.nbops-StatusItem').textContent === 'nbops: server'")
        for run in runs.values():
            page.locator(f"{SIDEBAR} li.nbops-run[data-run-id='{run.info.run_id}'][data-status='FINISHED']"
                         ).wait_for()
        assert page.locator(f"{SIDEBAR} .nbops-Sidebar-message").inner_text() == ""


@pytest.mark.services
def test_status_bar_says_the_store_is_down_with_the_sidebar_closed(tmp_path, store, mlflow_server, monkeypatch):
    """The sidebar never opened and the notebook closed (nothing reads runs, as in a Lab on a terminal or the
    launcher): the status bar's own poll of /nbops/api/status says "server · down" when the server stops, and
    "server" once it is back, the page not reloaded."""
    for k, v in mlflow_server.env().items():
        monkeypatch.setenv(k, v)
    with start_lab(tmp_path, ["x = 1"]) as lab, lab_page(lab, NOTEBOOK, 1, width=1200, height=800) as page:
        text = "() => document.querySelector('.nbops-StatusItem')?.textContent"
        page.wait_for_function(f"{text} === 'nbops: server'")
        assert not page.locator(SIDEBAR).is_visible()
        page.evaluate("() => window.jupyterapp.shell.currentWidget.dispose()")   # closed, its changes discarded
        page.wait_for_function("() => document.querySelectorAll('.jp-NotebookPanel').length === 0")
        mlflow_server.stop()
        page.wait_for_function(f"{text} === 'nbops: server · down'")      # its next poll (every 15 s)
        title = page.locator(".nbops-StatusItem").get_attribute("title")
        assert f"The tracking store at {mlflow_server.url} does not answer" in title, title
        assert not page.locator(SIDEBAR).is_visible()
        mlflow_server.start()
        page.wait_for_function(f"{text} === 'nbops: server'")


def test_sidebar_degrades_to_one_line_without_the_server_extension(tmp_path, store):
    """The page of a server without nbops's server extension: the sidebar says so in one line, no error."""
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"nbops": False}}}))
    with start_lab(tmp_path, ["x = 1"]) as lab, lab_page(lab, NOTEBOOK, 1, width=1200, height=800) as page:
        show_sidebar(page)
        msg = page.locator(f"{SIDEBAR} .nbops-Sidebar-message.nbops-mod-error")
        msg.wait_for()
        assert "server extension is not enabled" in msg.inner_text()
        assert page.locator(".nbops-StatusItem").inner_text().strip() == "nbops: unavailable"
        # the extension built from this checkout is the one loaded (nbops_testing.jupyter_lab): its shared head
        assert page.locator(f"{SIDEBAR} .nbops-Head .nbops-Head-title").inner_text().lower() == "nbops"

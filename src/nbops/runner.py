"""``nbops run``: execute a notebook with papermill as one parent MLflow run.

The parent run holds the parameters papermill injected, the input and output notebook paths, the executed
notebook (``.ipynb`` and HTML), the duration and the status. The kernel is told the parent through its
environment (``NBOPS_PARENT_RUN_ID``, ``NBOPS_NOTEBOOK_PATH``, ``NBOPS_EXPERIMENT``, and the store / spool the
parent uses), so every ``%%track``, ``%drift``, ``%telemetry --log`` and ``%promote`` inside becomes its child.

A failing cell ends the parent FAILED with the cell's index, source and error; the partial output notebook is
still saved and logged; :attr:`NotebookRun.exit_code` is 1 (2 for bad input), which is what ``nbops run``
exits with, so a scheduler alerts. The parent is written through the one writer, so it spools like any run
when the store does not answer.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import config
from .errors import RunnerError

log = logging.getLogger("nbops")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- parameters -----------------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's CLI reads it: int, float, True/False/None, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise RunnerError(f"{where}: {name!r} is not a valid parameter name; use a Python identifier such as "
                          f"learning_rate.", exit_code=EXIT_USAGE)
    return name


def load_parameters_file(path: str | os.PathLike) -> dict:
    """A YAML (or JSON) mapping of parameter names to values."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise RunnerError(f"Parameters file {p} does not exist; pass a YAML file of name: value lines with -f.",
                          path=str(p), exit_code=EXIT_USAGE)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunnerError(f"Parameters file {p} is not valid YAML ({str(exc).splitlines()[0]}); write one "
                          f"`name: value` a line.", path=str(p), exit_code=EXIT_USAGE) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunnerError(f"Parameters file {p} holds a {type(data).__name__}, not a mapping; write one "
                          f"`name: value` a line.", path=str(p), exit_code=EXIT_USAGE)
    for k in data:
        _check_name(k, f"parameters file {p}")
    return dict(data)


def resolve_parameters(pairs: list | None = None, raw_pairs: list | None = None,
                       parameters_file: str | os.PathLike | None = None) -> dict:
    """The file's parameters, then ``-p NAME VALUE`` (typed), then ``-r NAME VALUE`` (kept as strings)."""
    params = load_parameters_file(parameters_file) if parameters_file else {}
    for flag, items, conv in (("-p", pairs, parse_value), ("-r", raw_pairs, str)):
        for item in items or []:
            if len(item) != 2:
                raise RunnerError(f"{flag} takes a name and a value, e.g. {flag} alpha 0.5.", exit_code=EXIT_USAGE)
            name, value = item
            params[_check_name(name, flag)] = conv(value)
    return params


# -- result ---------------------------------------------------------------------------------------------------
@dataclass
class NotebookRun:
    """What one ``nbops run`` did. ``exit_code``: 0 finished, 1 the notebook failed, 2 bad input."""
    notebook: str
    output: str
    status: str
    run_id: str | None
    experiment: str
    parameters: dict = field(default_factory=dict)
    duration_s: float = 0.0
    cells: int = 0
    executed: int = 0
    spooled: bool = False
    store: str | None = None
    url: str | None = None
    error: dict | None = None   # cell_index, exec_count, ename, evalue, source (or kind="dead_kernel"...)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else 130 if self.status == "KILLED" else EXIT_FAILED

    def _rows(self) -> list[tuple[str, str]]:
        """What the console and the HTML show, with secrets masked (cron appends it to a log file)."""
        from .tracking import redact

        return [(k, redact.text(str(v))) for k, v in self._raw_rows()]

    def _raw_rows(self) -> list[tuple[str, str]]:
        where = "spooled: run `nbops sync` when the store is back" if self.spooled else (self.url or self.store or "")
        rows = [("notebook", self.notebook), ("output", self.output),
                ("status", f"{self.status} in {self.duration_s:.1f}s, {self.executed}/{self.cells} cells"),
                ("run", f"{self.run_id} in experiment {self.experiment!r}"), ("recorded", where)]
        if self.parameters:
            rows.append(("parameters", ", ".join(f"{k}={'****' if _secret(k) else repr(v)}"
                                                 for k, v in self.parameters.items())))
        if self.error:
            e = self.error
            if "cell_index" in e:
                rows.append(("failed cell", f"#{e['cell_index']} (In [{e.get('exec_count')}]): "
                                            f"{e['ename']}: {e['evalue']}"))
            else:
                rows.append(("error", f"{e['ename']}: {e['evalue']}"))
        rows += [("warning", w) for w in self.warnings]
        return rows

    def __repr__(self) -> str:
        return "\n".join(["nbops run"] + [f"  {k:<11} {v}" for k, v in self._rows()])

    def _repr_html_(self) -> str:
        from .display.views import kv_html

        return kv_html([(k, html.escape(str(v))) for k, v in self._rows()], "nbops run")


# -- helpers --------------------------------------------------------------------------------------------------
def _is_ipykernel(kernel: str) -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "ipykernel" in " ".join(KernelSpecManager().get_kernel_spec(kernel).argv)
    except Exception:  # noqa: BLE001 - an unknown kernel name is papermill's to report
        return False


class _DropPapermillUnknown(logging.Filter):
    """nbops says it once, with the declared names; papermill's own line would repeat it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Passed unknown parameter" not in record.getMessage()


def _read_notebook(path: Path):
    import nbformat

    if not path.exists():
        raise RunnerError(f"Notebook {path} does not exist; check the path (relative paths start from "
                          f"{Path.cwd()}).", path=str(path), exit_code=EXIT_USAGE)
    if not path.is_file():
        raise RunnerError(f"{path} is a folder, not a notebook; give the path of an .ipynb file.",
                          path=str(path), exit_code=EXIT_USAGE)
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # noqa: BLE001 - JSON errors, schema errors, bad encodings
        raise RunnerError(f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); open it in Jupyter to repair it.",
                          path=str(path), exit_code=EXIT_USAGE) from exc


def _check_kernel(nb, kernel_name: str | None) -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as exc:
        known = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise RunnerError(f"No Jupyter kernel named {name!r} (installed: {known}); pass one with -k or install it "
                          f"(python -m ipykernel install --user --name {name}).", kernel=name,
                          exit_code=EXIT_USAGE) from exc
    return name


def declared_parameters(path: Path) -> dict | None:
    """The names the notebook's ``parameters`` cell declares (None when it has no such cell)."""
    import papermill as pm

    nb = _read_notebook(path)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        return None
    try:
        return dict(pm.inspect_notebook(str(path)))
    except Exception as exc:  # noqa: BLE001 - introspection is a courtesy
        log.debug("nbops: could not inspect %s: %s", path, exc)
        return None


def _secret(name: str) -> bool:
    from .tracking.redact import is_secret_name

    return is_secret_name(name)


def _masker(*notebooks):
    """The redactor, after it has learned the secrets in the code cells of ``notebooks`` (the input, and the
    executed output with papermill's injected-parameters cell)."""
    from .tracking import redact

    for nb in notebooks:
        for c in getattr(nb, "cells", []):
            if c.get("cell_type") == "code":
                redact.learn_source(c.source)
    return redact.text


def _html(text: str, name: str, masker) -> str | None:
    """The executed notebook (its saved JSON ``text``) as a self-contained page, masked; None if it cannot be
    read (the .ipynb is logged anyway). See :mod:`nbops.display.notebook_page` for why not nbconvert."""
    try:
        import json

        from .display.notebook_page import render

        return masker(render(json.loads(text), title=name))
    except Exception as exc:  # noqa: BLE001 - a partial or damaged output notebook
        log.warning("nbops: could not render %s as HTML (%s); the .ipynb is logged.", name, exc)
        return None


def _read_quietly(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4) if path.exists() else None
    except Exception:  # noqa: BLE001 - a partial output notebook: its text is masked all the same
        return None


def _count_executed(out: Path) -> tuple[int, int]:
    import nbformat

    try:
        nb = nbformat.read(str(out), as_version=4)
    except Exception:  # noqa: BLE001
        return 0, 0
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    return len(code), sum(1 for c in code if c.get("execution_count") is not None)


@contextlib.contextmanager
def _host_telemetry(tracker) -> Iterator[None]:
    """The host's samples over the run (series, anomalies marked) and the incidents it overlapped, into the
    parent (:func:`nbops.telemetry.overlap.watch_run`); never fails the run."""
    try:
        from .telemetry.overlap import watch_run

        cm = watch_run(tracker)
    except Exception as exc:  # noqa: BLE001 - psutil missing, ...: the run goes on without it
        log.debug("nbops: no host telemetry for this run: %s", exc)
        cm = contextlib.nullcontext()
    with cm:
        yield


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A scheduler stops a job with SIGTERM: end the parent run KILLED and shut the kernel down."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# -- the API --------------------------------------------------------------------------------------------------
def run_notebook(notebook: str | os.PathLike, output: str | os.PathLike | None = None,
                 parameters: dict | None = None, *, parameters_file: str | os.PathLike | None = None,
                 experiment: str | None = None, run_name: str | None = None, cwd: str | os.PathLike | None = None,
                 kernel_name: str | None = None, progress: bool | None = None, timeout: float | None = None,
                 start_timeout: float = 60, tags: dict | None = None,
                 parent_run_id: str | None = None, budget_usd: float | None = None) -> NotebookRun:
    """Execute ``notebook`` with papermill as one parent MLflow run; return what happened.

    ``output`` defaults to ``<notebook>.out.ipynb`` beside the input; ``parameters`` are injected as papermill
    does (``parameters_file`` first, ``parameters`` win); ``experiment`` defaults to ``NBOPS_EXPERIMENT`` /
    ``MLFLOW_EXPERIMENT_NAME`` / ``Default`` and is also the default for ``%%track`` inside; ``cwd`` (the
    kernel's working folder) defaults to the notebook's folder; ``progress`` (a bar per cell) defaults to
    stderr being a terminal; ``timeout`` limits each cell (seconds); ``tags`` are added to the parent run and
    ``parent_run_id`` makes it a child of that run (a runbook under its telemetry run); ``budget_usd`` caps what
    the notebook's tracked cells spend on LLM calls (the kernel's ``NBOPS_BUDGET_USD``, see nbops.llm.cost). Bad
    input raises
    :class:`~nbops.errors.RunnerError` before anything runs; a failing notebook does not raise: look at
    ``.status``, ``.error`` and ``.exit_code``.
    """
    import papermill  # noqa: F401 - slow: imported (and found missing) before the run is created
    from .tracking.capture import drop_secret_keys
    from .tracking.run import Tracker

    plan = _plan(notebook, output, parameters, parameters_file, cwd, kernel_name, progress, timeout, start_timeout)
    src, out, nb, params, warnings = plan.src, plan.out, plan.nb, plan.params, plan.warnings
    workdir, kernel, unknown, extra_tags = plan.workdir, plan.kernel, plan.unknown, tags
    s = config.settings(src.parent)
    exp = experiment or s.experiment
    tags = {"mlflow.source.name": str(src), "mlflow.source.type": "NOTEBOOK", "nbops.input_path": str(src),
            "nbops.output_path": str(out), "nbops.kernel": kernel, "nbops.cwd": str(workdir)}
    if unknown:
        tags["nbops.unknown_parameters"] = ",".join(unknown)
    tags.update({str(k): v for k, v in (extra_tags or {}).items()})
    if budget_usd is not None:
        tags["nbops.budget_usd"] = budget_usd
    tracker = Tracker(exp, run_name or src.stem, tags=tags, params=drop_secret_keys(params), kind="notebook",
                      settings=s, parent_run_id=parent_run_id, held=True).start()
    km = _kernel_manager(kernel) if _is_ipykernel(kernel) else None
    try:
        status, error, duration = _execute(plan, tracker, s, exp, timeout, start_timeout, km, budget_usd)
        cells, executed = _count_executed(out) if out.exists() else (sum(c.cell_type == "code" for c in nb.cells), 0)
        _record(tracker, src, out, nb, status, error, duration, cells, executed)
        tracker.finish(status)
        if error and "cell_index" not in error:  # interrupted, timed out (the cell still runs), dead: not idle
            km = _shutdown(km)
        _land(tracker, km)
    finally:
        _shutdown(km)
    result = NotebookRun(notebook=str(src), output=str(out), status=status, run_id=tracker.run_id, experiment=exp,
                         parameters=params, duration_s=duration, cells=cells, executed=executed,
                         spooled=bool(tracker.run.spooled), store=s.tracking_uri,
                         url=tracker.writer.run_url(tracker.run), error=error,
                         warnings=warnings + list(tracker.warnings))
    if error:
        where = f"cell #{error['cell_index']} (In [{error.get('exec_count')}])" if "cell_index" in error else "kernel"
        log.error("nbops run: %s failed at %s: %s: %s", src.name, where, error["ename"], error["evalue"])
    return result


@dataclass
class _Plan:
    """A notebook run's checked input: what ``run_notebook`` executes, where, and how."""
    src: Path
    out: Path
    nb: Any
    params: dict
    workdir: Path
    kernel: str
    progress: bool
    unknown: list[str]
    warnings: list[str]


def _plan(notebook, output, parameters, parameters_file, cwd, kernel_name, progress, timeout,
          start_timeout) -> _Plan:
    """Check everything before anything runs (bad input: a RunnerError with exit code 2)."""
    for what, v in (("timeout", timeout), ("start_timeout", start_timeout)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                              or v == float("inf")):
            raise RunnerError(f"{what}={v!r}: give a number of seconds greater than 0 (or leave it out).",
                              exit_code=EXIT_USAGE)
    src = Path(notebook).expanduser().resolve()
    nb = _read_notebook(src)
    if src.suffix != ".ipynb":
        raise RunnerError(f"{src} does not end in .ipynb; nbops run executes Jupyter notebooks.", exit_code=2)
    # -o naming the input itself runs the notebook in place (as papermill does): its cells are kept, its outputs
    # replaced; without -o the output is always a sibling file.
    out = Path(output).expanduser().resolve() if output else src.with_name(src.stem + ".out.ipynb")
    if not out.parent.is_dir():
        raise RunnerError(f"The output folder {out.parent} does not exist; create it or pick another -o.",
                          exit_code=EXIT_USAGE)
    params = dict(parameters_file and load_parameters_file(parameters_file) or {})
    for k, v in (parameters or {}).items():
        params[_check_name(k, "parameters")] = v
    from .tracking import redact

    redact.learn_params(params)  # -p api_token ...: masked wherever it reappears (notebook, HTML, console)
    _masker(nb)
    workdir = Path(cwd).expanduser().resolve() if cwd else src.parent
    if not workdir.is_dir():
        raise RunnerError(f"Working folder {workdir} does not exist; pass an existing one with --cwd.",
                          exit_code=EXIT_USAGE)
    kernel = _check_kernel(nb, kernel_name)
    warnings: list[str] = []
    unknown: list[str] = []
    if params:
        declared = declared_parameters(src)
        unknown = [k for k in params if declared is None or k not in declared]
        if unknown:
            where = (f"declares only {', '.join(declared) or 'none'}" if declared is not None
                     else "has no cell tagged 'parameters'")
            msg = (f"parameter {', '.join(unknown)} is not declared in {src.name} (it {where}); papermill injects "
                   f"it anyway")
            log.warning("nbops: %s", msg)
            warnings.append(msg)
    if progress is None:
        progress = sys.stderr.isatty()
    return _Plan(src, out, nb, params, workdir, kernel, progress, unknown, warnings)


def _execute(plan: _Plan, tracker, settings: config.Settings, experiment: str, timeout: float | None,
             start_timeout: float, km=None, budget_usd: float | None = None) -> tuple[str, dict | None, float]:
    """Run the notebook with papermill under ``tracker``'s run: (status, error or None, seconds). ``km``: the
    kernel's manager, which papermill then leaves running (see :func:`_kernel_manager`)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from .tracking import redact
    from .tracking.writer import FAILED, FINISHED, KILLED

    src, out, workdir, kernel, params, progress = (plan.src, plan.out, plan.workdir, plan.kernel, plan.params,
                                                   plan.progress)
    s, exp = settings, experiment
    kernel_env = {
        config.ENV_PARENT: tracker.run_id, config.ENV_NOTEBOOK: str(src), config.ENV_EXPERIMENT: exp,
        config.ENV_RUN_PID: str(os.getpid()),  # the kernel's sampler counts the run's whole tree as its own
        config.ENV_SPOOL: str(s.spool_dir),
        # the same store as the parent: the embedded one is found from the notebook's folder, so pin it
        config.ENV_HOME: str(config.home(src.parent)) if s.embedded else os.environ.get(config.ENV_HOME),
        "PYTHONUNBUFFERED": "1",  # the cells' output reaches the saved notebook as it is printed
        # papermill sends the next cell as soon as one ends: no idle time for the import warm-up to use, only
        # CPU taken from the cells (and from the other scheduled runs on the host). A user's own setting wins.
        "NBOPS_WARM_IMPORTS": os.environ.get("NBOPS_WARM_IMPORTS", "0"),
        # LLM calls of the notebook's tracked cells stop before passing it (nbops.llm.cost); else the user's own
        "NBOPS_BUDGET_USD": repr(budget_usd) if budget_usd is not None else os.environ.get("NBOPS_BUDGET_USD"),
    }
    channel = redact.open_channel()  # the kernel reports digests of the secrets it sees (never the values)
    kernel_env.update(channel)
    status, error = FINISHED, None
    t0 = time.time()
    pm_log = logging.getLogger("papermill")
    flt = _DropPapermillUnknown()
    pm_log.addFilter(flt)
    try:
        with config.environ(kernel_env), _sigterm_as_interrupt(), _host_telemetry(tracker):
            kw = {"execution_timeout": timeout} if timeout else {}
            if km is not None:  # an ipykernel: its start-up warnings would land in the output of a cell
                kw.update(km=km, extra_arguments=["--IPKernelApp.log_level=ERROR"])
            pm.execute_notebook(str(src), str(out), parameters=params, cwd=str(workdir), kernel_name=kernel,
                                progress_bar=progress, log_output=False, start_timeout=start_timeout, **kw)
    except PapermillExecutionError as exc:
        status = FAILED
        error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "ename": exc.ename,
                 "evalue": _ANSI.sub("", str(exc.evalue)), "source": exc.source,
                 "traceback": _ANSI.sub("", "\n".join(exc.traceback or []))}
    except KeyboardInterrupt:
        status = KILLED
        error = {"ename": "KeyboardInterrupt", "evalue": "the run was interrupted (Ctrl-C or SIGTERM)"}
    except Exception as exc:  # noqa: BLE001 - dead kernel, cell timeout, kernel that never started
        status = FAILED
        error = _classify(exc)
    finally:
        pm_log.removeFilter(flt)
    duration = time.time() - t0
    redact.read_channel(channel)
    return status, error, duration


def _kernel_manager(kernel: str):
    """A manager for the notebook's kernel that papermill (nbclient) does not shut down, because it did not make
    it: once the notebook has run, the kernel -- which has MLflow imported and the store open when the notebook
    tracked anything -- writes the parent run to the store (:func:`_land`), so this process never imports
    MLflow (about 2 s of CPU per scheduled run). The kernel clients nbclient makes are recorded, to be closed."""
    from jupyter_client.manager import AsyncKernelManager

    class KeptKernelManager(AsyncKernelManager):
        def client(self, **kwargs):
            c = super().client(**kwargs)
            self.nbops_clients.append(c)
            return c

    # Unix sockets rather than TCP ports where there are: parallel scheduled runs otherwise race for free ports
    # (a port picked free by one run is bound by another run's kernel first: "Address already in use", a dead
    # kernel), seen with 32 runs at once. In a folder of their own with a short path (sockets paths are limited
    # to ~100 characters), removed at shutdown.
    ipc = {}
    if os.name == "posix":
        import tempfile

        ipc = {"transport": "ipc", "ip": os.path.join(tempfile.mkdtemp(prefix="nbops-kernel-"), "k")}
    km = KeptKernelManager(kernel_name=kernel, **ipc)
    km.nbops_clients = []
    return km


def _shutdown(km) -> None:
    """Stop the kernel ``km`` manages (gracefully: its atexit handlers run) and close the clients; None."""
    if km is None:
        return None
    from jupyter_core.utils import run_sync

    for c in km.nbops_clients:
        c.stop_channels()
    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)()
    finally:
        run_sync(km.cleanup_resources)()
        if km.transport == "ipc":
            import shutil

            shutil.rmtree(os.path.dirname(km.ip), ignore_errors=True)
    return None


def _push_in_kernel(km, local: str) -> dict | None:
    """Have the kernel push the parent run ``local`` from the spool (:func:`nbops.tracking.writer.push_run`);
    its answer, or None when it cannot (a dead kernel, a kernel without nbops)."""
    import ast
    import queue

    from jupyter_core.utils import run_sync

    if km is None or not run_sync(km.is_alive)():
        return None
    kc = km.blocking_client()
    kc.start_channels(iopub=False, stdin=False, hb=False)
    try:
        # silent: no execution count, no history, no pre/post-run hooks; the work is a user expression, so
        # nothing lands in the user's namespace
        expr = f"__import__('nbops.tracking.writer', fromlist=['push_run']).push_run({local!r})"
        msg_id = kc.execute("", silent=True, store_history=False, user_expressions={"landed": expr})
        while True:
            try:
                reply = kc.get_shell_msg(timeout=5)
            except queue.Empty:
                if not run_sync(km.is_alive)():
                    return None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        answer = reply["content"].get("user_expressions", {}).get("landed", {})
        if answer.get("status") != "ok":
            log.debug("nbops: the kernel did not write the parent run (%s: %s)", answer.get("ename"),
                      answer.get("evalue"))
            return None
        return ast.literal_eval(answer["data"]["text/plain"])
    finally:
        kc.stop_channels()


def _land(tracker, km) -> None:
    """Put the parent run (held in the spool since it started) on the store: through the kernel when it can,
    else from here. A store that does not answer leaves it in the spool for ``nbops sync``."""
    import shutil

    from .tracking.writer import push_run

    run = tracker.run
    if not run.in_flight:
        return  # offline: spooled like every run
    try:
        out = _push_in_kernel(km, run.spool_id) or push_run(run.spool_id, tracker.writer)
    except Exception as exc:  # noqa: BLE001 - the store refused: the journal keeps it for `nbops sync`
        out = {"unreachable": f"{type(exc).__name__}: {exc}"}
    if out.get("run_id"):
        shutil.rmtree(tracker.writer.spool.root / run.spool_id, ignore_errors=True)
        run.landed(out["run_id"], out.get("experiment_id"))
        return
    why = out.get("unreachable", "the spool lost it")
    tracker.warnings.append(f"the run was not written to the store ({why}); it is in the spool: run `nbops sync`")
    log.warning("nbops: run %s is spooled to %s (%s). Run `nbops sync` when the store is back.", run.run_id,
                tracker.writer.spool.root, why)


def _classify(exc: BaseException) -> dict:
    name = type(exc).__name__
    text = _ANSI.sub("", str(exc)).strip()
    if name == "DeadKernelError" or "Kernel died" in text or "kernel died" in text.lower():
        return {"ename": "DeadKernelError", "evalue": f"the kernel died while running the notebook ({text[:300]}); "
                "look at the output notebook for the last cell that ran (it may have run out of memory or "
                "called os._exit)", "kind": "dead_kernel"}
    if name == "CellTimeoutError":
        return {"ename": name, "evalue": f"a cell ran longer than the timeout ({text[:300]})", "kind": "timeout"}
    if "Kernel didn't respond" in text or name in ("TimeoutError", "RuntimeError") and "kernel" in text.lower():
        return {"ename": name, "evalue": f"the kernel did not start ({text[:300]})", "kind": "kernel_start"}
    return {"ename": name, "evalue": text[:1000], "kind": "other"}


def _record(tracker, src: Path, out: Path, nb, status: str, error: dict | None, duration: float, cells: int,
            executed: int) -> None:
    """Everything the parent run keeps: counts, the executed notebook (.ipynb + HTML), the failure."""
    masker = _masker(nb, _read_quietly(out))
    tracker.log_metrics({"nbops.cells": cells, "nbops.cells_executed": executed,
                         "nbops.duration_s": round(duration, 3)})
    if out.exists():
        text = out.read_text(encoding="utf-8", errors="replace")
        masked = masker(text)
        tracker.log_text(masked, f"notebook/{out.name}")
        if masked != text:  # the -o output notebook on disk is masked as the stored one is (still a notebook)
            tmp = out.with_name(f".{out.name}.nbops-tmp")
            tmp.write_text(masked, encoding="utf-8")
            os.replace(tmp, out)
        page = _html(masked, out.name, masker)  # rendered from the masked notebook, then masked as HTML
        if page:
            tracker.log_text(page, f"notebook/{out.stem}.html")
    if error:
        tracker.set_tag("nbops.error", masker(f"{error['ename']}: {error['evalue']}")[:500])
        if "cell_index" in error:
            tracker.set_tags({"nbops.error.cell_index": error["cell_index"],
                              "nbops.error.exec_count": error.get("exec_count"),
                              "nbops.error.ename": error["ename"]})
            tracker.log_text(masker(error.get("source") or ""), "error/cell_source.py")
            tracker.log_text(masker(error.get("traceback") or ""), "error/traceback.txt")
        else:
            tracker.set_tag("nbops.error.kind", error.get("kind", "other"))


# -- CLI ------------------------------------------------------------------------------------------------------
def add_cli(sub) -> None:
    p = sub.add_parser("run", help="Execute a notebook with papermill as one tracked parent run.",
                       description="Execute NOTEBOOK with papermill. The whole run is one MLflow run (parameters, "
                                   "input/output paths, executed notebook as .ipynb and HTML, duration, status); "
                                   "every %%track/%drift/%telemetry --log/%promote inside is its child. Exit "
                                   "code: 0 finished, 1 a cell failed or the kernel died, 2 bad input, "
                                   "130 interrupted.")
    p.add_argument("notebook", help="The .ipynb to execute.")
    p.add_argument("-o", "--output", help="Where to save the executed notebook (default: NOTEBOOK.out.ipynb).")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), dest="parameters",
                   help="A parameter, typed as papermill does (int, float, True/False/None, else string); repeat.")
    p.add_argument("-r", "--parameter-raw", nargs=2, action="append", metavar=("NAME", "VALUE"), dest="raw",
                   help="A parameter kept as a string; repeat.")
    p.add_argument("-f", "--parameters-file", help="A YAML file of parameters (-p/-r override it).")
    p.add_argument("-e", "--experiment", help="MLflow experiment of the parent run and default for %%track "
                                              "inside (default: NBOPS_EXPERIMENT or 'Default').")
    p.add_argument("-n", "--name", help="Parent run name (default: the notebook's name).")
    p.add_argument("-k", "--kernel", help="Kernel name (default: the notebook's kernelspec).")
    p.add_argument("--cwd", help="The kernel's working folder (default: the notebook's folder).")
    from .cli import number

    p.add_argument("--timeout", type=number(float, above=0),
                   help="Fail a cell that runs longer than this many seconds (greater than 0).")
    p.add_argument("--budget-usd", type=number(float, above=0), metavar="USD",
                   help="Stop the notebook's tracked cells before an LLM call that would take their cost past USD "
                        "(prices: NBOPS_LLM_PRICES); that cell's run ends FAILED, tagged nbops.budget_exceeded.")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="Show a progress bar per cell (default: when stderr is a terminal).")
    p.set_defaults(func=_cli_run)


def _skip_unused_optional_imports() -> None:
    """``nbops run`` is its own process: spare it what no step of it uses. jsonschema (imported by nbformat, so
    by papermill) imports ``rfc3987_syntax`` when installed, only to check the ``iri`` formats, and that compiles
    38 lark grammars at import: about 1.6 s of CPU per run here. The notebook schema has no ``iri`` format and
    jsonschema imports it under ``suppress(ImportError)``, so marking it absent changes no validation nbops
    does. Only for the CLI: the Python API may run inside a user's process, whose jsonschema stays whole."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None in sys.modules: `import` raises ImportError


def _adopt_orphans() -> None:
    """``nbops run`` is its own process: make it the subreaper of its tree (Linux), so what the notebook starts in
    the background -- ``!mlflow server ... &``, a server that forks away from its shell, its workers -- stays in
    the run's process tree, adopted by this process instead of init, and its CPU counts as the run's own work
    (:class:`nbops.telemetry.local.Own`), not as other load on the host. Those that end wait as zombies (no CPU,
    no memory) until this process exits. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError) as exc:
        log.debug("nbops: not a subreaper: %s", exc)


def _cli_run(a) -> int:
    if a.own_process:  # the `nbops` command, not main() called inside a user's (or a test's) process
        _skip_unused_optional_imports()
        _adopt_orphans()
    if not a.progress:  # quiet logs for schedulers: papermill's INFO lines (paths, kernel) are noise there
        logging.getLogger("papermill").setLevel(logging.WARNING)
    for noisy in ("traitlets", "nbclient"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    params = resolve_parameters(a.parameters, a.raw, None)
    result = run_notebook(a.notebook, a.output, params, parameters_file=a.parameters_file, experiment=a.experiment,
                          run_name=a.name, cwd=a.cwd, kernel_name=a.kernel, progress=a.progress, timeout=a.timeout,
                          budget_usd=a.budget_usd)
    print(repr(result), file=sys.stdout if result.ok else sys.stderr, flush=True)
    return result.exit_code

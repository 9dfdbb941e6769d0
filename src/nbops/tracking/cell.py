"""Run one notebook cell under a :class:`~nbops.tracking.run.Tracker` and capture what it yields.

Cell hooks: context managers entered around the cell's execution, given the tracker; each is named by a
``"module:function"`` string and imported only when a tracked cell runs (so ``%load_ext`` stays fast).
The data module versions frames read from files; the telemetry module attaches the host's samples.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..errors import NbopsError, TrackingError
from . import capture
from .notebook import notebook_path
from .run import Tracker

log = logging.getLogger("nbops")

CELL_HOOKS: list[str] = [
    "nbops.data.autoversion:versions_reads",      # frames read with pandas.read_csv/read_parquet
    "nbops.telemetry.local:system_metrics",       # host samples of the cell's time window under system/
    "nbops.telemetry.overlap:run_incidents",      # host incidents the cell overlapped -> tag nbops.incidents
]


@dataclass
class CellOptions:
    experiment: str | None = None
    run_name: str | None = None
    params: list[str] | None = None
    metrics: list[str] | None = None
    data: list[str] = field(default_factory=list)
    model: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    snapshot: bool = False
    validate: str | None = None    # --validate REF: the --data frames are checked before the body runs


class _Tee:
    """Writes to the original stream and keeps a copy: the user still sees their output."""

    def __init__(self, stream, buf: io.StringIO):
        self._stream, self._buf = stream, buf

    def write(self, s):
        self._buf.write(s)
        return self._stream.write(s)

    def flush(self):
        return self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _cell_number(shell) -> tuple[int, int]:
    """The ``In [n]`` of the running notebook cell and the line its body starts after (1: the ``%%track`` line);
    ``(execution_count, 0)`` when the magic was called from Python."""
    names = getattr(shell.compile, "_filename_map", {})
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_filename in names:
            return names[f.f_code.co_filename], 1
        f = f.f_back
    return shell.execution_count, 0


def _execute(shell, cell: str) -> Any:
    """Run the cell body the way IPython would (magics and ``!`` lines included); return the last
    expression's value (None after a trailing ``;``). Exceptions propagate unchanged; their frames in the
    cell carry the notebook cell's own ``In [n]`` and line numbers."""
    src = shell.transform_cell(cell)
    tree = ast.parse(src)
    tree = shell.transform_ast(tree) or tree
    number, offset = _cell_number(shell)
    filename = shell.compile.cache("\n" * offset + src, number)  # tracebacks: "Cell In[n], line L" as shown
    ast.increment_lineno(tree, offset)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not shell.displayhook.semicolon_at_end_of_expression(cell):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec", flags=shell.compile.flags, dont_inherit=True), shell.user_ns)
    if last is not None:
        ast.fix_missing_locations(last)
        return eval(compile(last, filename, "eval", flags=shell.compile.flags, dont_inherit=True), shell.user_ns)
    return None


def _user_frames(tb):
    """The part of a traceback inside the user's cell (nbops's own frames above it dropped)."""
    ours = {__file__, _execute.__code__.co_filename}
    while tb is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    return tb


def _figures() -> dict[int, Any]:
    plt = sys.modules.get("matplotlib.pyplot")
    return {n: plt.figure(n) for n in plt.get_fignums()} if plt else {}


def _hooks(tracker: Tracker) -> list:
    out = []
    for spec in CELL_HOOKS:
        mod, fn = spec.split(":")
        out.append(getattr(importlib.import_module(mod), fn)(tracker))
    return out


def run_cell(shell, cell: str, opts: CellOptions) -> Any:
    """Execute ``cell`` in ``shell`` as one tracked run; returns the cell's value, shows a run summary."""
    ns = shell.user_ns
    _check_inputs(ns, opts)
    nb = notebook_path(ns)
    start_dir = os.path.dirname(nb) if nb and os.path.isabs(nb) and os.path.isdir(os.path.dirname(nb)) else os.getcwd()
    git = _background().submit(capture.git_info, start_dir)  # `git status` runs beside the cell
    tags = {**_start_tags(nb), "nbops.cell.execution_count": shell.execution_count,
            **{k: v for k, v in opts.tags.items() if not capture.is_secret_name(k)}}
    try:
        tracker = Tracker(opts.experiment, opts.run_name, tags=tags, settings=config.settings(start_dir))
        tracker.start()
    except (TrackingError, OSError) as exc:
        log.warning("nbops: tracking is unavailable, the cell runs untracked: %s", exc)
        return _execute(shell, cell)
    figs_before = {id(f) for f in _figures().values()}
    out, err = io.StringIO(), io.StringIO()
    base_rss = _rss()
    stop_rss = capture.peak_rss_sampler()
    t0 = time.perf_counter()
    value, exc_info = None, (None, None, None)
    try:
        with contextlib.ExitStack() as stack:
            for h in _hooks(tracker):
                try:
                    stack.enter_context(h)
                except Exception as e:  # noqa: BLE001 - a hook must never keep the cell from running
                    log.warning("nbops: a cell hook failed and is skipped: %s", e)
            stack.enter_context(contextlib.redirect_stdout(_Tee(sys.stdout, out)))
            stack.enter_context(contextlib.redirect_stderr(_Tee(sys.stderr, err)))
            pending = _validate_data(ns, opts, before=True)  # --validate: a violation stops the body
            value = _execute(shell, cell)
            _validate_data(ns, opts, names=pending)
    except BaseException:  # noqa: BLE001 - recorded, then re-raised unchanged
        et, ev, tb = sys.exc_info()
        exc_info = (et, ev, _user_frames(tb) or tb)
    wall = time.perf_counter() - t0
    peak = stop_rss()
    usage_error = None
    tracker.set_tags(_git_tags(git := git.result()))  # (git status ran beside the cell's body)
    try:
        _collect(shell, cell, opts, tracker, notebook=nb, git=git,
                 output=CellOutput(out.getvalue(), err.getvalue(), figs_before, wall, peak))
    except NbopsError as e:  # a user's mistake in the options (--data, --model, --params): said after the run
        usage_error = e
        if exc_info[0] is None:
            exc_info = (type(e), e, e.__traceback__)
    except Exception as e:  # noqa: BLE001 - capture must never cost the user their cell
        log.warning("nbops: could not capture everything from the cell: %s", e)
        tracker.warnings.append(f"capture: {e}")
    ev = exc_info[1]
    tracker.finish(exc=ev.with_traceback(exc_info[2]) if ev is not None else None)  # the user's frames only
    summary = tracker.summary(wall_s=wall, peak_rss=peak, base_rss=base_rss)
    shell.user_ns["_nbops_last_run"] = summary
    if usage_error is not None and usage_error is exc_info[1]:  # one line says it all, the run included
        usage_error.run_id = tracker.run_id
        usage_error.args = (f"{usage_error} (the cell ran; its run {tracker.run_id} is recorded as FAILED)",)
        raise usage_error.with_traceback(None)
    _show(tracker, summary, dict(wall_s=wall, peak_rss=peak, base_rss=base_rss))
    if exc_info[1] is not None:
        from ..magics import mark_user_traceback

        mark_user_traceback(exc_info[1], exc_info[2])  # shown with the user's frames only
        raise exc_info[1].with_traceback(exc_info[2])
    return value


def _show(tracker: Tracker, summary, measures: dict) -> None:
    """The run summary under the cell; a background run's summary is redrawn once the flusher wrote it (the
    store's run id and link replace the spool's)."""
    from ..display import show, update

    if not (tracker.run and tracker.run.in_flight):
        show(summary)
        return
    display_id = f"nbops-run-{tracker.run.spool_id}"
    show(summary, display_id=display_id)

    def landed(_run) -> None:
        summary.__dict__.update(tracker.summary(**measures).__dict__)
        update(summary, display_id)

    from .flusher import get_flusher

    get_flusher(tracker.settings).on_written(tracker.run, landed)


def _rss() -> int | None:
    """This process's resident memory now, in bytes (what the cell's peak is measured against)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            import psutil
            return psutil.Process().memory_info().rss
        except Exception:  # noqa: BLE001 - memory is a nicety in the summary
            return None


_EXECUTOR = None


def _background():
    """One worker thread for the side work of tracked cells (kept, so no thread is started per cell)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        from concurrent.futures import ThreadPoolExecutor

        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-cell")
    return _EXECUTOR


def _start_tags(nb: str | None) -> dict:
    """Tags known before the cell runs: written with the run itself (no extra write)."""
    tags = {"mlflow.source.type": "NOTEBOOK", "nbops.python_version": capture.environment()[0]}
    if nb:
        tags["mlflow.source.name"] = nb
    return tags


def _git_tags(git: dict) -> dict:
    if not git:
        return {}
    tags = {"mlflow.source.git.commit": git["commit"], "mlflow.source.git.branch": git["branch"],
            "nbops.git.dirty": str(git["dirty"]).lower()}
    if git.get("remote"):
        tags["mlflow.source.git.repoURL"] = capture.Masker()(git["remote"])
    return tags


@dataclass
class CellOutput:
    """What a tracked cell produced besides its namespace: its printed output, the figures open before it ran
    (only new ones are logged), its wall time (seconds) and peak resident memory (bytes)."""
    stdout: str
    stderr: str
    figures_before: set[int]
    wall_s: float
    peak_rss: int


def _collect(shell, cell: str, opts: CellOptions, tracker: Tracker, *, notebook: str | None, git: dict,
             output: CellOutput) -> None:
    """Log what the cell ran and made into its run: params, metrics, source, printed output, new figures, the
    notebook, the git diff, the environment, the ``--data`` frames and the ``--model``."""
    nb, stdout, stderr = notebook, output.stdout, output.stderr
    ns = shell.user_ns
    masker = capture.Masker(ns, cell)
    tracker.masker = masker
    # parameters: papermill's injected ones, then the cell's (explicit list or the literal-assignment rule)
    params = capture.papermill_parameters(list(ns.get("In", []))[:-1] if "In" in ns else [])
    if opts.params is not None:
        missing = [n for n in opts.params if n not in ns]
        if missing:
            raise NbopsError(f"--params: no variable named {', '.join(map(repr, missing))} after the cell ran; "
                             f"check the spelling or assign it in the cell.", variables=missing)
        params.update({n: ns[n] for n in opts.params})
    else:
        params.update(capture.auto_params(cell, ns))
    tracker.log_params({k: masker(str(v)) if isinstance(v, str) else v for k, v in capture.drop_secret_keys(params).items()})
    if opts.metrics is not None:
        bad = [n for n in opts.metrics if capture.as_number(ns.get(n)) is None]
        if bad:
            raise NbopsError(f"--metrics: {', '.join(map(repr, bad))} is not a number after the cell ran "
                             f"(a metric must be an int or float variable).", variables=bad)
        tracker.log_metrics({n: capture.as_number(ns[n]) for n in opts.metrics})
    else:
        tracker.log_metrics(capture.auto_metrics(cell, ns))
    tracker.log_metrics({"nbops.wall_time_s": output.wall_s, "nbops.peak_rss_mb": output.peak_rss / 2**20})
    # what the cell ran and printed
    tracker.log_text(masker(cell), "cell/source.py")
    if stdout:
        tracker.log_text(masker(stdout), "cell/stdout.txt")
    if stderr:
        tracker.log_text(masker(stderr), "cell/stderr.txt")
    for n, fig in _figures().items():
        if id(fig) not in output.figures_before:
            tracker.log_figure(fig, f"figures/figure_{n}.png")
    # where it ran: notebook, git, environment
    if nb and os.path.isfile(nb):  # the notebook as saved, with secrets masked like everything else
        tracker.log_text(masker(Path(nb).read_text(encoding="utf-8", errors="replace")), f"notebook/{Path(nb).name}")
    if git.get("diff"):
        tracker.log_text(masker(git["diff"]), "git/diff.patch")
    tracker.log_text(capture.environment()[1], "environment/requirements.txt")
    # data and model named on the command line
    for name in opts.data:
        if name not in ns:
            raise NbopsError(f"--data {name}: no variable named {name!r} after the cell ran; name a DataFrame "
                             f"the cell uses.", variable=name)
        from ..data import log_to_run

        log_to_run(tracker, ns[name], name=name, snapshot=opts.snapshot)
    if opts.model:
        if opts.model not in ns:
            raise NbopsError(f"--model {opts.model}: no variable named {opts.model!r} after the cell ran; name "
                             f"the fitted model variable.", variable=opts.model)
        tracker.log_model(ns[opts.model], name="model")
        from ..evaluation.models import remember  # %evaluate VAR finds this run

        remember(ns[opts.model], tracker.run_id)


def _check_inputs(ns, opts: CellOptions) -> None:
    """Mistakes in the options that can be seen before the body runs (one line, nothing run or recorded):
    a --snapshot of a frame parquet cannot store."""
    if opts.snapshot:
        from ..data.record import check_snapshot

        for name in opts.data:
            if name in ns:
                check_snapshot(ns[name], name)


def _validate_data(ns, opts: CellOptions, before: bool = False, names=None) -> list[str]:
    """``--validate REF``: check each ``--data`` frame against REF's contract (results shown, logged on this run);
    frames that exist before the body runs are checked then, the others right after it. Returns those left."""
    if not opts.validate:
        return []
    if not opts.data:
        raise NbopsError("--validate REF checks the --data frames: name them, e.g. --data train --validate REF.")
    todo = [n for n in (opts.data if names is None else names)]
    now = [n for n in todo if n in ns] if before else todo
    from ..display import show
    from ..validation.api import validate

    for name in now:
        if name not in ns:
            continue  # said by --data's own check after the cell
        try:
            show(validate(ns[name], opts.validate, fail=True, name=name))
        except NbopsError as exc:
            if getattr(exc, "result", None) is not None:
                show(exc.result)
            raise
    return [n for n in todo if n not in now]


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        if "=" not in p or not p.split("=", 1)[0].strip():
            raise NbopsError(f"--tag {p!r}: write tags as key=value, e.g. --tag team=growth.")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


def split_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise NbopsError(f"{', '.join(bad)} is not a variable name; give a comma-separated list like a,b,c.")
    return names

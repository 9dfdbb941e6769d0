"""Run one notebook cell under a :class:`~nbops.tracking.run.Tracker` and capture what it yields.

This is the domain-free core of ``%%track``: run the body, tee its output, catch its figures, log its params /
metrics / source / notebook / git / environment / model. What a domain adds to a tracked cell (``--data``
versions, ``--validate`` checks, frames read from files, host metrics, ``%evaluate``'s memory of the model) comes
in as *cell hooks*: ``"module:function"`` strings listed in :data:`nbops.hooks.CELL_HOOKS` (above the domains),
given to :func:`run_cell` and imported only when a tracked cell runs (so ``%load_ext`` stays fast). A hook is
``function(tracker, cell) -> context manager`` (``cell`` a :class:`TrackedCell`), entered before the body and
exited right after it (with the body's exception, if any):

- an :class:`~nbops.errors.NbopsError` raised on entry stops the body (the run ends FAILED, one line is shown);
- one raised on exit after a body that ran is the user's option mistake, said after the run like ``--params``;
- any other failure of a hook is a warning on the run: a hook never costs the user their cell.

A hook may also have a ``check(cell)`` attribute, called before the run starts: its NbopsError (an option that
cannot work, e.g. ``--snapshot`` of a frame parquet cannot store) stops the cell with nothing run or recorded.
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
from ..errors import CellStopped, NbopsError, TrackingError, mark_user_traceback
from . import capture, models
from .figures import FigureCatcher
from .notebook import CELL_ID_TAG, cell_id, notebook_path
from .run import Tracker

log = logging.getLogger("nbops")


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
    budget_usd: float | None = None  # --budget-usd X: LLM calls that would pass it are not made (nbops.llm)


@dataclass
class TrackedCell:
    """What a cell hook sees: the shell, the cell's source, its options and whether the body ran to its end."""
    shell: Any
    source: str
    opts: CellOptions
    ran: bool = False

    @property
    def ns(self) -> dict:
        return self.shell.user_ns

    def model(self) -> tuple[str, Any] | None:
        """(variable, object) of the cell's model, as ``--model`` and the automatic capture agree
        (:func:`nbops.tracking.models.find_model`); a one-line NbopsError for a ``--model`` that is not one."""
        return models.find_model(self.source, self.ns, self.opts.model)


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


class _Guard:
    """A hook's context manager as run_cell enters it: its exit never swallows the user's exception, and a failure
    other than the user's own mistake (an NbopsError after a body that ran) is a warning on the run."""

    def __init__(self, cm, tracker: Tracker, spec: str):
        self.cm, self.tracker, self.spec = cm, tracker, spec

    def __enter__(self):
        return self.cm.__enter__()

    def __exit__(self, et, ev, tb) -> bool:
        try:
            self.cm.__exit__(et, ev, tb)
        except NbopsError:
            if et is None:
                raise
        except Exception as e:  # noqa: BLE001 - a hook must never cost the user their cell
            log.warning("nbops: cell hook %s failed: %s", self.spec, e)
            self.tracker.warnings.append(f"{self.spec}: {e}")
        return False


def _hook(spec: str):
    """The factory a ``"module:function"`` hook names; None (with a warning) when it cannot be imported."""
    try:
        mod, fn = spec.split(":")
        return getattr(importlib.import_module(mod), fn)
    except Exception as e:  # noqa: BLE001 - a hook must never keep the cell from running
        log.warning("nbops: cell hook %s cannot be loaded and is skipped: %s", spec, e)
        return None


def _enter_hooks(stack: contextlib.ExitStack, factories, tracker: Tracker, cell: TrackedCell) -> None:
    for spec, factory in factories:
        if factory is None:
            tracker.warnings.append(f"{spec}: not loaded")
            continue
        try:
            stack.enter_context(_Guard(factory(tracker, cell), tracker, spec))
        except NbopsError:
            raise  # a check before the body (--validate): the cell stops here
        except Exception as e:  # noqa: BLE001 - a hook must never keep the cell from running
            log.warning("nbops: a cell hook failed and is skipped: %s", e)
            tracker.warnings.append(f"{spec}: {e}")


def run_cell(shell, cell: str, opts: CellOptions, hooks=()) -> Any:
    """Execute ``cell`` in ``shell`` as one tracked run; returns the cell's value, shows a run summary.
    ``hooks``: the cell hooks to run around the body (``"module:function"``, see the module's docstring).
    ``opts.experiment`` becomes the kernel's experiment (:func:`nbops.config.use_experiment`)."""
    ns = shell.user_ns
    tc = TrackedCell(shell, cell, opts)
    factories = [(spec, _hook(spec)) for spec in hooks]
    for _spec, factory in factories:  # option mistakes seen before anything runs: one line, no run
        if factory is not None and hasattr(factory, "check"):
            factory.check(tc)
    if opts.experiment:
        config.use_experiment(opts.experiment)
    nb = notebook_path(ns)
    start_dir = os.path.dirname(nb) if nb and os.path.isabs(nb) and os.path.isdir(os.path.dirname(nb)) else os.getcwd()
    git = _background().submit(capture.git_info, start_dir)  # `git status` runs beside the cell
    tags = {**_start_tags(nb), "nbops.cell.execution_count": shell.execution_count,
            **{k: v for k, v in opts.tags.items() if not capture.is_secret_name(k)}}
    if (cid := cell_id(shell, cell, nb)) and CELL_ID_TAG not in tags:
        tags[CELL_ID_TAG] = cid  # which cell made the run: JupyterLab's sidebar scrolls to it
    try:
        tracker = Tracker(opts.experiment, opts.run_name, tags=tags, settings=config.settings(start_dir))
        tracker.start()
    except (TrackingError, OSError) as exc:
        log.warning("nbops: tracking is unavailable, the cell runs untracked: %s", exc)
        return _execute(shell, cell)
    figures = FigureCatcher()
    out, err = io.StringIO(), io.StringIO()
    base_rss = _rss()
    stop_rss = capture.peak_rss_sampler()
    t0 = time.perf_counter()
    wall = None
    value, exc_info = None, (None, None, None)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(figures)
            _enter_hooks(stack, factories, tracker, tc)
            stack.enter_context(contextlib.redirect_stdout(_Tee(sys.stdout, out)))
            stack.enter_context(contextlib.redirect_stderr(_Tee(sys.stderr, err)))
            try:
                value = _execute(shell, cell)
                tc.ran = True
            finally:
                wall = time.perf_counter() - t0
    except BaseException:  # noqa: BLE001 - recorded, then re-raised unchanged
        et, ev, tb = sys.exc_info()
        exc_info = (et, ev, _user_frames(tb) or tb)
    wall = wall if wall is not None else time.perf_counter() - t0
    peak = stop_rss()
    # a hook's NbopsError after the body ran (--data names no frame): the user's option mistake, said after the run
    # (or a guard that stopped the body on purpose: a budget), said in one line naming the run
    usage_error = exc_info[1] if isinstance(exc_info[1], CellStopped) or \
        tc.ran and isinstance(exc_info[1], NbopsError) else None
    tracker.set_tags(_git_tags(git := git.result()))  # (git status ran beside the cell's body)
    try:
        _collect(shell, cell, opts, tracker, notebook=nb, git=git,
                 output=CellOutput(out.getvalue(), err.getvalue(), figures.drawn(), wall, peak))
    except NbopsError as e:  # a user's mistake in the options (--model, --params, --metrics): said after the run
        usage_error = usage_error or e
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
        ran = "the cell ran; its" if tc.ran else "its"
        usage_error.args = (f"{usage_error} ({ran} run {tracker.run_id} is recorded as FAILED)",)
        raise usage_error.with_traceback(None)
    _show(tracker, summary, dict(wall_s=wall, peak_rss=peak, base_rss=base_rss))
    if exc_info[1] is not None:
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
    """What a tracked cell produced besides its namespace: its printed output, the figures it drew ((number,
    Figure), shown-and-closed ones included), its wall time (seconds) and peak resident memory (bytes)."""
    stdout: str
    stderr: str
    figures: list
    wall_s: float
    peak_rss: int


def _collect(shell, cell: str, opts: CellOptions, tracker: Tracker, *, notebook: str | None, git: dict,
             output: CellOutput) -> None:
    """Log what the cell ran and made into its run: params (the estimators' hyperparameters included), metrics,
    source, printed output, figures, the notebook, the git diff, the environment and the model."""
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
    # the model (--model, or the last predictor the cell built or fitted) and every estimator's hyperparameters
    model, model_error = None, None
    try:
        model = models.find_model(cell, ns, opts.model)
    except NbopsError as e:  # said once everything else is logged
        model_error = e
    estimators = models.cell_estimators(cell, ns)
    if model is not None and models.is_estimator(model[1]) and all(o is not model[1] for o in estimators.values()):
        estimators[model[0]] = model[1]   # --model names one built before this cell
    params = models.merge_params(params, estimators)
    tracker.log_params({k: masker(str(v)) if isinstance(v, str) else v for k, v in capture.drop_secret_keys(params).items()})
    if model is not None:
        tracker.set_tags(models.model_tags(model[1]))
    if opts.metrics is not None:
        bad = [n for n in opts.metrics if capture.as_number(ns.get(n)) is None]
        if bad:
            raise NbopsError(f"--metrics: {', '.join(map(repr, bad))} is not a number after the cell ran "
                             f"(a metric must be an int or float variable).", variables=bad)
        tracker.log_metrics({n: capture.as_number(ns[n]) for n in opts.metrics})
    else:
        tracker.log_metrics(capture.auto_metrics(cell, ns))
    tracker.log_metrics({"nbops.wall_time_s": output.wall_s, "nbops.peak_rss_mb": output.peak_rss / 2**20})
    # what the cell ran, printed and drew
    tracker.log_text(masker(cell), "cell/source.py")
    if stdout:
        tracker.log_text(masker(stdout), "cell/stdout.txt")
    if stderr:
        tracker.log_text(masker(stderr), "cell/stderr.txt")
    names: set[str] = set()
    for n, fig in output.figures:  # figure numbers are reused once closed: each figure its own file
        name = next(f for i in range(len(names) + 1) if (f := f"figure_{n}" + (f"_{i}" if i else "")) not in names)
        names.add(name)
        tracker.log_figure(fig, f"figures/{name}.png")
    # where it ran: notebook, git, environment
    if nb and os.path.isfile(nb):  # the notebook as saved, with secrets masked like everything else
        tracker.log_text(masker(Path(nb).read_text(encoding="utf-8", errors="replace")), f"notebook/{Path(nb).name}")
    if git.get("diff"):
        tracker.log_text(masker(git["diff"]), "git/diff.patch")
    tracker.log_text(capture.environment()[1], "environment/requirements.txt")
    # the model named on the command line
    if model_error is not None:
        raise model_error
    if opts.model and model is not None:
        tracker.log_model(model[1], name="model")


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

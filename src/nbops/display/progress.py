"""Progress bars: tqdm where a person watches long work, nothing where no one does.

``from nbops.display.progress import tqdm`` in place of ``from tqdm.auto import tqdm``, with the caller's
``progress`` choice: ``False`` never shows a bar, ``True`` always does (at once), and ``None`` (the caller did
not ask) shows one only where a person watches -- a kernel with a notebook front end attached (a widget bar), or,
outside a kernel, a terminal (stderr is a tty: tqdm's own ``disable=None``). Headless kernels (papermill,
nbclient, ``nbops run``: saved outputs) and scripts whose stderr is a file or a pipe (cron, CI logs) get none, so
saved notebooks and logs never carry a bar. A bar nobody asked for appears only once the work has taken
``delay`` seconds (1 by default), so short work shows none.
"""
from __future__ import annotations

import contextlib
import os


def tqdm(*args, progress: bool | None = None, **kwargs):
    """A tqdm bar (``tqdm(iterable)`` or ``tqdm(total=...)``) shown as ``progress`` says (see the module docs)."""
    from . import headless_reason, in_kernel

    kernel = in_kernel()
    watched_kernel = kernel and headless_reason() is None
    if watched_kernel:
        from tqdm.auto import tqdm as _tqdm  # the notebook widget
    else:
        from tqdm.std import tqdm as _tqdm   # text on stderr: a terminal, or a saved output that asked for it
    if progress is None:
        kwargs["disable"] = not watched_kernel if kernel else None
        kwargs.setdefault("delay", 1.0)
    else:
        kwargs["disable"] = not progress
        kwargs.setdefault("delay", 0)
    return _tqdm(*args, **kwargs)


def quiet_libraries() -> None:
    """Headless: no MLflow artifact-transfer bars in the outputs either (unless the user chose otherwise)."""
    import os

    from . import headless_reason, in_kernel

    if in_kernel() and headless_reason() is not None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def no_transfer_bars():
    """No MLflow "Downloading artifacts" bar while nbops fetches its own small files (a contract, a snapshot, a
    sample): a bar for a file that takes a blink is noise under the cell. A value the user set is left alone."""
    var = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if var in os.environ:
        yield
        return
    os.environ[var] = "false"
    try:
        yield
    finally:
        os.environ.pop(var, None)

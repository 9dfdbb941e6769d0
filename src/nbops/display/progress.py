"""Progress bars: tqdm where a person watches long work, nothing where no one does.

``from nbops.display.progress import tqdm`` in place of ``from tqdm.auto import tqdm``: headless (papermill,
nbclient, ``nbops run``) the bar is disabled, so saved notebooks never carry a bar frozen at 0%; otherwise the
bar appears only once the work has taken ``delay`` seconds (1 by default), so short work shows none.
"""
from __future__ import annotations

import contextlib
import os


def tqdm(*args, **kwargs):
    from tqdm.auto import tqdm as _tqdm

    from . import headless_reason, in_kernel

    if in_kernel() and headless_reason() is not None:
        kwargs["disable"] = True
    kwargs.setdefault("delay", 1.0)
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

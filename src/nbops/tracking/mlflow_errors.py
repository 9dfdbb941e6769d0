"""What an MLflow failure means, and how to put a value into an MLflow filter string -- in one place.

MLflow's REST and SQL stores say the same thing in different ways (``RESOURCE_DOES_NOT_EXIST`` from one,
``NOT_FOUND`` or a plain "not found" message from another), so every module asks here instead of guessing.
"""
from __future__ import annotations

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def not_found(exc: BaseException) -> bool:
    """The store says the run, experiment, model or version asked for does not exist."""
    return getattr(exc, "error_code", "") in _NOT_FOUND or "not found" in str(exc).lower()


def already_exists(exc: BaseException) -> bool:
    """The store refused to create something because it exists (a race with another writer, or a retry)."""
    return getattr(exc, "error_code", "") in _EXISTS or "already exists" in str(exc).lower()


def quote(value: str) -> str:
    """``value`` as a literal of an MLflow search filter (``name = {quote(x)}``). MLflow's parser takes single or
    double quotes and no escapes, so a value holding a single quote is put in double quotes."""
    value = str(value)
    return f'"{value}"' if "'" in value else f"'{value}'"


def unreachable(exc: BaseException) -> bool:
    """The store did not answer (refused, timed out, 5xx): the writer's own rule (:func:`writer.is_unreachable`)."""
    from .outage import is_unreachable

    return is_unreachable(exc)


def store_down(uri: str | None = None, *, wrote: bool = False):
    """The one line for a tracking store that does not answer, as a :class:`~nbops.errors.TrackingError`.
    ``wrote``: the records were spooled (a write); else nothing could be read."""
    from .. import config
    from ..errors import TrackingError

    uri = uri or config.settings().tracking_uri
    what = "the records are spooled: run `nbops sync` when it is back" if wrote else \
        "nothing can be read from it (records written meanwhile are spooled; run `nbops sync` later)"
    return TrackingError(f"The tracking store at {uri} does not answer: {what}. Start it, or point "
                         f"MLFLOW_TRACKING_URI at a store that answers.", uri=uri)


def store_down_note(uri: str | None = None) -> str:
    """:func:`store_down`'s sentence without the error class, for a result's notes."""
    return store_down(uri).message


def untracked_note(exc: BaseException) -> str:
    """Why a result was computed and shown but not recorded: no run could be started (the store and the spool
    could not be written). One line for a result's warnings."""
    why = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return (f"not recorded: tracking is unavailable ({why}); the result is complete. Point MLFLOW_TRACKING_URI at a "
            f"store nbops can write, or make the project's .nbops folder writable, and run it again to record it.")


def store_down_for(exc: BaseException, tb=None):
    """For a front end's error boundary (the magics', the CLI's): the one-line :func:`store_down` error when
    ``exc`` is MLflow failing to reach the tracking store from inside nbops (a frame of nbops and one of mlflow
    on its way), ``None`` for anything else (the user's own code calling MLflow or requests keeps its
    traceback)."""
    import os

    tb = exc.__traceback__ if tb is None else tb
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # the nbops package
    if not any(f.startswith(here) for f in frames) or not any(f"{os.sep}mlflow{os.sep}" in f for f in frames):
        return None
    return store_down() if unreachable(exc) else None

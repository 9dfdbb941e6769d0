"""Why a store did not take a write: it does not answer (a server down, a timeout, a 5xx, "database is locked") or
it cannot be written (a full disk, a file-size limit, a read-only folder, a broken SQLite schema). Both send the
records to the spool; anything else is an answer (a 4xx, a bad value) and is raised. Shared by the writer, the
flusher and sync, and knowing none of them."""
from __future__ import annotations

import errno
import os

from ..errors import TrackingError


class StoreNotWritable(TrackingError):
    """The store's folder takes no lock file (read-only ``.nbops``): reads go on without the lock, writes stop."""


# A local store (SQLite) that cannot be written: a full disk, a file-size limit, a read-only folder, a schema left
# half-made. Its records go to the spool, like those of a server that does not answer.
_UNWRITABLE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM}
_UNWRITABLE_MARKERS = ("sqlite3.OperationalError", "sqlite3.DatabaseError", "database or disk is full",
                       "disk I/O error", "readonly database", "unable to open database file", "File too large",
                       "No space left on device", "Read-only file system")


def is_unwritable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a local store could not be written (disk full, file too large,
    read-only, I/O error, a broken SQLite schema) -- not that a value was refused."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StoreNotWritable):
            return True
        if isinstance(exc, OSError) and getattr(exc, "errno", None) in _UNWRITABLE_ERRNOS:
            return True
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        if any(m in text for m in _UNWRITABLE_MARKERS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_unavailable(exc: BaseException) -> bool:
    """The store did not take the write, for a reason of its own (down, unreachable or unwritable): spool it."""
    return is_unreachable(exc) or is_unwritable(exc)


_REASONS = ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
            "No route to host", "Permission denied", "Read timed out", "timed out", "Connection aborted",
            "RemoteDisconnected",
            "database or disk is full", "File too large", "No space left on device", "Read-only file system",
            "readonly database", "disk I/O error", "database is locked", "unable to open database file")


def short_reason(exc: BaseException) -> str:
    """``exc`` in one short line: the phrase that says what happened when one is known (``connection refused``),
    else the first line of its message, cut to 160 characters."""
    import re

    text = str(exc)
    found = next((r for r in _REASONS if r in text), None)
    if found is None:
        m = re.search(r"error code (\d{3})|table \S+ already exists", text)
        found = m.group(0) if m else None
    if found:
        return found[:1].lower() + found[1:]
    first = (text.strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:160]}"


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the store did not answer (refused, timed out, 5xx, locked), not that it said no
    (a 4xx such as a wrong password or a bad value is an answer: it is raised, never spooled)."""
    import re

    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                        TimeoutError)):
        return True
    text = f"{type(exc).__name__}: {exc}"
    http = re.search(r"API request to endpoint \S+ failed with error code (\d{3})", text)
    if http:  # MLflow's message for an HTTP error without an MLflow error body, after its own retries
        return int(http.group(1)) >= 500 or int(http.group(1)) == 429
    markers = ("Max retries exceeded", "Connection refused", "ConnectionError", "timed out", "Read timed out",
               "database is locked", "Failed to establish a new connection", "RemoteDisconnected",
               "Connection aborted", "too many 5", "too many 429", "TEMPORARILY_UNAVAILABLE",
               "502 Bad Gateway", "503 Service Unavailable", "504 Gateway Time")
    if any(m in text for m in markers):
        return True
    code = getattr(exc, "error_code", "")
    return code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE") and "500" in text


def bounded_http_retries() -> None:
    # MLflow retries a refused connection 7 times with exponential backoff (minutes). A notebook cell should not
    # hang that long before falling back to the spool: keep MLflow's retries, but fewer, unless the user set them.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

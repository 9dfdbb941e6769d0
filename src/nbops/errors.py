"""One error family. Every failure a user can act on is an :class:`NbopsError` with a sentence that says
what to do; what it is about (which run, which column, which URL, ...) travels as declared attributes.

In a shell with nbops loaded, a magic that raises an ``NbopsError`` prints exactly one line (``DriftError: ...``),
never a traceback of nbops's internals: see :func:`nbops.magics.install_error_boundary`.
"""
from __future__ import annotations

import logging
from typing import Any, ClassVar

try:  # IPython shows a UsageError as one line, with no traceback: what a user's mistake deserves.
    from IPython.core.error import UsageError as _UsageError
except ImportError:  # pragma: no cover - IPython is a dependency, but the API works without a shell
    class _UsageError(Exception):
        pass

log = logging.getLogger("nbops")


class NbopsError(_UsageError):
    """Base of every nbops error. ``str(err)`` is a message a user can act on; the declared fields below say
    what it is about (``None`` when it is not about that). A subclass declares its own in ``FIELDS``."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "run_id", "experiment", "model", "version", "alias", "column", "columns", "variable", "variables",
        "path", "uri", "url", "query", "source", "option", "notebook", "cause")
    run_id: str | None = None          # the MLflow run
    experiment: str | None = None
    model: str | None = None           # registered model name or models:/ URI
    version: str | None = None         # model version
    alias: str | None = None
    column: str | None = None
    columns: list | None = None
    variable: str | None = None        # the notebook variable the user named
    variables: list | None = None
    path: str | None = None            # a file or folder
    uri: str | None = None             # a tracking store
    url: str | None = None             # an HTTP endpoint (Prometheus, Alertmanager, ...)
    query: Any = None
    source: Any = None
    option: str | None = None          # the magic / command-line option at fault
    notebook: str | None = None
    cause: str | None = None

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        declared = self.declared()
        extra = {k: v for k, v in fields.items() if k not in declared}
        if extra:  # tolerated so a raise never turns into a TypeError; tests/unit keep the list complete
            log.debug("nbops: %s got undeclared fields %s", type(self).__name__, sorted(extra))
        for k, v in fields.items():
            setattr(self, k, v)
        self._given = list(fields)

    @classmethod
    def declared(cls) -> set[str]:
        """Every field this class and its bases declare."""
        out: set[str] = set()
        for klass in cls.__mro__:
            out.update(getattr(klass, "FIELDS", ()))
        return out

    @property
    def run(self) -> str | None:
        return self.run_id

    @property
    def fields(self) -> dict:
        """The fields given when the error was raised (to re-raise a wrapped error with the same context)."""
        return {k: getattr(self, k) for k in self._given}


class ConfigError(NbopsError):
    """Bad configuration: tracking URI, spool folder, environment variable."""


class OptionError(NbopsError):
    """A magic's line or a command's options that cannot be read (``option`` says which)."""


class TrackingError(NbopsError):
    """The tracking store refused or could not be reached (``uri`` says which)."""


class RunNotFound(NbopsError):
    """No run with that id in the store nor in the local spool (``run_id`` says which)."""


class DataError(NbopsError):
    """Data that cannot be versioned or compared (``column`` / ``path`` say which)."""
    FIELDS = ("digest", "name")
    digest: str | None = None
    name: str | None = None            # the dataset name


class DriftError(NbopsError):
    """A drift check that cannot be run as asked (``side``: reference or current)."""
    FIELDS = ("side", "only_reference", "only_current", "missing_reference", "missing_current")
    side: str | None = None
    only_reference: list | None = None
    only_current: list | None = None
    missing_reference: list | None = None
    missing_current: list | None = None


class DriftDetected(NbopsError):
    """Raised by ``check_drift(..., fail=True)`` when the batch drifted; carries ``report``."""
    FIELDS = ("report",)
    report: Any = None


class TelemetryError(NbopsError):
    """A telemetry source or detector failed (``url``/``query`` say which; ``status`` the HTTP status;
    ``selector`` the PromQL selector that matched no series)."""
    FIELDS = ("status", "prometheus_error", "detector", "selector")
    status: int | None = None
    prometheus_error: str | None = None
    detector: str | None = None
    selector: str | None = None


class PromotionError(NbopsError):
    """A promotion that could not be carried out; the registry is left consistent."""
    FIELDS = ("expr", "metric", "exit_code")
    expr: str | None = None
    metric: str | None = None
    exit_code: int | None = None


class GateFailed(PromotionError):
    """A promotion gate failed; nothing was moved. ``result`` holds every gate's outcome."""
    FIELDS = ("result",)
    result: Any = None


class CellStopped(NbopsError):
    """nbops stopped a tracked cell's body on purpose (a guard such as a budget): the run is recorded FAILED and the
    cell shows this one line, naming the run, instead of the run summary and a traceback."""


class BudgetExceeded(CellStopped):
    """An LLM call a tracked cell was about to make would take its run past ``--budget-usd``; it was not made."""
    FIELDS = ("spent_usd", "estimate_usd", "budget_usd")
    spent_usd: float | None = None
    estimate_usd: float | None = None
    budget_usd: float | None = None


class RunnerError(NbopsError):
    """A scheduled notebook run failed (``cell_index``, ``ename``, ``evalue`` when a cell raised)."""
    FIELDS = ("exit_code", "kernel", "cell_index", "ename", "evalue")
    exit_code: int | None = None
    kernel: str | None = None
    cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None


def mark_user_traceback(exc: BaseException, tb) -> None:
    """Ask the front end's error boundary (:func:`nbops.magics.install_error_boundary`) to show ``exc`` with
    ``tb`` -- the user's own frames of a tracked cell -- instead of the frames it crossed. Lives here, below
    everything, so that the tracking core never imports the front end."""
    try:
        exc._nbops_user_tb = tb
    except (AttributeError, TypeError):  # an exception type without __dict__: shown the usual way
        pass

"""One error family. Every failure a user can act on is an :class:`NbopsError` with a sentence that says
what to do; the structured fields (which run, which column, which URL) are attributes as well."""
from __future__ import annotations

try:  # IPython shows a UsageError as one line, with no traceback: what a user's mistake deserves.
    from IPython.core.error import UsageError as _UsageError
except ImportError:  # pragma: no cover - IPython is a dependency, but the API works without a shell
    class _UsageError(Exception):
        pass


class NbopsError(_UsageError):
    """Base of every nbops error. ``str(err)`` is a message a user can act on."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)
        self.fields = fields


class ConfigError(NbopsError):
    """Bad configuration: tracking URI, spool folder, environment variable."""


class TrackingError(NbopsError):
    """The tracking store refused or could not be reached (``uri`` says which)."""


class DataError(NbopsError):
    """Data that cannot be versioned or compared (``column`` / ``path`` say which)."""


class DriftError(NbopsError):
    """A drift check that cannot be run as asked."""


class DriftDetected(NbopsError):
    """Raised by ``check_drift(..., fail=True)`` when the batch drifted; carries ``report``."""


class TelemetryError(NbopsError):
    """A telemetry source or detector failed (``url``/``query`` say which)."""


class PromotionError(NbopsError):
    """A promotion that could not be carried out; the registry is left consistent."""


class GateFailed(PromotionError):
    """A promotion gate failed; nothing was moved. ``result`` holds every gate's outcome."""


class RunnerError(NbopsError):
    """A scheduled notebook run failed (``cell_index``, ``ename``, ``evalue`` when a cell raised)."""

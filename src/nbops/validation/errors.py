"""Errors of data validation (children of nbops's error family)."""
from __future__ import annotations

from typing import Any

from ..errors import DataError


class ValidationFailed(DataError):
    """Raised by ``validate(..., fail=True)`` when data breaks its contract; ``result`` holds the violations.
    ``nbops run`` exits non-zero on it."""
    FIELDS = ("result", "exit_code")
    result: Any = None
    exit_code: int | None = None

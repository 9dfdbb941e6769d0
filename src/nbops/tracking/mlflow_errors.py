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

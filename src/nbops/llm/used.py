"""Prompt versions the current tracked cell has loaded: ``nbops.prompt()`` notes each one, the LLM call capture
tags each call's trace with them. Cleared when a tracked cell starts."""
from __future__ import annotations

import threading

_LOCK = threading.Lock()
_USED: list[tuple[str, int]] = []


def note(name: str, version: int) -> None:
    with _LOCK:
        if (name, int(version)) not in _USED:
            _USED.append((name, int(version)))


def used() -> list[tuple[str, int]]:
    with _LOCK:
        return list(_USED)


def clear() -> None:
    with _LOCK:
        _USED.clear()

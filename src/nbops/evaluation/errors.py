"""Errors of model evaluation (children of nbops's error family)."""
from __future__ import annotations

from ..errors import NbopsError


class EvaluationError(NbopsError):
    """An evaluation that cannot be run as asked (``column`` / ``model`` say which)."""

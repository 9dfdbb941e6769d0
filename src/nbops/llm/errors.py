"""Errors of prompts and LLM evaluation (children of nbops's error family)."""
from __future__ import annotations

from ..errors import NbopsError


class PromptError(NbopsError):
    """A prompt that cannot be registered, loaded or filled as asked (``variable`` / ``version`` / ``alias``
    say which)."""
    FIELDS = ("prompt",)
    prompt: str | None = None          # the prompt's name

"""LLM calls, prompts and their evaluation (``nbops[llm]``): see the modules. Nothing here imports openai at
import time."""
from .._lazy import lazy_getattr

# public name -> "module:attribute", resolved on first use
_LAZY = {
    "calls": "nbops.llm.calls:calls",      # recorded calls of a run or experiment, as a DataFrame
    "prices": "nbops.llm.cost:prices",     # model prices (USD per million tokens)
}
__getattr__ = lazy_getattr("nbops.llm", _LAZY, globals())

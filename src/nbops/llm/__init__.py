"""LLM calls, prompts and their evaluation (``nbops[llm]``): see the modules. Nothing here imports openai at
import time."""

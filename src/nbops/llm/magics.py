"""``%%prompt NAME`` registers the cell body as a prompt version; ``%prompt NAME [--diff A B]`` shows a version
or what changed between two. Parse, call :mod:`nbops.llm.prompts`, show: no logic of its own.

Imports IPython and light nbops modules only (``%load_ext nbops`` stays instant).
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..magics import parse
from .errors import PromptError


@magics_class
class PromptMagics(Magics):

    @magic_arguments()
    @argument("name", help="Prompt name; as a line magic also NAME@alias or NAME/VERSION to show that version.")
    @argument("-m", "--message", help="Commit message of the new version (cell magic).")
    @argument("--alias", help="Move this alias to the version (cell magic), e.g. staging.")
    @argument("--diff", nargs=2, metavar=("A", "B"), type=int, help="Show what changed from version A to B.")
    @line_cell_magic
    def prompt(self, line: str, cell: str | None = None):
        """Prompts versioned in MLflow's prompt registry.

            %%prompt qa -m "shorter answers" [--alias staging]
            Answer in one short sentence: {{question}}

        registers the cell body (a {{variable}} template, or chat messages as a YAML list of role/content
        mappings) as a new version of prompt qa -- only when it changed ("unchanged, version N" otherwise).
        nbops.prompt("qa"), nbops.prompt("qa@production") or nbops.prompt("qa/3") loads it; .format(question=...)
        fills it. `%prompt qa` shows the latest version, `%prompt qa --diff 2 3` what changed.
        """
        from ..display import show
        from . import prompts

        a = parse(self.prompt, line)
        if cell is not None:
            if a.diff:
                raise PromptError("--diff belongs to the line magic: %prompt NAME --diff A B.", option="--diff")
            show(prompts.register(a.name, cell, a.message, a.alias))
            return None
        if a.message or a.alias:
            raise PromptError("-m and --alias register a version: put the template in a %%prompt cell body.",
                              option="--alias" if a.alias else "-m")
        if a.diff:
            show(prompts.diff(a.name, *a.diff))
            return None
        name, version, alias = prompts.parse_ref(a.name)
        show(prompts.get(name, version, alias))
        return None

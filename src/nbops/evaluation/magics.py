"""``%evaluate MODEL DATA --target COL``: parse, resolve the variables, call :func:`nbops.evaluate`, show.

Imports IPython and light nbops modules only (``%load_ext nbops`` stays instant).
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..magics import parse
from .errors import EvaluationError


def raw_word(line: str, index: int) -> str | None:
    """The ``index``-th word of a magic's line as typed (quotes kept, brackets kept whole): ``df[['a','b']]``
    stays one expression where shell-style splitting would have dropped its quotes."""
    words, cur, depth, quote = [], "", 0, None
    for ch in line.strip() + " ":
        if quote:
            cur += ch
            quote = None if ch == quote else quote
        elif ch in "'\"":
            cur, quote = cur + ch, ch
        elif ch in "([{":
            cur, depth = cur + ch, depth + 1
        elif ch in ")]}":
            cur, depth = cur + ch, depth - 1
        elif ch.isspace() and depth <= 0:
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += ch
    return words[index] if index < len(words) else None


def lift_expression(line: str, index: int) -> tuple[str, str | None]:
    """Take a non-identifier ``index``-th word (an expression such as ``df[['a', 'b']]``) out of the line before
    shell-style splitting would break it at its spaces or drop its quotes: ``(line with a placeholder, expr)``."""
    raw = raw_word(line, index)
    if not raw or raw.isidentifier() or raw.startswith("-") or raw[0] in "'\"":
        return line, None
    return line.replace(raw, "_nbops_expr_", 1), raw


def frame_arg(shell, line: str, index: int, parsed: str, magic: str, error=EvaluationError):
    """A magic's DATA argument: a variable, or a Python expression such as ``df[['x1', 'x2', 'y']]``."""
    ns = shell.user_ns
    if parsed in ns:
        return ns[parsed]
    raw = raw_word(line, index) if parsed == "_nbops_expr_" else None
    if raw and not raw.isidentifier() and not raw.startswith("-"):
        try:
            return eval(raw, ns)  # noqa: S307 - the user's own expression, in the user's namespace
        except Exception as exc:  # noqa: BLE001
            raise error(f"%{magic}: {raw} could not be evaluated ({type(exc).__name__}: {exc}); give a "
                                  f"DataFrame variable or expression.", variable=raw) from None
    raise error(f"%{magic}: no variable named {parsed!r}; give a DataFrame variable or expression.",
                variable=parsed)


@magics_class
class EvaluateMagics(Magics):

    @magic_arguments()
    @argument("model", help="Model variable (logged with %%track --model), runs:/RUN_ID/model, models:/NAME@ALIAS "
                            "or models:/NAME/VERSION; with --scorers a function or prompt variable, or "
                            "prompts:/NAME[@ALIAS|/VERSION].")
    @argument("data", help="DataFrame variable (or expression, e.g. df[['x1','x2','y']]) with the model's input "
                           "columns and the target.")
    @argument("--target", help="The target column (models).")
    @argument("--scorers", metavar="NAMES", help="LLM mode: comma-separated scorers (exact_match, contains, "
                                                 "json_valid, grounded, or variables holding scorers).")
    @argument("--model", dest="llm_model", metavar="NAME", help="LLM mode, prompts: the model to call.")
    @argument("--base-url", help="LLM mode, prompts: the OpenAI-compatible endpoint (key: OPENAI_API_KEY).")
    @argument("--max-tokens", type=int, default=256, help="LLM mode: max_tokens per call (default 256).")
    @argument("--task", choices=["regression", "classification"], help="Override the inferred task.")
    @argument("--slices", metavar="COLS", help="Comma-separated columns whose groups are scored apart "
                                               "(<metric>_worst_slice, <metric>_slice_gap).")
    @argument("--latency", action="store_true", help="Also time single-row and batch predictions "
                                                     "(latency_p50_ms, latency_p95_ms, batch_rows_per_s).")
    @argument("--run", help="Run to log on when the model's run cannot be found.")
    @argument("--no-log", action="store_true", help="Do not record anything in MLflow.")
    @argument("-e", "--experiment", help="Experiment for an evaluation run of its own (untracked models).")
    @argument("-o", "--output", metavar="VAR", help="Store the EvaluationResult in this variable.")
    @line_magic
    def evaluate(self, line: str):
        """Evaluate a model on labelled data: the task's metrics (r2/rmse/mae or accuracy/f1/precision/recall),
        per group of each --slices column (fairlearn MetricFrame) with the worst group and the gap, and with
        --latency the prediction latency. Logged on the model's run, so %promote --require can gate on them:

        %evaluate model holdout --target cnt --slices season --latency
        %promote bike --run RUN --require "latency_p95_ms<50" "r2_slice_gap<0.1"

        LLM mode (--scorers): a function or a prompt run over the rows (columns = its variables; optional
        'expected' and 'context'), each output scored; eval_<scorer> and llm_* metrics on a run of kind evaluation:

        %evaluate prompts:/qa/2 questions --scorers exact_match,grounded --model smollm2 --base-url URL
        %promote prompt qa --alias production --require "eval_grounded>=0.9"
        """
        line, expr = lift_expression(line, 1)
        a = parse(self.evaluate, line)
        if a.output and not a.output.isidentifier():
            raise EvaluationError(f"-o {a.output!r} is not a variable name.")
        ns = self.shell.user_ns
        if a.scorers:
            return self._llm(a, ns, expr, line)
        if a.llm_model or a.base_url:
            raise EvaluationError("--model and --base-url call an LLM: add --scorers (LLM mode).")
        if not a.target:
            raise EvaluationError("%evaluate needs --target COLUMN for a model, or --scorers for an LLM step.",
                                  option="--target")
        model = a.model
        if not model.startswith(("runs:/", "models:/")):
            if model not in ns:
                raise EvaluationError(f"%evaluate {model}: no variable named {model!r}; give the fitted model, or "
                                      f"runs:/... / models:/NAME@ALIAS.", variable=model)
            model = ns[model]
        data = frame_arg(self.shell, expr or line, 0 if expr else 1, a.data, "evaluate")
        from ..display import show
        from .api import evaluate

        slices = [s.strip() for s in (a.slices or "").split(",") if s.strip()]
        res = evaluate(model, data, a.target, task=a.task, slices=slices, latency=a.latency, run=a.run,
                       log_run=not a.no_log, experiment=a.experiment,
                       name=expr or a.data)
        if a.output:
            ns[a.output] = res
        show(res)

    def _llm(self, a, ns, expr, line):
        from ..display import show
        from .api import evaluate

        if a.target or a.task or a.latency or a.run:
            raise EvaluationError("--target, --task, --latency and --run are for models; an LLM step's truth is the "
                                  "data's 'expected' column.")
        subject = a.model
        if not subject.startswith("prompts:/"):
            if subject not in ns:
                raise EvaluationError(f"%evaluate {subject}: no variable named {subject!r}; give a function, a prompt "
                                      f"(nbops.prompt(...)) or prompts:/NAME.", variable=subject)
            subject = ns[subject]
        data = frame_arg(self.shell, expr or line, 0 if expr else 1, a.data, "evaluate")
        scorers = []
        for s in (x.strip() for x in a.scorers.split(",")):
            if s:
                scorers.append(ns[s] if s.isidentifier() and s in ns and not isinstance(ns[s], str) else s)
        slices = [s.strip() for s in (a.slices or "").split(",") if s.strip()]
        res = evaluate(subject, data, scorers=scorers, model=a.llm_model, base_url=a.base_url, slices=slices,
                       max_tokens=a.max_tokens, log_run=not a.no_log, experiment=a.experiment, name=expr or a.data)
        if a.output:
            ns[a.output] = res
        show(res)

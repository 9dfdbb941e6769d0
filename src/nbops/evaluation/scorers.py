"""Scorers of an LLM step's outputs (``nbops.evaluate(fn_or_prompt, data, scorers=[...])``).

A scorer maps one item -- the output text and the item's row (its input variables, ``expected`` and ``context``
when the data has them, ``input``: the prompt text sent) -- to a number in [0, 1] (NaN when it cannot say). The
run logs each scorer's mean as ``eval_<name>``. Give scorers by name (``"exact_match"``), made with a factory
(``regex(r"\\d+")``, ``max_chars(200)``, ``json_schema({...})``, ``llm_judge(model, base_url=...)``) or as a
plain function ``f(output, row) -> float`` (named after the function).

Deterministic scorers (no model): ``exact_match``, ``contains``, ``regex``, ``json_valid``, ``json_schema``,
``max_chars``, ``grounded``. Registry: :data:`SCORERS` (name -> factory of no arguments).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Callable

from .errors import EvaluationError


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[[str, dict], float]
    needs: tuple = ()          # columns the data must have: "expected", "context"

    def __call__(self, output: str, row: dict) -> float:
        return float(self.fn(output, row))


def _norm(s) -> str:
    return " ".join(str(s).split()).casefold()


def exact_match() -> Scorer:
    """1 when the output equals ``expected`` (case and surrounding/repeated whitespace ignored), else 0."""
    return Scorer("exact_match", lambda out, row: float(_norm(out) == _norm(row["expected"])), ("expected",))


def contains() -> Scorer:
    """1 when ``expected`` occurs in the output (case and whitespace ignored), else 0."""
    return Scorer("contains", lambda out, row: float(_norm(row["expected"]) in _norm(out)), ("expected",))


def regex(pattern: str, name: str = "regex") -> Scorer:
    """1 when ``pattern`` is found in the output (``re.search``), else 0."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise EvaluationError(f"regex({pattern!r}) is not a valid regular expression: {exc}.") from None
    return Scorer(name, lambda out, row: float(rx.search(str(out)) is not None))


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.S)


def _json(out: str):
    m = _FENCE.match(str(out))
    return json.loads(m.group(1) if m else str(out))


def json_valid() -> Scorer:
    """1 when the output parses as JSON (a surrounding ```json fence is allowed), else 0."""
    def score(out, row):
        try:
            _json(out)
            return 1.0
        except ValueError:
            return 0.0

    return Scorer("json_valid", score)


def json_schema(schema: dict, name: str = "json_schema") -> Scorer:
    """1 when the output is JSON valid against ``schema`` (JSON Schema, checked with ``jsonschema``), else 0."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a dependency of MLflow
        raise EvaluationError("json_schema needs the jsonschema package: pip install jsonschema.") from None
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise EvaluationError(f"json_schema: the schema is not valid JSON Schema ({exc.message}).") from None

    def score(out, row):
        try:
            return float(validator.is_valid(_json(out)))
        except ValueError:
            return 0.0

    return Scorer(name, score)


def max_chars(n: int, name: str = "max_chars") -> Scorer:
    """1 when the output has at most ``n`` characters, else 0."""
    if int(n) < 0:
        raise EvaluationError(f"max_chars({n}): give a number of characters >= 0.")
    return Scorer(name, lambda out, row: float(len(str(out)) <= int(n)))


# -- grounded -------------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\.\d+)?%?")
_QUOTED = re.compile(r"\"([^\"\n]{2,200})\"|\u201c([^\u201d\n]{2,200})\u201d|(?<!\w)'([^'\n]{2,200})'(?!\w)")
_WORD = re.compile(r"[A-Za-z\u00c0-\u024f][\w'\-]*")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")


def claims(answer: str) -> list[str]:
    """What :func:`grounded` checks in an answer: numbers (``1,200``, ``3.5``, ``12%``), phrases in quotes, and
    capitalised words (names) that do not start a sentence -- runs of them kept together (``New York``)."""
    text = str(answer)
    out: list[str] = []
    for m in _QUOTED.finditer(text):
        out.append(next(g for g in m.groups() if g))
    unquoted = _QUOTED.sub(" ", text)
    out += [m.group(0).rstrip("%").rstrip(".,") for m in _NUMBER.finditer(unquoted)]
    run: list[str] = []
    for m in _WORD.finditer(unquoted):
        w = m.group(0)
        starts = m.start() == 0 or bool(_SENTENCE_END.search(unquoted[:m.start()]))
        if w[0].isupper() and not starts and w != "I":
            if run and unquoted[prev_end:m.start()].strip() == "":
                run.append(w)
            else:
                if run:
                    out.append(" ".join(run))
                run = [w]
            prev_end = m.end()
        else:
            if run:
                out.append(" ".join(run))
            run = []
    if run:
        out.append(" ".join(run))
    seen, uniq = set(), []
    for c in out:
        k = c.casefold()
        if k and k not in seen:
            seen.add(k)
            uniq.append(c)
    return uniq


def _num(s: str) -> str:
    return s.replace(",", "")


def supported(claim: str, context: str) -> bool:
    """A claim occurs in the context: numbers compared without thousands separators, text case-insensitively
    with whitespace collapsed."""
    if _NUMBER.fullmatch(claim):
        nums = {_num(m.group(0).rstrip("%").rstrip(".,")) for m in _NUMBER.finditer(str(context))}
        return _num(claim) in nums
    return _norm(claim) in _norm(context)


def grounded_score(answer: str, context: str) -> float:
    """Supported claims / claims (1.0 when the answer makes no checkable claim)."""
    cs = claims(answer)
    if not cs:
        return 1.0
    return sum(supported(c, context) for c in cs) / len(cs)


def grounded() -> Scorer:
    """How much of the answer the row's ``context`` supports: the share of the answer's claims -- numbers, quoted
    phrases and capitalised names (see :func:`claims`) -- that occur in the context (:func:`supported`).

    Limits: it checks surface forms only. A paraphrased fact ("twelve" for "12", "NYC" for "New York") counts as
    unsupported; a wrong statement made only of lower-case words, or a true number used in a false sentence,
    counts as supported; an answer without numbers, quotes or names scores 1.0 whatever it says. Use it as a cheap
    tripwire for invented figures and names, next to ``llm_judge`` or human review for meaning."""
    return Scorer("grounded", lambda out, row: grounded_score(out, row["context"]), ("context",))


# -- LLM judge ------------------------------------------------------------------------------------------------
JUDGE_PROMPT = ("You grade answers. Criteria: {criteria}\n\nQuestion:\n{input}\n\n{extra}Answer:\n{output}\n\n"
                "Reply with one digit from 1 (fails the criteria) to 5 (fully meets them), and nothing else.")


def llm_judge(model: str, *, base_url: str | None = None, api_key: str | None = None, client=None,
              criteria: str = "The answer is correct, relevant and supported by the context.",
              name: str = "judge", max_tokens: int = 4) -> Scorer:
    """A model grades each output 1-5 against ``criteria`` (scored as (grade - 1) / 4; NaN when its reply holds
    no digit 1-5). Any OpenAI-compatible endpoint: ``client`` (an ``openai.OpenAI``), or ``base_url`` (and
    ``api_key``; the key is never stored)."""
    from .llm import openai_client

    cl = openai_client(client, base_url, api_key)

    def score(out, row):
        extra = "".join(f"{k.capitalize()}:\n{row[k]}\n\n" for k in ("context", "expected") if row.get(k) is not None)
        msg = JUDGE_PROMPT.format(criteria=criteria, input=row.get("input", ""), extra=extra, output=out)
        r = cl.chat.completions.create(model=model, messages=[{"role": "user", "content": msg}],
                                       max_tokens=max_tokens, temperature=0)
        m = re.search(r"[1-5]", r.choices[0].message.content or "")
        return (int(m.group(0)) - 1) / 4 if m else math.nan

    return Scorer(name, score)


SCORERS: dict[str, Callable[[], Scorer]] = {
    "exact_match": exact_match, "contains": contains, "json_valid": json_valid, "grounded": grounded,
}


def resolve(scorers) -> list[Scorer]:
    """Scorer names, :class:`Scorer` objects or plain ``f(output, row)`` functions -> scorers (names unique)."""
    if isinstance(scorers, (str, Scorer)) or callable(scorers):
        scorers = [scorers]
    out: list[Scorer] = []
    for s in scorers or ():
        if isinstance(s, Scorer):
            out.append(s)
        elif isinstance(s, str):
            key = s.strip()
            if key not in SCORERS:
                raise EvaluationError(f"Unknown scorer {key!r}: use one of {', '.join(sorted(SCORERS))}, or "
                                      f"regex(...), json_schema(...), max_chars(n), llm_judge(...) from "
                                      f"nbops.evaluation.scorers, or a function f(output, row) -> float.")
            out.append(SCORERS[key]())
        elif callable(s):
            out.append(Scorer(getattr(s, "__name__", "scorer"), s))
        else:
            raise EvaluationError(f"{s!r} is not a scorer: give a name, a Scorer or a function f(output, row).")
    if not out:
        raise EvaluationError("No scorers: pass scorers=['exact_match', ...] (or --scorers exact_match,...).")
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EvaluationError(f"Two scorers are named {', '.join(dup)}: pass name=... to tell them apart.")
    return out

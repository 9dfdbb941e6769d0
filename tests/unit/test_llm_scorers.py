"""The deterministic scorers of the LLM evaluation, on hand-made answers (no model, no store)."""
from __future__ import annotations


import pytest

from nbops.evaluation import scorers as sc
from nbops.evaluation.errors import EvaluationError


def _s(scorer, out, **row):
    return scorer(out, row)


def test_exact_match_and_contains():
    assert _s(sc.exact_match(), "  Paris ", expected="paris") == 1.0
    assert _s(sc.exact_match(), "Paris, France", expected="Paris") == 0.0
    assert _s(sc.contains(), "It is Paris, France", expected="paris") == 1.0
    assert _s(sc.contains(), "It is Lyon", expected="Paris") == 0.0


def test_regex_json_and_length():
    assert _s(sc.regex(r"\d{4}"), "in 1990") == 1.0 and _s(sc.regex(r"\d{4}"), "long ago") == 0.0
    with pytest.raises(EvaluationError, match="not a valid regular expression"):
        sc.regex("(")
    assert _s(sc.json_valid(), '{"a": 1}') == 1.0 and _s(sc.json_valid(), "```json\n[1, 2]\n```") == 1.0
    assert _s(sc.json_valid(), "{a: 1}") == 0.0
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    assert _s(sc.json_schema(schema), '{"answer": "x"}') == 1.0
    assert _s(sc.json_schema(schema), '{"answer": 3}') == 0.0 and _s(sc.json_schema(schema), "nope") == 0.0
    assert _s(sc.max_chars(5), "12345") == 1.0 and _s(sc.max_chars(5), "123456") == 0.0


def test_grounded_claims_and_score():
    ctx = "The Eiffel Tower in Paris was finished in 1889 and is 330 metres tall. Gustave Eiffel's company built it."
    assert sc.claims('It is in Paris, built by Gustave Eiffel in 1889, called "the iron lady".') == [
        "the iron lady", "1889", "Paris", "Gustave Eiffel"]
    assert sc.grounded_score("It was finished in 1889 in Paris and is 330 metres tall.", ctx) == 1.0
    # an invented number and an invented name: 2 of 4 claims unsupported
    assert sc.grounded_score("It was finished in 1899 in Paris by Carl Benz, 330 metres.", ctx) == pytest.approx(0.5)
    assert sc.grounded_score("It is a tall tower.", ctx) == 1.0          # no checkable claim
    assert sc.grounded_score("It cost 1,200 francs.", "The price: 1200 francs.") == 1.0  # thousands separators
    assert _s(sc.grounded(), "Built in 1889.", context=ctx) == 1.0


def test_resolve():
    def shout(output, row):
        return float(output.isupper())

    got = sc.resolve(["exact_match", sc.max_chars(10), shout])
    assert [s.name for s in got] == ["exact_match", "max_chars", "shout"]
    with pytest.raises(EvaluationError, match="Unknown scorer 'bleu'"):
        sc.resolve(["bleu"])
    with pytest.raises(EvaluationError, match="Two scorers are named max_chars"):
        sc.resolve([sc.max_chars(1), sc.max_chars(2)])

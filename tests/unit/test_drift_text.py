"""Free-text columns in check_drift: compared by descriptors (lengths, empty, refusals, invalid JSON) tested by the
ordinary engine, with planted drift and an i.i.d. no-drift case (no MLflow: log=False)."""
import json

import numpy as np
import pandas as pd

import nbops
from nbops.drift import text

WORDS = ("the answer depends on the context given in the question about weather prices cities rivers and "
         "history of science").split()


def answers(n, rng, words=(6, 14), refusal=0.0, empty=0.0):
    out = []
    for _ in range(n):
        u = rng.random()
        if u < refusal:
            out.append("I'm sorry, but I cannot help with that request.")
        elif u < refusal + empty:
            out.append("")
        else:
            out.append(" ".join(rng.choice(WORDS, rng.integers(*words))).capitalize() + ".")
    return out


def frame(n, rng, **kw):
    return pd.DataFrame({"answer": answers(n, rng, **kw), "latency_ms": rng.normal(500, 50, n)})


def flagged(report):
    f = report.to_frame()
    return set(f.index[f["drifted"]])


def test_longer_answers_drift_by_length():
    rng = np.random.default_rng(0)
    ref, cur = frame(600, rng), frame(600, rng, words=(12, 24))
    before = cur.copy()
    r = nbops.check_drift(ref, cur, log=False)
    pd.testing.assert_frame_equal(cur, before)                        # the caller's frame is untouched
    assert {"answer: length_chars", "answer: length_tokens"} <= flagged(r)
    assert "latency_ms" not in flagged(r) and "answer" not in r.to_frame().index
    assert r["answer: length_chars"].kind == "numeric" and r["answer: length_chars"].test == "KS"
    assert any("answer: text column" in n and "vocabulary overlap" in n for n in r.notes)


def test_more_refusals_drift_by_refusal_share():
    rng = np.random.default_rng(1)
    r = nbops.check_drift(frame(800, rng, refusal=0.02), frame(800, rng, refusal=0.15), log=False)
    assert "answer: refusal" in flagged(r)
    assert r["answer: refusal"].kind == "categorical"


def test_iid_text_does_not_drift():
    rng = np.random.default_rng(2)
    r = nbops.check_drift(frame(800, rng, refusal=0.05, empty=0.03), frame(800, rng, refusal=0.05, empty=0.03),
                          log=False)
    assert not r.is_drift, r.to_frame()[["p_adjusted", "effect", "drifted"]]
    assert {"answer: length_chars", "answer: length_tokens", "answer: empty", "answer: refusal"} <= \
        set(r.to_frame().index)


def test_json_output_checked_for_validity():
    rng = np.random.default_rng(3)

    def js(n, bad):
        return pd.DataFrame({"out": [('{"answer": "' + " ".join(rng.choice(WORDS, 5)) + '"')
                                     + ("" if rng.random() < bad else "}") for _ in range(n)]})

    r = nbops.check_drift(js(600, 0.01), js(600, 0.2), log=False)
    assert "out: invalid_json" in flagged(r)


def test_what_counts_as_text():
    assert text.is_text(pd.Series([f"a long answer that has many words in it, number {i}" for i in range(5)]))
    assert not text.is_text(pd.Series(["a long answer that has many words in it"] * 5))   # one label
    assert not text.is_text(pd.Series(["red", "green", "blue"] * 20))               # short categories
    assert not text.is_text(pd.Series([1, 2, 3]))
    d = text.descriptors(pd.Series(["I can\u2019t help with that.", "", None, "two words"]), json_ish=False)
    assert d["refusal"].tolist() == [True, False, None, False]
    assert d["empty"].tolist() == [False, True, None, False] and np.isnan(d["length_chars"][2])
    assert d["length_tokens"].tolist()[3] == 2
    assert json.loads("[]") == [] and text.jaccard({"a", "b"}, {"b", "c"}) == 1 / 3


def test_a_few_long_labels_stay_categories():
    labels = ["Electronics and accessories", "Home and garden furniture", "Sports and outdoor equipment"]
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"department": rng.choice(labels, 300)})
    cur = pd.DataFrame({"department": rng.choice(labels, 300, p=[0.6, 0.2, 0.2])})
    r = nbops.check_drift(ref, cur, log=False)
    assert r["department"].kind == "categorical" and "department" in flagged(r)

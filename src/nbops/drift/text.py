"""Free-text columns (prompts, LLM answers, comments) compared by what can be measured about them.

A column is *text* when its reference values are strings, not a few labels (more than 25 distinct values, or
more than half of them distinct), and either long (mean length above :data:`TEXT_MIN_MEAN_CHARS` characters) or
mostly multi-word and distinct. Testing such a column as categories
would call every batch drifted (each answer is new) and the identifier rule would skip it; instead each text
column ``c`` becomes descriptor columns, tested by the ordinary engine (KS for lengths, Chi-squared for shares),
so the report says what moved:

- ``c: length_chars`` -- characters; ``c: length_tokens`` -- whitespace-separated tokens (numeric);
- ``c: empty`` -- empty or whitespace-only (a share);
- ``c: refusal`` -- the text holds one of :data:`REFUSALS` (case-insensitive; a share);
- ``c: invalid_json`` -- only where the reference looks like JSON output (most values start with ``{`` or
  ``[``): the value does not parse as JSON (a share).

A descriptor that holds one value on both sides (no refusals anywhere) is left out. The vocabulary overlap --
the Jaccard index of the :data:`TOP_TERMS` most frequent terms (lower-cased words of 3+ letters) of each side --
is reported as a note, not tested. Missing values stay missing in every descriptor, so the missing-values test
speaks for them. ``categorical=[c]`` keeps a column as categories. A prepared ``Reference`` keeps the typing it
was prepared with.
"""
from __future__ import annotations

import json
import re
from collections import Counter

from .columns import DEFAULT_MAX_CATEGORIES

TEXT_MIN_MEAN_CHARS = 20
TOP_TERMS = 50
# Phrases a model uses when it declines; matched case-insensitively anywhere in the text.
REFUSALS = ("i'm sorry", "i am sorry", "i apologize", "i cannot", "i can't", "i can not", "i'm unable",
            "i am unable", "i'm not able", "i am not able", "i won't be able", "as an ai", "as a language model",
            "cannot help with", "can't help with", "cannot assist", "can't assist", "unable to provide",
            "not able to provide", "i must decline")
_REFUSAL = re.compile("|".join(re.escape(p) for p in REFUSALS).replace("'", "['\u2019]"), re.I)
_TERM = re.compile(r"[^\W\d_]{3,}")
SEP = ": "


def is_text(s) -> bool:
    """A column of free text (see the module docs), judged on the reference side."""
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return False
    v = s.dropna()
    if len(v) < 2 or not all(isinstance(x, str) for x in v.iloc[:2000]):
        return False
    distinct = v.nunique()
    if distinct <= DEFAULT_MAX_CATEGORIES and distinct <= 0.5 * len(v):
        return False  # a few labels, however long: categories
    if v.str.len().mean() > TEXT_MIN_MEAN_CHARS:
        return True
    return bool(v.str.strip().str.contains(r"\s").mean() > 0.5 and distinct > 0.5 * len(v))


def _json_ish(s) -> bool:
    v = s.dropna().astype(str).str.lstrip()
    return len(v) > 0 and v.str.startswith(("{", "[")).mean() > 0.5


def _invalid_json(x) -> bool:
    try:
        json.loads(x)
        return False
    except ValueError:
        return True


def descriptors(s, json_ish: bool):
    """The descriptor columns of one text column (a new frame; ``s`` is not modified)."""
    import pandas as pd

    miss = s.isna()
    t = s.where(~miss, "").astype(str)
    out = {"length_chars": t.str.len().astype(float), "length_tokens": t.str.split().str.len().astype(float),
           "empty": t.str.strip().eq(""), "refusal": t.str.contains(_REFUSAL)}
    if json_ish:
        out["invalid_json"] = t.map(_invalid_json)
    df = pd.DataFrame(out, index=s.index)
    for k in ("length_chars", "length_tokens"):
        df.loc[miss, k] = float("nan")
    for k in ("empty", "refusal", "invalid_json"):
        if k in df:
            df[k] = df[k].astype(object).where(~miss, None)
    return df


def top_terms(s, n: int = TOP_TERMS) -> set[str]:
    c = Counter()
    for x in s.dropna():
        c.update(w.lower() for w in _TERM.findall(str(x)))
    return {w for w, _ in c.most_common(n)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def expand(ref, cur, *, features=None, target=None, prediction=None, categorical=None, numeric=None):
    """Replace every text column present on both sides by its descriptors. Returns ``(ref, cur, features, target,
    prediction, numeric, notes)`` with the column lists renamed; the frames given are not modified."""
    import pandas as pd

    from .columns import column_list

    keep = set(column_list(categorical)) | set(column_list(numeric))
    wanted = None if features is None else set(column_list(features)) | set(column_list(target)) | \
        set(column_list(prediction))
    texts = [c for c in ref.columns if c in cur.columns and c not in keep and (wanted is None or c in wanted)
             and is_text(ref[c])]
    if not texts:
        return ref, cur, features, target, prediction, numeric, []
    notes, names, new_numeric = [], {}, list(column_list(numeric))
    ref_parts, cur_parts = [ref.drop(columns=texts)], [cur.drop(columns=texts)]
    for c in texts:
        rd, cd = descriptors(ref[c], _json_ish(ref[c])), descriptors(cur[c], _json_ish(ref[c]))
        both = pd.concat([rd, cd])
        cols = [k for k in rd.columns if both[k].nunique(dropna=True) > 1 or both[k].isna().any()]
        if not cols:
            cols = ["length_chars"]
        renamed = {k: f"{c}{SEP}{k}" for k in cols}
        names[c] = list(renamed.values())
        new_numeric += [renamed[k] for k in ("length_chars", "length_tokens") if k in renamed]
        ref_parts.append(rd[cols].rename(columns=renamed))
        cur_parts.append(cd[cols].rename(columns=renamed))
        overlap = jaccard(top_terms(ref[c]), top_terms(cur[c]))
        notes.append(f"{c}: text column, compared by {', '.join(cols)}; vocabulary overlap (Jaccard of the top "
                     f"{TOP_TERMS} terms) {overlap:.2f}")
    order = lambda df, parts: pd.concat(parts, axis=1)[  # noqa: E731 - keep the frame's column order
        [n for col in df.columns for n in (names.get(col, [col]))]]
    ref2, cur2 = order(ref, ref_parts), order(cur, cur_parts)

    def rename(v):
        if v is None:
            return None
        return [n for col in column_list(v) for n in names.get(col, [col])]

    return ref2, cur2, rename(features), rename(target), rename(prediction), new_numeric, notes

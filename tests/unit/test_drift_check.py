"""check_drift on real data and on every kind of bad input (no MLflow: log=False)."""
import sys

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import DriftError, NbopsError

from nbops_testing import DATASETS

FEATS = ["season", "mnth", "weekday", "workingday", "weathersit", "temp", "atemp", "hum", "windspeed", "casual",
         "registered", "cnt"]


@pytest.fixture(scope="module")
def day():
    return pd.read_csv(DATASETS / "bike_sharing" / "day.csv")


def check(ref, cur, **kw):
    return nbops.check_drift(ref, cur, log=False, **kw)


def flagged(report):
    f = report.to_frame()
    return set(f.index[f["drifted"]])


def test_bike_2011_vs_2012_flags_demand_not_calendar(day):
    r = check(day[day.yr == 0][FEATS], day[day.yr == 1][FEATS])
    assert r.is_drift
    assert {"cnt", "registered", "casual"} <= flagged(r)
    assert not flagged(r) & {"season", "mnth", "weekday", "workingday"}
    assert r["season"].kind == "categorical" and r["temp"].kind == "numeric" and r["cnt"].kind == "numeric"
    assert r["cnt"].effect > 0.5 and r["cnt"].p_adjusted < 1e-50
    frame = r.to_frame()
    assert frame["drifted"].dtype == bool and list(frame.index) == FEATS
    assert {"p_value", "p_adjusted", "effect", "statistic", "test"} <= set(frame.columns)


def test_bike_first_halves_do_not_flag_calendar(day):
    h = day[day.mnth <= 6]
    r = check(h[h.yr == 0][FEATS], h[h.yr == 1][FEATS])
    assert not flagged(r) & {"season", "mnth", "weekday"}
    assert "cnt" in flagged(r)


def test_bike_hourly_with_fdr(day):
    hour = pd.read_csv(DATASETS / "bike_sharing" / "hour.csv")
    cols = FEATS + ["hr"]
    r = check(hour[hour.yr == 0][cols], hour[hour.yr == 1][cols], correction="fdr")
    assert {"cnt", "registered", "casual"} <= flagged(r)
    assert not flagged(r) & {"season", "mnth", "weekday", "hr"}


def test_missing_values_are_tested_separately():
    rng = np.random.default_rng(1)
    a = pd.DataFrame(rng.normal(size=(40000, 3)), columns=list("abc"))
    ref, cur = a.iloc[:20000].copy(), a.iloc[20000:].copy()
    cur.loc[cur.index[:8000], "b"] = np.nan
    r = check(ref, cur)
    assert r.is_drift and r.drifted == ["b"]
    b = r["b"]
    assert b.reason == "missing values" and b.missing_cur == pytest.approx(0.4) and b.missing_ref == 0
    assert b.n_cur == 12000 and b.test == "KS" and not np.isnan(b.p_value)  # distribution tested on present values
    assert r.n_tests == 4  # 3 distribution tests + 1 missing-values test, all in one correction family


def test_same_missing_share_is_not_drift():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=5000)})
    cur = pd.DataFrame({"x": rng.normal(size=5000)})
    ref.loc[ref.index[::10], "x"] = np.nan
    cur.loc[cur.index[1::10], "x"] = np.nan
    assert not check(ref, cur).is_drift


def test_current_all_missing_is_drift_not_an_error():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    cur = pd.DataFrame({"x": [np.nan] * 500, "y": rng.normal(size=500)})
    r = check(ref, cur)
    assert r.drifted == ["x"] and r["x"].reason == "missing values" and "no values" in r["x"].note


def test_large_sample_tiny_shift_is_not_drift_but_min_effect_zero_is():
    rng = np.random.default_rng(1)
    a = pd.DataFrame(rng.normal(size=(300_000, 2)), columns=["a", "b"])
    b = pd.DataFrame(rng.normal(size=(300_000, 2)), columns=["a", "b"])
    b["a"] += 0.03
    r = check(a, b)
    assert not r.is_drift and r["a"].p_adjusted < 1e-6 and r["a"].effect < 0.05
    assert check(a, b, min_effect=0.0).drifted == ["a"]


def test_typing_strings_categoricals_bools_datetimes_and_unseen_categories():
    rng = np.random.default_rng(4)
    n = 3000
    ref = pd.DataFrame({"city": rng.choice(["paris", "lyon", "nice"], n), "flag": rng.random(n) < 0.3,
                        "plan": pd.Categorical(rng.choice(["a", "b"], n)), "when": pd.date_range("2024", periods=n,
                                                                                                   freq="h"),
                        "x": rng.normal(size=n), "k": rng.integers(0, 5, n)})
    cur = ref.copy()
    cur["city"] = rng.choice(["paris", "lyon", "nice", "brest"], n, p=[0.2, 0.2, 0.2, 0.4])
    cur["plan"] = pd.Categorical(rng.choice(["a", "b", "c"], n))
    r = check(ref, cur)
    kinds = {f.feature: f.kind for f in r}
    assert kinds == {"city": "categorical", "flag": "categorical", "plan": "categorical", "when": "datetime",
                     "x": "numeric", "k": "categorical"}
    assert r["city"].drifted and r["city"].new_categories == ["brest"]
    assert r["plan"].new_categories == ["c"] and r["plan"].drifted
    assert not r["when"].tested and "datetime" in r["when"].note
    assert not r["x"].drifted and not r["flag"].drifted
    assert any("brest" in n for n in r.notes)
    forced = check(ref, cur, numeric=["k"], categorical=["x"], features=["k", "x"])
    assert forced["k"].kind == "numeric" and forced["x"].kind == "categorical"


def test_identifier_columns_are_skipped_with_the_reason(day):
    """A running integer id (0..n vs n..2n), a shuffled row number, a random user_id and a string id are reported
    as skipped identifiers, not as drift; integer quantities (counts, even all-distinct ones) are still tested."""
    rng = np.random.default_rng(5)
    n = 2000

    def frame(start):
        return pd.DataFrame({"id": np.arange(start, start + n), "row": rng.permutation(np.arange(start, start + n)),
                             "user_id": rng.choice(10**9, n, replace=False), "order": [f"o{start + i}" for i in range(n)],
                             "cnt": rng.poisson(40, n), "big": rng.choice(10**9, n, replace=False),
                             "x": rng.normal(size=n)})
    r = check(frame(0), frame(n))
    kinds = {f.feature: f.kind for f in r}
    assert kinds == {"id": "identifier", "row": "identifier", "user_id": "identifier", "order": "identifier",
                     "cnt": "numeric", "big": "numeric", "x": "numeric"}
    assert not r.is_drift, r
    assert "row order (0..1999)" in r["id"].note and "numeric=['id']" in r["id"].note
    assert "filling 0..1999" in r["row"].note and "named 'user_id'" in r["user_id"].note
    assert any(n.startswith("Not tested: id, row, user_id, order") for n in r.notes)
    assert check(frame(0), frame(n), numeric=["id"], features=["id"])["id"].drifted   # forced: tested, drifted
    shifted = pd.DataFrame({"a": np.arange(500.0)})     # a float measurement on a grid: still tested
    assert check(shifted, shifted + 100)["a"].drifted
    # the bike data's running record index
    assert check(day.iloc[:300], day.iloc[300:])["instant"].kind == "identifier"


def test_target_and_prediction_reported_separately():
    rng = np.random.default_rng(5)
    n = 4000
    ref = pd.DataFrame({"x": rng.normal(size=n), "y": rng.integers(0, 2, n), "pred": rng.random(n)})
    cur = pd.DataFrame({"x": rng.normal(size=n), "y": (rng.random(n) < 0.8).astype(int), "pred": rng.random(n)})
    r = check(ref, cur, target="y", prediction="pred")
    assert [f.role for f in r] == ["feature", "target", "prediction"]
    assert r.output_drift and not r.feature_drift and r.drifted == ["y"]
    assert "target / prediction" in repr(r) and "target / prediction" in r._repr_html_()
    assert r.share_drifted == 0.0


def test_small_samples_warn_about_power():
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"x": rng.normal(size=40)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1, size=40)})
    r = check(ref, cur)
    assert any("Low power" in w for w in r.warnings)
    big = check(pd.DataFrame({"x": rng.normal(size=5000)}), pd.DataFrame({"x": rng.normal(size=5000)}))
    assert not big.warnings


def test_prepared_reference_is_reused_and_gives_the_same_answer():
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": rng.normal(size=20000), "c": rng.choice(list("abc"), 20000)})
    ready = nbops.drift.prepare_reference(ref)
    for shift in (0.0, 0.5):
        cur = pd.DataFrame({"x": rng.normal(shift, 1, 5000), "c": rng.choice(list("abc"), 5000)})
        a, b = check(ref, cur), check(ready, cur)
        assert [(f.feature, f.statistic, f.p_value, f.drifted) for f in a] == \
            [(f.feature, f.statistic, f.p_value, f.drifted) for f in b]
    assert ready.columns["x"].sorted is not None  # the reference was sorted once and is kept


def test_cvm_test_flags_the_shifted_column():
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "z": rng.normal(size=3000)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1, 2000), "z": rng.normal(size=2000)})
    cvm = check(ref, cur, test="cvm")
    assert cvm["x"].test == "CvM" and cvm.drifted == ["x"]


@pytest.mark.skipif(__import__("importlib").util.find_spec("alibi_detect") is not None,
                    reason="alibi-detect is installed here (tests/alibi/ covers the engine)")
@pytest.mark.parametrize("kwargs", [{"engine": "alibi"}, {"mmd": True}])
def test_alibi_options_without_the_extra_say_what_to_install(kwargs):
    df = pd.DataFrame({"x": np.arange(100.0)})
    with pytest.raises(DriftError, match=r'pip install "nbops\[alibi\]"') as e:
        check(df, df, **kwargs)
    assert "\n" not in str(e.value)
    assert "alibi_detect" not in sys.modules


def test_report_views():
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(list("ab"), 2000)})
    cur = pd.DataFrame({"x": rng.normal(1, 1, 2000), "c": rng.choice(list("ab"), 2000, p=[0.9, 0.1])})
    r = check(ref, cur)
    assert r.drifted == ["x", "c"]
    assert "DRIFT" in repr(r) and "<table" in r._repr_html_()
    fig = r.plot()
    assert len(fig.axes) == 4
    d = r.to_dict()
    assert d["is_drift"] is True and d["features"][0]["plot_data"]["kind"] == "numeric"
    import json
    assert json.loads(r.to_json())["drifted"] == ["x", "c"]
    h = r._repr_html_()  # one self-contained view: verdict, drifted columns first, the plot once
    assert h.index("DRIFT") < h.index("<table") < h.index("<img") and h.count("<img") == 1
    calm = check(ref, ref.sample(frac=1.0, random_state=1))
    assert not calm.is_drift and calm.plot() is not None  # shows the largest effects when nothing drifted


def _frames():
    rng = np.random.default_rng(10)
    return pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})


@pytest.mark.parametrize("make,words", [
    (lambda f: (f, f.drop(columns="b")), ["only in the reference", "'b'"]),
    (lambda f: (f, f.assign(c=1.0)), ["only in the current", "'c'"]),
    (lambda f: (f, f.assign(b=["x"] * 100)), ["'b'", "numeric", "text"]),
    (lambda f: (f, f.iloc[:0]), ["current frame is empty"]),
    (lambda f: (f.iloc[:1], f), ["single row"]),
    (lambda f: (f.assign(b=np.nan), f), ["no values at all", "'b'"]),
    (lambda f: (f.assign(b=3.0), f.assign(b=3.0)), ["constant", "'b'"]),
    (lambda f: (f, [1, 2, 3]), ["DataFrame"]),
    (lambda f: ("run:", f), ["run id"]),
    (lambda f: ("s3://x", f), ["not understood"]),
])
def test_bad_input_is_a_clear_error(make, words):
    ref, cur = make(_frames())
    with pytest.raises(DriftError) as e:
        check(ref, cur)
    assert isinstance(e.value, NbopsError)
    for w in words:
        assert w in str(e.value), str(e.value)


@pytest.mark.parametrize("kw,word", [({"p_val": 1.5}, "between 0 and 1"), ({"correction": "holm"}, "bonferroni"),
                                     ({"min_effect": -1}, "effect"), ({"test": "ad"}, "cvm"),
                                     ({"sample": 1}, "rows"), ({"features": ["a", "zz"]}, "zz"),
                                     ({"on_drift": "missing.ipynb"}, "existing notebook")])
def test_bad_options_are_clear_errors(kw, word):
    f = _frames()
    with pytest.raises(DriftError, match=word):
        check(f, f, **kw)


def test_sample_option_limits_rows():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"x": rng.normal(size=50000)})
    r = check(ref, ref.copy(), sample=1000)
    assert r["x"].n_ref == 1000 and r["x"].n_cur == 1000


def _dtype_variants(df):
    """The same values in every container pandas 2 and 3 hand out: object/str strings, nullable and pyarrow
    dtypes, categoricals, datetimes at second/millisecond resolution."""
    import pyarrow as pa

    obj = df.assign(s=df["s"].astype(object))
    nullable = df.assign(s=df["s"].astype("string"), i=df["i"].astype("Int64"), b=df["b"].astype("boolean"))
    arrow = df.assign(s=df["s"].astype(pd.ArrowDtype(pa.string())), i=df["i"].astype("int64[pyarrow]"),
                      b=df["b"].astype("bool[pyarrow]"), t=df["t"].astype("timestamp[ms][pyarrow]"))
    return {"default": df, "object": obj, "nullable": nullable, "arrow": arrow,
            "category": df.assign(s=df["s"].astype("category"))}


def test_every_dtype_container_gives_the_same_verdicts_and_numbers():
    rng = np.random.default_rng(1)
    n = 3000
    ref = pd.DataFrame({"s": rng.choice(["a", "b", "c", None], n), "i": rng.integers(0, 50, n).astype(float),
                        "b": rng.choice([True, False], n),
                        "t": pd.date_range("2026-01-01", periods=n, freq="h").as_unit("s")})
    ref.loc[::7, "i"] = np.nan
    cur = ref.sample(frac=1, random_state=2).reset_index(drop=True)
    cur.loc[:500, "s"] = "a"
    results = {}
    for (name, r), c in zip(_dtype_variants(ref).items(), _dtype_variants(cur).values()):
        rep = check(r, c, plots=False)
        results[name] = [(f.feature, f.kind, f.test, round(f.statistic, 9), round(f.p_value, 12), f.drifted)
                         for f in rep]
    first = results.pop("default")
    assert [r[:3] for r in first] == [("s", "categorical", "Chi2"), ("i", "numeric", "KS"),
                                      ("b", "categorical", "Chi2"), ("t", "datetime", "")]
    assert first[0][-1] is True  # the planted change in s
    for name, rows in results.items():
        assert str(rows) == str(first), name

"""Digest scheme v2: the same values give the same digest in every container (pandas 2 object strings, pandas 3
``str``, masked and pyarrow-backed dtypes, polars, numpy) and at every datetime resolution; a change of values
still changes it; v1 and v2 digests are told apart, never compared."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from nbops.data import DataVersion, fingerprint
from nbops.data.compare import compare
from nbops.data.lineage import Lineage

pa = pytest.importorskip("pyarrow")


def fp(obj, **kw):
    return fingerprint(obj, **kw).digest


def col_digest(obj) -> str:
    return fingerprint(obj).profile["columns"][0]["digest"]


def base():
    return pd.DataFrame({
        "when": pd.to_datetime(["2026-01-01", None, "2026-01-03 12:30:00.000001"], format="ISO8601"),
        "city": pd.Series(["Oslo", None, "Lima"], dtype=object),
        "n": np.array([1, 2, 3], dtype="int64"),
        "x": [0.5, np.nan, 1.25],
        "ok": [True, False, True],
    })


def test_digest_records_its_scheme():
    v = fingerprint(base())
    assert v.digest.startswith("v2:") and len(v.digest) == 35 and v.scheme == 2
    assert v.short == v.digest[:15]
    assert [c["type"] for c in v.schema] == ["timestamp", "string", "int64", "float64", "bool"]
    assert v.mlflow_schema()["nbops"]["digest_scheme"] == 2


@pytest.mark.parametrize("kind", ["object", "str", "string", "string[python]", "string[pyarrow]", "arrow",
                                  "str[python]"])
def test_text_columns_hash_the_same_in_every_container(kind):
    values = ["Oslo", None, "Lima", "", "é€𝄞", "Oslo"]
    ref = fp(pd.Series(values, dtype=object, name="c"))
    if kind == "arrow":
        s = pd.Series(values, dtype=pd.ArrowDtype(pa.string()), name="c")
    elif kind == "str[python]":  # pandas 3's str without pyarrow (NaN as missing)
        s = pd.Series(values, dtype=pd.StringDtype("python", na_value=np.nan), name="c")
    else:
        s = pd.Series(values, dtype=kind, name="c")
    assert fp(s) == ref, str(s.dtype)
    large = pd.Series(values, dtype=pd.ArrowDtype(pa.large_string()), name="c")
    assert fp(large) == ref


def test_every_missing_value_in_text_is_one_missing_value():
    digests = {fp(pd.Series(["a", na, "b"], dtype=object)) for na in (None, np.nan, pd.NA, pd.NaT, float("nan"))}
    assert len(digests) == 1
    assert fp(pd.Series(["a", "", "b"], dtype=object)) not in digests       # "" is a value
    assert fp(pd.Series(["a", "None", "b"], dtype=object)) not in digests   # so is the text "None"
    assert fp(pd.Series([None, None], dtype=object)) == fp(pd.Series([None, None], dtype="string"))


def test_text_index_is_content_whatever_its_container():
    frame = pd.DataFrame({"x": [1, 2]}, index=pd.Index(["a", "b"], dtype=object, name="k"))
    assert fp(frame) == fp(frame.set_axis(pd.Index(["a", "b"], dtype="string[pyarrow]", name="k")))
    assert fp(frame) != fp(frame.set_axis(pd.Index(["a", "c"], dtype=object, name="k")))
    assert fingerprint(frame).profile["index"]["types"] == ["string"]


def test_strings_are_not_ambiguous_and_every_byte_counts():
    assert fp(pd.Series(["ab", "c"])) != fp(pd.Series(["a", "bc"]))
    assert fp(pd.Series(["a", None])) != fp(pd.Series([None, "a"]))
    big = pd.Series([f"v{i % 1000}" for i in range(300_000)], dtype="string[pyarrow]")
    d = fp(big)
    changed = big.copy()
    changed.iloc[299_999] = "v99!"
    assert fp(changed) != d


def test_arrow_chunks_and_slices_do_not_matter():
    values = [f"s{i}" if i % 7 else None for i in range(50)]
    one = pd.Series(values, dtype=pd.ArrowDtype(pa.string()))
    chunked = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([values[:13], values[13:31], values[31:]],
                                                                        type=pa.string())))
    assert fp(one) == fp(chunked)
    # arrow lets a null slot keep bytes: they are not content
    offsets = pa.array([0, 2, 4, 6], pa.int32()).buffers()[1]
    validity = pa.array([True, False, True]).buffers()[1]
    dirty = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(b"abXYcd"), validity)
    assert dirty.to_pylist() == ["ab", None, "cd"]
    assert fp(pd.Series(pd.arrays.ArrowExtensionArray(dirty))) == fp(pd.Series(["ab", None, "cd"], dtype=object))
    for kind in ("str", "string[pyarrow]", object):  # a slice keeps an offset into the arrow buffers
        s = pd.Series(values, dtype=kind)
        assert fp(s.iloc[9:].reset_index(drop=True)) == fp(pd.Series(values[9:], dtype=object))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime_resolution_is_not_content(unit):
    df = base()
    ref = fp(df.assign(when=df.when.dt.floor("s")))
    assert fp(df.assign(when=df.when.dt.floor("s").astype(f"datetime64[{unit}]"))) == ref
    tz = df.when.dt.floor("s").dt.tz_localize("UTC")
    assert fp(df.assign(when=tz.astype(f"datetime64[{unit}, UTC]"))) == fp(df.assign(when=tz))
    arrow = df.when.dt.floor("s").astype(pd.ArrowDtype(pa.timestamp(unit)))
    assert fp(df.assign(when=arrow)) == ref


def test_dates_beyond_the_nanosecond_range_are_versioned_exactly():
    far = np.array(["1500-01-01", "2500-06-01", "NaT"], dtype="datetime64[s]")
    a = fp(pd.Series(far))
    assert a == fp(pd.Series(far.astype("datetime64[ms]"))) == fp(pd.Series(far.astype("datetime64[us]")))
    assert a != fp(pd.Series(np.array(["1500-01-01", "2500-06-02", "NaT"], dtype="datetime64[s]")))
    assert fingerprint(pd.Series(far)).profile["columns"][0]["min"].startswith("1500-01-01")


def test_time_zones_are_utc_instants_plus_the_zone():
    t = pd.Series(pd.to_datetime(["2026-03-29 01:30", "2026-03-29 03:30"]))
    paris = t.dt.tz_localize("Europe/Paris")
    assert fp(paris) == fp(paris.astype("datetime64[us, Europe/Paris]"))
    assert fp(paris) == fp(paris.astype(pd.ArrowDtype(pa.timestamp("us", tz="Europe/Paris"))))
    assert fp(paris) != fp(paris.dt.tz_convert("UTC"))   # same instants, another zone: the zone is part of the type
    assert fp(paris) != fp(t)                            # aware vs naive
    import datetime as _dt
    utc_a = t.dt.tz_localize("UTC")
    utc_b = t.dt.tz_localize(_dt.timezone.utc)
    assert fp(utc_a) == fp(utc_b)                        # every spelling of UTC is UTC
    assert fingerprint(paris).schema[0]["type"] == "timestamp[Europe/Paris]"


def test_numbers_in_every_container_and_nan_is_missing():
    ints = pd.Series([1, 2, 3], dtype="int64")
    assert fp(ints) == fp(ints.astype("Int64")) == fp(ints.astype("int64[pyarrow]"))
    with_na = pd.Series([1, None, 3], dtype="Int64")
    assert fp(with_na) == fp(with_na.astype("int64[pyarrow]"))
    assert fp(with_na) != fp(with_na.astype("float64"))                 # int -> float with NaN: values changed
    floats = pd.Series([0.5, np.nan, 1.25])
    assert fp(floats) == fp(floats.astype("Float64")) == fp(floats.astype("double[pyarrow]"))
    assert fp(pd.Series([0.5, None, 1.25], dtype="Float64")) == fp(floats)
    assert fp(floats) != fp(floats.fillna(0.0)) and fp(floats) != fp(floats.astype("float32"))
    assert fp(ints) != fp(ints.astype("int32"))                          # width is part of the type
    b = pd.Series([True, False, True])
    assert fp(b) == fp(b.astype("boolean")) == fp(b.astype("bool[pyarrow]"))
    assert fp(pd.Series([True, None], dtype="boolean")) == fp(pd.Series([True, None], dtype="bool[pyarrow]"))


def test_categoricals():
    s = pd.Series(["lo", "hi", None, "mid", "lo"])
    cat = s.astype("category")
    other_order = s.astype(pd.CategoricalDtype(["mid", "lo", "hi"]))
    assert fp(cat) == fp(other_order)                       # unordered: category order is not content
    assert fp(s.astype(pd.CategoricalDtype(["lo", "mid", "hi"], ordered=True))) != \
        fp(s.astype(pd.CategoricalDtype(["hi", "mid", "lo"], ordered=True)))
    assert fp(cat) != fp(s)                                 # a categorical is not a text column
    arrow_dict = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(s.tolist(), from_pandas=True).dictionary_encode()))
    assert fp(arrow_dict) == fp(s.astype(pd.CategoricalDtype(["lo", "hi", "mid"])))


def test_polars_and_pandas_agree():
    pl = pytest.importorskip("polars")
    df = base()
    assert fp(pl.from_pandas(df)) == fp(df)
    assert fp(pl.from_pandas(df).to_pandas()) == fp(df)
    ps = pl.Series("c", ["a", None, "b"])
    assert fp(ps) == fp(pd.Series(["a", None, "b"], name="c"))
    enum = pl.Series("g", ["lo", "hi", "lo"], dtype=pl.Enum(["lo", "mid", "hi"]))
    assert fp(enum) == fp(pd.Series(["lo", "hi", "lo"], name="g",
                                    dtype=pd.CategoricalDtype(["lo", "mid", "hi"], ordered=True)))
    cat = pl.Series("g", ["lo", None, "hi", "lo"], dtype=pl.Categorical)
    assert fp(cat) == fp(pd.Series(["lo", None, "hi", "lo"], name="g", dtype="category"))
    paris = pl.Series("t", [dt.datetime(2024, 1, 1, 10), None]).dt.replace_time_zone("Europe/Paris")
    assert fp(paris) == fp(pd.Series([pd.Timestamp("2024-01-01 10:00"), None], name="t").dt.tz_localize("Europe/Paris"))
    span = pl.Series("x", [dt.timedelta(seconds=5), None])
    assert fp(span) == fp(pd.Series([pd.Timedelta("5s"), None], name="x"))
    d = pl.Series("d", [dt.date(2024, 1, 1), None])
    assert fp(d) == fp(pd.Series(pa.array([dt.date(2024, 1, 1), None]), name="d",
                                 dtype=pd.ArrowDtype(pa.date32())))


def test_numpy_text_and_times():
    words = np.array(["a", "bb", "ccc"])
    assert col_digest(words) == col_digest(pd.Series(words.astype(object)))
    t = np.array(["2024-01-01T00:00", "NaT"], dtype="datetime64[m]")
    assert col_digest(t) == col_digest(pd.Series(t.astype("datetime64[s]")))


def test_profiles_hold_plain_python_values():
    import json

    df = pd.DataFrame({"f": np.array([0.5, 1.5], dtype=np.float64), "i": np.array([1, 2], dtype=np.int64),
                       "s": ["a", "b"], "t": pd.to_datetime(["2024-01-01", "2024-01-02"]).astype("datetime64[us]")})
    prof = {c["name"]: c for c in fingerprint(df).profile["columns"]}
    assert type(prof["f"]["min"]) is float and type(prof["i"]["max"]) is int and prof["f"]["mean"] == 1.0
    assert prof["s"]["top"] == [["a", 1], ["b", 1]] and type(prof["s"]["top"][0][1]) is int
    assert prof["t"]["min"] == "2024-01-01T00:00:00"
    text = json.dumps(fingerprint(df).profile)
    assert "np." not in text and "float64(" not in text


def test_high_cardinality_text_skips_the_slow_figures_not_the_digest():
    ids = pd.Series([f"user-{i:08d}" for i in range(250_000)], dtype="string[pyarrow]")
    v = fingerprint(ids)
    col = v.profile["columns"][0]
    assert col["high_cardinality"] is True and col["nulls"] == 0 and "top" not in col
    assert fp(ids) == fp(ids.astype(object))


# -- v1 and v2 -----------------------------------------------------------------------------------------------------
def v1_like(v: DataVersion, digest="4c277888bd2227bef62acb3916fd50c3") -> DataVersion:
    """A version as nbops recorded it before scheme v2: 32 bare hex digits, container dtypes only."""
    schema = [{"name": c["name"], "dtype": c["dtype"]} for c in v.schema]
    cols = [{k: x for k, x in c.items() if k != "type"} for c in v.profile["columns"]]
    return DataVersion(digest=digest, name=v.name, kind=v.kind, rows=v.rows, columns=list(v.columns), schema=schema,
                       profile={"columns": cols}, source=v.source, created=v.created)


def test_diff_across_schemes_says_scheme_changed_not_data_changed():
    new = fingerprint(base(), "t")
    old = v1_like(new)
    assert old.scheme == 1 and not old.comparable(new)
    d = compare(old, new)
    assert d.scheme_changed and not d.identical
    assert d.columns_changed == [] and d.changes == [] and d.columns_retyped == []
    s = d.summary()
    assert "digest scheme changed (v1 -> v2)" in s and "no content change is reported" in s
    assert "content changed" not in s.replace("no content change", "")
    assert d.to_frame().iloc[0]["status"] == "scheme changed"
    grown = fingerprint(base().assign(extra=1), "t")
    d2 = compare(old, grown)
    assert d2.scheme_changed and d2.columns_added == ["extra"]   # what names show is still said
    assert "v1" in repr(old) and "digest scheme v1" in repr(old)
    same_scheme = compare(new, fingerprint(base().assign(n=[1, 2, 4]), "t"))
    assert not same_scheme.scheme_changed and same_scheme.columns_changed == ["n"]


def test_files_keep_byte_digests_under_every_scheme(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc")
    v = fingerprint(p)
    assert not v.digest.startswith("v2:") and len(v.digest) == 32
    old = DataVersion(digest=v.digest, name="a.bin", kind="file", rows=None, columns=[], schema=[], profile={},
                      source={}, created=v.created)
    assert old.comparable(v) and compare(old, v).identical


def test_lineage_marks_where_the_scheme_changes():
    t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    row = dict(name="train", rows=3, columns=5, context="training", snapshot=False, run_name="r", experiment="e",
               kind=None, status="FINISHED", kind_data="frame")
    rows = [{**row, "time": t, "digest": "v2:" + "a" * 32, "run_id": "r3"},
            {**row, "time": t, "digest": "b" * 32, "run_id": "r2"},
            {**row, "time": t, "digest": "c" * 32, "run_id": "r1"}]
    lin = Lineage("history of train", rows)
    assert lin.scheme_changes == [1]
    text = repr(lin)
    assert "digest scheme changed: v2 above, v1 below" in text and "not a data change" in text
    assert text.index("v2:aaaaaaaaaaaa") < text.index("digest scheme changed") < text.index("bbbbbbbbbbbb")
    assert lin.to_frame()["scheme"].tolist() == [2, 1, 1]
    assert "digest scheme changed" in lin._repr_html_()
    files = Lineage("history of a.csv", [{**rows[0], "kind_data": "frame"}, {**rows[1], "kind_data": "file"}])
    assert files.scheme_changes == []   # a file's bytes digest next to a frame's is not a scheme change


def test_long_object_text_columns_match_arrow_text_digest_and_profile():
    """Long object columns are factorized (repeated values) or converted in one go (id-like): either way the
    digest and the profile are those of the same values as arrow text."""
    rng = np.random.default_rng(1)
    n = 250_000
    words = rng.choice(np.array(["oslo", "lima", "pune", "é€"], dtype=object), size=n)
    words[rng.random(n) < 0.1] = None
    words[5] = np.nan
    obj = pd.Series(words, dtype=object)
    arrow = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(words.tolist(), from_pandas=True)))
    a, b = fingerprint(obj), fingerprint(arrow)
    assert a.digest == b.digest
    pa_, pb = a.profile["columns"][0], b.profile["columns"][0]
    assert {k: pa_[k] for k in ("nulls", "distinct", "top")} == {k: pb[k] for k in ("nulls", "distinct", "top")}
    assert pa_["nulls"] == int(obj.isna().sum()) and pa_["distinct"] == 4
    mixed = obj.copy()
    mixed.iloc[n - 1] = 7                                       # one int at the very end: not text any more
    m = fingerprint(mixed)
    assert m.schema[0]["type"] == "object" and m.digest != a.digest
    ids = pd.Series([f"id{i}" for i in range(n)], dtype=object)
    assert fp(ids) == fp(ids.astype("string[pyarrow]"))


def test_long_text_profile_counted_beside_the_other_columns_is_complete():
    from nbops.data.encode import BACKGROUND_ROWS

    n = BACKGROUND_ROWS
    words = pd.Series(np.array(["a", "bb", "ccc"], dtype=object)[np.arange(n) % 3], dtype="string[pyarrow]")
    df = pd.DataFrame({"w": words, "x": np.arange(n, dtype="float64")})
    v = fingerprint(df)
    w = v.profile["columns"][0]
    assert "_pending" not in w and list(w)[-1] == "digest"
    assert w["distinct"] == 3 and w["top"] == [["a", n // 3 + 1], ["bb", n // 3], ["ccc", n // 3]]
    assert v.digest == fingerprint(df.astype({"w": object})).digest


def test_time_zone_names_are_canonical_whatever_library_made_them():
    import zoneinfo

    from dateutil import tz as dtz

    from nbops.data.encode import canonical_tz

    assert {canonical_tz(z) for z in (zoneinfo.ZoneInfo("Europe/Paris"), dtz.gettz("Europe/Paris"),
                                      "Europe/Paris")} == {"Europe/Paris"}
    assert {canonical_tz(z) for z in (dt.timezone.utc, dtz.tzutc(), "UTC", "Etc/UTC", "+00:00",
                                      zoneinfo.ZoneInfo("UTC"))} == {"UTC"}
    assert canonical_tz(dt.timezone(dt.timedelta(hours=-5, minutes=-30))) == "-05:30"
    assert canonical_tz(None) is None

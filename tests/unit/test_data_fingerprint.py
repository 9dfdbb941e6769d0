"""nbops.fingerprint: exact, stable digests for frames, arrays, polars frames, files and folders."""
import datetime as dt
import importlib
import decimal
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.data import fingerprint
from nbops.errors import DataError, NbopsError


def fp(obj, **kw):
    return fingerprint(obj, **kw).digest


def rich_frame(n=40):
    """Every column kind a notebook meets: numbers, bools, text with gaps, categories, dates, masked ints..."""
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "f": rng.normal(size=n),
        "i": rng.integers(-5, 5, size=n),
        "u8": rng.integers(0, 255, size=n).astype("uint8"),
        "b": rng.integers(0, 2, size=n).astype(bool),
        "s": np.array([f"w{k % 7}" for k in range(n)], dtype=object),
        "s_na": pd.Series([None if k % 5 == 0 else f"t{k % 3}" for k in range(n)], dtype=object),
        "cat": pd.Categorical([["lo", "mid", "hi"][k % 3] for k in range(n)]),
        "t": pd.date_range("2024-01-01", periods=n, freq="h"),
        "tz": pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Paris"),
        "td": pd.to_timedelta(np.arange(n), unit="s"),
        "I": pd.array([None if k % 4 == 0 else k for k in range(n)], dtype="Int64"),
        "F": pd.array([None if k % 6 == 0 else k / 3 for k in range(n)], dtype="Float64"),
        "B": pd.array([None if k % 7 == 0 else k % 2 == 0 for k in range(n)], dtype="boolean"),
        "str": pd.array([None if k % 8 == 0 else f"x{k}" for k in range(n)], dtype="string"),
        "mixed": pd.Series([[1, "1", 1.5, None, True, b"1", dt.date(2024, 1, 2)][k % 7] for k in range(n)],
                           dtype=object),
        "per": pd.period_range("2024-01", periods=n, freq="M"),
    })


def changed_cell(v, dtype):
    """A different value of the same kind for one cell."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return {"Int64": 7, "Float64": 7.5, "boolean": True}.get(str(dtype), "filled")
    if isinstance(v, (bool, np.bool_)):
        return not v
    if isinstance(v, (int, np.integer)):
        return v + 1
    if isinstance(v, (float, np.floating)):
        return v + 0.5
    if isinstance(v, str):
        return v + "!"
    if isinstance(v, pd.Timestamp):
        return v + pd.Timedelta("1s")
    if isinstance(v, pd.Timedelta):
        return v + pd.Timedelta("1ms")
    if isinstance(v, pd.Period):
        return v + 1
    if isinstance(v, bytes):
        return v + b"!"
    if isinstance(v, dt.date):
        return v + dt.timedelta(days=1)
    raise AssertionError(type(v))


def test_same_data_same_digest_copy_and_rebuild():
    df = rich_frame()
    assert fp(df) == fp(df.copy()) == fp(pd.DataFrame({c: df[c].copy() for c in df.columns}))
    v = fingerprint(df, "train")
    assert v.digest.startswith("v2:") and len(v.digest) == 35 and int(v.digest[3:], 16) >= 0
    assert v.short == v.digest[:15] and v.scheme == 2
    assert v.rows == 40 and v.columns == list(df.columns) and v.name == "train"
    assert nbops.fingerprint is fingerprint and nbops.DataVersion is type(v)
    for mod in ("compare", "fingerprinting", "record", "lineage", "version"):
        importlib.import_module(f"nbops.data.{mod}")
    assert callable(nbops.data.fingerprint) and callable(nbops.data.diff)  # no submodule shadows the API


@pytest.mark.parametrize("col", list(rich_frame().columns))
def test_every_cell_change_changes_the_digest(col):
    df = rich_frame()
    base = fp(df)
    seen = {base}
    for row in (0, 1, 17, 39):
        d2 = df.copy()
        old = d2[col].iloc[row]
        new = changed_cell(old, d2[col].dtype)
        if isinstance(d2[col].dtype, pd.CategoricalDtype):
            new = [c for c in d2[col].cat.categories if c != old][0]
        elif col == "mixed" or d2[col].dtype == object:
            d2[col] = d2[col].astype(object)
        d2.loc[row, col] = new
        assert d2[col].dtype == df[col].dtype, "the change must keep the dtype: only the content moves"
        digest = fp(d2)
        assert digest not in seen, f"{col}[{row}]: {old!r} -> {new!r} left the digest unchanged"
        seen.add(digest)


def test_a_change_far_down_a_large_frame():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"f{i}": rng.normal(size=300_000) for i in range(3)})
    df["s"] = rng.choice(["alpha", "beta", "gamma"], size=len(df))
    d2 = df.copy()
    d2.loc[150_000:199_999, "f0"] += 5.0
    assert fp(df) != fp(d2)
    d3 = df.copy()
    d3.loc[299_999, "s"] = "alphb"
    assert fp(df) != fp(d3)


def test_names_dtypes_and_order_are_content():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    variants = [df, df.rename(columns={"a": "A"}), df[["b", "a"]], df.astype({"a": "int32"}),
                df.astype({"a": "float64"}), df.iloc[::-1].reset_index(drop=True), df.iloc[:2],
                pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6], "c": [0, 0, 0]}),
                df.set_axis([1, "b"], axis=1), df.set_axis(["1", "b"], axis=1)]
    digests = [fp(v) for v in variants]
    assert len(set(digests)) == len(digests)


def test_object_values_are_type_tagged():
    cols = [[1, 2], [1.0, 2], ["1", 2], [True, 2], [b"1", 2], [None, 2],
            ["None", 2], ["nan", 2], ["", 2], [decimal.Decimal("1"), 2], [(1,), 2], [[1], 2], [{"k": 1}, 2]]
    digests = [fp(pd.DataFrame({"x": pd.Series(c, dtype=object)})) for c in cols]
    assert len(set(digests)) == len(digests)
    # scheme v2: every missing value in an object column is the same missing value
    assert {fp(pd.DataFrame({"x": pd.Series([na, 2], dtype=object)})) for na in (np.nan, pd.NA, pd.NaT)} == \
        {digests[5]}
    # text columns: a missing value (None, NaN, pd.NA, NaT: one missing value) differs from "" and "None"
    text = [["a", None], ["a", ""], ["a", "None"], ["a", "nan"]]
    digests = [fp(pd.Series(c, dtype=object)) for c in text]
    assert len(set(digests)) == len(digests)
    assert len({fp(pd.Series(["a", na], dtype=object)) for na in (None, np.nan, pd.NA, pd.NaT)}) == 1


def test_strings_are_not_ambiguous_when_joined():
    a = pd.Series(["ab", "c"], dtype=object)
    b = pd.Series(["a", "bc"], dtype=object)
    assert fp(a) != fp(b)
    assert fp(pd.Series(["é", "x"])) != fp(pd.Series(["e\u0301", "x"]))  # different code points


def test_nan_is_canonical_but_signed_zero_is_content():
    bits = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000]
    nans = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in bits]
    frames = [pd.DataFrame({"x": [1.0, n, 3.0]}) for n in nans]
    assert len({fp(f) for f in frames}) == 1
    assert fp(pd.DataFrame({"x": [1.0, np.nan]})) != fp(pd.DataFrame({"x": [1.0, 0.0]}))
    assert fp(pd.DataFrame({"x": [0.0]})) != fp(pd.DataFrame({"x": [-0.0]}))
    v = fingerprint(frames[0])
    assert v.profile["columns"][0]["nulls"] == 1 and v.profile["columns"][0]["mean"] == 2.0


def test_nat_and_none_in_dates():
    a = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None, "2024-01-03"])})
    b = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    assert fp(a) != fp(b)
    prof = fingerprint(a).profile["columns"][0]
    assert prof["nulls"] == 1 and prof["min"].startswith("2024-01-01") and prof["max"].startswith("2024-01-03")


def test_duplicate_column_names_version_by_position():
    df = pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"])
    swapped = pd.DataFrame([[2, 1], [4, 3]], columns=["a", "a"])
    assert fp(df) != fp(swapped)
    v = fingerprint(df)
    assert v.columns == ["a", "a (2)"]
    assert [c["min"] for c in v.profile["columns"]] == [1, 2]


def test_empty_frames():
    e1 = pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype=object)})
    e2 = pd.DataFrame({"a": pd.Series([], dtype="float64"), "c": pd.Series([], dtype=object)})
    e3 = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype=object)})
    digests = {fp(e1), fp(e2), fp(e3), fp(pd.DataFrame())}
    assert len(digests) == 4
    assert fp(e1) == fp(e1.copy())
    v = fingerprint(e1)
    assert v.rows == 0 and v.profile["columns"][0]["nulls"] == 0 and "min" not in v.profile["columns"][0]


def test_index_default_auto_and_explicit():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert fp(df) == fp(df.set_axis(pd.RangeIndex(10, 13)))  # a RangeIndex is positional: skipped by default
    dated = df.set_axis(pd.date_range("2024-01-01", periods=3))
    redated = df.set_axis(pd.date_range("2024-02-01", periods=3))
    assert fp(dated) != fp(redated) != fp(df)                # a real index is content by default
    assert fp(dated, index=False) == fp(redated, index=False) == fp(df)
    assert fp(df, index=True) != fp(df.set_axis(pd.RangeIndex(10, 13)), index=True)
    assert fp(df, index=True) == fp(df.set_axis(pd.Index([0, 1, 2])), index=True)
    assert fingerprint(dated).profile["index"]["hashed"] is True


def test_series_and_numpy_arrays():
    s = pd.Series([1.0, 2.0], name="y")
    assert fp(s) != fp(s.rename("z")) != fp(s.to_frame())
    a = np.arange(6, dtype="float64")
    digests = {fp(a), fp(a.reshape(2, 3)), fp(a.reshape(3, 2)), fp(a.astype("float32")), fp(np.asfortranarray(
        a.reshape(2, 3))) + "F"}
    assert len(digests) == 5
    assert fp(a.reshape(2, 3)) == fp(np.asfortranarray(a.reshape(2, 3)))  # memory layout is not content
    v = fingerprint(np.array([[1, 2], [3, 4]]))
    assert v.kind == "array" and v.rows == 2 and v.columns == ["0", "1"] and v.profile["columns"][1]["max"] == 4
    assert fp(np.array(["a", None, 1], dtype=object)) != fp(np.array(["a", None, "1"], dtype=object))
    big_endian = np.arange(5, dtype=">i8")
    assert fp(big_endian) == fp(np.arange(5, dtype="<i8"))


def test_polars_frames():
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"a": [1, None, 3], "f": [1.0, float("nan"), None], "s": ["x", None, "z"],
                       "c": pl.Series(["u", "v", "u"], dtype=pl.Categorical),
                       "d": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3)], "l": [[1], [], None]})
    v = fingerprint(df, "p")
    assert v.kind == "polars" and v.rows == 3 and fp(df) == fp(df.clone())
    prof = {c["name"]: c for c in v.profile["columns"]}
    assert prof["a"]["nulls"] == 1 and prof["f"]["nulls"] == 2   # scheme v2: NaN and null are one missing value
    assert prof["d"]["min"] == "2024-01-01"
    for col, new in [("a", 4), ("f", 2.5), ("s", "y"), ("d", dt.date(2025, 1, 1))]:
        changed = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(new)).otherwise(pl.col(col))
                                  .alias(col))
        assert fp(changed) != v.digest, col
    assert fp(df.with_columns(pl.col("f").fill_nan(None))) == v.digest  # v2: NaN and null are one missing value
    assert fp(df.with_columns(pl.col("f").fill_nan(0.0))) != v.digest
    with pytest.raises(DataError, match="collect"):
        fingerprint(df.lazy(), "lazy")


def test_unsupported_objects_raise_dataerror_naming_them():
    with pytest.raises(DataError, match=r"`cfg` \(a builtins.dict\)") as err:
        fingerprint({"a": 1}, "cfg")
    assert isinstance(err.value, NbopsError) and "DataFrame" in str(err.value)

    class Thing:
        pass
    df = pd.DataFrame({"ok": [1, 2], "objs": [Thing(), Thing()]})
    with pytest.raises(DataError, match=r"Column 'objs' of `df` holds a .*Thing value.*astype\(str\)") as err:
        fingerprint(df, "df")
    assert err.value.column == "objs"
    with pytest.raises(DataError, match="No file or folder"):
        fingerprint("no/such/file.csv")


def test_stable_across_processes(tmp_path):
    """The same data built in a fresh interpreter (with another hash seed) gives the same digests."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_data_fingerprint import rich_frame
        import numpy as np, nbops
        df = rich_frame()
        print(nbops.fingerprint(df).digest, nbops.fingerprint(df.to_numpy()[:, :4].astype(float)).digest)
    """)
    here = f"{fp(rich_frame())} {fp(rich_frame().to_numpy()[:, :4].astype(float))}"
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        assert out == here


def test_profile_figures_match_pandas():
    df = rich_frame(200)
    v = fingerprint(df)
    prof = {c["name"]: c for c in v.profile["columns"]}
    assert prof["f"]["min"] == pytest.approx(df.f.min()) and prof["f"]["max"] == pytest.approx(df.f.max())
    assert prof["f"]["mean"] == pytest.approx(df.f.mean())
    assert prof["I"]["nulls"] == int(df.I.isna().sum()) and prof["I"]["mean"] == pytest.approx(df.I.mean())
    assert prof["s_na"]["nulls"] == int(df.s_na.isna().sum())
    top = df.s.value_counts()
    assert prof["s"]["top"][0] == [top.index[0], int(top.iloc[0])] and prof["s"]["distinct"] == 7
    assert prof["cat"]["distinct"] == 3 and sum(n for _, n in prof["cat"]["top"]) == 200
    assert prof["b"]["mean"] == pytest.approx(df.b.mean())
    assert "tz" in prof and prof["tz"]["min"].endswith("+01:00")
    frame = v.to_frame()
    assert list(frame["column"]) == list(df.columns) and "top" in frame.columns
    assert "<table" in v._repr_html_() and v.short in repr(v)


def test_profile_off_gives_the_same_digest():
    df = rich_frame()
    assert fp(df, profile=False) == fp(df)
    assert "min" not in fingerprint(df, profile=False).profile["columns"][0]


def test_progress_bar(capsys):
    df = pd.DataFrame({"x": np.arange(100_000, dtype=float)})
    fingerprint(df, "x", progress=True)
    assert "fingerprint x" in capsys.readouterr().err
    fingerprint(df, "x", progress=False)
    assert capsys.readouterr().err == ""


def test_object_encoder_covers_common_python_values():
    import uuid
    from pathlib import PurePosixPath

    from nbops.data.encode import enc

    values = [decimal.Decimal("1.10"), decimal.Decimal("1.1"), uuid.UUID(int=1), uuid.UUID(int=2),
              PurePosixPath("a/b"), "a/b", pd.Interval(0, 1), pd.Interval(0, 1, closed="left"),
              pd.Period("2024-01", "M"), pd.Period("2024-01", "D"), {1, 2}, frozenset({3}), (1, 2), [1, 2],
              np.array([1, 2]), np.array([1.0, 2.0]), dt.time(1, 2), dt.timedelta(seconds=1), pd.Timedelta("1s"),
              np.datetime64("2024-01-01"), np.datetime64("NaT"), 1 + 2j, np.float32(0.5), np.int8(-1)]
    encoded = [enc(v) for v in values]
    assert len(set(encoded)) == len(encoded)
    assert enc({"a": 1, "b": [2]}) == enc({"b": [2], "a": 1})   # key order is not content
    assert enc({1, 2, 3}) == enc({3, 2, 1})
    assert enc(np.float64(0.25)) == enc(0.25) and enc(np.int64(3)) == enc(3) and enc(np.str_("x")) == enc("x")
    col = pd.Series(values, dtype=object)
    assert fp(col) == fp(pd.Series(list(values), dtype=object))

"""diff(): what changed between two versions -- from profiles alone, and exactly when the frames are at hand."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from nbops.data import DataVersion, diff, fingerprint
from nbops.data.compare import compare, row_changes


def base(n=1000):
    rng = np.random.default_rng(3)
    return pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "city": rng.choice(["a", "b", "c"], size=n)})


def test_identical():
    df = base()
    d = diff(df, df.copy())
    assert d.identical and d.rows_added == d.rows_removed == 0 and "identical" in d.summary()
    assert len(d.to_frame()) == 0


def test_rows_added_removed_changed_exactly():
    old = base()
    new = old.drop(index=range(0, 10))                                   # 10 removed
    new = pd.concat([new, base(1005).tail(5)], ignore_index=True)        # 5 appended (ids 1000..1004)
    new.loc[new.id == 500, "x"] = 42.0                                   # 1 changed: -1 / +1
    d = diff(old, new)
    assert (d.rows_added, d.rows_removed) == (6, 11)
    assert d.row_delta == -5 and d.columns_changed == ["id", "x", "city"] and d.columns_added == []
    changes = {(c["column"], c["stat"]) for c in d.changes}
    assert ("x", "max") in changes and ("id", "max") in changes
    shuffled = old.sample(frac=1, random_state=0)
    d = diff(old, shuffled)
    assert not d.identical and (d.rows_added, d.rows_removed) == (0, 0)  # order is content, but no row moved in or out


def test_columns_added_removed_retyped():
    old = base()
    new = old.drop(columns="city").assign(x=old.x.astype("float32"), flag=True)
    d = diff(old, new)
    assert d.columns_added == ["flag"] and d.columns_removed == ["city"]
    assert d.columns_retyped == [("x", "float64", "float32")]
    f = d.to_frame()
    assert set(f.status) >= {"added", "removed", "retyped"}
    s = d.summary()
    assert "columns added: flag" in s and "columns removed: city" in s and "x float64->float32" in s
    assert "<table" in d._repr_html_() and "DataDiff" in repr(d)


def test_diff_from_stored_versions_uses_profiles():
    """Versions rebuilt from MLflow dataset records (no data at hand) still diff by schema and profile."""
    old, new = base(), base()
    new.loc[3, "city"] = "zzz"
    new = new.drop(columns="id")

    def stored(df):
        rec = fingerprint(df, "t").to_record("t")
        ds = SimpleNamespace(name=rec["name"], digest=rec["digest"], schema=rec["schema"], profile=rec["profile"],
                             source=rec["source"])
        return DataVersion.from_dataset(ds)

    a, b = stored(old), stored(new)
    assert a.rows == 1000 and a.columns == ["id", "x", "city"] and a.kind == "frame"
    assert a.column_digests == fingerprint(old).column_digests
    d = compare(a, b)
    assert d.columns_removed == ["id"] and d.columns_changed == ["city"] and d.rows_added is None
    assert any(c["column"] == "city" and c["stat"] in ("distinct", "top") for c in d.changes)


def test_row_changes_needs_hashable_rows():
    a = pd.DataFrame({"l": [[1], [2]]})
    assert row_changes(a, a) is None
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert row_changes(dup, dup) is None


def test_record_is_what_the_writer_expects():
    v = fingerprint(base(), "train")
    rec = v.to_record(context="validation")
    assert set(rec) == {"name", "digest", "source_type", "source", "schema", "profile", "context"}
    assert rec["digest"] == v.digest and len(rec["digest"]) <= 36 and rec["context"] == "validation"
    for key in ("source", "schema", "profile"):
        assert isinstance(json.loads(rec[key]), dict)
    assert rec["source_type"] == "code"
    assert hash(v) == hash(fingerprint(base())) and v == fingerprint(base())  # versions compare by digest


def test_row_changes_see_values_not_containers():
    """A snapshot read back by another pandas (datetime64[ns] vs [us], object vs str, int64 vs Int64) has the same
    rows as the frame at hand."""
    old = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02", None]).astype("datetime64[ns]"),
                        "s": pd.Series(["a", None, "c"], dtype=object), "i": [1, 2, 3], "f": [0.5, np.nan, 1.0]})
    new = pd.DataFrame({"t": old.t.astype("datetime64[us]"), "s": old.s.astype("string"), "i": old.i.astype("Int64"),
                        "f": old.f.astype("double[pyarrow]")})
    assert row_changes(old, new) == (0, 0)
    assert diff(old, new).identical                 # and the v2 digests agree
    new.loc[1, "i"] = 5
    assert row_changes(old, new) == (1, 1)
    tz_old = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00"]).tz_localize("Europe/Paris")})
    assert row_changes(tz_old, tz_old.assign(t=tz_old.t.astype("datetime64[ms, Europe/Paris]"))) == (0, 0)

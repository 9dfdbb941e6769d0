"""Order-free digests (``fingerprint(df, ordered=False)``): the identity a Spark frame has, computed for pandas /
polars frames. The multiset of rows is the content: row order and batching do not count, every cell and the
pairing of cells in a row do. The default (ordered) pandas digest is unchanged."""
import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.data import sparkhash
from nbops.errors import DataError


def frame(n=2_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "i": rng.integers(-5, 1_000, n), "x": rng.normal(size=n),
        "s": rng.choice(["Oslo", "Lima", "Pune", None], n),
        "t": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**9, n), unit="s"),
        "b": rng.random(n) > 0.5, "c": pd.Categorical(rng.choice(["u", "v"], n)),
        "d": [pd.Timestamp("2020-01-01").date()] * n})


def digest(df):
    return nbops.fingerprint(df, ordered=False).digest


def test_row_order_and_index_are_not_content():
    df = frame()
    shuffled = df.sample(frac=1.0, random_state=3)            # rows moved, index shuffled with them
    assert digest(shuffled) == digest(df)
    assert digest(shuffled.reset_index(drop=True)) == digest(df)
    assert nbops.fingerprint(shuffled).digest != nbops.fingerprint(df).digest   # the default stays ordered


def test_every_cell_and_the_rows_pairing_count():
    df = frame()
    base = digest(df)
    one = df.copy()
    one.loc[17, "x"] += 1e-12
    assert digest(one) != base
    swapped = df.copy()  # the same values per column, paired differently across rows
    swapped.loc[[0, 1], "i"] = df.loc[[1, 0], "i"].to_numpy()
    assert df.loc[0, "i"] != df.loc[1, "i"] and digest(swapped) != base
    assert nbops.fingerprint(swapped, ordered=False).column_digests["i"] == \
        nbops.fingerprint(df, ordered=False).column_digests["i"]  # column multisets equal, rows differ
    dup = pd.concat([df, df.iloc[:1]])
    assert digest(dup) != base                                   # a duplicated row is a change
    assert digest(df.rename(columns={"x": "y"})) != base
    assert digest(df[["x", "i", "s", "t", "b", "c", "d"]]) != base  # column order counts


def test_containers_do_not_matter_and_missing_is_one_value():
    df = frame()
    alt = df.assign(s=df["s"].astype("string[pyarrow]"), c=df["c"].astype(str),
                    t=df["t"].astype("datetime64[ns]"), i=df["i"].astype("Int32"))
    assert digest(alt) == digest(df)
    ints = pd.DataFrame({"k": pd.array([1, None, 3], dtype="Int64")})
    floats = pd.DataFrame({"k": [1.0, np.nan, 3.0]})                # what toPandas() makes of a long with nulls
    assert digest(ints) == digest(floats)
    assert digest(pd.DataFrame({"k": [1.0, 2.5]})) != digest(pd.DataFrame({"k": [1.0, 2.0]}))
    assert digest(pd.DataFrame({"k": [0.0]})) == digest(pd.DataFrame({"k": [-0.0]}))   # Spark's hash: one zero
    big = 2**60 + 1                                                  # beyond a double: compared as an integer
    assert digest(pd.DataFrame({"k": [big]})) != digest(pd.DataFrame({"k": [big - 1]}))
    assert digest(pd.DataFrame({"s": ["a", None]})) == digest(pd.DataFrame({"s": ["a", np.nan]}))
    assert digest(pd.DataFrame({"s": ["a", None]})) != digest(pd.DataFrame({"s": ["a", ""]}))
    tz = pd.DataFrame({"t": df["t"].dt.tz_localize("UTC")})
    assert digest(tz) == digest(df[["t"]])                          # instants; naive times read as UTC


def test_batches_fold_to_the_whole():
    import pyarrow as pa

    df = frame(5_000)
    arrays = [pa.array(df[c], from_pandas=True) for c in df]
    whole = sparkhash.fold([sparkhash.batch_sums(arrays)])
    parts = sparkhash.fold(sparkhash.batch_sums([a.slice(i, 777) for a in arrays]) for i in range(0, 5_000, 777))
    assert parts == whole


def test_polars_agrees_and_other_objects_are_refused():
    pl = pytest.importorskip("polars")
    df = frame().drop(columns=["c", "d"])
    assert digest(pl.from_pandas(df)) == digest(df)
    with pytest.raises(DataError, match="ordered=False applies to a pandas or polars DataFrame"):
        nbops.fingerprint(np.arange(3), ordered=False)
    mixed = pd.DataFrame({"m": [1, "a"]})
    with pytest.raises(DataError, match="Column 'm' cannot be hashed order-free"):
        digest(mixed)

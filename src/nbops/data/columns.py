"""One column -> ``(digest, profile figures, logical type)`` for every container nbops meets: numpy arrays, pandas
columns (numpy-backed, masked ``Int64``/``Float64``/``boolean``, ``str`` / ``string`` in either storage,
pyarrow-backed ``ArrowDtype``, categorical, tz-aware, period, sparse), pyarrow arrays and polars Series.

Digest scheme v2: the digest depends on the logical type and the values, never on the container, so the same
data read by pandas 2 (object strings, ``datetime64[ns]``), pandas 3 (``str``, ``datetime64[us]``), with
``dtype_backend="pyarrow"`` or by polars has one digest. The encodings themselves live in :mod:`.encode`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .encode import (Unsupported, column_digest, numeric, objects, short_text, strings, temporal,
                     top_from_counts)

Tick = Callable[[int], None]


def _quiet(n: int) -> None:
    return None


# -- numpy --------------------------------------------------------------------------------------------------------
def ndarray_column(a: np.ndarray, tick: Tick, stats: bool = True) -> tuple[bytes, dict, str]:
    kind = a.dtype.kind
    if kind == "O":
        return objects(a, tick, stats)
    if kind in "biufc":
        return numeric(a, tick, stats=stats)
    if kind in "Mm":
        unit = np.datetime_data(a.dtype)[0]
        if kind == "M" and unit in ("Y", "M"):
            a, unit = a.astype("M8[D]"), "D"
        if unit == "generic":
            a, unit = a.astype("M8[s]" if kind == "M" else "m8[s]"), "s"
        return temporal(a.view(np.int64), unit, tick, stats=stats, kind="timestamp" if kind == "M" else "duration")
    if kind in "US":
        import pyarrow as pa

        return strings(pa.array(a.reshape(-1)), tick, stats, "string" if kind == "U" else "binary")
    if kind == "T":  # numpy 2 StringDType
        return objects(a.astype(object), tick, stats)
    return numeric(np.ascontiguousarray(a).view(np.uint8), tick, stats=False, ltype=f"raw[{a.dtype.str}]")


# -- pandas -------------------------------------------------------------------------------------------------------
def pandas_column(ser, tick: Tick, stats: bool = True) -> tuple[bytes, dict, str]:
    """Digest, profile figures and logical type of one pandas column (a Series). Raises :class:`Unsupported`."""
    import pandas as pd
    from pandas.api.extensions import ExtensionArray

    dtype = ser.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = ser.array
        return categorical(cat.categories, np.asarray(cat.codes), bool(cat.ordered), tick, stats)
    if isinstance(dtype, np.dtype):
        return ndarray_column(ser.to_numpy(), tick, stats)
    arr = ser.array
    if isinstance(dtype, pd.DatetimeTZDtype):
        return temporal(np.asarray(arr.asi8), dtype.unit, tick, stats=stats, tz=dtype.tz)
    if isinstance(dtype, pd.PeriodDtype):
        iv = np.asarray(arr.asi8)
        missing = np.asarray(ser.isna())
        d, st, lt = numeric(np.where(missing, 0, iv), tick, mask=missing, stats=False,
                            ltype=f"period[{dtype.freq.freqstr}]")
        if stats and st["nulls"] < len(ser):
            st.update(min=str(ser.min()), max=str(ser.max()))
        return d, st, lt
    if isinstance(dtype, pd.SparseDtype):
        return pandas_column(ser.sparse.to_dense(), tick, stats)
    from pandas.core.arrays.masked import BaseMaskedArray  # Int64, Float64, boolean

    if isinstance(arr, BaseMaskedArray):
        mask = np.asarray(arr.isna())
        filler = False if dtype.kind == "b" else 0
        data = arr.to_numpy(dtype=dtype.numpy_dtype, na_value=filler)
        return numeric(data, tick, mask=mask, stats=stats)
    if isinstance(dtype, (pd.StringDtype, pd.ArrowDtype)):  # pandas 3's str, string[python|pyarrow], arrow-backed
        import pyarrow as pa

        return arrow_column(pa.array(arr), tick, stats)
    if isinstance(arr, ExtensionArray):  # interval and other extension arrays
        return objects(ser.to_numpy(dtype=object, na_value=None), tick, stats)
    return objects(np.asarray(ser, dtype=object), tick, stats)


def categorical(categories, codes: np.ndarray, ordered: bool, tick: Tick, stats: bool = True,
                used_only: bool = False) -> tuple[bytes, dict, str]:
    """A categorical column: its categories (in their order when ``ordered``, else sorted, so category order
    that carries no meaning is not content) and one code per row (negative = missing)."""
    import pandas as pd

    cats = pd.Index(categories)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    k = len(cats)
    if ordered or k < 2:
        order = np.arange(k)
    else:
        try:
            order = np.asarray(cats.argsort(), dtype=np.int64)
        except TypeError:  # categories of mixed types: order by their stable encodings
            from .encode import enc

            order = np.array(sorted(range(k), key=lambda i: enc(cats[i])), dtype=np.int64)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    safe = np.where(missing, 0, codes)
    remapped = rank[safe] if k else safe
    sorted_cats = cats.take(order)
    cd, _, ctype = pandas_column(pd.Series(sorted_cats, index=pd.RangeIndex(k)), _quiet, stats=False)
    d, _, _ = numeric(remapped, tick, mask=missing, stats=False, ltype="codes")
    ltype = f"{'ordered ' if ordered else ''}category<{ctype}>"
    out: dict = {"nulls": int(np.count_nonzero(missing))}
    if stats:
        counts = np.bincount(codes[~missing], minlength=k) if k else np.zeros(0, dtype=np.int64)
        out.update(distinct=int(np.count_nonzero(counts)), top=top_from_counts(np.asarray(cats, dtype=object), counts))
    return column_digest(ltype, len(codes), cd, d), out, ltype


# -- pyarrow ------------------------------------------------------------------------------------------------------
def _to_numpy(arr, fill):
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if mask is not None:
        arr = pc.fill_null(arr, pa.scalar(fill, type=arr.type))
    return arr.to_numpy(zero_copy_only=False), mask


def _objects_of(arr) -> np.ndarray:
    vals = arr.to_pylist()
    out = np.empty(len(vals), dtype=object)
    out[:] = vals
    return out


def arrow_column(arr, tick: Tick, stats: bool = True) -> tuple[bytes, dict, str]:
    """A pyarrow Array or ChunkedArray, hashed from its buffers (the same digest as the same values held by
    numpy, pandas or polars)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    T = pa.types
    if T.is_dictionary(t):
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.unify_dictionaries().combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False) if arr.null_count else \
            arr.indices.to_numpy(zero_copy_only=False)
        return categorical(arr.dictionary.to_pandas(), codes, bool(t.ordered), tick, stats)
    if T.is_string(t) or T.is_large_string(t) or getattr(T, "is_string_view", lambda _: False)(t) or T.is_null(t):
        return strings(arr, tick, stats, "string")
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t) or \
            getattr(T, "is_binary_view", lambda _: False)(t):
        return strings(arr, tick, stats, "binary")
    if T.is_boolean(t):
        values, mask = _to_numpy(arr, False)
        return numeric(values.astype(bool, copy=False), tick, mask=mask, stats=stats)
    if T.is_integer(t) or T.is_floating(t):
        values, mask = _to_numpy(arr, 0)
        return numeric(values, tick, mask=mask, stats=stats)
    if T.is_timestamp(t) or T.is_duration(t):
        values, mask = _to_numpy(arr.cast(pa.int64()), 0)
        return temporal(values, t.unit, tick, mask=mask, stats=stats,
                        kind="timestamp" if T.is_timestamp(t) else "duration", tz=getattr(t, "tz", None))
    if T.is_date(t) or T.is_time(t):
        is_date = T.is_date(t)
        phys = arr.cast(pa.date32()).cast(pa.int32()) if is_date else arr.cast(pa.time64("ns")).cast(pa.int64())
        values, mask = _to_numpy(phys, 0)
        d, st, lt = numeric(values.astype(np.int64), tick, mask=mask, stats=False, ltype="date" if is_date else "time")
        if stats and st["nulls"] < len(arr):
            mm = pc.min_max(arr)
            st.update(min=short_text(mm["min"].as_py().isoformat()), max=short_text(mm["max"].as_py().isoformat()))
        return d, st, lt
    return objects(_objects_of(arr), tick, stats)  # decimals, lists, structs, maps: value by value


# -- polars -------------------------------------------------------------------------------------------------------
def polars_column(s, tick: Tick, stats: bool = True) -> tuple[bytes, dict, str]:
    """Digest, profile and logical type of one polars Series, through its arrow buffers. A polars Categorical's
    categories are the values present (polars keeps them in a process-wide cache); an Enum's are its own."""
    import polars as pl
    import pyarrow.compute as pc

    dt = s.dtype
    if isinstance(dt, pl.Enum):
        cats = dt.categories.to_list()
        codes = s.to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        return categorical(cats, codes, True, tick, stats)
    if dt == pl.Categorical or isinstance(dt, pl.Categorical):
        enc = pc.dictionary_encode(s.cast(pl.String).to_arrow())
        if hasattr(enc, "combine_chunks"):
            enc = enc.combine_chunks()
        codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return categorical(enc.dictionary.to_pandas(), codes, False, tick, stats)
    if dt == pl.Object:
        return objects(np.asarray(s.to_list() + [None], dtype=object)[:-1], tick, stats)
    try:
        arr = s.to_arrow()
    except Exception:  # noqa: BLE001 - a dtype arrow cannot hold: value by value
        return objects(np.asarray(s.to_list() + [None], dtype=object)[:-1], tick, stats)
    return arrow_column(arr, tick, stats)


__all__ = ["Unsupported", "arrow_column", "categorical", "ndarray_column", "pandas_column", "polars_column"]

"""Order-free content hashes of tables given as arrow record batches: the part of a Spark fingerprint that runs on
the executors (inside ``mapInArrow``), and the same computation for a pandas / polars frame (``ordered=False``).

Self-contained on purpose: it imports only the standard library, numpy and pyarrow (what Spark's arrow UDFs need
anyway), so a cluster's executors need no nbops install (the Spark path ships this module's functions by value).

The identity is the *multiset of rows*: each row gets a 128-bit hash (two 64-bit lanes) from its cells in column
order, and the table's hash is the sum of its row hashes modulo 2**64 per lane, with the row count. Sums do not
depend on row order or on how the rows are cut into batches or partitions. Each cell is first reduced to two
64-bit words by its *class* (the logical kind of value, not the container):

- ``number``: integers of any width and floats; an integral float (not ``-0.0``) is the integer it equals, so a
  ``long`` column that ``toPandas()`` turned into ``float64`` for its nulls hashes the same; NaN is missing
- ``bool``; ``string`` and ``binary`` (blake2b-128 of the UTF-8 / raw bytes); ``date`` (days);
  ``timestamp`` (the instant in ns, naive timestamps read as UTC); ``duration``; ``decimal`` and nested values
  (lists, structs, maps: their canonical JSON text)
- a missing cell (null, NaN, NaT) is one value per column; dictionary / categorical columns are their values
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xD6E8FEB86659FD93)
_S33 = np.uint64(33)
_TAG = {"number_int": 1, "number_float": 2, "bool": 3, "timestamp": 4, "date": 5, "duration": 6}


def _fmix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser (a bijection that mixes every bit), on a uint64 array."""
    x = x ^ (x >> _S33)
    x = x * _M1
    x = x ^ (x >> _S33)
    x = x * _M2
    return x ^ (x >> _S33)


def cell_class(t) -> str:
    """The class of an arrow type (see the module docs)."""
    import pyarrow as pa

    T = pa.types
    if T.is_dictionary(t):
        return cell_class(t.value_type)
    if T.is_integer(t) or T.is_floating(t):
        return "number"
    if T.is_boolean(t):
        return "bool"
    if T.is_string(t) or T.is_large_string(t) or getattr(T, "is_string_view", lambda _: False)(t):
        return "string"
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t) or \
            getattr(T, "is_binary_view", lambda _: False)(t):
        return "binary"
    if T.is_timestamp(t):
        return "timestamp"
    if T.is_date(t):
        return "date"
    if T.is_duration(t):
        return "duration"
    if T.is_null(t):
        return "null"
    if T.is_decimal(t):
        return "decimal"
    return "nested"


def _bytes_words(values: list, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two words per value from blake2b-128 of its bytes, one hash per distinct value."""
    n = len(values)
    w1 = np.zeros(n, np.uint64)
    w2 = np.zeros(n, np.uint64)
    memo: dict = {}
    for i in np.flatnonzero(valid).tolist():
        b = values[i]
        got = memo.get(b)
        if got is None:
            d = hashlib.blake2b(b, digest_size=16).digest()
            got = memo[b] = (int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little"))
        w1[i], w2[i] = got
    return w1, w2


def _words_of_text(arr, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text / binary: hashed once per distinct value (dictionary-encoded first)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    d = pc.dictionary_encode(arr)
    uniques = [v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass") for v in d.dictionary.to_pylist()]
    u1, u2 = _bytes_words(uniques, np.ones(len(uniques), bool))
    idx = d.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) if len(arr) else \
        np.zeros(0, np.int64)
    if not len(uniques):
        return np.zeros(len(arr), np.uint64), np.zeros(len(arr), np.uint64)
    w1, w2 = u1[idx], u2[idx]
    w1[~valid] = 0
    w2[~valid] = 0
    del pa
    return w1, w2


def _canonical_text(v) -> bytes:
    return json.dumps(v, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")


def cell_words(arr) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 words per cell of an arrow array; a missing cell is ``(0, 0)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    n = len(arr)
    cls = cell_class(t)
    valid = np.ones(n, bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
    w1 = np.zeros(n, np.uint64)
    w2 = np.zeros(n, np.uint64)
    if cls == "null" or n == 0:
        return w1, w2
    if cls == "number":
        if pa.types.is_floating(t):
            f = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                valid = valid & ~np.isnan(f)
                whole = valid & (np.trunc(f) == f) & (np.abs(f) < 2.0 ** 63) & ~((f == 0) & np.signbit(f))
            asint = np.where(whole, f, 0).astype(np.int64)
            w1 = np.where(whole, asint.view(np.uint64), f.view(np.uint64))
            w2 = np.where(whole, np.uint64(_TAG["number_int"]), np.uint64(_TAG["number_float"]))
        else:
            v = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            w1 = v.astype(np.int64).view(np.uint64) if v.dtype.kind == "i" else v.astype(np.uint64)
            w2 = np.full(n, np.uint64(_TAG["number_int"]))
            if v.dtype.kind == "u":  # above int64's range: not an integer a signed column can hold
                w2 = np.where(v.astype(np.uint64) >= np.uint64(2 ** 63), np.uint64(7), w2)
    elif cls == "bool":
        w1 = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint64)
        w2 = np.full(n, np.uint64(_TAG["bool"]))
    elif cls in ("timestamp", "duration"):
        scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[t.unit]
        v = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        # (microseconds, nanoseconds past them): the ns count of an instant without overflow for any unit
        if scale >= 1_000:
            us, rem = v * (scale // 1_000), np.zeros(n, np.int64)
        else:
            us, rem = np.floor_divide(v, 1_000), np.mod(v, 1_000)
        w1 = us.view(np.uint64)
        w2 = np.uint64(_TAG[cls]) + (rem.astype(np.uint64) << np.uint64(8))
    elif cls == "date":
        v = pc.fill_null(arr.cast(pa.date32()).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        w1 = v.astype(np.int64).view(np.uint64)
        w2 = np.full(n, np.uint64(_TAG["date"]))
    elif cls in ("string", "binary"):
        return _words_of_text(arr, valid)
    else:  # decimal, nested: canonical text, value by value
        vals = arr.to_pylist()
        return _bytes_words([None if v is None else (str(v).encode() if cls == "decimal" else _canonical_text(v))
                             for v in vals], valid)
    w1 = np.where(valid, w1, np.uint64(0))
    w2 = np.where(valid, w2, np.uint64(0))
    return w1, w2


def batch_sums(columns: list) -> tuple[int, list[int]]:
    """``(rows, [row lane a, row lane b, col0 a, col0 b, ...])``: the sums (mod 2**64, as signed int64 so Spark
    can carry them in ``long`` columns) of one batch's row hashes and per-column cell hashes. ``columns``: arrow
    arrays of equal length, in column order."""
    n = len(columns[0]) if columns else 0
    a = np.full(n, np.uint64(0x243F6A8885A308D3))
    b = np.full(n, np.uint64(0x13198A2E03707344))
    col_sums = []
    with np.errstate(over="ignore"):
        for j, arr in enumerate(columns):
            w1, w2 = cell_words(arr)
            x = _fmix(w1 ^ (np.uint64(j) * _P1))
            y = _fmix(w2 + np.uint64(j + 1) * _P2)
            a = _fmix((a ^ x) * _P1 + y)
            b = _fmix((b ^ y) * _P2 + x + a)
            z = _fmix(_fmix(w1 + _P1) ^ (w2 * _P2))   # the column's own multiset: position-free
            col_sums += [_sum(z), _sum(_fmix(z ^ _P2))]
        a = _fmix(a ^ np.uint64(len(columns)))
        b = _fmix(b ^ a)
    return n, [_sum(a), _sum(b)] + col_sums


def _sum(x: np.ndarray) -> int:
    s = int(np.add.reduce(x, dtype=np.uint64)) if x.size else 0
    return s - (1 << 64) if s >= 1 << 63 else s


def fold(parts) -> tuple[int, list[int]]:
    """Add up ``batch_sums`` results (rows, sums) into one, modulo 2**64 (returned unsigned)."""
    rows, total = 0, None
    for n, sums in parts:
        rows += int(n)
        total = [int(s) % (1 << 64) for s in sums] if total is None else \
            [(t + int(s)) % (1 << 64) for t, s in zip(total, sums)]
    return rows, total or []


def map_batches(batches):
    """``mapInArrow``'s function: one output row per partition, ``n`` and the lane sums ``s0, s1, ...``."""
    import pyarrow as pa

    acc = []
    names = None
    for rb in batches:
        names = rb.schema.names
        acc.append(batch_sums([rb.column(i) for i in range(rb.num_columns)]))
    if not acc:
        return
    n, total = fold(acc)
    signed = [s - (1 << 64) if s >= 1 << 63 else s for s in total]
    del names
    yield pa.RecordBatch.from_arrays([pa.array([n], pa.int64())] + [pa.array([s], pa.int64()) for s in signed],
                                     names=["n"] + [f"s{i}" for i in range(len(signed))])

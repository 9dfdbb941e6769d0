"""Order-free content hashes that Spark computes with its own ``xxhash64`` (in the JVM: no Python on the executors)
and that this module reproduces bit for bit for arrow / pandas / polars columns on the driver.

The identity is the *multiset of rows*. Each cell becomes a few canonical values by its *class* (the logical kind
of value, not the container), each row is hashed by Spark's ``xxhash64`` over all its columns' canonical values in
column order (two lanes: seed 42, and seed 42 after the text ``"nbops"``), and the table's hash is the sum of its
row hashes modulo 2**64 per lane, with the row count. Sums depend neither on row order nor on partitioning. Each
column also gets its own position-free multiset hash (lanes ``"c"`` and ``"d"``), so a diff can say which columns
changed.

Canonical values (``tag`` is 0 for a missing cell -- null, NaN, NaT -- and the value slots then hold zeros):

- ``number`` (integers of any width, floats): int tag, the value as a double, a long. Numbers are compared by
  value, so a ``long`` column that ``toPandas()`` turned into ``float64`` for its nulls hashes the same; ``-0.0``
  is ``0.0`` (Spark's hash normalises it). Integers beyond 2**53, which a double cannot hold exactly, have tag 2
  and their exact value in the long slot.
- ``bool``: int tag, int 0/1. ``string`` / ``binary``: int tag, the UTF-8 / raw bytes. ``date``: int tag, int days.
- ``timestamp``: int tag, long microseconds since the epoch (naive timestamps read as UTC), int nanoseconds past
  the microsecond (always 0 in Spark).
- ``decimal``: int tag, its text. Other types (lists, structs, maps, intervals): int tag, their JSON text -- the
  same within Spark, not guaranteed equal to the pandas side.
"""
from __future__ import annotations

import json

import numpy as np

SEED = 42
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5
LANES = ("", "nbops")              # row lanes: xxhash64(args), xxhash64("nbops", args)
COLUMN_LANES = ("c", "d")          # per-column lanes
BIG = 2 ** 53                      # integers beyond this are compared as integers
_U = np.uint64


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U(r)) | (x >> _U(64 - r))


def _avalanche(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U(33))
    h = h * _U(P2)
    h = h ^ (h >> _U(29))
    h = h * _U(P3)
    return h ^ (h >> _U(32))


def hash_int(v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """XXH64 of a 4-byte integer (Spark's ``hashInt``), vectorised; ``v`` any integer array."""
    h = seed + _U(P5 + 4)
    h = h ^ ((v.astype(np.int64).view(_U) & _U(0xFFFFFFFF)) * _U(P1))
    h = _rotl(h, 23) * _U(P2) + _U(P3)
    return _avalanche(h)


def hash_long(v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """XXH64 of an 8-byte integer (Spark's ``hashLong``), vectorised; ``v`` int64 or uint64."""
    h = seed + _U(P5 + 8)
    k = v.view(_U) if v.dtype == np.int64 else v.astype(_U)
    k = _rotl(k * _U(P2), 31) * _U(P1)
    h = h ^ k
    h = _rotl(h, 27) * _U(P1) + _U(P4)
    return _avalanche(h)


def hash_double(v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Spark's hash of a double: the long of its bits, ``-0.0`` as ``0.0``."""
    v = np.asarray(v, dtype=np.float64) + 0.0   # -0.0 + 0.0 == +0.0
    return hash_long(v.view(np.int64), seed)


def hash_bytes(values: list, seed: np.ndarray) -> np.ndarray:
    """XXH64 of each bytes value with its row's seed (Spark's ``hashUnsafeBytes``); one call per cell."""
    import xxhash

    f = xxhash.xxh64_intdigest
    return np.fromiter((f(b, s) for b, s in zip(values, seed.tolist())), dtype=_U, count=len(values))


def seed_after(text: str) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(text.encode(), SEED) if text else SEED


# -- classes and canonical values -------------------------------------------------------------------------------------
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
    if T.is_null(t):
        return "null"
    if T.is_decimal(t):
        return "decimal"
    return "nested"


def canonical(arr) -> list[tuple[str, object]]:
    """The canonical values of one arrow column, as ``[(kind, values)]`` with kind ``int`` / ``long`` /
    ``double`` (numpy arrays) or ``bytes`` (a list), in the order Spark hashes them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t, n = arr.type, len(arr)
    cls = cell_class(t)
    valid = np.ones(n, bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
    tag = valid.astype(np.int64)
    if cls == "null":
        return [("int", np.zeros(n, np.int64))]
    if cls == "number":
        zeros = np.zeros(n, np.int64)
        if pa.types.is_floating(t):
            f = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
            valid = valid & ~np.isnan(f)
            return [("int", valid.astype(np.int64)), ("double", np.where(valid, f, 0.0)), ("long", zeros)]
        v = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
        big = (v > BIG) | (v < -BIG)
        return [("int", np.where(~valid, 0, np.where(big, 2, 1))),
                ("double", np.where(valid & ~big, v, 0).astype(np.float64)),
                ("long", np.where(big, v, 0).astype(np.int64))]
    if cls == "bool":
        return [("int", tag), ("int", pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.int64))]
    if cls == "timestamp":
        scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[t.unit]
        v = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if scale >= 1_000:
            us, rem = v * (scale // 1_000), np.zeros(n, np.int64)
        else:
            us, rem = np.floor_divide(v, 1_000), np.mod(v, 1_000)
        return [("int", tag), ("long", us), ("int", rem)]
    if cls == "date":
        days = pc.fill_null(arr.cast(pa.date32()).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        return [("int", tag), ("int", days.astype(np.int64))]
    if cls in ("string", "binary"):
        vals = arr.to_pylist()
        enc = (lambda v: v) if cls == "binary" else (lambda v: v.encode("utf-8", "surrogatepass"))
        return [("int", tag), ("bytes", [b"" if v is None else enc(v) for v in vals])]
    vals = arr.to_pylist()
    text = (lambda v: str(v)) if cls == "decimal" else \
        (lambda v: json.dumps(v, separators=(",", ":"), default=str, ensure_ascii=False))
    return [("int", tag), ("bytes", [b"" if v is None else text(v).encode("utf-8", "surrogatepass") for v in vals])]


_HASH = {"int": hash_int, "long": hash_long, "double": hash_double, "bytes": hash_bytes}


def _chain(parts: list[tuple[str, object]], seed: int, n: int) -> np.ndarray:
    h = np.full(n, _U(seed))
    for kind, values in parts:
        h = _HASH[kind](values, h)
    return h


def _sum(x: np.ndarray) -> int:
    return int(np.add.reduce(x, dtype=_U)) if x.size else 0


def batch_sums(arrays: list) -> tuple[int, list[int]]:
    """``(rows, [lane sums])`` of arrow columns of equal length: the row lanes, then two lanes per column (each sum
    modulo 2**64, unsigned) -- exactly what the Spark aggregation of :mod:`nbops.data.spark` returns."""
    n = len(arrays[0]) if arrays else 0
    cols = [canonical(a) for a in arrays]
    with np.errstate(over="ignore"):
        flat = [p for c in cols for p in c]
        sums = [_sum(_chain(flat, seed_after(lane), n)) for lane in LANES]
        for c in cols:
            sums += [_sum(_chain(c, seed_after(lane), n)) for lane in COLUMN_LANES]
    return n, sums


def fold(parts) -> tuple[int, list[int]]:
    """Add up ``batch_sums`` results into one (modulo 2**64)."""
    rows, total = 0, None
    for n, sums in parts:
        rows += int(n)
        total = [s % (1 << 64) for s in sums] if total is None else \
            [(t + s) % (1 << 64) for t, s in zip(total, sums)]
    return rows, total or []

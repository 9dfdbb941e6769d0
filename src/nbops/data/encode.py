"""Stable byte encodings: how a column (or a single Python value) becomes bytes that xxh3-128 hashes.

Every encoding is self-delimiting (a type tag, then fixed-size bytes or a length prefix), so concatenating the
encodings of a sequence never makes two different sequences look alike, and it never depends on the process
(no ``hash()``, no ``id()``, no pickles). Numbers keep their exact bits except that every NaN is written as the
one canonical quiet NaN, so NaNs produced in different ways are the same missing value.

Column encoders return ``(digest16, stats)``; ``stats`` are the per-column profile figures computed in the
same pass over the data (the data is read once, in cache-sized chunks).
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
import struct
import uuid
from collections import Counter
from pathlib import PurePath
from typing import Any, Callable

import numpy as np
import xxhash


CHUNK = 1 << 17                 # elements per chunk for numeric columns (1 MiB of float64: stays in cache)
OBJ_CHUNK = 1 << 15             # values per chunk for Python-object columns
TOP = 5                         # top values kept per categorical/string column
MAX_TEXT = 80                   # longest text kept in a profile value
_NAN = struct.pack("<d", math.nan)
_PACK_D = struct.Struct("<d").pack


class Unsupported(Exception):
    """A value whose content has no stable encoding (an arbitrary object)."""

    def __init__(self, value: Any):
        super().__init__(type(value).__name__)
        self.value = value


# -- single values ------------------------------------------------------------------------------------------------
def _lp(tag: bytes, data: bytes) -> bytes:
    return b"%s%d:%s" % (tag, len(data), data)


def _enc_str(v: str) -> bytes:
    return _lp(b"S", v.encode("utf-8", "surrogatepass"))


def _enc_float(v: float) -> bytes:
    return b"F" + (_NAN if v != v else _PACK_D(v))


def _enc_seq(tag: bytes, items) -> bytes:
    parts = [enc(x) for x in items]
    return b"%s%d:%s" % (tag, len(parts), b"".join(parts))


_FAST: dict[type, Callable[[Any], bytes]] = {
    str: _enc_str,
    int: lambda v: b"I%d;" % v,
    float: _enc_float,
    bool: lambda v: b"B1" if v else b"B0",
    type(None): lambda v: b"N",
    bytes: lambda v: _lp(b"Y", v),
    tuple: lambda v: _enc_seq(b"(", v),
    list: lambda v: _enc_seq(b"[", v),
}


def enc(v: Any) -> bytes:
    """The stable encoding of one value (type-tagged: ``1``, ``1.0``, ``True`` and ``"1"`` all differ)."""
    f = _FAST.get(type(v))
    return f(v) if f is not None else _enc_other(v)


def _enc_other(v: Any) -> bytes:  # noqa: C901 - one branch per supported type, in one place
    import sys

    pd = sys.modules.get("pandas")
    if pd is not None:
        if v is pd.NA:
            return b"A"
        if v is pd.NaT:
            return b"T"
        if isinstance(v, pd.Timestamp):
            return _lp(b"D", v.isoformat().encode())
        if isinstance(v, pd.Timedelta):
            return b"L%d;" % v.value
        if isinstance(v, pd.Interval):
            return b"V" + v.closed.encode()[:1] + enc(v.left) + enc(v.right)
        if isinstance(v, pd.Period):
            return _lp(b"P", f"{v}|{v.freqstr}".encode())
    if isinstance(v, (bool, np.bool_)):
        return b"B1" if v else b"B0"
    if isinstance(v, (int, np.integer)):
        return b"I%d;" % int(v)
    if isinstance(v, (float, np.floating)):
        return _enc_float(float(v))
    if isinstance(v, (complex, np.complexfloating)):
        return b"C" + _enc_float(v.real) + _enc_float(v.imag)
    if isinstance(v, str):
        return _enc_str(str(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _lp(b"Y", bytes(v))
    if isinstance(v, np.datetime64):
        return b"T" if np.isnat(v) else _lp(b"M", f"{v.dtype.str}|{v.astype('i8')}".encode())
    if isinstance(v, np.timedelta64):
        return b"T" if np.isnat(v) else _lp(b"m", f"{v.dtype.str}|{v.astype('i8')}".encode())
    if isinstance(v, _dt.datetime):
        return _lp(b"d", v.isoformat().encode())
    if isinstance(v, _dt.date):
        return _lp(b"a", v.isoformat().encode())
    if isinstance(v, _dt.time):
        return _lp(b"t", v.isoformat().encode())
    if isinstance(v, _dt.timedelta):
        return b"l%d;" % (v // _dt.timedelta(microseconds=1))
    if isinstance(v, decimal.Decimal):
        return _lp(b"E", str(v).encode())
    if isinstance(v, uuid.UUID):
        return b"U" + v.bytes
    if isinstance(v, PurePath):
        return _lp(b"p", v.as_posix().encode("utf-8", "surrogatepass"))
    if isinstance(v, tuple):
        return _enc_seq(b"(", v)
    if isinstance(v, list):
        return _enc_seq(b"[", v)
    if isinstance(v, dict):
        items = sorted(enc(k) + enc(x) for k, x in v.items())
        return b"{%d:%s" % (len(items), b"".join(items))
    if isinstance(v, (set, frozenset)):
        items = sorted(enc(x) for x in v)
        return b"<%d:%s" % (len(items), b"".join(items))
    if isinstance(v, np.ndarray):
        head = f"{v.dtype.str}|{v.shape}".encode()
        if v.dtype.kind == "O":
            return _lp(b"R", head) + _enc_seq(b"[", v.reshape(-1))
        return _lp(b"R", head) + _lp(b"", np.ascontiguousarray(v).view(np.uint8).tobytes())
    raise Unsupported(v)


# -- helpers for profiles -------------------------------------------------------------------------------------------
def json_number(x) -> float | int | str | None:
    """A number JSON can hold (inf/nan become strings)."""
    if x is None:
        return None
    if isinstance(x, (np.integer, int)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def short_text(v: Any) -> Any:
    """A profile value: JSON-friendly and short."""
    if v is None or isinstance(v, (bool, int, float)) and not isinstance(v, (np.generic,)):
        return json_number(v) if isinstance(v, float) else v
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, (bool, int, float)):
            return json_number(v) if isinstance(v, float) else v
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def top_from_counts(values, counts, k: int = TOP) -> list[list]:
    """``[[value, count], ...]`` for the k largest counts (ties: first seen first)."""
    counts = np.asarray(counts)
    if counts.size == 0:
        return []
    k = min(k, counts.size)
    idx = np.argpartition(-counts, k - 1)[:k] if counts.size > k else np.arange(counts.size)
    idx = sorted(idx.tolist(), key=lambda i: (-int(counts[i]), i))
    return [[short_text(values[i]), int(counts[i])] for i in idx if counts[i] > 0]


# -- numeric buffers ------------------------------------------------------------------------------------------------
def _native(a: np.ndarray) -> np.ndarray:
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != ("<" if np.little_endian else ">"):
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def numeric(values: np.ndarray, tick: Callable[[int], None], mask: np.ndarray | None = None,
            stats: bool = True) -> tuple[bytes, dict]:
    """Hash a numeric / boolean / datetime / timedelta buffer (any shape, read as C order) in chunks, computing
    the profile (nulls, min, max, mean) on the same chunks while they are in cache.

    ``mask``: True where the value is missing (pandas masked arrays, arrow validity); those slots must already
    hold a fixed filler (0) so that their bytes are stable. Float NaNs are canonicalised.
    """
    a = _native(values).reshape(-1)
    kind = a.dtype.kind
    h = xxhash.xxh3_128()
    h.update(b"n%s|%d|" % (a.dtype.str.encode(), a.size))
    if mask is not None:
        mask = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
        h.update(b"m")
        h.update(np.packbits(mask).tobytes())
    is_float = kind == "f"
    is_complex = kind == "c"
    is_time = kind in "Mm"
    nan_count = nulls = 0
    count = 0
    lo = hi = None
    total = 0.0
    itemsize = a.dtype.itemsize
    with np.errstate(all="ignore"):  # signalling NaNs, overflowing sums: figures, not warnings
        for start in range(0, a.size, CHUNK):
            c = a[start:start + CHUNK]
            valid = None if mask is None else ~mask[start:start + CHUNK]
            chunk_sum = None
            if is_float:  # one pass: a sum that is not NaN proves there is no NaN to canonicalise (the common case)
                chunk_sum = float(np.add.reduce(c, dtype=np.float64))
            if is_complex or (is_float and chunk_sum != chunk_sum):
                chunk_sum = None
                parts = c.view(c.real.dtype) if is_complex else c
                nan = np.isnan(parts)
                if nan.any():
                    parts = np.where(nan, np.nan, parts)
                    c = parts.view(c.dtype) if is_complex else parts
                    nan_any = nan.reshape(len(c), -1).any(axis=1) if is_complex else nan
                    nan_count += int(np.count_nonzero(nan_any & valid) if valid is not None else np.count_nonzero(nan_any))
                    valid = ~nan_any if valid is None else (valid & ~nan_any)
            h.update(c.view(np.uint8))
            if stats and not is_complex:
                if is_time:
                    iv = c.view("i8")
                    nat = iv == np.iinfo(np.int64).min
                    if nat.any():
                        nulls += int(np.count_nonzero(nat if valid is None else nat & valid))
                        valid = ~nat if valid is None else valid & ~nat
                    v = iv if valid is None else iv[valid]
                else:
                    v = c if valid is None else c[valid]
                if v.size:
                    count += v.size
                    vmin, vmax = v.min(), v.max()
                    lo = vmin if lo is None or vmin < lo else lo
                    hi = vmax if hi is None or vmax > hi else hi
                    if not is_time:
                        total += chunk_sum if chunk_sum is not None and valid is None else \
                            float(np.add.reduce(v, dtype=np.float64))
            tick(len(c) * itemsize)
    digest = h.digest()
    if mask is not None:  # a masked / arrow column: missing is the mask; NaN is a value, counted apart
        out: dict = {"nulls": int(np.count_nonzero(mask))}
        if nan_count:
            out["nan"] = nan_count
    else:                 # numpy semantics, as pandas reads them: NaN and NaT are the missing values
        out = {"nulls": nan_count + nulls}
    if not stats or is_complex or count == 0:
        return digest, out
    if kind == "b":
        out["mean"] = json_number(total / count)
    elif is_time:
        unit = np.datetime_data(a.dtype)[0]
        conv = (lambda x: str(np.datetime64(int(x), unit))) if kind == "M" else \
            (lambda x: str(np.timedelta64(int(x), unit)))
        out["min"], out["max"] = conv(lo), conv(hi)
    else:
        out["min"], out["max"], out["mean"] = json_number(lo), json_number(hi), json_number(total / count)
    return digest, out


# -- Python-object columns ------------------------------------------------------------------------------------------
def _na_kind(v) -> int:
    return 0 if v is None else 1 if type(v) is float else 2


def objects(values: np.ndarray, tick: Callable[[int], None], stats: bool = True) -> tuple[bytes, dict]:
    """Hash an object column. Fast path when every non-missing value is a ``str``: pandas' factorize gives the
    distinct strings (in first-seen order) and one code per row, which together determine the column exactly;
    missing values (None, NaN, pd.NA, NaT) keep their kind. Otherwise each value is encoded with :func:`enc`."""
    import pandas as pd

    vals = np.asarray(values, dtype=object).reshape(-1)
    n = vals.size
    h = xxhash.xxh3_128()
    fact = None
    if n:
        try:  # a str never equals a non-str, so when every distinct value is a str no two kinds were merged
            codes, uniques = pd.factorize(vals, use_na_sentinel=True)
            uniques = np.asarray(uniques, dtype=object)
            if len(uniques) == 0 or pd.api.types.infer_dtype(uniques, skipna=False) == "string":
                fact = codes, uniques
        except TypeError:  # unhashable values (lists, dicts): the general encoder below
            fact = None
    if fact is not None:
        codes, uniques = fact
        h.update(b"s%d|%d|" % (n, len(uniques)))
        text = "".join(uniques.tolist()).encode("utf-8", "surrogatepass")
        lens = np.fromiter(map(len, uniques.tolist()), dtype=np.int64, count=len(uniques))
        h.update(lens.view(np.uint8))
        h.update(text)
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        h.update(codes.view(np.uint8))
        missing = codes < 0
        nulls = int(np.count_nonzero(missing))
        if nulls:  # which kind of missing value sits where (None, NaN, or another NA) is content too
            na = vals[missing]
            kinds = np.fromiter(map(_na_kind, na.tolist()), dtype=np.uint8, count=nulls)
            h.update(b"k")
            h.update(kinds.tobytes())
            for v in na[kinds == 2].tolist():
                h.update(enc(v))
        tick(n * 8)
        out: dict = {"nulls": nulls}
        if stats:
            counts = np.bincount(codes[~missing], minlength=len(uniques)) if nulls else \
                np.bincount(codes, minlength=len(uniques))
            out.update(distinct=int(len(uniques)), top=top_from_counts(uniques, counts))
        return h.digest(), out
    h.update(b"o%d|" % n)
    nulls = 0
    types: Counter = Counter()
    tops: Counter = Counter()
    hashable = True
    for start in range(0, n, OBJ_CHUNK):
        chunk = vals[start:start + OBJ_CHUNK].tolist()
        h.update(b"".join(map(enc, chunk)))  # raises Unsupported for an arbitrary object
        if stats:
            types.update(type(v).__name__ for v in chunk)
            if hashable:
                try:
                    tops.update((type(v).__name__, v) for v in chunk if not _is_na(v))
                except TypeError:  # lists, dicts: no top values
                    hashable = False
        tick(len(chunk) * 8)
    nulls = int(pd.isna(vals).sum()) if n else 0
    out = {"nulls": nulls}
    if stats:
        out["types"] = dict(types.most_common())
        if hashable:
            out["distinct"] = len(tops)
            out["top"] = [[short_text(v), c] for (_, v), c in tops.most_common(TOP)]
    return h.digest(), out


def _is_na(v) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)
    except Exception:  # noqa: BLE001 - arrays and odd objects are not NA
        return False

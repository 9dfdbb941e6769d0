"""Stable byte encodings: how a column (or a single Python value) becomes bytes that xxh3-128 hashes.

Every encoding is self-delimiting (a type tag, then fixed-size bytes or a length prefix), so concatenating the
encodings of a sequence never makes two different sequences look alike, and it never depends on the process
(no ``hash()``, no ``id()``, no pickles).

Column encoders (digest scheme v2) return ``(digest16, stats, logical type)``; ``stats`` are the per-column
profile figures computed in the same pass over the data (read once, in cache-sized chunks). The digest covers
the logical type and streams that do not depend on the container or on how the data is chunked: the values
(missing slots as a fixed filler), the row numbers of the missing values, and for text the lengths and UTF-8
bytes straight from arrow buffers.
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

from .._lazy import loaded


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


def _enc_pandas(v: Any) -> bytes | None:
    """The encoding of a pandas scalar (NA, NaT, Timestamp, Timedelta, Interval, Period); None for anything else
    or when pandas was never imported (then no value can be one)."""
    pd = loaded("pandas")
    if pd is None:
        return None
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
    return None


def _enc_other(v: Any) -> bytes:  # noqa: C901 - one branch per supported type, in one place
    done = _enc_pandas(v)  # first: pd.Timestamp is a datetime, pd.Timedelta a timedelta
    if done is not None:
        return done
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


# -- column digests (scheme v2) -------------------------------------------------------------------------------------
# A column's digest covers its logical type (``int64``, ``float64``, ``string``, ``timestamp[UTC]``, ...; never the
# container: numpy, pandas masked, pyarrow or polars), its length, and streams that do not depend on how the data is
# chunked: the values (missing slots filled with a fixed filler), the row numbers of the missing values, and for
# text the lengths and the UTF-8 bytes. Every missing value of a column is the same missing value (NaN, None,
# pd.NA, NaT, an arrow / polars null).
INT64_MIN = np.iinfo(np.int64).min
_UNITS = (("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000))
_TO_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000, "D": 86_400_000_000_000, "W": 604_800_000_000_000}
SAMPLE_ROWS = 1 << 16           # text columns longer than HIGH_CARD_ROWS: values sampled to detect id-like columns
HIGH_CARD_ROWS = 200_000


def column_digest(ltype: str, n: int, *parts: bytes) -> bytes:
    """The digest of one column from its logical type, length and part digests."""
    h = xxhash.xxh3_128()
    h.update(_lp(b"col2|", ltype.encode()))
    h.update(b"%d|" % n)
    for p in parts:
        h.update(p)
    return h.digest()


class _Missing:
    """The row numbers of missing values, streamed as little-endian int64 (independent of chunk sizes)."""

    def __init__(self):
        self.h = xxhash.xxh3_128()
        self.count = 0

    def add(self, mask: np.ndarray, start: int) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            self.count += int(idx.size)
            self.h.update((idx.astype(np.int64) + start).astype("<i8", copy=False).view(np.uint8))

    def digest(self) -> bytes:
        return b"M%d:" % self.count + self.h.digest()


def _le(a: np.ndarray) -> np.ndarray:
    """Little-endian, contiguous: the byte order every stream is hashed in."""
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a)


class _Range:
    """Count, min, max and sum of the non-missing values of a numeric column, gathered chunk by chunk."""

    def __init__(self):
        self.count, self.lo, self.hi, self.total = 0, None, None, 0.0

    def add(self, v: np.ndarray, chunk_sum: float | None = None) -> None:
        """Take in the non-missing values of one chunk; ``chunk_sum`` is their float64 sum when already known."""
        if not v.size:
            return
        self.count += v.size
        vmin, vmax = v.min(), v.max()
        self.lo = vmin if self.lo is None or vmin < self.lo else self.lo
        self.hi = vmax if self.hi is None or vmax > self.hi else self.hi
        self.total += chunk_sum if chunk_sum is not None else float(np.add.reduce(v, dtype=np.float64))

    def figures(self, boolean: bool) -> dict:
        """The profile figures: the mean for booleans, min, max and mean otherwise (none without values)."""
        if self.count == 0:
            return {}
        if boolean:
            return {"mean": json_number(self.total / self.count)}
        return {"min": json_number(self.lo), "max": json_number(self.hi), "mean": json_number(self.total / self.count)}


def _with_nan(c: np.ndarray, m: np.ndarray | None, kind: str) -> tuple[np.ndarray | None, float | None]:
    """The missing mask of one chunk with its NaNs added (floats and complex), and for floats the chunk's float64
    sum when that sum proves there is no NaN (the common case: one pass instead of two)."""
    if kind == "f":
        chunk_sum = float(np.add.reduce(c, dtype=np.float64))
        if chunk_sum == chunk_sum:
            return m, chunk_sum
    elif kind != "c":
        return m, None
    nan = np.isnan(c)
    if nan.any():
        m = nan if m is None else m | nan
    return m, None


def numeric(values: np.ndarray, tick: Callable[[int], None], mask: np.ndarray | None = None,
            stats: bool = True, ltype: str | None = None) -> tuple[bytes, dict, str]:
    """Hash a numeric / boolean buffer (any shape, read as C order) in chunks, computing the profile (nulls,
    min, max, mean) on the same chunks while they are in cache.

    ``mask``: True where the value is missing (pandas masked arrays, arrow validity). Missing slots and float
    NaNs are one missing value: their row numbers are hashed apart and the slot is hashed as a fixed filler
    (the canonical NaN for floats, 0 otherwise), so the bytes a container left there do not matter.
    """
    a = _le(values).reshape(-1)
    kind = a.dtype.kind
    ltype = ltype or ("bool" if kind == "b" else a.dtype.name)
    if mask is not None:
        mask = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
    vals = xxhash.xxh3_128()
    miss = _Missing()
    filler = np.nan if kind in "fc" else 0
    rng = _Range() if stats and kind != "c" else None
    with np.errstate(all="ignore"):  # signalling NaNs, overflowing sums: figures, not warnings
        for start in range(0, a.size, CHUNK):
            c = a[start:start + CHUNK]
            m = None if mask is None else mask[start:start + CHUNK]
            if m is not None and not m.any():
                m = None
            m, chunk_sum = _with_nan(c, m, kind)
            if m is not None:
                c = c.copy()
                c[m] = filler
                miss.add(m, start)
            vals.update(c.view(np.uint8))
            if rng is not None:
                rng.add(c if m is None else c[~m], chunk_sum if m is None else None)
            tick(len(c) * a.dtype.itemsize)
    digest = column_digest(ltype, a.size, vals.digest(), miss.digest())
    out: dict = {"nulls": miss.count}
    if rng is not None:
        out.update(rng.figures(boolean=kind == "b"))
    return digest, out, ltype


def canonical_tz(tz) -> str | None:
    """One name per time zone whatever library made it: zoneinfo / pytz / arrow names as they are, every spelling
    of UTC as ``UTC``, fixed offsets as ``+HH:MM``."""
    if tz is None:
        return None
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name is None and isinstance(tz, str):
        name = tz
    filename = getattr(tz, "_filename", None)  # dateutil: tzfile('/usr/share/zoneinfo/Europe/Paris')
    if name is None and isinstance(filename, str) and "zoneinfo/" in filename:
        name = filename.split("zoneinfo/", 1)[1]
    if name is None:
        import datetime as dt_

        off = tz.utcoffset(dt_.datetime(2000, 1, 1)) if hasattr(tz, "utcoffset") else None
        if off is not None and tz.utcoffset(dt_.datetime(2000, 7, 1)) == off:
            mins = int(off.total_seconds() // 60)
            name = f"{'+' if mins >= 0 else '-'}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"
        else:
            name = str(tz)
    if name in ("UTC", "utc", "Etc/UTC", "Z", "+00:00", "-00:00", "Etc/Zulu", "Zulu", "Universal", "Etc/Universal",
                "UCT", "Etc/UCT"):
        return "UTC"
    return name


def _time_text(v: int, unit: str, kind: str, tz: str | None) -> str:
    import pandas as pd

    if kind == "duration":
        return str(pd.Timedelta(np.timedelta64(int(v), unit)))
    ts = pd.Timestamp(np.datetime64(int(v), unit))
    if tz is not None:
        ts = ts.tz_localize("UTC")
        try:
            ts = ts.tz_convert(tz)
        except Exception:  # noqa: BLE001 - a zone this pandas cannot resolve: the UTC instant
            pass
    return ts.isoformat()


def _missing_and_range(a: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, int | None, int | None]:
    """The missing slots of int64 time counts (NaT = the minimum int64, or ``mask``) and the smallest and largest
    count that is not missing (None, None when every value is missing)."""
    missing = np.zeros(a.size, dtype=bool)
    lo = hi = None
    for start in range(0, a.size, CHUNK):
        c = a[start:start + CHUNK]
        m = c == INT64_MIN
        if mask is not None:
            m |= mask[start:start + CHUNK]
        missing[start:start + CHUNK] = m
        v = c[~m] if m.any() else c
        if v.size:
            vmin, vmax = int(v.min()), int(v.max())
            lo = vmin if lo is None or vmin < lo else lo
            hi = vmax if hi is None or vmax > hi else hi
    return missing, lo, hi


def _hash_unit(unit: str, lo: int | None, hi: int | None) -> tuple[str, int]:
    """The finest of ns, us, ms, s that holds every count from ``lo`` to ``hi`` given in ``unit``, and the factor
    that converts to it (``unit`` itself, factor 1, when none does)."""
    src = _TO_NS[unit]
    for u, f in _UNITS:
        if src % f:
            continue
        k = src // f
        if lo is None or (-(2 ** 63) < lo * k and hi * k < 2 ** 63):
            return u, k
    return unit, 1


def temporal(values: np.ndarray, unit: str, tick: Callable[[int], None], mask: np.ndarray | None = None,
             stats: bool = True, kind: str = "timestamp", tz=None) -> tuple[bytes, dict, str]:
    """Hash timestamps or durations given as int64 counts of ``unit`` (NaT = the minimum int64 is missing, as is
    ``mask``). The counts are hashed in the finest of ns, us, ms, s that holds every value, so the same instants
    give the same digest whatever resolution they are stored in (s, ms, us, ns). Time-zone-aware timestamps are
    UTC instants plus the zone name, which is part of the type (``timestamp[Europe/Paris]``)."""
    a = np.ascontiguousarray(values).reshape(-1).view(np.int64)
    tzname = canonical_tz(tz)
    ltype = "duration" if kind == "duration" else f"timestamp[{tzname}]" if tzname else "timestamp"
    if mask is not None:
        mask = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
    if unit not in _TO_NS:
        raise Unsupported(np.datetime64(0, unit))
    missing, lo, hi = _missing_and_range(a, mask)   # pass 1: decides the unit the values are hashed in
    target, scale = _hash_unit(unit, lo, hi)
    vals = xxhash.xxh3_128()
    vals.update(b"u:%s|" % target.encode())
    miss = _Missing()
    with np.errstate(all="ignore"):
        for start in range(0, a.size, CHUNK):
            c = a[start:start + CHUNK]
            m = missing[start:start + CHUNK]
            has = m.any()
            if scale != 1 or has:
                c = c * scale if scale != 1 else c.copy()
                if has:
                    c[m] = 0
                    miss.add(m, start)
            vals.update(_le(c).view(np.uint8))
            tick(len(c) * 8)
    digest = column_digest(ltype, a.size, vals.digest(), miss.digest())
    out: dict = {"nulls": miss.count}
    if stats and lo is not None:
        out["min"], out["max"] = (_time_text(lo, unit, kind, tzname), _time_text(hi, unit, kind, tzname))
    return digest, out, ltype


def _offsets(ch, n: int, off_type):
    """The n + 1 value offsets of an arrow string / binary chunk (zero-copy) and its buffers."""
    if not n:
        return np.zeros(1, dtype=off_type), None
    b = ch.buffers()
    return np.frombuffer(b[1], dtype=off_type, count=n + 1, offset=ch.offset * np.dtype(off_type).itemsize), b


def _text_chunk(ch, binary: bool) -> tuple[np.ndarray, memoryview | None, np.ndarray | None]:
    """One arrow text / binary chunk (not of the null type) as the value lengths (little-endian int64), the bytes
    of the values (None when there are none) and the null mask (None without nulls). Null slots have length 0:
    arrow lets a null slot keep bytes; they are not content."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n, t = len(ch), ch.type
    if not (pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t)
            or pa.types.is_large_binary(t)):
        ch = ch.cast(pa.large_binary() if binary else pa.large_string())  # string_view, binary_view, fixed-size
        t = ch.type
    off_type = np.int64 if (pa.types.is_large_string(t) or pa.types.is_large_binary(t)) else np.int32
    off, bufs = _offsets(ch, n, off_type)
    lens = np.diff(off).astype("<i8", copy=False)
    null = None
    if ch.null_count:
        null = ch.is_null().to_numpy(zero_copy_only=False)
        if lens[null].any():
            ch = pc.fill_null(ch, pa.scalar(b"" if binary else "", type=t))
            off, bufs = _offsets(ch, n, off_type)
            lens = np.diff(off).astype("<i8", copy=False)
    o0, o1 = int(off[0]), int(off[-1])
    return lens, (memoryview(bufs[2])[o0:o1] if o1 > o0 else None), null


def strings(arr, tick: Callable[[int], None], stats: bool = True, ltype: str = "string") -> tuple[bytes, dict, str]:
    """Hash a pyarrow text (or binary) array / chunked array from its buffers: the lengths (from the offsets), the
    UTF-8 bytes and the row numbers of the nulls; no Python object per value. The profile's distinct and top
    values come from arrow's hash table (skipped, with ``high_cardinality: true``, for long columns whose
    sampled values are mostly distinct: ids and free text)."""
    import pyarrow as pa

    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    lens_h, data_h, miss = xxhash.xxh3_128(), xxhash.xxh3_128(), _Missing()
    start = 0
    for ch in chunks:
        n = len(ch)
        if pa.types.is_null(ch.type):
            miss.add(np.ones(n, dtype=bool), start)
            lens_h.update(np.zeros(n, dtype="<i8").view(np.uint8))
            start += n
            continue
        lens, data, null = _text_chunk(ch, ltype == "binary")
        if null is not None:
            miss.add(null, start)
        lens_h.update(lens.view(np.uint8))
        if data is not None:
            data_h.update(data)
        tick(n * 8 + (0 if data is None else len(data)))
        start += n
    digest = column_digest(ltype, start, lens_h.digest(), data_h.digest(), miss.digest())
    out: dict = {"nulls": miss.count}
    if stats and start >= BACKGROUND_ROWS:  # arrow's hash table works without the GIL: beside the next columns
        out[PENDING] = _worker().submit(_text_profile, arr, start - miss.count)
    elif stats:
        out.update(_text_profile(arr, start - miss.count))
    return digest, out, ltype


BACKGROUND_ROWS = 1_000_000     # text columns this long get their profile counted on a worker thread
PENDING = "_pending"            # key of a profile entry still being computed (see resolve_pending)
_WORKER = None


def _worker():
    global _WORKER
    if _WORKER is None:
        from concurrent.futures import ThreadPoolExecutor

        _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-profile")
    return _WORKER


def resolve_pending(columns: list[dict]) -> None:
    """Fill in the profile figures computed on the worker thread (in place, keeping ``digest`` last)."""
    for col in columns:
        fut = col.pop(PENDING, None)
        if fut is not None:
            digest = col.pop("digest", None)
            col.update(fut.result())
            if digest is not None:
                col["digest"] = digest


def _text_profile(arr, valid: int) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    if valid == 0 or pa.types.is_null(arr.type):
        return {"distinct": 0, "top": []}
    if len(arr) > HIGH_CARD_ROWS and _mostly_distinct(arr.slice(0, SAMPLE_ROWS)):
        return {"high_cardinality": True}
    vc = pc.value_counts(arr)
    values, counts = vc.field("values"), vc.field("counts")
    if values.null_count:
        keep = pc.is_valid(values)
        values, counts = values.filter(keep), counts.filter(keep)
    c = counts.to_numpy(zero_copy_only=False)
    k = min(TOP, c.size)
    idx = np.argsort(-c, kind="stable")[:k]   # ties: first seen first (value_counts keeps first-seen order)
    top_vals = values.take(pa.array(idx)).to_pylist()
    return {"distinct": int(c.size), "top": [[short_text(v), int(c[i])] for v, i in zip(top_vals, idx.tolist())]}


def _mostly_distinct(sample) -> bool:
    """Whether more than half the non-missing values of a (sampled) arrow text array are distinct."""
    import pyarrow.compute as pc

    k = len(sample) - sample.null_count
    return bool(k) and len(pc.drop_null(pc.unique(sample))) > k // 2


# -- Python-object columns ------------------------------------------------------------------------------------------
def as_text(values: np.ndarray):
    """The pyarrow text array of an object column whose values are all ``str`` or missing (None, NaN, pd.NA,
    NaT); None when any value is something else. One C loop over the objects."""
    import pyarrow as pa

    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
        return None
    t = arr.type
    return arr if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) else None


def _text_objects(vals: np.ndarray, tick, stats: bool):
    """An object column of text, hashed as arrow text; None when it holds anything but ``str`` and missing values.

    Long columns with a handful of distinct values (labels, cities) are factorized by pandas and rebuilt in arrow
    from the distinct strings and one code per row, which also gives the counts for the profile; other columns
    are converted in one go."""
    import pandas as pd
    import pyarrow as pa

    import pyarrow.compute as pc

    n = vals.size
    few = False  # a handful of distinct values (at most 1 in 100 of a sample): factorizing is the faster way
    if n > HIGH_CARD_ROWS:
        sample = as_text(vals[:SAMPLE_ROWS])
        if sample is None:
            return None
        few = len(pc.drop_null(pc.unique(sample))) <= len(sample) // 100
    if not few:
        text = as_text(vals)
        return None if text is None else strings(text, tick, stats)
    try:  # a str never equals a non-str, so when every distinct value is a str no two kinds were merged
        codes, uniques = pd.factorize(vals, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts)
        return None
    uniques = np.asarray(uniques, dtype=object)
    dictionary = as_text(uniques)
    if dictionary is None:
        return None
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    if len(uniques):
        text = dictionary.cast(pa.large_string()).take(pa.array(codes, mask=missing if missing.any() else None))
    else:
        text = pa.nulls(n, pa.large_string())
    d, out, ltype = strings(text, tick, stats=False)
    if stats:
        counts = np.bincount(codes[~missing], minlength=len(uniques)) if len(uniques) else np.zeros(0, np.int64)
        out.update(distinct=int(len(uniques)), top=top_from_counts(uniques, counts))
    return d, out, ltype


def _na_cell(v) -> bool:

    pd = loaded("pandas")
    if pd is not None and (v is pd.NA or v is pd.NaT):
        return True
    if isinstance(v, np.floating):
        return bool(np.isnan(v))
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def _float_cell(v: float) -> bytes:
    return b"N" if v != v else b"F" + _PACK_D(v)


_FAST_CELL: dict[type, Callable[[Any], bytes]] = {**_FAST, float: _float_cell}


def enc_cell(v: Any) -> bytes:
    """:func:`enc` for one cell of a column: every missing value (None, NaN, pd.NA, NaT) is the same ``N``."""
    f = _FAST_CELL.get(type(v))
    if f is not None:
        return f(v)
    return b"N" if _na_cell(v) else _enc_other(v)


def objects(values: np.ndarray, tick: Callable[[int], None], stats: bool = True) -> tuple[bytes, dict, str]:
    """Hash an object column; returns ``(digest, stats, logical type)``. Text (every value a ``str`` or missing)
    goes through pyarrow once and is hashed from its buffers, exactly as a pandas ``str`` / ``string`` /
    arrow / polars text column is (type ``string``). Anything else is encoded value by value with type tags
    (``1``, ``1.0``, ``True``, ``"1"`` differ; every missing value is one), type ``object``."""
    import pandas as pd

    vals = np.asarray(values, dtype=object).reshape(-1)
    n = vals.size
    done = _text_objects(vals, tick, stats)
    if done is not None:
        return done
    h = xxhash.xxh3_128()
    types: Counter = Counter()
    tops: Counter = Counter()
    hashable = True
    for start in range(0, n, OBJ_CHUNK):
        chunk = vals[start:start + OBJ_CHUNK].tolist()
        h.update(b"".join(map(enc_cell, chunk)))  # raises Unsupported for an arbitrary object
        if stats:
            types.update(type(v).__name__ for v in chunk)
            if hashable:
                try:
                    tops.update((type(v).__name__, v) for v in chunk if not _is_na(v))
                except TypeError:  # lists, dicts: no top values
                    hashable = False
        tick(len(chunk) * 8)
    nulls = int(pd.isna(vals).sum()) if n else 0
    out: dict = {"nulls": nulls}
    if stats:
        out["types"] = dict(types.most_common())
        if hashable:
            out["distinct"] = len(tops)
            out["top"] = [[short_text(v), c] for (_, v), c in tops.most_common(TOP)]
    return column_digest("object", n, h.digest()), out, "object"


def _is_na(v) -> bool:
    if v is None or _na_cell(v):
        return True
    try:
        return bool(v != v)
    except Exception:  # noqa: BLE001 - arrays and odd objects are not NA
        return False

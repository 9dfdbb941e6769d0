"""``fingerprint(obj)``: the exact, fast identity of a frame, an array, a file or a folder.

What the digest covers (digest scheme v2: ``"v2:"`` + xxh3-128 hex over stable encodings, see
:mod:`nbops.data.encode` and :mod:`nbops.data.columns`):

- pandas DataFrame: the shape, then per column (by position, so duplicate names are fine) its label and the
  digest of its content, which covers its logical type (``int64``, ``float64``, ``string``, ``timestamp``,
  ``timestamp[Europe/Paris]``, ``category<string>``, ...) and values, not the container: object / ``str`` /
  ``string`` / pyarrow-backed text, numpy / masked / pyarrow numbers and any datetime resolution give the same
  digest for the same values. The index is covered when ``index=True``, skipped when ``index=False``; the
  default (``None``) covers it unless it is a ``RangeIndex``.
- pandas Series: the same, for one column, with the Series' name.
- polars DataFrame / Series: exactly as pandas (the same values give the same digest).
- numpy array: shape; 2-D arrays column by column, structured arrays field by field, other shapes as one column.
- Spark DataFrame (classic or Connect): the multiset of its rows, computed by Spark (see :mod:`nbops.data.spark`);
  ``fingerprint(df, ordered=False)`` gives a pandas / polars DataFrame the same order-free digest.
- a file: the plain xxh3-128 of its bytes -- the same hex digits ``xxh128sum FILE`` prints (no scheme prefix:
  bytes are bytes under every scheme).
- a folder: the xxh3-128 of its manifest, one ``"<file digest>  <relative/posix/path>\\n"`` line per file
  in sorted path order (hidden files included, symlinked folders not followed).

Identical data gives the same digest in every process on every machine (no ``hash()``, no pickles), and any
change to any cell, type or column name changes it. Every missing value of a column (NaN, None, pd.NA, NaT, an
arrow / polars null) is the same missing value; ``-0.0`` and ``0.0`` differ, as their bits do.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xxhash

from .._lazy import loaded
from ..errors import DataError
from .columns import ndarray_column, pandas_column, polars_column
from .encode import Unsupported, enc, resolve_pending
from .version import SCHEME_PREFIX, DataVersion

log = logging.getLogger("nbops")

FILE_CHUNK = 8 << 20          # bytes read per call when hashing files
PROFILE_FILE_LIMIT = 200 << 20  # tabular files up to this size are also read to profile their columns
TABULAR = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".feather": "feather"}
_internal = threading.local()   # set while nbops itself reads a file (autoversion must not log those reads)


def reading_internally() -> bool:
    return getattr(_internal, "depth", 0) > 0


class _Progress:
    """A tqdm bar: with progress=None only where a person watches and the work takes over a second; True: at once."""

    def __init__(self, total: int, desc: str, progress: bool | None):
        self.bar = None
        if progress is False or total <= 0:
            return
        from ..display.progress import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                        progress=progress)

    def tick(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _what(obj: Any, name: str | None) -> str:
    return f"`{name}` (a {type(obj).__module__.split('.')[0]}.{type(obj).__name__})" if name else \
        f"a {type(obj).__module__.split('.')[0]}.{type(obj).__name__}"


def fingerprint(obj: Any, name: str | None = None, *, index: bool | None = None, profile: bool = True,
                progress: bool | None = None, ordered: bool | None = None) -> DataVersion:
    """The :class:`DataVersion` of ``obj``: a pandas DataFrame or Series, a numpy array, a polars DataFrame or
    Series, or the path (``str`` / ``Path``) of a file or folder.

    ``name`` labels the version (default: the file name for paths). ``index``: see the module docs.
    ``profile=False`` skips the per-column profile (the digest is the same either way). ``progress``: None shows
    a tqdm bar only for work that takes over a second, True always, False never.
    ``ordered``: None (the default) is True for pandas / polars frames and False for Spark frames, which have no
    row order; ``ordered=False`` on a pandas / polars DataFrame gives the order-free digest a Spark frame of the
    same content has (the index is then never covered).
    Raises :class:`~nbops.errors.DataError` for what cannot be versioned, naming the object and the column.
    """
    t0 = time.perf_counter()
    from ..sparkframes import is_spark

    if is_spark(obj):
        if ordered:
            raise DataError(f"{_what(obj, name)} has no row order: its digest is order-free; leave out ordered=True "
                            f"(compare with fingerprint(pandas_df, ordered=False)).", variable=name)
        from .spark import fingerprint_spark

        v = fingerprint_spark(obj, name, profile)
    elif isinstance(obj, (str, os.PathLike)):
        v = _path(Path(obj), name, profile, progress)
    else:
        v = _in_memory(obj, name, index, profile, progress)
        if ordered is False:
            v = _unordered(v, obj, name)
    v.seconds = time.perf_counter() - t0
    return v


def _unordered(v: DataVersion, obj, name) -> DataVersion:
    pd, pl = loaded("pandas"), loaded("polars")
    if not ((pd is not None and isinstance(obj, pd.DataFrame)) or (pl is not None and isinstance(obj, pl.DataFrame))):
        raise DataError(f"ordered=False applies to a pandas or polars DataFrame, not {_what(obj, name)}.",
                        variable=name)
    from .spark import unordered_version

    return unordered_version(v, obj)


# -- in-memory objects ----------------------------------------------------------------------------------------------
def _in_memory(obj, name, index, profile, progress) -> DataVersion:
    pd = loaded("pandas")
    pl = loaded("polars")
    if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
        return _pandas(obj, name, index, profile, progress)
    if isinstance(obj, np.ndarray):
        return _ndarray(obj, name, profile, progress)
    if pl is not None:
        if isinstance(obj, (pl.DataFrame, pl.Series)):
            return _polars(obj, name, profile, progress)
        if isinstance(obj, pl.LazyFrame):
            raise DataError(f"Cannot version {_what(obj, name)}: a LazyFrame holds a query, not data. Call "
                            f".collect() and version the DataFrame.", variable=name)
    if pd is not None and isinstance(obj, pd.Index):
        return _pandas(obj.to_series(index=pd.RangeIndex(len(obj)), name=obj.name), name, False, profile, progress)
    raise DataError(f"Cannot version {_what(obj, name)}: give a pandas DataFrame or Series, a numpy array, a "
                    f"polars or Spark DataFrame, or the path of a file or folder.", variable=name)


def column_label(n) -> str:
    """The string a column label is known by in data versions and drift reports: ``('x', 'a')`` -> ``x|a``."""
    return n if isinstance(n, str) else "|".join(map(str, n)) if isinstance(n, tuple) else str(n)


def _unique_labels(names: list) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        s = column_label(n)
        if s in seen:
            seen[s] += 1
            s = f"{s} ({seen[s]})"
        else:
            seen[s] = 1
        out.append(s)
    return out


def _column_error(exc: Unsupported, label: str, name: str | None) -> DataError:
    where = f" of `{name}`" if name else ""
    return DataError(f"Column {label!r}{where} holds a {type(exc.value).__module__}.{type(exc.value).__name__} value, "
                     f"which has no stable content to version. Convert the column first (for example "
                     f"df[{label!r}].astype(str)) or drop it.", column=label, variable=name)


def _work(ser) -> int:
    dt = ser.dtype
    return len(ser) * (dt.itemsize if isinstance(dt, np.dtype) and dt.kind != "O" else 8)


def _index_part(idx, mode: bool | None, tick) -> tuple[bytes, dict]:
    import pandas as pd

    kind = type(idx).__name__
    if mode is False or (mode is None and isinstance(idx, pd.RangeIndex)):
        return b"", {"hashed": False, "type": kind}
    h = xxhash.xxh3_128()
    h.update(b"index|%d|" % idx.nlevels)
    dtypes, types = [], []
    for level in range(idx.nlevels):
        values = idx.get_level_values(level)
        ser = pd.Series(values.to_numpy() if isinstance(values, pd.RangeIndex) else values,
                        index=pd.RangeIndex(len(values)), copy=False)
        d, _, ltype = pandas_column(ser, tick, stats=False)
        h.update(enc(idx.names[level]))
        h.update(d)
        dtypes.append(str(values.dtype))
        types.append(ltype)
    return h.digest(), {"hashed": True, "type": kind, "names": [None if n is None else str(n) for n in idx.names],
                        "dtypes": dtypes, "types": types}


def _header(is_series: bool, n_rows: int, n_cols: int, series_name=None) -> xxhash.xxh3_128:
    """The start of a frame / series digest: the same for pandas and polars (a series' name "" is no name)."""
    h = xxhash.xxh3_128()
    h.update(b"nbops.v2.%s|%d|%d|" % (b"series" if is_series else b"frame", n_rows, n_cols))
    if is_series:
        h.update(enc(None if series_name in (None, "") else series_name))
    return h


def _pandas(obj, name, index, profile, progress) -> DataVersion:
    import pandas as pd

    is_series = isinstance(obj, pd.Series)
    frame = obj.to_frame(name=obj.name if obj.name is not None else 0) if is_series else obj
    n_rows, n_cols = frame.shape
    names = list(frame.columns)
    labels = [str(obj.name) if obj.name is not None else "values"] if is_series else _unique_labels(names)
    cols = [frame.iloc[:, i] for i in range(n_cols)]
    work = sum(_work(c) for c in cols)
    bar = _Progress(work, f"fingerprint {name or ''}".strip(), progress)
    h = _header(is_series, n_rows, n_cols, obj.name if is_series else None)
    schema, prof_cols = [], []
    nbytes = 0
    try:
        for i, ser in enumerate(cols):
            try:
                d, st, ltype = pandas_column(ser, bar.tick, profile)
            except Unsupported as exc:
                raise _column_error(exc, labels[i], name) from None
            dt = str(ser.dtype)
            if not is_series:
                h.update(enc(names[i]))
            h.update(d)
            nbytes += _work(ser)
            schema.append({"name": labels[i], "dtype": dt, "type": ltype})
            prof_cols.append({"name": labels[i], "dtype": dt, "type": ltype, **st, "digest": d.hex()})
        try:
            idx_digest, idx_info = _index_part(frame.index, index, bar.tick)
        except Unsupported as exc:
            raise _column_error(exc, "index", name) from None
        h.update(idx_digest)
        resolve_pending(prof_cols)
    finally:
        bar.close()
    source = {"type": "pandas.Series" if is_series else "pandas.DataFrame"}
    if name:
        source["variable"] = name
    return DataVersion(digest=SCHEME_PREFIX + h.hexdigest(), name=name, kind="series" if is_series else "frame",
                       rows=n_rows, columns=labels, schema=schema, profile={"columns": prof_cols, "index": idx_info},
                       source=source, created=_dt.datetime.now(_dt.timezone.utc), nbytes=nbytes)


def _ndarray(a: np.ndarray, name, profile, progress) -> DataVersion:
    if a.dtype.byteorder == (">" if sys.byteorder == "little" else "<"):
        a = a.astype(a.dtype.newbyteorder("="))  # byte order is storage, not content
    bar = _Progress(a.nbytes if a.dtype.kind != "O" else a.size * 8, f"fingerprint {name or ''}".strip(), progress)
    h = xxhash.xxh3_128()
    h.update(b"nbops.v2.array|%s|" % repr(tuple(a.shape)).encode())
    if a.ndim == 2 and a.dtype.names is None:
        parts = [(str(j), a[:, j]) for j in range(a.shape[1])]
    elif a.dtype.names:
        parts = [(f, a[f]) for f in a.dtype.names]
    else:
        parts = [("values", a)]
    schema, prof_cols = [], []
    try:
        for label, part in parts:
            try:
                d, st, ltype = ndarray_column(part, bar.tick, profile)
            except Unsupported as exc:
                raise _column_error(exc, label, name) from None
            if a.dtype.names:
                h.update(enc(label))
            h.update(d)
            schema.append({"name": label, "dtype": str(part.dtype), "type": ltype})
            prof_cols.append({"name": label, "dtype": str(part.dtype), "type": ltype, **st, "digest": d.hex()})
        resolve_pending(prof_cols)
    finally:
        bar.close()
    source = {"type": "numpy.ndarray", "shape": list(a.shape)}
    if name:
        source["variable"] = name
    return DataVersion(digest=SCHEME_PREFIX + h.hexdigest(), name=name, kind="array", rows=a.shape[0] if a.ndim else 1,
                       columns=[s["name"] for s in schema], schema=schema, profile={"columns": prof_cols},
                       source=source, created=_dt.datetime.now(_dt.timezone.utc), nbytes=int(a.nbytes))


def _polars(obj, name, profile, progress) -> DataVersion:
    import polars as pl

    is_series = isinstance(obj, pl.Series)
    frame = obj.to_frame() if is_series else obj
    n_rows, n_cols = frame.shape
    bar = _Progress(int(frame.estimated_size()), f"fingerprint {name or ''}".strip(), progress)
    h = _header(is_series, n_rows, n_cols, obj.name if is_series else None)
    schema, prof_cols = [], []
    try:
        for s in frame.get_columns():
            try:
                d, st, ltype = polars_column(s, bar.tick, profile)
            except Unsupported as exc:
                raise _column_error(exc, s.name, name) from None
            if not is_series:
                h.update(enc(s.name))
            h.update(d)
            schema.append({"name": s.name, "dtype": str(s.dtype), "type": ltype})
            prof_cols.append({"name": s.name, "dtype": str(s.dtype), "type": ltype, **st, "digest": d.hex()})
        resolve_pending(prof_cols)
    finally:
        bar.close()
    source = {"type": "polars.Series" if is_series else "polars.DataFrame"}
    if name:
        source["variable"] = name
    return DataVersion(digest=SCHEME_PREFIX + h.hexdigest(), name=name, kind="polars", rows=n_rows,
                       columns=[s["name"] for s in schema],
                       schema=schema, profile={"columns": prof_cols}, source=source,
                       created=_dt.datetime.now(_dt.timezone.utc), nbytes=int(frame.estimated_size()))


# -- files and folders ------------------------------------------------------------------------------------------------
def _stat_key(st: os.stat_result) -> tuple:
    return st.st_size, st.st_mtime_ns, st.st_ino


def hash_file(path: Path, tick: Callable[[int], None] = lambda n: None, attempts: int = 3) -> tuple[str, int]:
    """``(xxh3-128 hex of the bytes, size)``. A file whose size or modification time changes while it is read is
    read again (up to ``attempts`` times), then refused with a DataError."""
    for _ in range(attempts):
        try:
            before = os.stat(path)
            h = xxhash.xxh3_128()
            n = 0
            with open(path, "rb", buffering=0) as fh:
                buf = bytearray(FILE_CHUNK)
                view = memoryview(buf)
                while True:
                    k = fh.readinto(buf)
                    if not k:
                        break
                    h.update(view[:k])
                    n += k
                    tick(k)
                    if n > before.st_size:  # it grows while read: what was appended need not be read to know
                        break
            after = os.stat(path)
        except FileNotFoundError:
            raise DataError(f"{path} disappeared while it was being read; version it again once it is in place.",
                            path=str(path)) from None
        except PermissionError:
            raise DataError(f"{path} cannot be read (permission denied).", path=str(path)) from None
        if _stat_key(before) == _stat_key(after) and n == after.st_size:
            return h.hexdigest(), n
        log.debug("nbops: %s changed while it was read; reading it again", path)
    raise DataError(f"{path} changed while it was being read ({attempts} attempts): wait until whatever writes "
                    f"it has finished (or version a copy), then version it again.", path=str(path))


def _path(path: Path, name, profile, progress) -> DataVersion:
    p = path.expanduser()
    if not p.exists():
        raise DataError(f"No file or folder at {p}: check the path (relative paths start at {os.getcwd()}).",
                        path=str(p))
    p = p.resolve()
    if p.is_dir():
        return _folder(p, name, progress)
    if not p.is_file():
        raise DataError(f"{p} is not a regular file (a pipe, socket or device has no fixed content to version); "
                        f"version a file or a folder.", path=str(p))
    return _file(p, name, profile, progress)


def _file(p: Path, name, profile, progress) -> DataVersion:
    size = p.stat().st_size
    bar = _Progress(size, f"fingerprint {p.name}", progress)
    try:
        digest, size = hash_file(p, bar.tick)
    finally:
        bar.close()
    rows, columns, schema, prof = None, [], [], {}
    fmt = TABULAR.get(p.suffix.lower())
    if fmt and profile:
        try:
            rows, schema, prof = _tabular_profile(p, fmt, size)
            columns = [s["name"] for s in schema]
        except Exception as exc:  # noqa: BLE001 - the digest stands; the profile is a courtesy
            log.warning("nbops: %s is versioned by its bytes, but could not be read as %s to profile it: %s",
                        p, fmt, exc)
    return DataVersion(digest=digest, name=name or p.name, kind="file", rows=rows, columns=columns, schema=schema,
                       profile={**prof, "format": fmt} if fmt else prof,
                       source={"type": "file", "path": str(p), "uri": p.as_uri(), "bytes": size},
                       created=_dt.datetime.now(_dt.timezone.utc), nbytes=size)


def _tabular_profile(p: Path, fmt: str, size: int) -> tuple[int | None, list, dict]:
    if fmt == "parquet" and size > PROFILE_FILE_LIMIT:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(p)
        sch = meta.schema.to_arrow_schema()
        return meta.num_rows, [{"name": f.name, "dtype": str(f.type)} for f in sch], {}
    if size > PROFILE_FILE_LIMIT:
        return None, [], {}
    import pandas as pd

    _internal.depth = getattr(_internal, "depth", 0) + 1
    try:
        reader = {"csv": pd.read_csv, "tsv": lambda f: pd.read_csv(f, sep="\t"), "parquet": pd.read_parquet,
                  "feather": pd.read_feather}[fmt]
        df = reader(p)
    finally:
        _internal.depth -= 1
    v = _pandas(df, None, False, True, False)
    return v.rows, v.schema, {"columns": v.profile["columns"]}


def _folder(root: Path, name, progress) -> DataVersion:
    files = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for n in names:
            fp = Path(d) / n
            if fp.is_file():
                files.append((fp.relative_to(root).as_posix(), fp))
    files.sort(key=lambda t: t[0].encode("utf-8", "surrogateescape"))
    total = sum(fp.stat().st_size for _, fp in files)
    bar = _Progress(total, f"fingerprint {root.name}/", progress)
    lines, listing = [], []
    try:
        for rel, fp in files:
            digest, size = hash_file(fp, bar.tick)
            lines.append(f"{digest}  {rel}\n")
            listing.append({"path": rel, "bytes": size, "digest": digest})
    finally:
        bar.close()
    manifest = "".join(lines).encode("utf-8", "surrogateescape")
    return DataVersion(digest=xxhash.xxh3_128_hexdigest(manifest), name=name or root.name, kind="folder", rows=None,
                       columns=[], schema=[], profile={"file_count": len(files), "files": listing[:1000]},
                       source={"type": "folder", "path": str(root), "uri": root.as_uri(), "files": len(files)},
                       created=_dt.datetime.now(_dt.timezone.utc), nbytes=sum(f["bytes"] for f in listing))


__all__ = ["fingerprint", "hash_file", "pandas_column", "polars_column"]

"""Data versions of Spark DataFrames (classic and Spark Connect), computed where the data lives.

- **Digest** (scheme v2, order-free): one ``mapInArrow`` job hashes every row on the executors with
  :mod:`nbops.data.rowhash` and returns one row of sums per partition; the driver adds them up. The result is the
  hash of the *multiset of rows*: it does not depend on partitioning or row order (Spark has none), and it equals
  ``fingerprint(sdf.toPandas(), ordered=False)`` (see :func:`unordered_version` and docs/data.md for when).
- **Profile**: one aggregation job (counts, nulls, min/max, mean/std, ``percentile_approx`` quartiles,
  ``approx_count_distinct``), plus one small ``groupBy`` job per text / bool column for its top values.
- **Lineage**: the file manifest of file sources (``inputFiles()``: paths, sizes, modification times) and, best
  effort, the version of a Delta or Iceberg table found on a local path.

Nothing but these sums, the aggregates and the top values reaches the driver. pyspark is imported here only.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from urllib.parse import unquote, urlparse

import xxhash

from ..errors import DataError
from . import rowhash
from .encode import enc, json_number, short_text
from .version import SCHEME_PREFIX, DataVersion

log = logging.getLogger("nbops")
TOP = 5
QUANTILES = (0.25, 0.5, 0.75)
MANIFEST_PATHS = 20      # file paths kept in the source record (the manifest digest covers them all)
HIGH_CARD = 0.5          # a text column with more distinct values than this share of its rows: no top values


# -- the digest -------------------------------------------------------------------------------------------------------
def combine(names: list[str], classes: list[str], rows: int, sums: list[int]) -> tuple[str, list[str]]:
    """The frame digest and the per-column digests from the folded row sums (see :func:`rowhash.fold`)."""
    h = xxhash.xxh3_128()
    h.update(b"nbops.v2.rows|%d|%d|" % (rows, len(names)))
    for n, c in zip(names, classes):
        h.update(enc(n))
        h.update(enc(c))
    h.update(b"".join(s.to_bytes(8, "little") for s in sums[:2]))
    cols = []
    for j, c in enumerate(classes):
        ch = xxhash.xxh3_128()
        ch.update(b"col2rows|%d|" % rows)
        ch.update(enc(c))
        ch.update(b"".join(s.to_bytes(8, "little") for s in sums[2 + 2 * j:4 + 2 * j]))
        cols.append(ch.hexdigest())
    return SCHEME_PREFIX + h.hexdigest(), cols


def _ship_by_value() -> None:
    """Send rowhash's functions to the executors by value, so they need numpy and pyarrow but no nbops."""
    try:
        from pyspark import cloudpickle
    except ImportError:  # pragma: no cover - every pyspark 3.x / 4.x vendors it
        return
    try:
        cloudpickle.register_pickle_by_value(rowhash)
    except (ValueError, AttributeError) as exc:  # already registered, or an older cloudpickle
        log.debug("nbops: rowhash not registered by value: %s", exc)


def row_sums(sdf) -> tuple[int, list[int]]:
    """``(rows, sums)`` of ``sdf`` from one mapInArrow job (one small row per partition back to the driver)."""
    ncols = len(sdf.columns)
    schema = "n long, " + ", ".join(f"s{i} long" for i in range(2 + 2 * ncols))
    _ship_by_value()
    renamed = sdf.toDF(*[f"c{i}" for i in range(ncols)])  # duplicate / odd names are no obstacle
    try:
        parts = renamed.mapInArrow(rowhash.map_batches, schema).collect()
    except Exception as exc:  # noqa: BLE001 - Spark's reason, in one line
        raise DataError(f"The Spark job that hashes the rows failed ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}). The executors need "
                        f"numpy and pyarrow (see the README's Spark section).") from exc
    rows, sums = rowhash.fold((p["n"], [p[f"s{i}"] for i in range(2 + 2 * ncols)]) for p in parts)
    return rows, sums or [0] * (2 + 2 * ncols)


def spark_class(dt) -> str:
    """The rowhash class of a Spark data type (what its arrow form hashes as)."""
    name = type(dt).__name__
    if name in ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType"):
        return "number"
    return {"BooleanType": "bool", "StringType": "string", "CharType": "string", "VarcharType": "string",
            "BinaryType": "binary", "TimestampType": "timestamp", "TimestampNTZType": "timestamp",
            "DateType": "date", "DayTimeIntervalType": "duration", "DecimalType": "decimal",
            "NullType": "null"}.get(name, "nested")


# -- the profile ------------------------------------------------------------------------------------------------------
def _profile(sdf, fields, rows: int) -> list[dict]:
    from pyspark.sql import functions as F

    aggs = []
    plan = []
    for i, f in enumerate(fields):
        c, cls = F.col(f"c{i}"), spark_class(f.dataType)
        floating = type(f.dataType).__name__ in ("FloatType", "DoubleType")
        present = ~F.isnan(c) if floating else F.lit(True)
        value = F.when(present, c)
        aggs.append(F.count(value).alias(f"n{i}"))
        if cls == "number":
            aggs += [F.min(value).alias(f"lo{i}"), F.max(value).alias(f"hi{i}"), F.avg(value).alias(f"mean{i}"),
                     F.stddev_samp(value).alias(f"std{i}"),
                     F.percentile_approx(value, list(QUANTILES)).alias(f"q{i}")]
        elif cls == "bool":
            aggs.append(F.avg(c.cast("int")).alias(f"mean{i}"))
        elif cls in ("timestamp", "date"):
            aggs += [F.min(c).cast("string").alias(f"lo{i}"), F.max(c).cast("string").alias(f"hi{i}")]
        if cls in ("string", "binary"):
            aggs.append(F.approx_count_distinct(c).alias(f"d{i}"))
        plan.append(cls)
    got = sdf.agg(*aggs).collect()[0].asDict() if aggs else {}
    out = []
    for i, (f, cls) in enumerate(zip(fields, plan)):
        col = {"nulls": rows - int(got[f"n{i}"])}
        if cls == "number" and got.get(f"n{i}"):
            col.update(min=json_number(got[f"lo{i}"]), max=json_number(got[f"hi{i}"]),
                       mean=json_number(got[f"mean{i}"]), std=json_number(got[f"std{i}"]),
                       quantiles={str(q): json_number(v) for q, v in zip(QUANTILES, got[f"q{i}"] or [])})
        elif cls == "bool" and got.get(f"n{i}"):
            col["mean"] = json_number(got[f"mean{i}"])
        elif cls in ("timestamp", "date") and got.get(f"n{i}"):
            col.update(min=str(got[f"lo{i}"]).replace(" ", "T"), max=str(got[f"hi{i}"]).replace(" ", "T"))
        if cls in ("string", "binary"):
            valid = int(got[f"n{i}"])
            distinct = int(got[f"d{i}"])
            if valid and distinct > HIGH_CARD * valid and valid > 1000:
                col["high_cardinality"] = True
            else:
                col.update(distinct=distinct, top=_top(sdf, f"c{i}"))
        out.append(col)
    return out


def _top(sdf, column: str) -> list[list]:
    from pyspark.sql import functions as F

    rows = (sdf.where(F.col(column).isNotNull()).groupBy(column).count()
            .orderBy(F.desc("count"), F.asc(column)).limit(TOP).collect())
    return [[short_text(r[column]), int(r["count"])] for r in rows]


# -- lineage ----------------------------------------------------------------------------------------------------------
def _local_path(uri: str) -> str | None:
    p = urlparse(uri)
    if p.scheme in ("", "file"):
        return unquote(p.path)
    return None


def file_manifest(sdf) -> dict | None:
    """The files a file-sourced frame reads (``inputFiles()``): count, bytes, a digest of the sorted
    ``path, size, mtime`` listing and the first paths. Local files are stat-ed on the driver, others listed by
    Spark's ``binaryFile`` source (metadata only). None for frames that read no files."""
    try:
        files = sorted(sdf.inputFiles())
    except Exception as exc:  # noqa: BLE001 - a source without files (a range, local data)
        log.debug("nbops: no input files: %s", exc)
        return None
    if not files:
        return None
    listing: list[tuple[str, int | None, int | None]] = []
    remote = []
    for uri in files:
        local = _local_path(uri)
        if local is not None:
            try:
                st = os.stat(local)
                listing.append((uri, st.st_size, st.st_mtime_ns // 1_000_000))
                continue
            except OSError:
                pass
        remote.append(uri)
    if remote:
        listing += _remote_listing(sdf, remote)
    listing.sort()
    h = xxhash.xxh3_128()
    for uri, size, mtime in listing:
        h.update(b"%s\t%s\t%s\n" % (uri.encode(), str(size).encode(), str(mtime).encode()))
    out = {"count": len(listing), "bytes": sum(s or 0 for _, s, _ in listing), "manifest": h.hexdigest(),
           "paths": [u for u, _, _ in listing[:MANIFEST_PATHS]]}
    table = table_version(files)
    if table:
        out["table"] = table
    return out


def _remote_listing(sdf, uris: list[str]) -> list[tuple[str, int | None, int | None]]:
    try:
        spark = sdf.sparkSession
        meta = spark.read.format("binaryFile").load(uris).select("path", "length", "modificationTime").collect()
        found = {r["path"]: (int(r["length"]), int(r["modificationTime"].timestamp() * 1000)) for r in meta}
    except Exception as exc:  # noqa: BLE001 - sizes are an extra; the paths stay in the manifest
        log.debug("nbops: no sizes for remote input files: %s", exc)
        found = {}
    return [(u, *found.get(u, (None, None))) for u in uris]


def table_version(files: list[str]) -> dict | None:
    """Best effort: a Delta table's latest commit number (``_delta_log/NNN.json``) or an Iceberg table's
    ``metadata/version-hint.text``, for a table on a local path that holds the input files."""
    seen = set()
    for uri in files[:50]:
        local = _local_path(uri)
        if local is None:
            continue
        d = os.path.dirname(local)
        while d and d not in seen and d != os.path.dirname(d):
            seen.add(d)
            log_dir = os.path.join(d, "_delta_log")
            if os.path.isdir(log_dir):
                commits = [int(n[:-5]) for n in os.listdir(log_dir) if n.endswith(".json") and n[:-5].isdigit()]
                if commits:
                    return {"format": "delta", "path": d, "version": max(commits)}
            hint = os.path.join(d, "metadata", "version-hint.text")
            if os.path.isfile(hint):
                try:
                    with open(hint) as fh:
                        return {"format": "iceberg", "path": d, "version": int(fh.read().strip())}
                except (OSError, ValueError):
                    pass
            d = os.path.dirname(d)
    return None


# -- the version ------------------------------------------------------------------------------------------------------
def fingerprint_spark(sdf, name: str | None, profile: bool = True) -> DataVersion:
    """The :class:`DataVersion` of a Spark DataFrame (see the module docs)."""
    t0 = time.perf_counter()
    fields = list(sdf.schema.fields)
    names = [f.name for f in fields]
    classes = [spark_class(f.dataType) for f in fields]
    rows, sums = row_sums(sdf)
    digest, col_digests = combine(names, classes, rows, sums)
    schema = [{"name": f.name, "dtype": f.dataType.simpleString(), "type": c} for f, c in zip(fields, classes)]
    renamed = sdf.toDF(*[f"c{i}" for i in range(len(fields))])
    stats = _profile(renamed, fields, rows) if profile else [{} for _ in fields]
    prof_cols = [{"name": s["name"], "dtype": s["dtype"], "type": s["type"], **st, "digest": d}
                 for s, st, d in zip(schema, stats, col_digests)]
    connect = type(sdf).__module__.startswith("pyspark.sql.connect")
    source: dict = {"type": "pyspark.sql.connect.DataFrame" if connect else "pyspark.sql.DataFrame",
                    "order": "rows as a multiset (order-free)"}
    if name:
        source["variable"] = name
    files = file_manifest(sdf)
    if files:
        source["files"] = files
    v = DataVersion(digest=digest, name=name, kind="spark", rows=rows, columns=names, schema=schema,
                    profile={"columns": prof_cols, "approximate": ["distinct", "quantiles"] if profile else []},
                    source=source, created=_dt.datetime.now(_dt.timezone.utc),
                    nbytes=files["bytes"] if files else None)
    log.debug("nbops: Spark fingerprint of %s in %.2fs", name or "a frame", time.perf_counter() - t0)
    return v


def unordered_version(v: DataVersion, frame) -> DataVersion:
    """``v`` (the version of a pandas or polars frame) with its digest and column digests made order-free, exactly as
    a Spark frame's: equal to ``fingerprint(spark.createDataFrame(frame))`` for the same content."""
    import pyarrow as pa

    pd = __import__("sys").modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        cols = [frame.iloc[:, i] for i in range(frame.shape[1])]
        names = [str(n) for n in frame.columns]
        to_arrow = lambda s: pa.array(s, from_pandas=True)  # noqa: E731
    else:  # polars
        cols = frame.get_columns()
        names = [s.name for s in cols]
        to_arrow = lambda s: s.to_arrow()  # noqa: E731
    arrays = []
    for label, s in zip(v.columns, cols):
        try:
            arrays.append(to_arrow(s))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(f"Column {label!r} cannot be hashed order-free ({type(exc).__name__}: "
                            f"{str(exc)[:200]}): give it one type (e.g. .astype(str)).", column=label) from exc
    classes = [rowhash.cell_class(a.type) for a in arrays]
    n = len(arrays[0]) if arrays else 0
    step = 1 << 20
    rows, sums = rowhash.fold(rowhash.batch_sums([a.slice(i, step) for a in arrays]) for i in range(0, n, step)) \
        if n else (0, [0] * (2 + 2 * len(arrays)))
    digest, col_digests = combine(names, classes, rows, sums)
    schema = [{**s, "type": c} for s, c in zip(v.schema, classes)]
    prof = [{**p, "type": c, "digest": d} for p, c, d in zip(v.profile.get("columns", []), classes, col_digests)]
    return DataVersion(digest=digest, name=v.name, kind=v.kind, rows=v.rows, columns=v.columns, schema=schema,
                       profile={**v.profile, "columns": prof},
                       source={**v.source, "order": "rows as a multiset (order-free)"}, created=v.created,
                       nbytes=v.nbytes)

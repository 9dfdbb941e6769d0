"""Data versions of Spark DataFrames (classic and Spark Connect), computed where the data lives.

- **Digest** (scheme v2, order-free): Spark's own ``xxhash64`` hashes every row on the executors (in the JVM:
  no Python there) and the sums of the row hashes come back (see :mod:`.sparkhash`). The result is the hash of
  the *multiset of rows*: it does not depend on partitioning or row order (Spark has none), and it equals
  ``fingerprint(sdf.toPandas(), ordered=False)`` (see :func:`unordered_version` and docs/data.md for when).
- **Profile**: in the same aggregation job (counts, nulls, min/max, mean/std, ``percentile_approx`` quartiles
  with accuracy ``QUANTILE_ACCURACY`` -- rank within rows/1000 --, ``approx_count_distinct``), plus one
  ``groupBy`` over (column, value) pairs for the top values of every text column.
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
from . import sparkhash
from .encode import HIGH_CARD_ROWS, enc, json_number, short_text
from .version import SCHEME_PREFIX, DataVersion

log = logging.getLogger("nbops")
TOP = 5
QUANTILES = (0.25, 0.5, 0.75)
QUANTILE_ACCURACY = 1_000   # percentile_approx: each quantile's rank is within rows / 1000 of the asked one
MANIFEST_PATHS = 20      # file paths kept in the source record (the manifest digest covers them all)
BIG = 2 ** 53            # integers beyond this are compared as integers (a double cannot hold them exactly)
HIGH_CARD = 0.5          # a text column with more distinct values than this share of its rows: no top values


# -- the digest -------------------------------------------------------------------------------------------------------
def combine(names: list[str], classes: list[str], rows: int, sums: list[int]) -> tuple[str, list[str]]:
    """The frame digest and the per-column digests from the lane sums (see :mod:`.sparkhash`)."""
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


def _canonical(c, dt, tz: str) -> list:
    """The canonical values of one Spark column (see :mod:`.sparkhash`), as non-null Spark expressions."""
    from pyspark.sql import functions as F

    name = type(dt).__name__
    cls = spark_class(dt)
    tag = F.when(c.isNull(), F.lit(0)).otherwise(F.lit(1))
    if cls == "number" and name in ("FloatType", "DoubleType"):
        d = c.cast("double")
        valid = c.isNotNull() & ~F.isnan(d)
        return [F.when(valid, F.lit(1)).otherwise(F.lit(0)), F.when(valid, d).otherwise(F.lit(0.0)),
                F.lit(0).cast("long")]
    if cls == "number":
        big = (c > BIG) | (c < -BIG)
        return [F.when(c.isNull(), F.lit(0)).when(big, F.lit(2)).otherwise(F.lit(1)),
                F.when(c.isNotNull() & ~big, c.cast("double")).otherwise(F.lit(0.0)),
                F.when(big, c.cast("long")).otherwise(F.lit(0).cast("long"))]
    if cls == "bool":
        return [tag, F.coalesce(c.cast("int"), F.lit(0))]
    if cls == "timestamp":
        ts = c if name == "TimestampType" else F.to_utc_timestamp(c.cast("timestamp"), tz)  # NTZ: wall clock as UTC
        return [tag, F.coalesce(F.unix_micros(ts), F.lit(0).cast("long")), F.lit(0)]
    if cls == "date":
        return [tag, F.coalesce(F.unix_date(c), F.lit(0))]
    if cls == "string":
        return [tag, F.coalesce(c, F.lit(""))]
    if cls == "binary":
        return [tag, F.coalesce(c, F.lit(bytearray()))]
    if cls == "null":
        return [F.lit(0)]
    nested = name in ("ArrayType", "StructType", "MapType")
    text = F.to_json(F.struct(c.alias("v"))) if nested else c.cast("string")
    return [tag, F.coalesce(text, F.lit(""))]


def _sum64(h) -> list:
    """Two exact long sums (high 32 bits, low 32 bits) whose combination is the sum of ``h`` modulo 2**64."""
    from pyspark.sql import functions as F

    return [F.sum(F.shiftright(h, 32)), F.sum(h.bitwiseAND(F.lit(0xFFFFFFFF)))]


def hash_plan(sdf, fields) -> tuple[list, list]:
    """``(projection, aggregates)`` of the digest: each column's canonical values computed once in a projection
    (``k<i>_<j>``), then the row lanes' sums and two per column (see :mod:`.sparkhash`) over them."""
    from pyspark.sql import functions as F

    tz = sdf.sparkSession.conf.get("spark.sql.session.timeZone")
    proj, cols = [], []
    for i, f in enumerate(fields):
        names = []
        for j, e in enumerate(_canonical(F.col(f"c{i}"), f.dataType, tz)):
            proj.append(e.alias(f"k{i}_{j}"))
            names.append(F.col(f"k{i}_{j}"))
        cols.append(names)
    flat = [e for c in cols for e in c]
    out = []
    for lane in sparkhash.LANES:
        out += _sum64(F.xxhash64(*([F.lit(lane)] if lane else []), *flat))
    for c in cols:
        for lane in sparkhash.COLUMN_LANES:
            out += _sum64(F.xxhash64(F.lit(lane), *c))
    return proj, out


def lane_sums(values: list) -> list[int]:
    """The sums modulo 2**64 from the (high, low) pairs :func:`_sum64` gave."""
    return [((int(hi or 0) << 32) + int(lo or 0)) % (1 << 64) for hi, lo in zip(values[::2], values[1::2])]


def spark_class(dt) -> str:
    """The :mod:`.sparkhash` class of a Spark data type (what its arrow / pandas form hashes as)."""
    name = type(dt).__name__
    if name in ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType"):
        return "number"
    return {"BooleanType": "bool", "StringType": "string", "CharType": "string", "VarcharType": "string",
            "BinaryType": "binary", "TimestampType": "timestamp", "TimestampNTZType": "timestamp",
            "DateType": "date", "DecimalType": "decimal",
            "NullType": "null"}.get(name, "nested")


# -- the profile ------------------------------------------------------------------------------------------------------
def _one_pass(sdf, fields, profile: bool) -> tuple[int, list[int], list[dict]]:
    """One aggregation job: the row count, the digest's lane sums and (``profile``) the profile figures."""
    from pyspark.sql import functions as F

    proj, hashes = hash_plan(sdf, fields)
    aggs = [F.count(F.lit(1)).alias("rows")] + [h.alias(f"h{k}") for k, h in enumerate(hashes)]
    plan = []
    for i, f in enumerate(fields):
        c, cls = F.col(f"c{i}"), spark_class(f.dataType)
        floating = type(f.dataType).__name__ in ("FloatType", "DoubleType")
        present = ~F.isnan(c) if floating else F.lit(True)
        value = F.when(present, c)
        aggs.append(F.count(value).alias(f"n{i}"))
        if not profile:
            plan.append(cls)
            continue
        if cls == "number":
            aggs += [F.min(value).alias(f"lo{i}"), F.max(value).alias(f"hi{i}"), F.avg(value).alias(f"mean{i}"),
                     F.stddev_samp(value).alias(f"std{i}"),
                     F.percentile_approx(value, list(QUANTILES), QUANTILE_ACCURACY).alias(f"q{i}")]
        elif cls == "bool":
            aggs.append(F.avg(c.cast("int")).alias(f"mean{i}"))
        elif cls in ("timestamp", "date"):
            aggs += [F.min(c).cast("string").alias(f"lo{i}"), F.max(c).cast("string").alias(f"hi{i}")]
        if cls in ("string", "binary"):
            aggs.append(F.approx_count_distinct(c).alias(f"d{i}"))
        plan.append(cls)
    got = sdf.select("*", *proj).agg(*aggs).collect()[0].asDict()
    rows = int(got["rows"])
    sums = lane_sums([got[f"h{k}"] for k in range(len(hashes))])
    out, top = [], []
    for i, (f, cls) in enumerate(zip(fields, plan)):
        col = {"nulls": rows - int(got[f"n{i}"])}
        if not profile:
            out.append(col)
            continue
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
            if distinct > HIGH_CARD * valid and valid > HIGH_CARD_ROWS:  # id-like: as the pandas profile
                col["high_cardinality"] = True
            else:
                col["distinct"] = distinct
                top.append(i)
        out.append(col)
    for cls in ("string", "binary"):   # one groupBy per value type (the pairs of one job share a type)
        for column, values in _tops(sdf, [f"c{i}" for i in top if plan[i] == cls]).items():
            out[int(column[1:])]["top"] = values
    return rows, sums, out


def _tops(sdf, columns: list[str]) -> dict[str, list[list]]:
    """The ``TOP`` most frequent values of each column (ties: the smaller value first), all from one ``groupBy``
    over (column, value) pairs."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not columns:
        return {}
    pairs = F.array(*[F.struct(F.lit(k).alias("c"), F.col(n).alias("v")) for k, n in enumerate(columns)])
    long = sdf.select(F.explode(pairs).alias("x")).select("x.c", "x.v").where(F.col("v").isNotNull())
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("count"), F.asc("v")))
    got = long.groupBy("c", "v").count().withColumn("r", rank).where(F.col("r") <= TOP).collect()
    out: dict[str, list[list]] = {n: [] for n in columns}
    for r in sorted(got, key=lambda r: (r["c"], r["r"])):
        out[columns[r["c"]]].append([short_text(r["v"]), int(r["count"])])
    return out


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
    renamed = sdf.toDF(*[f"c{i}" for i in range(len(fields))])  # duplicate / odd names are no obstacle
    try:
        rows, sums, stats = _one_pass(renamed, fields, profile)
    except Exception as exc:  # noqa: BLE001 - Spark's reason, in one line
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise DataError(f"Spark could not version {name or 'the frame'} ({type(exc).__name__}: {first}); check "
                        f"that the frame can be read (e.g. sdf.limit(5).show()).", variable=name) from exc
    digest, col_digests = combine(names, classes, rows, sums)
    schema = [{"name": f.name, "dtype": f.dataType.simpleString(), "type": c} for f, c in zip(fields, classes)]
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
    classes = [sparkhash.cell_class(a.type) for a in arrays]
    n = len(arrays[0]) if arrays else 0
    step = 1 << 20
    rows, sums = sparkhash.fold(sparkhash.batch_sums([a.slice(i, step) for a in arrays]) for i in range(0, n, step)) \
        if n else (0, [0] * (2 + 2 * len(arrays)))
    digest, col_digests = combine(names, classes, rows, sums)
    schema = [{**s, "type": c} for s, c in zip(v.schema, classes)]
    prof = [{**p, "type": c, "digest": d} for p, c, d in zip(v.profile.get("columns", []), classes, col_digests)]
    return DataVersion(digest=digest, name=v.name, kind=v.kind, rows=v.rows, columns=v.columns, schema=schema,
                       profile={**v.profile, "columns": prof},
                       source={**v.source, "order": "rows as a multiset (order-free)"}, created=v.created,
                       nbytes=v.nbytes)

"""Data versions of classic Spark DataFrames (local[2]): content digests that ignore partitioning and equal the
order-free pandas digest, profiles from Spark aggregates, file lineage, and %dataversion / %%track --data through a
real shell into a real SQLite store, read back with MlflowClient. (Spark Connect: test_data_spark_connect.py.)"""
import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.spark


def frame(n=3_000, seed=0):
    """Every kind of column nbops relies on crossing pandas <-> Spark: ints, floats with NaN, text with nulls,
    categoricals, datetimes, dates, booleans."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n), "x": np.where(rng.random(n) < 0.05, np.nan, rng.normal(size=n)),
        "city": rng.choice(["Oslo", "Lima", "Pune", None], n),
        "cat": pd.Categorical(rng.choice(["u", "v", "w"], n)),
        "t": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
        "day": [pd.Timestamp("2024-01-01").date() + pd.Timedelta(days=int(k)) for k in rng.integers(0, 30, n)],
        "ok": rng.random(n) > 0.3})


def test_pandas_spark_conversions_nbops_relies_on(spark):
    """pyspark 4 warns that pandas 3 is not fully supported: the conversions nbops uses keep the values."""
    pdf = frame(200)
    back = spark.createDataFrame(pdf).toPandas()
    assert back["id"].tolist() == pdf["id"].tolist()
    assert np.allclose(back["x"].to_numpy(float), pdf["x"].to_numpy(float), equal_nan=True)
    assert back["city"].where(back["city"].notna(), None).tolist() == \
        pdf["city"].where(pdf["city"].notna(), None).tolist()
    assert back["cat"].astype(str).tolist() == pdf["cat"].astype(str).tolist()
    assert (pd.to_datetime(back["t"]) == pdf["t"]).all()
    assert list(back["day"]) == list(pdf["day"]) and back["ok"].tolist() == pdf["ok"].tolist()


def test_digest_ignores_partitioning_and_equals_the_order_free_pandas_digest(spark):
    import nbops
    from pyspark.sql import functions as F

    pdf = frame()
    sdf = spark.createDataFrame(pdf).repartition(5)
    v = nbops.fingerprint(sdf, "sdf")
    assert v.digest.startswith("v2:") and v.rows == len(pdf) and v.kind == "spark"
    assert nbops.fingerprint(sdf.repartition(3)).digest == v.digest
    assert nbops.fingerprint(sdf.coalesce(1).orderBy(F.desc("id"))).digest == v.digest
    assert nbops.fingerprint(sdf.toPandas(), ordered=False).digest == v.digest
    assert nbops.fingerprint(pdf, ordered=False).digest == v.digest   # categoricals are their values
    changed = sdf.withColumn("x", F.when(F.col("id") == 1234, F.lit(0.5)).otherwise(F.col("x")))
    assert nbops.fingerprint(changed).digest != v.digest
    diff = nbops.data.diff(v, nbops.fingerprint(changed))
    assert diff.columns_changed == ["x"]


def test_profile_from_spark_aggregates_matches_pandas(spark):
    import nbops

    pdf = frame()
    sv = nbops.fingerprint(spark.createDataFrame(pdf).repartition(4))
    pv = nbops.fingerprint(pdf)
    sp = {c["name"]: c for c in sv.profile["columns"]}
    pp = {c["name"]: c for c in pv.profile["columns"]}
    for col in ("id", "x"):
        assert sp[col]["nulls"] == pp[col]["nulls"]
        assert sp[col]["min"] == pytest.approx(pp[col]["min"]) and sp[col]["max"] == pytest.approx(pp[col]["max"])
        assert sp[col]["mean"] == pytest.approx(pp[col]["mean"])
        assert sp[col]["std"] == pytest.approx(float(pdf[col].std()))
        assert sp[col]["quantiles"]["0.5"] == pytest.approx(float(pdf[col].median()), abs=0.05 * float(pdf[col].std()))
    assert sp["city"]["nulls"] == pp["city"]["nulls"] and sp["city"]["top"] == pp["city"]["top"]
    assert sp["city"]["distinct"] == 3 and sp["ok"]["mean"] == pytest.approx(pp["ok"]["mean"])
    assert sp["t"]["min"] == pp["t"]["min"] and sp["day"]["max"] == str(pdf["day"].max())
    shown = sv.to_frame().set_index("column")
    assert shown.loc["x", "nulls"] == pp["x"]["nulls"] and "Oslo" in shown.loc["city", "top"]


def test_profile_reads_the_top_values_of_all_text_columns_in_one_job(spark):
    """One aggregation job and one groupBy for the top values, however many text columns the frame has."""
    import nbops
    from nbops_testing import spark_jobs

    pdf = frame()[["id", "x", "city"]]
    wide = pdf.assign(city2=pdf["city"].str.lower(), city3=pdf["city"].str.upper())
    one, three = spark.createDataFrame(pdf), spark.createDataFrame(wide)
    assert spark_jobs(spark, lambda: nbops.fingerprint(three)) == spark_jobs(spark, lambda: nbops.fingerprint(one))
    prof = {c["name"]: c for c in nbops.fingerprint(three).profile["columns"]}
    want = pdf["city"].value_counts().sort_index().sort_values(ascending=False, kind="stable")
    assert prof["city"]["top"] == [[k, int(v)] for k, v in want.items()]
    assert prof["city3"]["top"] == [[k.upper(), int(v)] for k, v in want.items()]


def test_file_sources_record_their_manifest(spark, tmp_path):
    import nbops

    path = str(tmp_path / "table")
    spark.createDataFrame(frame()).repartition(3).write.partitionBy("ok").parquet(path)
    v = nbops.fingerprint(spark.read.parquet(path))
    files = v.source["files"]
    assert files["count"] == len(spark.read.parquet(path).inputFiles()) >= 2
    assert files["bytes"] > 0 and all(p.startswith("file:") for p in files["paths"])
    again = nbops.fingerprint(spark.read.parquet(path))
    assert again.source["files"]["manifest"] == files["manifest"] and again.digest == v.digest
    (tmp_path / "table" / "_delta_log").mkdir()  # a Delta table's log: its latest commit is the table version
    for k in (0, 1, 7):
        (tmp_path / "table" / "_delta_log" / f"{k:020d}.json").write_text("{}\n")
    assert nbops.fingerprint(spark.read.parquet(path), profile=False).source["files"]["table"] == \
        {"format": "delta", "path": path, "version": 7}


def test_dataversion_and_track_data_store_the_spark_version(ip, client, spark, tmp_path):
    import nbops

    path = str(tmp_path / "days")
    spark.createDataFrame(frame()).write.parquet(path)
    sdf = spark.read.parquet(path)
    ip.user_ns["sdf"] = sdf
    ip.run_line_magic("dataversion", "sdf --name events")
    want = nbops.fingerprint(sdf).digest
    hist = nbops.data.history("events")
    assert [r["digest"] for r in hist.rows] == [want]
    run = client.get_run(hist.rows[0]["run_id"])
    ds = run.inputs.dataset_inputs[0].dataset
    assert ds.digest == want and ds.name == "events"
    src = json.loads(ds.source)
    assert src["type"] == "pyspark.sql.DataFrame" and src["files"]["count"] >= 1
    prof = json.loads(ds.profile)
    assert prof["num_rows"] == 3_000 and {c["name"] for c in prof["nbops"]["columns"]} >= {"x", "city"}

    ip.run_cell_magic("track", "-e spark-exp -n fit --data sdf", "score = 1.0")
    exp = client.get_experiment_by_name("spark-exp")
    fit = client.search_runs([exp.experiment_id], "attributes.run_name = 'fit'")[0]
    assert [di.dataset.digest for di in fit.inputs.dataset_inputs] == [want]

    ip.run_line_magic("dataversion", "sdf --name events")   # the same content again: nothing new written
    assert len(nbops.data.history("events").rows) == 1

    # the version carries a contract inferred from Spark aggregates: %validate --against NAME works on it
    bad = frame().assign(x=1e12)
    result = nbops.validate(spark.createDataFrame(bad), against="events", log_run=False)
    assert not result.ok and "x" in set(result.to_frame()["column"])
    assert nbops.validate(sdf, against="events", log_run=False).ok


def test_ordered_true_and_snapshot_on_spark_are_one_line(spark):
    import nbops
    from nbops.data.record import check_snapshot
    from nbops.errors import DataError

    with pytest.raises(DataError, match="has no row order"):
        nbops.fingerprint(spark.range(3), ordered=True)
    with pytest.raises(DataError, match="a Spark frame is not copied into the run; write it as a table"):
        check_snapshot(spark.range(3), "sdf")


def test_spark_xxhash64_is_reproduced_on_edge_values(spark):
    """sparkhash's XXH64 equals Spark's on the values where encodings usually slip: -0.0, NaN, infinities,
    integral floats, huge integers, unicode and empty text, NTZ timestamps, nulls everywhere."""
    import nbops
    from pyspark.sql import functions as F

    pdf = pd.DataFrame({"f": [0.0, -0.0, np.nan, np.inf, -np.inf, 3.0, 2.5, 1e300, None],
                        "i": pd.array([2**62, -(2**62), 0, None, 1, 2, 3, 4, 5], dtype="Int64"),
                        "s": ["", "é", "日本", None, "a" * 100, "x", "y", "z", "\x00"]})
    sdf = spark.createDataFrame(pdf)
    assert nbops.fingerprint(sdf).digest == nbops.fingerprint(pdf, ordered=False).digest
    ntz = spark.sql("select timestamp_ntz'2024-03-01 12:34:56.789' as t union all select null")
    naive = pd.DataFrame({"t": pd.to_datetime(["2024-03-01 12:34:56.789", None])})
    assert nbops.fingerprint(ntz).digest == nbops.fingerprint(naive, ordered=False).digest
    other = sdf.withColumn("i", F.when(F.col("i") == 2**62, F.lit(2**62 + 1)).otherwise(F.col("i")))
    assert nbops.fingerprint(other).digest != nbops.fingerprint(sdf).digest   # beyond a double: still seen

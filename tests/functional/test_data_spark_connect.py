"""Data versions of Spark Connect DataFrames (``SparkSession.builder.remote("local[2]")``, what Databricks shared
and serverless compute hand a notebook): the same order-free digest as the pandas frame, whatever the
partitioning, with the profile and the file manifest, and %dataversion into a real store read back."""
import json

import numpy as np
import pandas as pd
import pytest

from nbops_testing import isolated_store, nbops_loaded

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def connect():
    from nbops_testing import start_spark
    session = start_spark(remote=True)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def ip(_ipython, tmp_path_factory):
    with isolated_store(tmp_path_factory.mktemp("connect-store")), nbops_loaded(_ipython) as shell:
        yield shell


def frame(n=2_000, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "city": rng.choice(["Oslo", "Lima", None], n),
                         "t": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s")})


def test_connect_frames_get_content_digests(connect):
    import nbops
    from pyspark.sql import functions as F

    pdf = frame()
    sdf = connect.createDataFrame(pdf).repartition(4)
    assert type(sdf).__module__.startswith("pyspark.sql.connect")
    v = nbops.fingerprint(sdf)
    assert v.source["type"] == "pyspark.sql.connect.DataFrame" and v.rows == len(pdf)
    assert v.digest == nbops.fingerprint(sdf.repartition(2)).digest == nbops.fingerprint(pdf, ordered=False).digest
    assert v.digest == nbops.fingerprint(sdf.toPandas(), ordered=False).digest
    changed = sdf.withColumn("city", F.when(F.col("id") == 7, F.lit("Pune")).otherwise(F.col("city")))
    assert nbops.fingerprint(changed).digest != v.digest
    prof = {c["name"]: c for c in v.profile["columns"]}
    assert prof["x"]["mean"] == pytest.approx(float(pdf["x"].mean()))
    assert prof["city"]["nulls"] == int(pdf["city"].isna().sum())


def test_connect_dataversion_of_a_parquet_source(ip, connect, tmp_path):
    import nbops
    from mlflow.tracking import MlflowClient

    path = str(tmp_path / "t")
    connect.createDataFrame(frame()).write.parquet(path)
    ip.user_ns["sdf"] = connect.read.parquet(path)
    ip.run_line_magic("dataversion", "sdf --name connect_events")
    rows = nbops.data.history("connect_events").rows
    assert len(rows) == 1 and rows[0]["digest"] == nbops.fingerprint(frame(), ordered=False).digest
    from nbops.tracking.writer import get_writer

    ds = MlflowClient(get_writer().settings.tracking_uri).get_run(rows[0]["run_id"]).inputs.dataset_inputs[0].dataset
    assert json.loads(ds.source)["files"]["count"] >= 1

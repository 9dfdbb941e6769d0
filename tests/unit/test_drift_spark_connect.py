"""Drift checks and contracts on Spark Connect DataFrames (what Databricks serverless and shared compute hand a
notebook): a local Spark Connect server on local[2], one per module."""
import numpy as np
import pandas as pd
import pytest

import nbops

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def connect():
    import os

    from nbops_testing import start_spark

    # the local Connect server's executors fetch generated classes from the driver's address: on a host whose
    # name resolves to another interface than the bound 127.0.0.1, every job fails (RemoteClassLoaderError)
    old = os.environ.get("SPARK_LOCAL_IP")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = start_spark(remote=True)
    yield session
    session.stop()
    if old is None:
        os.environ.pop("SPARK_LOCAL_IP", None)
    else:
        os.environ["SPARK_LOCAL_IP"] = old


def test_connect_frames_drift_and_validate_like_pandas(connect):
    from nbops.sparkframes import is_spark
    from nbops.validation import infer_contract

    rng = np.random.default_rng(4)
    n = 30_000
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    cur = pd.DataFrame({"a": rng.normal(0.3, 1, size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    sref, scur = connect.createDataFrame(ref), connect.createDataFrame(cur)
    assert is_spark(scur) and "connect" in type(scur).__module__
    p = nbops.check_drift(ref, cur, log=False, plots=False)
    for sketch in (False, True):
        s = nbops.check_drift(sref, scur, sketch=sketch, log=False, plots=not sketch)
        assert s.drifted == p.drifted == ["a"]
    exact = nbops.check_drift(sref, scur, log=False, plots=False)
    assert exact["a"].statistic == pytest.approx(p["a"].statistic, abs=1e-12)
    bad = cur.copy()
    bad.loc[:9, "c"] = "unseen"   # 10 rows: a random split would put them all in the batch 0.1% of the time
    v = nbops.validate(connect.createDataFrame(bad), infer_contract(ref), log_run=False)
    pv = nbops.validate(bad, infer_contract(ref), log_run=False)
    got = [(x["column"], x["check"], x["count"], x["examples"]) for x in v.violations]
    assert got == [(x["column"], x["check"], x["count"], x["examples"]) for x in pv.violations]
    assert got == [("c", "unseen category", 10, ["unseen"])]
    assert nbops.validate(scur, sref, log_run=False).ok

"""Drift checks and data contracts on Spark DataFrames (classic local[2]): verdicts and statistics agree with the
pandas engine on data that fits both ways; sketch mode carries the KLL rank error into the decision; the effect
rule holds at large n; contracts find planted violations with counts and examples; nothing mutates the frames."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import DriftError

spark_only = pytest.mark.spark


def frames(n=200_000, shift=0.3, seed=11):
    """The acceptance's data: an id, a shifted column, an unchanged one and a category."""
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(10, 2, size=n),
                        "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame({"id": np.arange(n, 2 * n), "a": rng.normal(shift, 1.0, size=n),
                        "b": rng.normal(10, 2, size=n), "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})
    return ref, cur


def normal_pair(spark, n, shift, seed=3):
    """Two generated Spark frames of n rows each (no pandas in between): x ~ N(0,1) and N(shift,1)."""
    from pyspark.sql import functions as F

    ref = spark.range(n).select(F.randn(seed).alias("x"))
    cur = spark.range(n).select((F.randn(seed + 1) + F.lit(shift)).alias("x"))
    return ref, cur


def flagged(report):
    f = report.to_frame()
    return set(f.index[f["drifted"]])


@pytest.fixture(scope="module")
def acceptance_frames(spark):
    ref, cur = frames()
    return ref, cur, spark.createDataFrame(ref).repartition(5), spark.createDataFrame(cur).repartition(7)


@spark_only
def test_exact_mode_agrees_with_the_pandas_engine(acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    p = nbops.check_drift(ref, cur, log=False, plots=False)
    s = nbops.check_drift(sref, scur, log=False)
    assert flagged(s) == flagged(p) == {"a"}
    assert s.is_drift == p.is_drift and s.mode == "exact"
    assert s["id"].kind == p["id"].kind == "identifier"
    assert s["c"].kind == p["c"].kind == "categorical" and s["a"].kind == "numeric"
    for col in ("a", "b", "c"):
        assert s[col].test == p[col].test
        assert s[col].statistic == pytest.approx(p[col].statistic, rel=1e-12, abs=1e-15)
        assert s[col].p_value == pytest.approx(p[col].p_value, rel=1e-9, abs=1e-300)
        assert s[col].p_adjusted == pytest.approx(p[col].p_adjusted, rel=1e-9, abs=1e-300)
        assert s[col].effect == pytest.approx(p[col].effect, rel=1e-12, abs=1e-15)
    assert s.n_tests == p.n_tests and s.n_ref_rows == s.n_cur_rows == 200_000
    assert s["a"].plot_data["kind"] == "numeric" and s["c"].plot_data["kind"] == "categorical"
    assert "Spark DataFrame" in s.current and "Spark exact" in repr(s)


@spark_only
def test_exact_ks_with_ties_across_partitions_matches_scipy(spark):
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.integers(0, 400, 30_000) / 4.0})          # many ties: 400 distinct values
    cur = pd.DataFrame({"x": rng.integers(10, 410, 25_000) / 4.0})
    s = nbops.check_drift(spark.createDataFrame(ref).repartition(6), spark.createDataFrame(cur).repartition(3),
                          numeric=["x"], log=False, plots=False)
    assert s["x"].statistic == pytest.approx(ks_2samp(ref.x, cur.x).statistic, abs=1e-12)


@spark_only
def test_sketch_mode_reports_the_error_band_and_agrees(acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    exact = nbops.check_drift(sref, scur, log=False, plots=False)
    sk = nbops.check_drift(sref, scur, sketch=True, log=False, plots=False)
    assert flagged(sk) == {"a"} and sk.mode == "sketch"
    for col in ("a", "b"):
        row = sk[col]
        assert 0 < row.statistic_error < 0.02
        assert abs(row.statistic - exact[col].statistic) <= row.statistic_error
        assert row.effect == pytest.approx(max(0.0, row.statistic - row.statistic_error))
    assert sk["c"].statistic == exact["c"].statistic   # categories are counted exactly in both modes
    assert "\u00b1" in sk.table()["change"].iloc[0]


@spark_only
def test_sketch_mode_keeps_the_sketches_out_of_the_figures_aggregates(acceptance_frames, spark):
    """Sketch mode reads each side once for its figures (missing values, min/max, typing figures, the reference's
    labels counted in the current side's scan), the reference once for its categories, and each side once more
    for its KLL sketches alone; no aggregate of figures holds a sketch (it would lose code generation)."""
    from pyspark.sql import functions as F

    from nbops_testing import spark_jobs

    _, _, sref, scur = acceptance_frames
    sref, scur = sref.drop("id"), scur.drop("id")   # (an id-like integer column adds an exact distinct count)
    one_scan = spark_jobs(spark, lambda: scur.agg(F.count("a")).collect())
    categories = spark_jobs(spark, lambda: sref.groupBy("c").count().collect())
    rep = []
    jobs = spark_jobs(spark, lambda: rep.append(nbops.check_drift(sref, scur, sketch=True, log=False, plots=False)))
    assert jobs == 4 * one_scan + categories
    assert flagged(rep[0]) == {"a"}


@spark_only
def test_a_shift_within_the_sketch_error_is_not_drift_a_large_one_is(spark):
    ref, cur = normal_pair(spark, 1_000_000, 0.01)
    exact = nbops.check_drift(ref, cur, min_effect=0, log=False, plots=False)
    sk = nbops.check_drift(ref, cur, min_effect=0, sketch=True, log=False, plots=False)
    # exactly, a 0.01-sigma shift in 1M rows is significant (min_effect=0 leaves only the p-value) ...
    assert exact["x"].drifted and exact["x"].statistic < sk["x"].statistic_error
    # ... but it is about what the sketches can tell apart (KLL is randomised, so the sketch distance varies from
    # run to run): the band holds the exact distance, the effect is the least distance the band allows (a lower
    # bound of the exact one, often 0), the sketch is never surer than the exact test, and a distance inside the
    # band is never drift
    s = sk["x"]
    assert abs(s.statistic - exact["x"].statistic) <= s.statistic_error
    assert 0.0 <= s.effect <= exact["x"].statistic and s.p_value >= exact["x"].p_value
    assert s.statistic > s.statistic_error or (not s.drifted and s.p_value == 1.0)
    ref, cur = normal_pair(spark, 1_000_000, 0.3)
    big = nbops.check_drift(ref, cur, min_effect=0, sketch=True, log=False, plots=False)
    assert big["x"].drifted and big["x"].effect > 0.1


def awkward_frames(n=30_000, seed=8):
    """Columns that are hard on a summary of the values: a heavy tail (Cauchy: a few values 10^4 times the bulk's
    width), a point mass (60% exact zeros, the rest on a continuum), integers with many ties, and a column with
    missing values; each once unchanged (name ending in 0) and once changed (ending in 1)."""
    rng = np.random.default_rng(seed)

    def side(changed):
        w = rng.normal(0.5 * changed, 1.0, n)
        w[rng.random(n) < 0.1] = np.nan
        return {"cauchy": rng.standard_cauchy(n) + changed,
                "zeros": np.where(rng.random(n) < 0.6 - 0.15 * changed, 0.0, rng.exponential(1.0, n)),
                "ties": (rng.integers(0, 40, n) + 4 * changed).astype(float), "gaps": w}

    def frame(unchanged, changed):
        return pd.DataFrame({**{k + "0": v for k, v in unchanged.items()}, **{k + "1": v for k, v in changed.items()}})

    return frame(side(False), side(False)), frame(side(False), side(True))


@spark_only
def test_sketch_band_holds_the_exact_distance_on_heavy_tails_point_masses_and_missing_values(spark):
    """On a heavy tail, a point mass, many ties and missing values (NaN and null) the sketches' band holds the
    exact KS distance (scipy on the same values), NaN and null count as missing, and the verdicts agree with the
    pandas engine."""
    from pyspark.sql import functions as F
    from scipy.stats import ks_2samp

    ref, cur = awkward_frames()
    sref, scur = spark.createDataFrame(ref).repartition(3), spark.createDataFrame(cur).repartition(2)
    for g in ("gaps0", "gaps1"):   # half the missing values as null, half as NaN
        sref, scur = ((f.withColumn(g, F.when(F.isnan(g) & (F.rand(1) < 0.5), F.lit(None)).otherwise(F.col(g))))
                      for f in (sref, scur))
    p = nbops.check_drift(ref, cur, numeric=list(ref.columns), log=False, plots=False)
    s = nbops.check_drift(sref, scur, numeric=list(ref.columns), sketch=True, log=False, plots=False)
    assert flagged(s) == flagged(p) == {"cauchy1", "zeros1", "ties1", "gaps1"}
    for col in ref.columns:
        row = s[col]
        exact = ks_2samp(ref[col].dropna(), cur[col].dropna()).statistic
        assert row.statistic - row.statistic_error <= exact + 1e-12
        assert exact <= row.statistic + row.statistic_error + 1e-12
        assert 0 < row.statistic_error < 0.02
        assert row.effect == pytest.approx(max(0.0, row.statistic - row.statistic_error))
        assert row.n_ref == ref[col].notna().sum() and row.n_cur == cur[col].notna().sum()
    assert s["gaps1"].missing_ref == pytest.approx(p["gaps1"].missing_ref)


@spark_only
def test_effect_rule_at_large_n(spark):
    ref, cur = normal_pair(spark, 2_000_000, 0.01, seed=7)
    r = nbops.check_drift(ref, cur, log=False, plots=False)
    assert r["x"].p_adjusted < 1e-6            # significant at this n ...
    assert r["x"].effect < 0.05 and not r.is_drift   # ... but far below the effect that counts as drift


@spark_only
def test_categories_chi_square_and_new_values_agree_with_pandas(spark):
    rng = np.random.default_rng(2)
    n = 50_000
    ref = pd.DataFrame({"k": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
                        "code": rng.integers(0, 5, n), "flag": rng.random(n) < 0.3})
    cur = pd.DataFrame({"k": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
                        "code": rng.integers(0, 5, n), "flag": rng.random(n) < 0.3})
    cur.loc[:499, "code"] = None   # missing values (1%): the missing-values test
    p = nbops.check_drift(ref, cur, log=False, plots=False)
    s = nbops.check_drift(spark.createDataFrame(ref), spark.createDataFrame(cur), log=False, plots=False)
    assert flagged(s) == flagged(p) and "k" in flagged(s)
    assert s["k"].new_categories == ["d"] == [str(v) for v in p["k"].new_categories]
    assert s["code"].kind == p["code"].kind == "categorical" and s["flag"].kind == "categorical"
    for col in ("k", "code", "flag"):
        assert s[col].statistic == pytest.approx(p[col].statistic, rel=1e-9)
        assert s[col].effect == pytest.approx(p[col].effect, rel=1e-9)
        assert s[col].missing_p == pytest.approx(p[col].missing_p, rel=1e-9, nan_ok=True)


@spark_only
def test_nothing_is_mutated_and_pandas_sides_join_the_session(spark, acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    before = (sref.columns, sref.schema, sref.is_cached, scur.columns, scur.schema, scur.is_cached)
    snap = ref.copy()
    r = nbops.check_drift(ref, scur, sketch=True, log=False, plots=False)   # pandas reference, Spark batch
    assert flagged(r) == {"a"}
    assert (sref.columns, sref.schema, sref.is_cached, scur.columns, scur.schema, scur.is_cached) == before
    pd.testing.assert_frame_equal(ref, snap)


@spark_only
def test_bad_inputs_are_one_line_errors(spark, acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    for kw, pat in [({"test": "cvm"}, "not available for Spark"), ({"engine": "alibi"}, "not available"),
                    ({"sample": 100}, "not available")]:
        with pytest.raises(DriftError, match=pat) as e:
            nbops.check_drift(sref, scur, log=False, **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(DriftError, match="different columns"):
        nbops.check_drift(sref, scur.drop("b"), log=False)
    with pytest.raises(DriftError, match="is numeric .* text"):
        nbops.check_drift(sref, scur.withColumn("b", scur["b"].cast("string")), log=False)
    with pytest.raises(DriftError, match="for Spark DataFrames"):
        nbops.check_drift(ref, cur, sketch=True, log=False)


@spark_only
def test_drift_magic_with_spark_frames(ip, acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    ip.user_ns.update(sref=sref, scur=scur)
    ip.run_line_magic("drift", "sref scur --sketch --no-log --quiet -o rep")
    rep = ip.user_ns["rep"]
    assert rep.mode == "sketch" and rep.drifted == ["a"]


@spark_only
def test_drift_logged_from_spark_frames(store, acceptance_frames):
    from mlflow.tracking import MlflowClient

    ref, cur, sref, scur = acceptance_frames
    rep = nbops.check_drift(sref, scur, plots=True)
    run = MlflowClient().get_run(rep.run_id)
    assert run.data.tags["nbops.drift.is_drift"] == "true" and run.data.params["drift.mode"] == "spark-exact"
    assert run.data.metrics["drift.a.effect"] == pytest.approx(rep["a"].effect)


# -- contracts ---------------------------------------------------------------------------------------------------
@spark_only
def test_contract_from_pandas_checked_on_spark_agrees_with_pandas(spark, acceptance_frames):
    from nbops.validation import infer_contract

    ref, cur, sref, scur = acceptance_frames
    contract = infer_contract(ref)
    bad = cur.copy()
    bad.loc[:2, "b"] = 1e9
    bad.loc[3:9, "c"] = "unseen"
    bad.loc[10:11, "id"] = 12          # a duplicated key
    sbad = spark.createDataFrame(bad).repartition(4)
    s = nbops.validate(sbad, contract, log_run=False)
    p = nbops.validate(bad, contract, log_run=False)
    key = lambda r: {(v["column"], v["check"], v["count"]) for v in r.violations}  # noqa: E731
    assert key(s) == key(p)
    t = s.to_frame()
    cnt = dict(zip(t["column"] + "/" + t["check"], t["count"]))
    assert cnt["c/unseen category"] == 7 and cnt["b/out of range"] == 3
    ex = dict(zip(t["column"] + "/" + t["check"], t["examples"]))
    assert ex["c/unseen category"] == ["unseen"] and ex["b/out of range"] == [1e9] and ex["id/duplicate key"] == [12]
    assert nbops.validate(scur, contract, log_run=False).ok
    assert sbad.columns == list(bad.columns) and not sbad.is_cached


@spark_only
def test_spark_contract_dtype_missing_and_unexpected_columns(spark, acceptance_frames):
    from pyspark.sql import functions as F

    from nbops.validation import infer_contract

    ref, cur, sref, scur = acceptance_frames
    contract = infer_contract(ref)
    odd = (scur.withColumn("b", F.when(F.col("id") % 1000 == 0, F.lit(None)).otherwise(F.col("b")))
               .withColumn("a", F.col("a").cast("string")).withColumn("extra", F.lit(1)))
    s = nbops.validate(odd, contract, log_run=False)
    got = {(v["column"], v["check"]): v for v in s.violations}
    assert got[("a", "dtype")]["count"] == 200_000 and len(got[("a", "dtype")]["examples"]) == 5
    assert got[("b", "missing values")]["count"] == 200
    assert got[("extra", "unexpected column")]["count"] == 200_000
    assert not any(c == "a" and k == "out of range" for c, k in got)   # the dtype row speaks for it
    assert nbops.validate(odd, contract, ignore=["extra", "a", "b"], log_run=False).ok


@spark_only
def test_contract_inferred_from_spark_matches_pandas(spark, acceptance_frames):
    from nbops.validation import infer_contract
    from nbops.validation.spark import infer_contract_spark

    ref, cur, sref, scur = acceptance_frames
    cp, cs = infer_contract(ref).to_frame().set_index("column"), infer_contract_spark(sref).to_frame().set_index("column")
    assert list(cs.index) == list(cp.index)
    for col in ("kind", "nullable", "max_missing_share", "categories", "unique"):
        pd.testing.assert_series_equal(cs[col], cp[col], check_dtype=False, obj=col)
    for col in ("a", "b"):   # ranges from an approximate tail threshold: within 1% of the range's width
        width = cp.loc[col, "max"] - cp.loc[col, "min"]
        assert abs(cs.loc[col, "min"] - cp.loc[col, "min"]) < 0.01 * width
        assert abs(cs.loc[col, "max"] - cp.loc[col, "max"]) < 0.01 * width
    assert nbops.validate(scur, sref, log_run=False).ok       # against a Spark reference frame
    bad = scur.withColumn("c", scur["c"].substr(0, 0))        # every category unseen ('')
    assert not nbops.validate(bad, sref, log_run=False).ok


@spark_only
def test_validate_magic_with_a_spark_frame(ip, spark, acceptance_frames):
    ref, cur, sref, scur = acceptance_frames
    ip.user_ns.update(ref=ref, sbatch=scur.limit(1000))
    ip.run_line_magic("validate", "sbatch --against ref --no-log -o res")
    assert ip.user_ns["res"].ok and ip.user_ns["res"].rows == 1000


def test_load_ext_imports_neither_pyspark_nor_datasketches():
    code = ("import sys, numpy as np, pandas as pd\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'nbops')\n"
            "import nbops\n"
            "nbops.check_drift(pd.DataFrame({'a': np.arange(50.)}), pd.DataFrame({'a': np.arange(50.)}), log=False)\n"
            "print(sorted(m for m in ('pyspark', 'datasketches') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"

"""The showcase notebooks, executed for real with `nbops run` (papermill) on an embedded store of their own."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
NBOPS = str(Path(sys.executable).with_name("nbops"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of notebooks/ in a fresh project (its own .nbops store), with quickstart already run."""
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("out", "*.out.ipynb"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    r = subprocess.run([NBOPS, "run", "quickstart.ipynb", "-o", "quickstart.out.ipynb", "-e", "bike-demand"],
                       cwd=root / "notebooks", env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return root, env, MlflowClient(f"sqlite:///{root / '.nbops' / 'mlflow.db'}")


def outputs(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in nb["cells"] for o in c.get("outputs", []))


def test_quickstart_records_the_whole_loop(project):
    root, _, c = project
    exp = c.get_experiment_by_name("bike-demand")
    runs = c.search_runs([exp.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert {"ridge", "forest", "sweep"} <= set(by_name)
    forest, ridge = by_name["forest"], by_name["ridge"]
    assert forest.data.params["n_estimators"] == "300" and "r2" in forest.data.metrics
    parent = [r for r in runs if r.data.tags.get("nbops.kind") == "notebook"][0]
    assert forest.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert forest.inputs.dataset_inputs and forest.inputs.dataset_inputs[0].dataset.name == "train"
    champion = c.get_model_version_by_alias("bike-demand", "champion")
    best = max((ridge, forest), key=lambda r: r.data.metrics["r2"])
    assert champion.run_id == best.info.run_id
    drift = [r for r in runs if r.data.tags.get("nbops.kind") == "drift"]
    assert drift and drift[0].data.tags["nbops.drift.is_drift"] == "true"
    assert "cnt" in drift[0].data.tags["nbops.drift.drifted"]
    assert "season" not in drift[0].data.tags["nbops.drift.drifted"]
    assert [r for r in runs if r.data.tags.get("nbops.kind") == "telemetry"]
    assert c.get_model_version("bike-demand", champion.version).tags["nbops.drift.status"] == "drift"
    # the data contract before training, the evaluation before promotion (issue 16)
    assert forest.data.tags["nbops.validation.train"] == "passed" and forest.data.tags["nbops.contract.train"]
    checks = [r for r in runs if r.data.tags.get("nbops.kind") == "validation"]
    assert checks and checks[0].data.tags["nbops.validation.new_batch"].startswith("failed")  # 2012's yr
    assert {"eval_r2", "r2_worst_slice", "r2_slice_gap", "latency_p95_ms", "batch_rows_per_s"} <= set(forest.data.metrics)


def test_monitoring_fails_on_drift_when_asked(project):
    root, env, c = project
    r = subprocess.run([NBOPS, "run", "monitoring.ipynb", "-o", "mon-fail.out.ipynb", "-p", "fail_on_drift",
                        "True"], cwd=root / "notebooks", env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "DriftDetected" in r.stdout + r.stderr
    assert (root / "notebooks" / "mon-fail.out.ipynb").exists()  # the partial notebook is kept


def test_monitoring_retrains_and_promotes_on_drift(project):
    root, env, c = project
    before = c.get_model_version_by_alias("bike-demand", "champion").version
    r = subprocess.run([NBOPS, "run", "monitoring.ipynb", "-o", "mon.out.ipynb"], cwd=root / "notebooks", env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "DRIFT" in outputs(root / "notebooks" / "mon.out.ipynb")
    assert "Validation FAILED: batch" in outputs(root / "notebooks" / "mon.out.ipynb")  # yr: not in the contract
    exp = c.get_experiment_by_name("bike-demand")
    retrain = c.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'retrain'")
    assert len(retrain) == 1 and retrain[0].data.tags["drift_run_id"]
    after = c.get_model_version_by_alias("bike-demand", "champion")
    assert after.run_id == retrain[0].info.run_id and int(after.version) > int(before)


def test_telemetry_notebook_runs_without_prometheus(project):
    root, env, c = project
    r = subprocess.run([NBOPS, "run", "telemetry.ipynb", "-o", "tel.out.ipynb", "-p", "duration_s", "6"],
                       cwd=root / "notebooks", env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    text = outputs(root / "notebooks" / "tel.out.ipynb")
    assert "NBOPS_PROMETHEUS_URL is not set" in text and "TelemetryReport" in text


NOISE = ("INFO mlflow", "WARNING mlflow", "Creating initial MLflow", "Kernel is running over TCP", "0%|", "Traceback")


def test_showcase_outputs_carry_no_log_lines_bars_or_widgets(project):
    """Whatever ran before in this module (quickstart at least): what a reader of the saved notebooks sees."""
    root = project[0]
    saved = sorted((root / "notebooks").glob("*.out.ipynb"))
    assert saved
    for path in saved:
        if path.name == "mon-fail.out.ipynb":  # fails on purpose: its traceback is the point
            continue
        nb = json.loads(path.read_text())
        text = json.dumps([o for c in nb["cells"] for o in c.get("outputs", [])])
        for noise in NOISE:
            assert noise not in text, (path.name, noise)
        assert "application/vnd.jupyter.widget-view+json" not in text and "widgets" not in nb["metadata"], path.name

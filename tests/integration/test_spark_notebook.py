"""The Spark showcase (notebooks/spark.ipynb) executed for real with `nbops run` in a fresh project: the data
versions it records are read back from the project's store."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NBOPS = str(Path(sys.executable).with_name("nbops"))
pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_notebook_versions_a_changed_partition(tmp_path):
    from mlflow.tracking import MlflowClient

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "spark.ipynb", tmp_path / "notebooks")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    r = subprocess.run([NBOPS, "run", "spark.ipynb", "-o", "spark.out.ipynb", "-e", "spark-demo"],
                       cwd=tmp_path / "notebooks", env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / '.nbops' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    events = [di.dataset for run in runs for di in run.inputs.dataset_inputs if di.dataset.name == "events"]
    assert len({d.digest for d in events}) == 2            # the changed partition is a new version
    assert all(json.loads(d.source)["files"]["count"] >= 4 for d in events)
    nb = json.loads((tmp_path / "notebooks" / "spark.out.ipynb").read_text())
    text = "\n".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "nbops   v2:" in text and "CHANGED" in text and "mlflow" in text and "unchanged" in text
    assert "[Stage" not in text  # no Spark console progress bar in the saved notebook
    kinds = {r.info.run_name: r for r in runs}
    drift, check = kinds["day1-vs-day3"], kinds["validate:day2"]
    assert drift.data.params["drift.mode"] == "spark-exact"
    assert drift.data.tags["nbops.drift.drifted"] == "amount"   # the notebook shifts amount between the days
    assert check.data.tags["nbops.validation.status"] == "failed"
    shown = "\n".join("".join(o.get("data", {}).get("text/plain", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "unseen category" in shown and "enterprise" in shown  # the plan day 0 never sold, and only that
    assert check.data.metrics["validation.day2.violations"] == 1

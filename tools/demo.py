"""`make demo`: run the showcase notebooks headless on the embedded store and say what happened.

Runs notebooks/quickstart.ipynb then notebooks/monitoring.ipynb with `nbops run` (each a parent MLflow run with
the notebook's own runs as children), on the project's embedded SQLite store (.nbops/ at the repo root, whatever
MLFLOW_TRACKING_URI says), then prints the runs created, the promoted model version, the drift verdict, the
incidents found, the executed notebooks and the command that opens the MLflow UI.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
OUT = NB / "out"
EXPERIMENT = "bike-demand"
MODEL = "bike-demand"


def run(name: str, env: dict) -> float:
    t = time.time()
    print(f"==> nbops run notebooks/{name}", flush=True)
    rc = subprocess.call([str(Path(sys.executable).with_name("nbops")), "run", str(NB / name), "-o",
                          str(OUT / name), "-e", EXPERIMENT], env=env)
    if rc:
        sys.exit(f"nbops run {name} failed (exit {rc}); the executed notebook is {OUT / name}")
    return time.time() - t


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "NBOPS_HOME", "NBOPS_OFFLINE")}
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    t0 = time.time()
    took = {name: run(name, env) for name in ("quickstart.ipynb", "monitoring.ipynb")}

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(ROOT)
    from nbops import config
    from mlflow.tracking import MlflowClient

    s = config.settings(ROOT)
    c = MlflowClient(s.tracking_uri)
    exp = c.get_experiment_by_name(EXPERIMENT)
    since = int(t0 * 1000)
    runs = [r for r in c.search_runs([exp.experiment_id], max_results=1000) if r.info.start_time >= since]
    kinds: dict[str, int] = {}
    for r in runs:
        kinds[r.data.tags.get("nbops.kind", "?")] = kinds.get(r.data.tags.get("nbops.kind", "?"), 0) + 1
    champion = c.get_model_version_by_alias(MODEL, "champion")
    drift = [r for r in runs if r.data.tags.get("nbops.kind") == "drift"]
    tele = [r for r in runs if r.data.tags.get("nbops.kind") == "telemetry"]
    print("\n" + "=" * 78)
    print(f"nbops demo finished in {time.time() - t0:.0f} s "
          f"(quickstart {took['quickstart.ipynb']:.0f} s, monitoring {took['monitoring.ipynb']:.0f} s)")
    print(f"store           {s.tracking_uri}")
    print(f"runs created    {len(runs)} in experiment '{EXPERIMENT}' ("
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")")
    src = c.get_run(champion.run_id).info.run_name
    print(f"champion        models:/{MODEL}@champion = version {champion.version} (run '{src}', "
          f"r2={c.get_run(champion.run_id).data.metrics.get('r2', float('nan')):.3f})")
    for r in sorted(drift, key=lambda r: r.info.start_time):
        verdict = "DRIFT" if r.data.tags.get("nbops.drift.is_drift") == "true" else "no drift"
        print(f"drift check     {r.info.run_name}: {verdict} in {r.data.tags.get('nbops.drift.drifted') or 'nothing'}"
              f" (run {r.info.run_id})")
    for r in tele:
        m = r.data.metrics
        print(f"telemetry       {int(m.get('telemetry.anomalous_points', 0))} anomalous points -> "
              f"{int(m.get('telemetry.incidents', 0))} incidents over {int(m.get('telemetry.series', 0))} series")
    print(f"notebooks       {OUT / 'quickstart.ipynb'}\n                {OUT / 'monitoring.ipynb'}"
          + (f"\n                {OUT / 'retrain.out.ipynb'}" if (NB / 'retrain.out.ipynb').exists() else ""))
    print("look at it      .venv/bin/nbops ui    (then open http://127.0.0.1:5000)")


if __name__ == "__main__":
    main()

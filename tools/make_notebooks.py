"""Writes the showcase notebooks in notebooks/ from the cell sources below (outputs empty), so their text is
reviewed as code. Run: python tools/make_notebooks.py"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parents[1] / "notebooks"
META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}
FEATURES = ["season", "yr", "mnth", "holiday", "weekday", "workingday", "weathersit", "temp", "atemp", "hum", "windspeed"]


def md(s):
    return new_markdown_cell(s.strip())


def code(s, tags=None):
    return new_code_cell(s.strip(), metadata={"tags": tags} if tags else {})


def write(name, cells):
    for i, c in enumerate(cells):  # stable ids: regenerating a notebook changes only what changed
        c["id"] = f"{Path(name).stem}-{i:02d}"
    nb = new_notebook(cells=cells, metadata=META)
    nbformat.write(nb, str(HERE / name))


write("quickstart.ipynb", [
    md("""
# nbops quickstart: the whole loop on real data

Daily bike rentals in Washington D.C. (UCI Bike Sharing): train a demand model on 2011, version the data,
track two model variants, promote the better one behind gates, check 2012's data for drift against what the
champion learned from, and look at the kernel host's telemetry during training. Everything lands in the
project's MLflow store (`nbops ui` opens it)."""),
    code("%load_ext nbops"),
    code(f"""
data_path = "data/bike_day.csv"
experiment = "bike-demand"
model_name = "bike-demand"
features = {FEATURES!r}""", tags=["parameters"]),
    code("""
import pandas as pd
day = pd.read_csv(data_path)
train = day[day.yr == 0][features + ["cnt"]].reset_index(drop=True)      # 2011: what the model learns from
new_batch = day[day.yr == 1][features + ["cnt"]].reset_index(drop=True)  # 2012: what it meets in production
train.shape, new_batch.shape"""),
    md("## A data version: exact digest, profile, lineage and a diff against the last version of the same name"),
    code("%dataversion train --name bike-2011"),
    md("""
## A data contract, before any training

`%dataversion` also inferred a contract for `bike-2011` (columns, dtypes, missing values, ranges with a margin,
category sets, row count; `nbops data contract bike-2011 > contract.yaml` writes it for editing). Here is what it
says about 2012's data: the year column is what really differs (demand rose too, but not beyond what a sample
of 2011's own source could reach: the drift check further down measures that shift). The training cells below
check their `--data` against it before they run (`--validate`): a violation would stop them."""),
    code("%validate new_batch --against bike-2011"),
    md("## Two tracked training runs: parameters, metrics, data, model, figure, code and environment, with no logging code"),
    code("""
%%track -e {experiment} -n ridge --data train --snapshot --model model --validate bike-2011
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
X_tr, X_te, y_tr, y_te = train_test_split(train[features], train["cnt"], test_size=0.25, random_state=0)
alpha = 1.0
model = Ridge(alpha=alpha).fit(X_tr, y_tr)
r2 = r2_score(y_te, model.predict(X_te))
mae = mean_absolute_error(y_te, model.predict(X_te))"""),
    code("""
%%track -e {experiment} -n forest --data train --snapshot --model model --validate bike-2011
import matplotlib.pyplot as plt
from sklearn.ensemble import RandomForestRegressor
n_estimators = 300
max_depth = 8
model = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=0, n_jobs=-1)
model.fit(X_tr, y_tr)
r2 = r2_score(y_te, model.predict(X_te))
mae = mean_absolute_error(y_te, model.predict(X_te))
fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(y_te, model.predict(X_te), s=8)
ax.set_xlabel("actual daily rentals"); ax.set_ylabel("predicted"); ax.set_title("forest, 2011 hold-out")"""),
    md("## Compare the runs of this notebook"),
    code("%nbops runs -e {experiment} -n 5"),
    md("""
## Evaluate before promoting: hold-out metrics per season and prediction latency

Logged on the forest's own run (`eval_r2`, `r2_worst_slice`, `r2_slice_gap`, `latency_p95_ms`, ...), so the
promotion below can gate on them."""),
    code("""
holdout = train.loc[X_te.index]
%evaluate model holdout --target cnt --slices season --latency"""),
    md("## Promote the better model: gates first, alias moved only if every gate passes, audit trail on the version"),
    code('%promote {model_name} --best r2 -e {experiment} --require "r2>=0.5" "mae<1500" "latency_p95_ms<5000" --reason "quickstart: best r2 on the 2011 hold-out"'),
    md("## Drift: 2012's data against the data the champion was trained on"),
    code("%drift models:/{model_name}@champion new_batch --target cnt -o report"),
    code("report.to_frame()"),
    md("## The kernel host during training: a quiet minute's worth of baseline, a CPU-heavy sweep, then the telemetry"),
    code("""
import time
time.sleep(15)  # the host at rest: the sampler (started by the first tracked cell) records the baseline"""),
    code("""
%%track -e {experiment} -n sweep
from sklearn.ensemble import RandomForestRegressor
scores = {}
t_end = time.time() + 12
for n in (50, 100, 200, 400, 800):
    if time.time() > t_end:
        break
    m = RandomForestRegressor(n_estimators=n, max_depth=10, random_state=0, n_jobs=-1).fit(X_tr, y_tr)
    scores[n] = r2_score(y_te, m.predict(X_te))
best_r2 = max(scores.values())"""),
    code("%telemetry --source local --last 10m --log -e {experiment} -o telemetry"),
])

write("monitoring.ipynb", [
    md("""
# Scheduled monitoring: does the new batch look like what the production model learned from?

Parameterised for papermill (`nbops run monitoring.ipynb -p new_data_path data/new.csv`). With
`fail_on_drift=True` the run fails on drift (the scheduler alerts); otherwise drift starts `retrain.ipynb`."""),
    code("%load_ext nbops"),
    code(f"""
new_data_path = "data/bike_day_2012.csv"
model_name = "bike-demand"
alias = "champion"
fail_on_drift = False
fail_on_invalid = False
retrain_notebook = "retrain.ipynb"
features = {FEATURES!r}""", tags=["parameters"]),
    code("""
import pandas as pd
batch = pd.read_csv(new_data_path)[features + ["cnt"]]  # the columns the model uses, and the target
on_drift = "--fail" if fail_on_drift else f"--on-drift {retrain_notebook}"
len(batch)"""),
    md("Does the batch meet the contract of the data the model was trained on? (`fail_on_invalid=True` fails the run on a violation.)"),
    code("""
strict = "--fail" if fail_on_invalid else ""
%validate batch --against models:/{model_name}@{alias} {strict}"""),
    code("%drift models:/{model_name}@{alias} batch --target cnt -n monitoring -o report {on_drift}"),
    code("""
verdict = "DRIFT" if report.is_drift else "no drift"
print(f"{model_name}@{alias}: {verdict}; drifted: {', '.join(report.drifted) or 'none'}")"""),
])

write("retrain.ipynb", [
    md("""
# Retrain after drift: reference + new data, tracked, promoted only if it beats the champion

Started by `monitoring.ipynb` (`%drift ... --on-drift retrain.ipynb`) with the drift run's id, or by hand."""),
    code("%load_ext nbops"),
    code(f"""
drift_run_id = ""
model_name = "bike-demand"
alias = "champion"
new_data_path = "data/bike_day_2012.csv"
experiment = "bike-demand"
features = {FEATURES!r}""", tags=["parameters"]),
    code("""
import pandas as pd
import mlflow
import nbops
champion = mlflow.tracking.MlflowClient().get_model_version_by_alias(model_name, alias)
reference = nbops.data.load_snapshot(champion.run_id)
new = pd.read_csv(new_data_path)[features + ["cnt"]]
combined = pd.concat([reference, new], ignore_index=True)
len(reference), len(new), len(combined)"""),
    code("""
%%track -e {experiment} -n retrain --data combined --snapshot --model model --tag drift_run_id={drift_run_id}
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
X_tr, X_te, y_tr, y_te = train_test_split(combined[features], combined["cnt"], test_size=0.25, random_state=0)
n_estimators = 300
max_depth = 8
model = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=0, n_jobs=-1)
model.fit(X_tr, y_tr)
r2 = r2_score(y_te, model.predict(X_te))
mae = mean_absolute_error(y_te, model.predict(X_te))
run_id = nbops.tracking.current().run_id"""),
    code('%promote {model_name} --run {run_id} --must-beat {alias} --require "r2>=0.5" --reason "retrained after drift check {drift_run_id}"'),
])

write("telemetry.ipynb", [
    md("""
# Telemetry: the kernel's host live, and a Prometheus server

The local source samples this kernel's host (CPU, memory, swap, disk and network I/O, load, the kernel's RSS) in
the background. The Prometheus section reads `NBOPS_PROMETHEUS_URL` and is skipped when it is unset."""),
    code("%load_ext nbops"),
    code("""
duration_s = 20
prometheus_query = 'rate(node_cpu_seconds_total{mode!="idle"}[1m])'""", tags=["parameters"]),
    md("## Local host, live: the figure refreshes in place every 5 s without blocking the kernel"),
    code("%telemetry --source local --live 5"),
    code("""
import time, math
t_end = time.time() + duration_s  # some load to look at
x = 0.0
while time.time() < t_end:
    x += sum(math.sqrt(i) for i in range(20000))"""),
    code("%telemetry --stop"),
    code("%telemetry --source local --last 5m --sensitivity high -o local_report"),
    md("## Prometheus"),
    code("""
import os
prometheus_url = os.environ.get("NBOPS_PROMETHEUS_URL")
if not prometheus_url:
    print("NBOPS_PROMETHEUS_URL is not set: skipping the Prometheus section. "
          "Set it (e.g. http://localhost:9090) and re-run to see your servers.")"""),
    code("""
if prometheus_url:
    get_ipython().run_line_magic("telemetry", f"--source prometheus --query '{prometheus_query}' --last 1h -o prom_report")"""),
])

write("runbook.ipynb", [
    md("""
# Runbook: what was the host doing during the incident?

Run by `%telemetry ... --on-incident notebooks/runbook.ipynb` (through `nbops run`) once for each new incident,
with the incident as parameters; or by hand: `nbops run notebooks/runbook.ipynb`. Read-only and safe: it lists
the busiest processes (CPU and memory) and the disk usage of every mounted file system, and records both into a
tracked run, a child of this runbook's run, itself a child of the telemetry run that found the incident."""),
    code("""
incident_id = "manual"
incident_start = ""
incident_end = ""
incident_lead = ""
incident_metrics = []
incident_labels = {}
incident_peak_score = 0.0
incident_run_id = ""
top_n = 10""", tags=["parameters"]),
    code("%load_ext nbops"),
    code("""
print(f"incident {incident_id}: {incident_lead or 'no lead metric'} from {incident_start or '?'} to "
      f"{incident_end or 'ongoing'}; metrics {', '.join(incident_metrics) or '-'}; labels {incident_labels}")"""),
    md("## Busiest processes and disk usage, recorded into the run"),
    code("""
%%track -n runbook-diagnostics --tag incident={incident_id}
import os, time
import pandas as pd
import psutil
import nbops

procs = list(psutil.process_iter(["pid", "name", "username"]))
for p in procs:  # CPU percent needs two readings: prime every process, then read them a second later
    try:
        p.cpu_percent(None)
    except psutil.Error:
        pass
time.sleep(1.0)
rows = []
for p in procs:
    try:
        with p.oneshot():
            rows.append({"pid": p.pid, "name": p.info["name"], "user": p.info["username"],
                         "cpu_percent": p.cpu_percent(None), "rss_mb": p.memory_info().rss / 2**20,
                         "threads": p.num_threads(), "cmdline": " ".join(p.cmdline())[:200]})
    except psutil.Error:  # gone, or not ours to look at
        pass
processes = pd.DataFrame(rows)
top_cpu = processes.sort_values("cpu_percent", ascending=False).head(top_n)
top_memory = processes.sort_values("rss_mb", ascending=False).head(top_n)
disks = []
for part in psutil.disk_partitions(all=False):
    try:
        u = psutil.disk_usage(part.mountpoint)
    except OSError:
        continue
    disks.append({"mountpoint": part.mountpoint, "device": part.device, "fstype": part.fstype,
                  "total_gb": u.total / 2**30, "used_gb": u.used / 2**30, "used_percent": u.percent})
disk_usage = pd.DataFrame(disks)
run = nbops.tracking.current()
run.log_text(top_cpu.to_csv(index=False), "runbook/top_cpu_processes.csv")
run.log_text(top_memory.to_csv(index=False), "runbook/top_memory_processes.csv")
run.log_text(disk_usage.to_csv(index=False), "runbook/disk_usage.csv")
run.log_metrics({"host_cpu_percent": psutil.cpu_percent(None), "load_1m": os.getloadavg()[0],
                 "memory_used_percent": psutil.virtual_memory().percent,
                 "max_disk_used_percent": float(disk_usage["used_percent"].max()) if len(disk_usage) else 0.0,
                 "processes": len(processes)})"""),
    code("top_cpu"),
    code("top_memory"),
    code("disk_usage"),
])


write("llm.ipynb", [
    md("""# LLMOps with nbops: prompts, calls, evaluation, promotion

A prompt is versioned in MLflow's prompt registry (`%%prompt`), called from tracked cells through the plain
`openai` SDK against any OpenAI-compatible server (here a local llama.cpp serving SmolLM2), evaluated on a small
labelled set, and promoted to `production` only behind gates. Run it with
`nbops run llm.ipynb -p base_url http://127.0.0.1:8080/v1 -p api_key sk-...`."""),
    code('''base_url = "http://127.0.0.1:8080/v1"   # any OpenAI-compatible endpoint
api_key = "sk-local"                     # never stored: nbops masks it everywhere
model = "smollm2"
experiment = "llm-showcase"''', tags=["parameters"]),
    code('''%load_ext nbops
import nbops
import openai
import pandas as pd
from nbops.evaluation.scorers import max_chars'''),
    md("## 1. Two versions of a prompt\nA cell body that did not change makes no new version."),
    code('''%%prompt qa -m "first version: answer from the context"
Use the context to answer the question.
Context: {{context}}
Question: {{question}}
Answer:'''),
    code('''%%prompt qa -m "second version: a few words only"
Answer with a few words taken from the context, nothing else.
Context: {{context}}
Question: {{question}}'''),
    code('%prompt qa --diff 1 2'),
    md("## 2. Calling the model from a tracked cell\nThe cell's run records which prompt version it loaded "
   "(tag `nbops.prompts`); with the LLM capture, its calls become traces with tokens, latency and cost."),
    code('''%%track -e $experiment -n ask
client = openai.OpenAI(base_url=base_url, api_key=api_key)
qa = nbops.prompt("qa")
reply = client.chat.completions.create(
    model=model, max_tokens=32, temperature=0,
    messages=[{"role": "user", "content": qa.format(context="The Danube flows through Vienna.",
                                                    question="Which river flows through Vienna?")}])
answer = reply.choices[0].message.content
print(answer)'''),
    md("## 3. Evaluating both versions on a labelled set\n`contains`: the expected answer is in the output; "
   "`grounded`: the numbers, names and quoted phrases of the answer occur in the context; `max_chars`: short "
   "answers. Each evaluation is a run of its own tagged with the prompt version."),
    code('''facts = [("Paris", "France"), ("Rome", "Italy"), ("Madrid", "Spain"), ("Berlin", "Germany"),
         ("Vienna", "Austria"), ("Lisbon", "Portugal"), ("Athens", "Greece"), ("Warsaw", "Poland"),
         ("Dublin", "Ireland"), ("Oslo", "Norway"), ("Prague", "Czechia"), ("Helsinki", "Finland")]
labelled = pd.DataFrame({
    "question": [f"What is the capital of {country}?" for _, country in facts],
    "context": [f"{city} is the capital of {country}." for city, country in facts],
    "expected": [city for city, _ in facts],
})
labelled.head(3)'''),
    code('''scorers = ["contains", "grounded", max_chars(300)]
results = {v: nbops.evaluate(nbops.prompt(f"qa/{v}"), labelled, scorers=scorers, model=model,
                             base_url=base_url, api_key=api_key, max_tokens=32, experiment=experiment)
           for v in (1, 2)}
pd.DataFrame({f"qa v{v}": r.logged_metrics() for v, r in results.items()}).round(4)'''),
    code('''best = max(results, key=lambda v: (results[v].metrics["contains"], results[v].metrics["grounded"], v))
results[best]'''),
    md("## 4. Promotion behind gates\nA gate that cannot pass moves nothing; passing gates move `production` "
   "and write the audit trail on the prompt version."),
    code('''from nbops.errors import GateFailed
from nbops.registry.prompts import promote_prompt

try:
    promote_prompt("qa", "production", version=best, require=["llm_latency_p95_ms<0.001"])
except GateFailed as failed:
    display(failed.result)'''),
    code('%promote prompt qa --version {best} --alias production --require "eval_contains>=0.25" "eval_max_chars>=0.9" "llm_errors<=0" --must-beat production'),
    code('''production = nbops.prompt("qa@production")
production'''),
    md("## 5. What the tracked cell recorded\nThe calls of the `ask` run (traces, tokens, cost) when the LLM "
   "capture is installed; its metrics in any case."),
    code('''ask = _nbops_last_run if "_nbops_last_run" in globals() else None
from mlflow import MlflowClient
runs = MlflowClient().search_runs(
    [MlflowClient().get_experiment_by_name(experiment).experiment_id],
    filter_string="attributes.run_name = 'ask'")
run = runs[0]
print("prompts used:", run.data.tags.get("nbops.prompts"))
calls = getattr(nbops.llm, "calls", None)
calls(run.info.run_id) if calls else pd.Series(run.data.metrics, name="metrics").sort_index()'''),
])

"""``nbops.evaluate``: the metrics of a model on labelled data, per slice (fairlearn ``MetricFrame``) and its
prediction latency, logged on the model's own run so promotion gates (``%promote --require ...``) can use them.

Logged names: ``eval_<metric>`` for the whole data (``eval_r2``, ``eval_rmse``, ``eval_mae``;
``eval_accuracy``, ``eval_f1``, ``eval_precision``, ``eval_recall``), so the training cell's own ``r2`` is not
overwritten; ``<metric>_worst_slice`` (the worst group's value) and ``<metric>_slice_gap`` (best minus worst
group, as a positive number) over every slice column (per column as ``<metric>_slice_gap.<column>``);
``latency_p50_ms``, ``latency_p95_ms`` (single-row predict after a warm-up) and ``batch_rows_per_s``.
A small sample of the inputs is kept as ``evaluation/sample.parquet`` (``%promote --serve-check`` sends it).
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

from .errors import EvaluationError
from .result import EvaluationResult

log = logging.getLogger("nbops")
HIGHER_IS_BETTER = {"r2": True, "rmse": False, "mae": False, "accuracy": True, "f1": True, "precision": True,
                    "recall": True}
MIN_SLICE_ROWS = 10
SAMPLE_ROWS = 50


def _metrics(task: str, classes=None) -> dict:
    from sklearn import metrics as m

    if task == "regression":
        return {"r2": m.r2_score, "rmse": lambda y, p: math.sqrt(m.mean_squared_error(y, p)),
                "mae": m.mean_absolute_error}
    binary = classes is not None and len(classes) == 2
    kw = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    return {"accuracy": m.accuracy_score,
            "f1": lambda y, p: m.f1_score(y, p, zero_division=0, **kw),
            "precision": lambda y, p: m.precision_score(y, p, zero_division=0, **kw),
            "recall": lambda y, p: m.recall_score(y, p, zero_division=0, **kw)}


def infer_task(y, model) -> str:
    from pandas.api import types as t

    if model.is_classifier:
        return "classification"
    if t.is_bool_dtype(y.dtype) or not t.is_numeric_dtype(y.dtype):
        return "classification"
    return "regression"


def _kind(values) -> str:
    """What a target or a model's predictions hold: "numbers" (continuous), "classes" (a few integer or bool
    values) or "labels" (text or other non-numeric values)."""
    import numpy as np
    from pandas.api import types as t

    arr = np.asarray(values)
    if t.is_bool_dtype(arr.dtype):
        return "classes"
    if not t.is_numeric_dtype(arr.dtype):
        return "labels"
    from sklearn.utils.multiclass import type_of_target

    try:
        return "numbers" if type_of_target(arr).startswith("continuous") else "classes"
    except ValueError:
        return "numbers"


def _check_task(task: str, y, pred, m, target: str) -> None:
    """Refuse, in one line that says what to do, a target, a model and a task that cannot be scored together
    (sklearn's own complaint is a page of traceback)."""
    ky, kp = _kind(y), _kind(pred)
    if task == "regression":
        if ky == "labels":
            raise EvaluationError(f"--target {target} holds labels ({y.dtype}), not numbers: regression needs a "
                                  f"numeric target; use --task classification with a classifier, or pick a "
                                  f"numeric target.", column=target)
        if kp == "labels":
            raise EvaluationError(f"{m.label} predicts labels, not numbers: use --task classification, or evaluate "
                                  f"a regressor.", column=target)
        return
    if kp == "numbers":
        raise EvaluationError(f"{m.label} predicts continuous numbers, not classes: "
                              + (f"--target {target} holds labels ({y.dtype}), so evaluate a classifier on it, "
                                 f"or pick the numeric target the model was trained on."
                                 if ky == "labels" else "use --task regression, or evaluate a classifier."),
                              column=target)
    if ky == "numbers":
        raise EvaluationError(f"--target {target} holds continuous numbers, not classes: use --task regression, "
                              f"or pick a target of classes.", column=target)
    if (ky == "labels") != (kp == "labels") and not m.is_classifier:
        raise EvaluationError(f"--target {target} holds {ky} but {m.label} predicts {kp}: pick the target the "
                              f"model was trained on.", column=target)


def _features(data, target: str, model, slices) -> "object":
    names = model.feature_names
    if names:
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise EvaluationError(f"The data lacks the model's input column(s) {', '.join(missing)}: pass the "
                                  f"frame the model was trained on plus the target.", columns=missing)
        return data[names]
    return data.drop(columns=[target])


def slice_columns(slices, data) -> list:
    """``slices`` (a column name or several) as a list of columns of ``data``; an unknown one is a one-line error."""
    slices = [slices] if isinstance(slices, str) else list(slices or [])
    missing = [c for c in slices if c not in data.columns]
    if missing:
        raise EvaluationError(f"--slices: no column {', '.join(map(str, missing))} in the data.", columns=missing)
    return slices


def _slice_values(s):
    """A slice column as groups: as is when it has at most 10 values, else quartile bins of a numeric column."""
    import pandas as pd
    from pandas.api import types as t

    if s.nunique(dropna=True) <= 10 or not t.is_numeric_dtype(s.dtype) or t.is_bool_dtype(s.dtype):
        return s.astype(object).where(s.notna(), "(missing)").astype(str)
    return pd.qcut(s, 4, duplicates="drop").astype(str)


def _slices(metric_fns: dict, y, pred, data, slices: list[str]) -> tuple[dict, dict]:
    """Per slice column: the per-group table (fairlearn MetricFrame) and its worst group / gap per metric."""
    import numpy as np
    from fairlearn.metrics import MetricFrame, count

    tables, summary = {}, {}
    for col in slices:
        groups = _slice_values(data[col])
        mf = MetricFrame(metrics={**metric_fns, "rows": count}, y_true=np.asarray(y), y_pred=np.asarray(pred),
                         sensitive_features=groups.rename(col))
        by = mf.by_group.reset_index()
        tables[col] = by
        ok = by[by["rows"] >= MIN_SLICE_ROWS]
        for name in metric_fns:
            vals = ok[[col, name]].dropna()
            if vals.empty:
                continue
            higher = HIGHER_IS_BETTER.get(name, True)
            worst = vals.loc[vals[name].idxmin() if higher else vals[name].idxmax()]
            best = vals[name].max() if higher else vals[name].min()
            summary[(col, name)] = {"worst_group": str(worst[col]), "worst": float(worst[name]),
                                    "gap": float(abs(best - worst[name]))}
    return tables, summary


def _latency(model, X, n_single: int = 100, budget_s: float = 5.0) -> dict:
    """Single-row predict latency (p50, p95, ms) and batch throughput, after a warm-up."""
    import numpy as np

    rows = min(len(X), 1000)
    if rows == 0:
        return {}
    for i in range(min(5, rows)):           # warm-up: first calls load caches, JIT, thread pools
        model.predict(X.iloc[[i]])
    model.predict(X.iloc[:rows])
    times, start = [], time.perf_counter()
    for i in range(n_single):
        row = X.iloc[[i % rows]]
        t0 = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - t0) * 1000)
        if time.perf_counter() - start > budget_s and len(times) >= 20:
            break
    batch = X.iloc[: min(len(X), 10000)]
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(batch)
        best = min(best, time.perf_counter() - t0)
    p50, p95 = np.percentile(times, [50, 95])
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95),
            "batch_rows_per_s": float(len(batch) / best) if best > 0 else math.inf,
            "latency_samples": len(times), "batch_rows": len(batch)}


def evaluate(subject, /, data, target: str | None = None, *, task: str | None = None, slices=None,
             latency: bool = False, run: str | None = None, log_run: bool = True, experiment: str | None = None,
             prefix: str = "eval_", name: str | None = None, scorers=None, model: str | None = None,
             base_url: str | None = None, api_key: str | None = None, client=None,
             max_tokens: int = 256) -> EvaluationResult:
    """Evaluate ``subject`` -- a model on ``data`` (features and the ``target`` column), or, with ``scorers=``, an
    LLM step: a function or a prompt (with ``model=`` and ``base_url=`` / ``api_key=`` or ``client=``) run over
    ``data``'s rows and each output scored (see :mod:`nbops.evaluation.llm`; ``max_tokens`` per call).

    ``model``: a fitted estimator (matched to the ``%%track --model`` run that logged it), ``runs:/RUN_ID/model``,
    ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/<model_id>``; ``run`` names the run to log on
    when it cannot be found. ``task``: ``regression`` or ``classification`` (inferred from the model and the
    target otherwise). ``slices``: columns whose groups are scored apart (fairlearn ``MetricFrame``).
    ``latency``: time single-row and batch predictions. See the module docs for what is logged where.
    """
    import numpy as np
    import pandas as pd

    from .models import resolve

    if scorers is not None:
        from .llm import evaluate_llm

        if target is not None or task or latency or run:
            raise EvaluationError("With scorers= (an LLM step) target, task, latency and run do not apply: put the "
                                  "expected answers in an 'expected' column.")
        return evaluate_llm(subject, data, scorers, model=model, base_url=base_url, api_key=api_key, client=client,
                            slices=slices, max_tokens=max_tokens, log_run=log_run, experiment=experiment, name=name)
    if model is not None or base_url or client is not None:
        raise EvaluationError("model=, base_url= and client= call an LLM: pass scorers=[...] too (or evaluate a "
                              "fitted model with target=).")
    if target is None:
        raise EvaluationError("Which column holds the truth? Pass target= (--target), or scorers= for an LLM step.")
    model = subject
    if not isinstance(data, pd.DataFrame):
        raise EvaluationError(f"Evaluation data must be a pandas DataFrame with the target column, not a "
                              f"{type(data).__name__}.")
    if data.columns.duplicated().any():
        dup = sorted(map(str, data.columns[data.columns.duplicated()].unique()))
        raise EvaluationError(f"The evaluation data has duplicate column names ({', '.join(dup[:10])}): a model "
                              f"reads its inputs by name; rename them (e.g. data.columns = [...]) and evaluate "
                              f"again.", columns=dup)
    if target not in data.columns:
        raise EvaluationError(f"--target {target}: no such column in the data (it has: "
                              f"{', '.join(map(str, data.columns[:20]))}).", column=target)
    slices = slice_columns(slices, data)
    if task not in (None, "regression", "classification"):
        raise EvaluationError(f"--task {task!r}: use regression or classification.")
    m = resolve(model, run)
    data = data[data[target].notna()]
    if data.empty:
        raise EvaluationError(f"No rows with a value in {target!r} to evaluate on.", column=target)
    X, y = _features(data, target, m, slices), data[target]
    task = task or infer_task(y, m)
    try:
        pred = np.asarray(m.predict(X))
    except Exception as exc:  # noqa: BLE001 - the model's own complaint, in one line
        raise EvaluationError(f"{m.label} could not predict on the data ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). Pass the columns it was "
                              f"trained on.") from None
    if pred.ndim > 1 and pred.shape[1] == 1:
        pred = pred.ravel()
    _check_task(task, y, pred, m, target)
    classes = sorted(pd.unique(np.concatenate([np.asarray(y), pred]))) if task == "classification" else None
    fns = _metrics(task, classes)
    try:
        overall = {k: float(f(y, pred)) for k, f in fns.items()}
    except (TypeError, ValueError) as exc:  # what the checks above did not foresee: still one line
        raise EvaluationError(f"{m.label} cannot be scored for {task} on {target!r} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Check --target and "
                              f"--task.", column=target) from None
    tables, summary = _slices(fns, y, pred, data, slices) if slices else ({}, {})
    lat = _latency(m, X) if latency else {}
    res = EvaluationResult(m.label, name or "data", task, len(data), target, overall, tables, summary, lat,
                           run_id=m.run_id, prefix=prefix)
    if log_run:
        _record(res, X, experiment)
    return res


def _record(res: EvaluationResult, X, experiment: str | None) -> None:
    """Metrics on the model's run (through the writer), else on the current tracked run or a run of its own."""
    from ..tracking.run import current, track
    from ..tracking.writer import RunRef, get_writer

    metrics = res.logged_metrics()
    tags = {"nbops.evaluation.task": res.task, "nbops.evaluation.data": f"{res.data} ({res.rows:,} rows)",
            "nbops.evaluation.target": res.target}
    tmp = Path(tempfile.mkdtemp(prefix="nbops-eval-"))
    try:
        (tmp / "evaluation").mkdir()
        (tmp / "evaluation" / "metrics.json").write_text(json.dumps(res.as_dict(), indent=2, default=str))
        try:
            X.head(SAMPLE_ROWS).to_parquet(tmp / "evaluation" / "sample.parquet")
        except Exception as exc:  # noqa: BLE001 - the sample only serves the serve check
            log.debug("nbops: no evaluation sample stored: %s", exc)
        if res.run_id:
            w = get_writer()
            try:
                r = w.client.get_run(res.run_id)
            except Exception as exc:  # noqa: BLE001
                from ..tracking.mlflow_errors import store_down_note, unreachable

                if not unreachable(exc):
                    raise EvaluationError(f"Run {res.run_id} (the model's run) is not in the store: "
                                          f"{str(exc).splitlines()[0][:300] if str(exc) else exc!r}",
                                          run_id=res.run_id) from None
                res.notes.append(f"not recorded on run {res.run_id}: {store_down_note()}")
                return
            ref = RunRef(res.run_id, r.info.experiment_id, _experiment_name(w, r.info.experiment_id), r.info.run_name)
            w.log_batch(ref, metrics=metrics, tags=tags)
            w.log_artifacts(ref, tmp)
            res.logged_to = "model run"
            return
        t = current()
        if t is not None:
            t.log_metrics(metrics)
            t.set_tags(tags)
            for p in (tmp / "evaluation").iterdir():
                t.log_artifact(str(p), "evaluation")
            res.run_id, res.logged_to = t.run_id, "current run"
            return
        with track(experiment, f"evaluate:{res.model}", kind="evaluation", tags=tags) as t:
            t.log_metrics(metrics)
            for p in (tmp / "evaluation").iterdir():
                t.log_artifact(str(p), "evaluation")
        res.run_id, res.logged_to = t.run_id, "own run"
        res.notes.append("the model is not from a tracked run (log it with %%track --model VAR, or pass run=): "
                         "recorded in a run of kind 'evaluation'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _experiment_name(w, experiment_id: str) -> str:
    try:
        return w.client.get_experiment(experiment_id).name
    except Exception:  # noqa: BLE001 - only a label for the spool
        return experiment_id

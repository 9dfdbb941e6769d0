"""``nbops.check_drift``: the API behind ``%drift``. Validate everything, test every column, decide, log."""
from __future__ import annotations

import logging
import time

from ..errors import DriftError
from .columns import as_frame, check_current, float_values, select_columns
from .reference import PreparedColumn, Reference, map_columns, prepare_reference
from .report import DriftReport, FeatureDrift
from .stats import (CORRECTIONS, DEFAULT_MIN_EFFECT, DEFAULT_P_VAL, LOW_POWER_EFFECT, decide, ks_critical, psi,
                    tvd)

logger = logging.getLogger("nbops")
TESTS = ("ks", "cvm")
ENGINES = ("nbops", "alibi")


def check_drift(reference, current, *, features=None, categorical=None, numeric=None, target=None,
                prediction=None, p_val: float = DEFAULT_P_VAL, correction: str = "bonferroni",
                min_effect: float = DEFAULT_MIN_EFFECT, test: str = "ks", engine: str = "nbops",
                sample: int | None = None, seed: int = 0, max_categories: int | None = None, mmd: bool = False,
                log: bool = True, experiment: str | None = None, run_name: str | None = None, fail: bool = False,
                on_drift: str | None = None, plots: bool = True, progress: bool | None = None,
                sketch: bool = False) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column and return a :class:`DriftReport`.

    ``reference``: a DataFrame, a :class:`~nbops.drift.reference.Reference` (prepared once, reused),
    ``"run:<run_id>"`` (the data snapshot that run logged) or ``"models:/<name>@<alias>"`` (the snapshot of
    the run that produced that model version). ``current``: a DataFrame.

    Options: ``features`` (columns to check; default all, and then both frames must have the same columns),
    ``categorical`` / ``numeric`` (override the typing), ``target`` / ``prediction`` (reported separately),
    ``p_val`` (0.05), ``correction`` (``bonferroni`` | ``fdr`` | ``none``; across every test of the check),
    ``min_effect`` (0.05: the KS distance, total variation distance or change in missing share a column
    must reach to count as drift, whatever its p-value), ``test`` (``ks`` | ``cvm`` for numbers),
    ``sample`` (test a random sample of at most N rows per side), ``sketch`` (Spark frames: numbers from
    mergeable KLL quantile sketches instead of an exact distributed sort; their rank error is carried into the
    decision, see :mod:`nbops.drift.spark`), ``mmd`` (multivariate MMD; needs PyTorch and
    alibi-detect). ``engine="alibi"`` runs alibi-detect's stock detectors instead of nbops's own (scipy) engine;
    it needs the optional extra ``pip install "nbops[alibi]"``, as does ``mmd`` (plus PyTorch).

    Recording: ``log=True`` logs into the current tracked run, else into a new run (``experiment``,
    ``run_name``, tag ``nbops.kind=drift``); with a ``models:/`` reference the model version is tagged with
    the status. ``on_drift="retrain.ipynb"`` runs that notebook when drift is found (parameter
    ``drift_run_id``); ``fail=True`` then raises :class:`~nbops.errors.DriftDetected`.
    """
    t0 = time.perf_counter()
    _check_options(p_val, correction, min_effect, test, engine, sample, max_categories, on_drift)
    from ..sparkframes import is_spark

    if is_spark(current) or is_spark(reference):
        return _check_spark(reference, current, features=features, categorical=categorical, numeric=numeric,
                            target=target, prediction=prediction, p_val=p_val, correction=correction,
                            min_effect=min_effect, test=test, engine=engine, sample=sample, seed=seed,
                            max_categories=max_categories, mmd=mmd, log=log, experiment=experiment,
                            run_name=run_name, fail=fail, on_drift=on_drift, plots=plots, sketch=sketch, t0=t0)
    if engine == "alibi" or mmd:
        from . import alibi

        what = "--engine alibi" if engine == "alibi" else "--mmd (multivariate MMD)"
        if not alibi.available():  # one line on what to install, before any work
            raise alibi.missing(what, "torch" if mmd else "")
        alibi.detectors(what)
        if mmd:
            from .stats import torch_available

            if not torch_available():
                raise DriftError(f"--mmd needs PyTorch next to alibi-detect: {alibi.install_hint('torch')}.",
                                 option="--mmd")
    from .sources import resolve_reference

    if sketch:
        raise DriftError("sketch=True (--sketch) is for Spark DataFrames; pandas frames are tested exactly (use "
                         "sample= for speed).", option="--sketch")
    src = resolve_reference(reference)
    cur = as_frame(current, "current")
    cur_label = f"DataFrame {cur.shape[0]:,}x{cur.shape[1]}"
    if sample:
        cur = _sample(cur, sample, seed)
    ref_obj = src.ref
    text_notes: list[str] = []
    if ref_obj is None:
        ref_df = as_frame(src.frame, "reference")
        if sample:
            ref_df = _sample(ref_df, sample, seed + 1)
        from .text import expand  # free-text columns -> their descriptors (lengths, refusals, ...)

        ref_df, cur, features, target, prediction, numeric, text_notes = expand(
            ref_df, cur, features=features, target=target, prediction=prediction, categorical=categorical,
            numeric=numeric)
        roles = select_columns(ref_df, cur, features=features, target=target, prediction=prediction)
        key = _cache_key(src, roles, categorical, numeric, max_categories, sample, seed)
        ref_obj = _PREPARED.get(key) if key else None
        if ref_obj is None:
            ref_obj = prepare_reference(ref_df, categorical=categorical, numeric=numeric,
                                        max_categories=max_categories or 25, source=src.label, _roles=roles)
            if key:
                while len(_PREPARED) >= 4:
                    _PREPARED.pop(next(iter(_PREPARED)))
                _PREPARED[key] = ref_obj
        ref_obj.data, ref_obj.run_id, ref_obj.model, ref_obj.source = src.frame, src.run_id, src.model, src.label
    else:
        roles = _roles_for(ref_obj, cur, features, target, prediction)
        if categorical or numeric or max_categories:
            raise DriftError("categorical=/numeric=/max_categories= are fixed when the reference is prepared; pass "
                             "them to prepare_reference().")
    report = compare(ref_obj, cur, roles, p_val=p_val, correction=correction, min_effect=min_effect, test=test,
                     engine=engine, plots=plots, progress=progress)
    report.notes.extend(text_notes)
    report.reference, report.current = ref_obj.source, cur_label
    report.n_ref_rows, report.n_cur_rows = ref_obj.n_rows, len(cur)
    report.model = ref_obj.model
    if mmd:
        report.multivariate = _mmd(ref_obj, cur, roles, p_val)
    return _conclude(report, ref_obj, current, t0, log=log, experiment=experiment, run_name=run_name,
                     on_drift=on_drift, fail=fail)


def _conclude(report, ref_obj, current, t0, *, log, experiment, run_name, on_drift, fail) -> DriftReport:
    """Every engine's last steps: warnings logged, the check recorded, ``on_drift`` and ``fail`` honoured."""
    report.duration_s = time.perf_counter() - t0
    for w in report.warnings:
        logger.warning("nbops drift: %s", w)
    if log:
        from .record import record

        record(report, ref_obj, current, experiment=experiment, run_name=run_name,
               on_drift=on_drift)
    elif on_drift and report.is_drift:
        raise DriftError("on_drift needs the check to be logged (it passes the drift run's id); drop log=False.")
    if fail and report.is_drift:
        from ..errors import DriftDetected

        raise DriftDetected(f"Drift detected: {report.verdict()}" +
                            (f" (run {report.run_id})" if report.run_id else ""), report=report)
    return report


def _check_spark(reference, current, *, features, categorical, numeric, target, prediction, p_val, correction,
                 min_effect, test, engine, sample, seed, max_categories, mmd, log, experiment, run_name, fail,
                 on_drift, plots, sketch, t0) -> DriftReport:
    """Spark DataFrames (either side; a pandas side joins the other's session): :mod:`nbops.drift.spark`."""
    from . import spark
    from .sources import resolve_reference

    unsupported = [what for what, on in (("engine='alibi'", engine != "nbops"), ("mmd=True", mmd),
                                         ("test='cvm'", test != "ks"), ("sample=", sample)) if on]
    if unsupported:
        raise DriftError(f"{', '.join(unsupported)}: not available for Spark DataFrames; drop the option (Spark "
                         f"frames are tested with KS / Chi2, exactly or with sketch=True).")
    src = resolve_reference(reference)
    if src.ref is not None:
        raise DriftError("A prepared Reference holds pandas data; pass the reference Spark DataFrame itself.")
    like = current if spark.is_spark_frame(current) else src.frame
    ref_sdf = spark.as_spark(src.frame, like, "reference")
    cur_sdf = spark.as_spark(current, like, "current")
    report, n_ref, n_cur = spark.compare(ref_sdf, cur_sdf, features=features, categorical=categorical,
                                         numeric=numeric, target=target, prediction=prediction, p_val=p_val,
                                         correction=correction, min_effect=min_effect, sketch=sketch,
                                         max_categories=max_categories, plots=plots, seed=seed)
    label = src.label if src.run_id else f"Spark DataFrame {n_ref:,}x{len(ref_sdf.columns)}"
    report.reference, report.current = label, f"Spark DataFrame {n_cur:,}x{len(cur_sdf.columns)}"
    report.n_ref_rows, report.n_cur_rows, report.model = n_ref, n_cur, src.model
    ref_obj = Reference({}, [], n_ref, source=label, data=ref_sdf if src.run_id is None else src.frame,
                        run_id=src.run_id, model=src.model)
    return _conclude(report, ref_obj, current, t0, log=log, experiment=experiment, run_name=run_name,
                     on_drift=on_drift, fail=fail)


_PREPARED: dict[tuple, Reference] = {}  # run snapshots are immutable: prepare them once per process


def _cache_key(src, roles, categorical, numeric, max_categories, sample, seed):
    if not src.run_id:
        return None  # a DataFrame can change in place: never cached
    from ..config import settings

    norm = lambda v: tuple(sorted(v.split(",") if isinstance(v, str) else v)) if v else ()  # noqa: E731
    return (settings().tracking_uri, src.run_id, src.label.split("@")[0] if src.model else src.label,
            tuple(roles), norm(categorical), norm(numeric), max_categories, sample, seed)


def _check_options(p_val, correction, min_effect, test, engine, sample, max_categories, on_drift) -> None:
    try:
        ok = 0 < float(p_val) < 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DriftError(f"p_val={p_val!r}: give a significance level between 0 and 1, e.g. 0.05.")
    if correction not in CORRECTIONS:
        raise DriftError(f"correction={correction!r}: use one of {', '.join(CORRECTIONS)}.")
    if not isinstance(min_effect, (int, float)) or min_effect < 0 or min_effect > 1:
        raise DriftError(f"min_effect={min_effect!r}: give an effect size between 0 and 1 (default "
                         f"{DEFAULT_MIN_EFFECT}).")
    if test not in TESTS:
        raise DriftError(f"test={test!r}: use 'ks' (Kolmogorov-Smirnov) or 'cvm' (Cramer-von Mises).")
    if engine not in ENGINES:
        raise DriftError(f"engine={engine!r}: use 'nbops' (the default) or 'alibi'.")
    if sample is not None and (not isinstance(sample, int) or sample < 2):
        raise DriftError(f"sample={sample!r}: give a number of rows (at least 2, a few thousand is typical).")
    if max_categories is not None and (not isinstance(max_categories, int) or max_categories < 1):
        raise DriftError(f"max_categories={max_categories!r}: give a positive integer.")
    if on_drift is not None:
        import os

        if not str(on_drift).endswith(".ipynb") or not os.path.exists(on_drift):
            raise DriftError(f"on_drift={on_drift!r}: give the path of an existing notebook (.ipynb) to run when "
                             f"drift is found.", path=str(on_drift))


def _sample(df, n: int, seed: int):
    return df if len(df) <= n else df.sample(n=n, random_state=seed)


def _roles_for(ref: Reference, cur, features, target, prediction) -> list[tuple[str, str]]:
    roles = ref.roles
    if target is not None or prediction is not None:
        raise DriftError("target=/prediction= are fixed when the reference is prepared; pass them to "
                         "prepare_reference().")
    if features is not None:
        from .columns import column_list

        wanted = column_list(features)
        unknown = [c for c in wanted if c not in ref.columns and c not in dict(roles)]
        if unknown:
            raise DriftError(f"Columns {unknown} are not in the prepared reference; prepare it with them.",
                             columns=unknown)
        roles = [(c, r) for c, r in roles if c in wanted or r != "feature"]
    names = [c for c, _ in roles]
    missing = [c for c in names if c not in cur.columns]
    if missing:
        raise DriftError(f"The current batch lacks columns of the reference: {missing}. Align the frames or pass "
                         f"features=[...].", only_reference=missing)
    if features is None:
        extra = [c for c in cur.columns if c not in set(names)]
        if extra:
            raise DriftError(f"The current batch has columns the reference does not: {extra}. Align the frames or "
                             f"pass features=[...].", only_current=extra)
    return roles


def compare(ref: Reference, cur, roles, *, p_val, correction, min_effect, test="ks", engine="nbops",
            plots=True, progress=None) -> DriftReport:
    """Test every column of ``roles``; raises before anything is decided when a column cannot be tested.

    Columns are tested on a thread pool (sorting, merging and counting release the GIL, so both cores work)."""
    for name, role in roles:
        pc = ref.columns.get(name)
        if pc is not None:
            check_current(pc.spec, pc.spec.family, cur[name])
    todo = [(n, r) for n, r in roles if n in ref.columns]
    rows = map_columns(lambda item: _test_column(ref.columns[item[0]], item[1], cur[item[0]], test, engine, p_val,
                                                  plots), todo, progress, cells=len(cur) * len(todo))
    return finish(rows, {n: pc.distinct() for n, pc in ref.columns.items()}, p_val=p_val, correction=correction,
                  min_effect=min_effect, test=test, engine=engine)


def finish(rows, distinct: dict, *, p_val, correction, min_effect, test="ks", engine="nbops") -> DriftReport:
    """The decision over every tested column (any engine: pandas or Spark): constant columns refused, one family of
    distribution and missing-values tests corrected together, the effect rule, notes and the low-power warning.
    ``distinct``: the reference's number of distinct present values per column."""
    import numpy as np

    notes: list[str] = []
    pending = [(row, row) for row in rows if row.kind not in ("datetime", "identifier")]
    constant = [row.feature for row, _ in pending
                if row.test and distinct.get(row.feature, 2) <= 1 and row.statistic == 0
                and not (row.missing_ref or row.missing_cur)]
    if constant:
        raise DriftError(f"Columns {constant} hold one constant value on both sides: there is no distribution to "
                         f"test. Leave them out with features=[...] (--features).", columns=constant)
    # one family of tests: every distribution test and every missing-values test
    p, eff, where = [], [], []
    for row, _ in pending:
        if row.test:
            p.append(row.p_value)
            eff.append(row.effect)
            where.append((row, "dist"))
        if not np.isnan(row.missing_p):
            p.append(row.missing_p)
            eff.append(row.missing_effect)
            where.append((row, "missing"))
    adj, flags = decide(p, eff, p_val=p_val, correction=correction, min_effect=min_effect)
    for (row, which), a, flag in zip(where, adj, flags):
        if which == "dist":
            row.p_adjusted = float(a)
            if flag:
                row.reason = "distribution"
        else:
            row.missing_p_adjusted = float(a)
            if flag:
                row.reason = (row.reason + " + " if row.reason else "") + "missing values"
        row.drifted = row.drifted or bool(flag)
    report = DriftReport(rows, p_val=p_val, correction=correction, min_effect=min_effect, test=test,
                         engine=engine, n_tests=len(p), notes=notes)
    skipped = [r.feature for r in rows if r.kind in ("datetime", "identifier")]
    if skipped:
        notes.append(f"Not tested: {', '.join(skipped)} (see the note on each row).")
    new = [f"{r.feature}: {', '.join(map(str, r.new_categories[:10]))}" for r in rows if r.new_categories]
    if new:
        notes.append("Categories not in the reference -- " + "; ".join(new))
    _power_warning(report, pending, p_val, correction, len(p))
    return report


def _test_column(pc: PreparedColumn, role: str, s, test, engine, p_val, plots) -> FeatureDrift:
    import numpy as np

    row = FeatureDrift(pc.spec.name, role=role, kind=pc.spec.kind, note=pc.spec.note)
    if pc.spec.kind in ("datetime", "identifier"):
        return row
    if pc.spec.kind == "numeric":
        x = float_values(s)
        miss = np.isnan(x)
        n_miss = int(miss.sum())
        x = x[~miss] if n_miss else x
        _numeric(row, pc, x, test, engine, p_val, plots)
    else:
        codes, n_miss, new = pc.encode(s)
        _categorical(row, pc, codes, new, engine, p_val, plots)
    row.missing_ref = pc.n_missing / pc.n
    row.missing_cur = n_miss / len(s)
    row.n_ref, row.n_cur = pc.n_present, len(s) - n_miss
    if row.n_cur == 0:
        row.test, row.note = "", (row.note + "; " if row.note else "") + "no values in the current batch"
    if pc.n_missing or n_miss:
        from .stats import missing_test

        _, row.missing_p, row.missing_effect = missing_test(pc.n_missing, pc.n, n_miss, len(s))
    return row


def _numeric(row: FeatureDrift, pc: PreparedColumn, x, test, engine, p_val, plots) -> None:
    import numpy as np

    from .stats import cvm_sorted, ks_merge

    row.effect_name = "KS distance"
    if len(x) == 0:
        return
    cur_sorted = np.sort(x)
    merge = ks_merge(pc.sorted, cur_sorted)
    row.test = "KS" if test == "ks" else "CvM"
    if engine == "alibi":
        from . import alibi

        row.statistic, row.p_value = alibi.univariate(test, pc.sorted, x, p_val)
    elif test == "ks":
        row.statistic, row.p_value = merge.statistic, merge.p_value
    else:
        row.statistic, row.p_value = cvm_sorted(pc.sorted, cur_sorted)
    row.effect = merge.statistic
    row.wasserstein_norm = merge.wasserstein / pc.std if pc.std > 0 else (0.0 if merge.wasserstein == 0 else
                                                                           float("inf"))
    if plots:
        row.plot_data = _numeric_plot_data(pc.sorted, cur_sorted, pc.mean, float(x.mean()))


def _numeric_plot_data(ref_s, cur_s, mean_ref, mean_cur) -> dict:
    import numpy as np

    both_lo = min(ref_s[int(0.005 * (len(ref_s) - 1))], cur_s[int(0.005 * (len(cur_s) - 1))])
    both_hi = max(ref_s[int(0.995 * (len(ref_s) - 1))], cur_s[int(0.995 * (len(cur_s) - 1))])
    if not np.isfinite(both_lo) or not np.isfinite(both_hi):
        both_lo, both_hi = 0.0, 1.0
    if both_hi <= both_lo:
        both_hi = both_lo + 1.0
    edges = np.linspace(both_lo, both_hi, 41)
    probs = np.linspace(0, 1, 101)

    def hist(s):
        c = np.diff(np.searchsorted(s, edges, side="right")).astype(float)
        return (c / max(1, len(s))).tolist()

    def q(s):
        return s[np.round(probs * (len(s) - 1)).astype(int)].tolist()

    return {"kind": "numeric", "edges": edges.tolist(), "ref": hist(ref_s), "cur": hist(cur_s),
            "probs": probs.tolist(), "ref_q": q(ref_s), "cur_q": q(cur_s), "mean_ref": mean_ref,
            "mean_cur": mean_cur}


def _categorical(row: FeatureDrift, pc: PreparedColumn, codes, new, engine, p_val, plots) -> None:
    import numpy as np

    from .stats import chi2_counts

    row.effect_name = "TV distance"
    row.new_categories = [_label(v) for v in new]
    if len(codes) == 0:
        return
    k = len(pc.counts) + len(new)
    cur_counts = np.bincount(codes, minlength=k)
    ref_counts = np.zeros(k, dtype=np.int64)
    ref_counts[:len(pc.counts)] = pc.counts
    row.test = "Chi2"
    if engine == "alibi":
        from . import alibi

        row.statistic, row.p_value = alibi.chi2(pc.counts, codes, p_val)
    else:
        row.statistic, row.p_value = chi2_counts(ref_counts, cur_counts)
    row.effect = tvd(ref_counts, cur_counts)
    row.psi = psi(ref_counts, cur_counts)
    if plots:
        labels = [_label(v) for v in pc.labels] + row.new_categories
        order = np.argsort(-(ref_counts + cur_counts))[:30]
        row.plot_data = {"kind": "categorical", "labels": [labels[i] for i in order],
                         "ref": (ref_counts[order] / max(1, ref_counts.sum())).tolist(),
                         "cur": (cur_counts[order] / max(1, cur_counts.sum())).tolist()}


def _label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _power_warning(report: DriftReport, pending, p_val, correction, k) -> None:
    tested = [(r.n_ref, r.n_cur) for r, _ in pending if r.test and r.n_ref and r.n_cur]
    if not tested or k == 0:
        return
    n_ref, n_cur = min(tested, key=lambda t: t[0] * t[1] / (t[0] + t[1]))
    alpha = p_val / k if correction != "none" else p_val
    d = ks_critical(alpha, n_ref, n_cur)
    if d > LOW_POWER_EFFECT:
        report.warnings.append(
            f"Low power: with {n_ref:,} reference and {n_cur:,} current values, only changes with a KS distance "
            f"above {d:.2f} (about {d / 0.4:.1f} standard deviations of shift) can be detected at p-val {p_val:g} "
            f"after {correction} correction over {k} tests; smaller drift goes unnoticed. Use more rows.")


def _mmd(ref: Reference, cur, roles, p_val) -> dict:
    """Multivariate MMD over the numeric features (alibi-detect's MMDDrift with PyTorch), on a sample."""
    import numpy as np

    from . import alibi

    names = [n for n, r in roles if r == "feature" and n in ref.columns and ref.columns[n].spec.kind == "numeric"]
    if not names or ref.data is None:
        return {"test": "MMD", "skipped": "no numeric features"}
    rdf = as_frame(ref.data, "reference")[names].dropna()
    cdf = cur[names].dropna()
    rs = rdf.sample(min(len(rdf), 2000), random_state=0).to_numpy(np.float32)
    cs = cdf.sample(min(len(cdf), 2000), random_state=0).to_numpy(np.float32)
    return {**alibi.mmd(rs, cs, p_val), "features": names}

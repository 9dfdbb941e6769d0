"""``nbops.validate``: check a frame against a data contract with pandera, and record the outcome."""
from __future__ import annotations

import json
import logging

from ..errors import DataError
from .errors import ValidationFailed
from .result import ValidationResult, check_label

log = logging.getLogger("nbops")
MAX_EXAMPLES = 5


def validate(data, against, *, fail: bool = False, ignore=None, keys=None, name: str | None = None,
             log_run: bool = True, experiment: str | None = None) -> ValidationResult:
    """Validate ``data`` (a pandas DataFrame, or a Spark DataFrame: the checks then run as Spark aggregates and
    nothing but counts and examples reaches the driver) against ``against``: a data-version name recorded with
    ``%dataversion`` (the contract stored with it), ``run:ID`` (``run:ID/NAME`` when the run logged several
    frames), ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (the contract of the data that trained it), a
    contract YAML file, a :class:`~nbops.validation.Contract` or a reference DataFrame (contract inferred now).

    ``ignore``: columns left out of the check (in the contract and in the data). ``keys``: key columns when the
    contract is inferred here. The result is logged on the current tracked run, or in a run of its own
    (``nbops.kind=validation``) unless ``log_run=False``. ``fail=True`` raises
    :class:`~nbops.errors.ValidationFailed` when anything is violated (``nbops run`` then exits non-zero).
    """
    import pandas as pd

    from .store import resolve

    name = name or "data"
    from ..sparkframes import is_spark

    if is_spark(data):
        return _validate_spark(data, against, fail=fail, ignore=ignore, keys=keys, name=name, log_run=log_run,
                               experiment=experiment)
    if not isinstance(data, pd.DataFrame):
        to_pandas = getattr(data, "to_pandas", None)
        if callable(to_pandas):
            data = to_pandas()
        else:
            raise DataError(f"%validate {name}: a {type(data).__name__} cannot be validated; pass a pandas (or "
                            f"polars) DataFrame.", variable=name)
    ignore = [ignore] if isinstance(ignore, str) else list(ignore or [])
    contract, label = resolve(against, keys=keys)
    contract = contract.without(ignore)
    frame = data.drop(columns=[c for c in ignore if c in data.columns])
    found = violations(frame, contract)
    result = ValidationResult(name, label, len(data), data.shape[1], found, ignore, contract=contract,
                              notes=tolerated(frame, contract, found))
    return _conclude(result, fail, log_run, experiment)


def _validate_spark(sdf, against, *, fail, ignore, keys, name, log_run, experiment) -> ValidationResult:
    """A Spark DataFrame: the checks run as Spark aggregates (:mod:`nbops.validation.spark`); same result."""
    from . import spark
    from .store import resolve

    ignore = [ignore] if isinstance(ignore, str) else list(ignore or [])
    contract, label = resolve(against, keys=keys)
    contract = contract.without(ignore)
    frame = sdf.drop(*[c for c in ignore if c in sdf.columns])
    found, notes, n = spark.violations(frame, contract)
    result = ValidationResult(name, label, n, len(sdf.columns), found, ignore, contract=contract, notes=notes)
    return _conclude(result, fail, log_run, experiment)


def _conclude(result: ValidationResult, fail: bool, log_run: bool, experiment) -> ValidationResult:
    if log_run:
        _record(result, experiment)
    if fail and not result.ok:
        raise ValidationFailed(f"{result.headline()} See the violations above (or result.to_frame()).",
                               result=result, exit_code=1)
    return result


def violations(frame, contract) -> list[dict]:
    """One dict per (column, check) that ``frame`` violates."""
    import pandera.errors as pe

    try:
        contract.schema.validate(frame, lazy=True)
        return []
    except pe.SchemaErrors as exc:
        fc = exc.failure_cases
    except pe.SchemaError as exc:  # a non-lazy failure (pandera raises it for some frame-level checks)
        return [{"column": "(frame)", "check": check_label(getattr(exc, "check", "") or "schema"), "count": 1,
                 "examples": [], "detail": str(exc)[:300]}]
    return _summarise(fc, frame, contract)


def _detail(label: str, column, frame, contract, stats: dict) -> str:
    col = contract.schema.columns.get(column) if column in contract.schema.columns else None
    if label == "out of range" and stats:
        return f"allowed {stats.get('min_value')} .. {stats.get('max_value')}"
    if label == "unseen category" and stats:
        vals = stats.get("allowed_values") or stats.get("allowed") or []
        shown = ", ".join(map(str, vals[:8])) + (", ..." if len(vals) > 8 else "")
        return f"known: {shown}"
    if label == "dtype" and stats:
        got = str(frame[column].dtype) if column in frame.columns else "?"
        return f"expected {stats.get('kind')}, got {got}"
    if label == "missing values":
        return "the reference had no missing values"
    if label == "missing share" and stats and column in frame.columns:
        share = frame[column].isna().mean()
        return f"{share:.2%} missing; the contract allows {stats.get('max_share')}"
    if label == "missing column":
        return "required by the contract"
    if label == "unexpected column":
        return "not in the contract (ignore it with --ignore, or add it to the contract)"
    if label == "duplicate key":
        return "declared unique"
    if label == "row count" and stats:
        return f"{len(frame):,} rows; allowed {stats.get('min_rows')} .. {stats.get('max_rows')}"
    return "" if col is None else ""


def _stats(contract, column, check_name) -> dict:
    checks = []
    if column in contract.schema.columns:
        checks = contract.schema.columns[column].checks
    else:
        checks = contract.schema.checks
    for c in checks:
        if str(check_name).startswith(c.name):
            return dict(c.statistics or {})
    return {}


def _summarise(fc, frame, contract) -> list[dict]:
    import pandas as pd

    out = []
    fc = fc.copy()
    fc["column"] = fc["column"].astype(object)
    dtype_bad = set(fc.loc[fc["check"].astype(str).str.startswith("nbops_kind"), "column"].dropna())
    order = {"missing column": 0, "unexpected column": 1, "dtype": 2, "missing values": 3, "missing share": 4,
             "unseen category": 5, "out of range": 6, "duplicate key": 7, "row count": 8}
    for (ctx, column, check), grp in fc.groupby([fc["schema_context"].astype(str), fc["column"].fillna(""),
                                                 fc["check"].astype(str)], sort=False, dropna=False):
        label = check_label(check)
        cases = grp["failure_case"]
        if label in ("missing column", "unexpected column"):
            for col in cases:
                out.append({"column": col, "check": label, "count": len(frame), "examples": [],
                            "detail": _detail(label, col, frame, contract, {})})
            continue
        stats = _stats(contract, column, check)
        if column == "":
            column = "(rows)" if label == "row count" else "(frame)"
        errors = cases.astype(str).str.match(r"^\w+Error\(")
        if errors.all():
            if column in dtype_bad:
                continue  # a range cannot be compared on values of the wrong kind: the dtype row says it
            out.append({"column": column, "check": label, "count": len(frame), "examples": [],
                        "detail": f"the check could not run: {str(cases.iloc[0])[:200]}"})
            continue
        if label == "missing share":
            count = int(frame[column].isna().sum()) if column in frame.columns else 0
            examples = []
            if not stats.get("max_share"):
                label = "missing values"
        elif label == "row count":
            count, examples = len(frame), []
        elif label == "missing values":
            count, examples = len(grp), []
        else:
            count = len(grp)
            vc = pd.Series(cases.to_numpy(dtype=object)).value_counts(dropna=False)
            examples = [_plain(v) for v in vc.index[:MAX_EXAMPLES]]
        out.append({"column": column, "check": label, "count": int(count), "examples": examples,
                    "detail": _detail(label, column, frame, contract, stats)})
    cols = list(frame.columns)
    out.sort(key=lambda v: (cols.index(v["column"]) if v["column"] in cols else -1, order.get(v["check"], 9)))
    return out


def tolerated(frame, contract, found: list[dict]) -> list[str]:
    """What differs from the reference but so rarely that chance explains it (not violations): new missing
    values, values beyond a range, unseen categories. Listed so a reader sees them."""
    from .checks import category_mask, range_mask

    flagged = {(v["column"], v["check"]) for v in found}
    out = []
    for name, col in contract.schema.columns.items():
        if name not in frame.columns or (name, "dtype") in flagged or (name, "missing column") in flagged:
            continue
        s = frame[name]
        for c in col.checks:
            st = c.statistics or {}
            if c.name == "nbops_missing_share" and not st.get("max_share") and (name, "missing values") not in flagged:
                k = int(s.isna().sum())
                if k:
                    out.append(f"{name}: {k:,} missing value(s) where the reference had none (few enough to be chance)")
            elif c.name == "nbops_range" and (name, "out of range") not in flagged:
                bad = s[~range_mask(s, st.get("min_value"), st.get("max_value"), None) & s.notna()]
                if len(bad):
                    ex = ", ".join(map(str, [_plain(v) for v in bad.unique()[:3]]))
                    out.append(f"{name}: {len(bad):,} value(s) beyond {st.get('min_value')} .. {st.get('max_value')} "
                               f"(e.g. {ex}; few enough to be chance)")
            elif c.name == "nbops_categories" and (name, "unseen category") not in flagged:
                bad = s[~category_mask(s, st.get("allowed") or [], None) & s.notna()]
                if len(bad):
                    ex = ", ".join(map(str, bad.astype(object).unique()[:3]))
                    out.append(f"{name}: {len(bad):,} value(s) of unseen categories ({ex}; few enough to be chance)")
    return out


def _plain(v):
    item = getattr(v, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, TypeError):
            pass
    return v


def _record(result: ValidationResult, experiment: str | None) -> None:
    """Metrics, tags and the violations table on the current run, or on a run of kind ``validation``."""
    from ..data.lineage import safe_name
    from ..tracking.run import current, track

    key = safe_name(result.data)
    status = "passed" if result.ok else f"failed: {len(result.violations)} violation(s)"
    frame = result.to_frame()
    payload = {"data": result.data, "against": result.against, "rows": result.rows, "ok": result.ok,
               "notes": result.notes,
               "violations": json.loads(frame.to_json(orient="records", default_handler=str))}

    def write(t):
        t.log_metric(f"validation.{key}.violations", float(len(result.violations)))
        t.set_tags({f"nbops.validation.{key}": status[:500], f"nbops.validation.{key}.against": result.against[:500]})
        t.log_dict(payload, f"validation/{key}.json")

    t = current()
    try:
        if t is not None:
            write(t)
            result.run_id = t.run_id
            return
        with track(experiment, f"validate:{result.data}", kind="validation",
                   tags={"nbops.validation.status": "passed" if result.ok else "failed"}) as t:
            write(t)
        result.run_id = t.run_id
    except Exception as exc:  # noqa: BLE001 - the check stands even when the store refuses its record
        log.warning("nbops: the validation of %s was not recorded: %s", result.data, exc)


def contract_for(against, keys=None):
    """The :class:`~nbops.validation.Contract` that ``against`` names (same references as :func:`validate`)."""
    from .store import resolve

    return resolve(against, keys=keys)[0]

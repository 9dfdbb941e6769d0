"""Contracts stored with data versions: ``contracts/<name>.yaml`` on the run that logged the version (tag
``nbops.contract.<name>``), and read back for a data-version name, ``run:ID`` or ``models:/name@alias``."""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from .._lazy import loaded
from ..errors import DataError, NbopsError
from .contract import Contract, infer

log = logging.getLogger("nbops")
FOLDER = "contracts"
TAG = "nbops.contract."
_MODEL = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def _safe(name: str) -> str:
    from ..data.lineage import safe_name

    return safe_name(name)


def attach(tracker, obj, name: str, version=None) -> str | None:
    """Infer the contract of ``obj`` (a pandas DataFrame, or a Spark one: from its aggregates) and log it on
    ``tracker``'s run. Never raises: a contract that cannot be inferred is a warning, the data version is logged
    regardless."""
    from ..sparkframes import is_spark

    pd = loaded("pandas")
    spark = is_spark(obj)
    if not spark and (pd is None or not isinstance(obj, pd.DataFrame)):
        return None
    try:
        short = f" {version.short}" if getattr(version, "short", None) else ""
        if spark:
            from .spark import infer_contract_spark

            c = infer_contract_spark(obj, source=f"inferred from data version {name}{short} (Spark, "
                                                 f"{len(obj.columns)} columns)")
        else:
            c = infer(obj, source=f"inferred from data version {name}{short} ({len(obj):,} rows x "
                                  f"{obj.shape[1]} columns)")
        path = f"{FOLDER}/{_safe(name)}.yaml"
        tracker.log_text(c.to_yaml(), path)
        tracker.set_tag(TAG + _safe(name), path)
        return path
    except Exception as exc:  # noqa: BLE001 - a contract is an extra; versioning must not fail for it
        log.warning("nbops: no data contract stored for %s: %s", name, exc)
        return None


def from_run(run_id: str, name: str | None = None, label: str | None = None) -> Contract:
    """The contract a run stored (``name`` picks one when it stored several); else inferred from its data
    snapshot; else a DataError that says what to do."""
    import mlflow.artifacts

    from ..tracking.writer import get_writer

    client = get_writer().client
    label = label or f"run:{run_id}"
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{label}: no run {run_id} in {get_writer().settings.tracking_uri}; check the id (`nbops "
                        f"runs` lists recent runs).", run_id=run_id) from exc
    stored = {k[len(TAG):]: v for k, v in run.data.tags.items() if k.startswith(TAG)}
    if name is not None:
        stored = {k: v for k, v in stored.items() if k == _safe(name)}
    if len(stored) > 1:
        raise DataError(f"{label}: run {run_id} stored contracts for {', '.join(sorted(stored))}: say which with "
                        f"run:{run_id}/NAME.", run_id=run_id)
    if stored:
        path = next(iter(stored.values()))
        with tempfile.TemporaryDirectory(prefix="nbops-contract-") as tmp:
            from ..display.progress import no_transfer_bars

            with no_transfer_bars():
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                                            tracking_uri=get_writer().settings.tracking_uri)
            text = Path(local).read_text(encoding="utf-8")
        c = Contract.from_yaml(text, f"{label} ({path})")
        return c
    try:
        from ..data import load_snapshot

        frame = load_snapshot(run_id, name)
    except NbopsError as exc:
        raise DataError(f"{label}: run {run_id} stored no data contract and no snapshot to infer one from. Record "
                        f"the data with %dataversion (or %%track --data df) and validate against that name.",
                        run_id=run_id) from exc
    return infer(frame, source=f"inferred from the data snapshot of run {run_id}")


def from_name(name: str) -> Contract:
    """The contract stored with the newest version recorded under data-version name ``name``."""
    from ..data.lineage import history
    from ..data.version import short_digest

    rows = history(name).rows
    if not rows:
        raise DataError(f"No data version named {name!r} in the store, and no file {name!r}: record one with "
                        f"`%dataversion df --name {name}`, or pass run:ID, models:/NAME@ALIAS or a contract "
                        f"YAML file.")
    errors = []
    for row in rows[:5]:
        try:
            return from_run(row["run_id"], name, label=f"{name} {short_digest(row['digest'])}")
        except DataError as exc:
            errors.append(str(exc))
    raise DataError(errors[0])


def resolve(against, keys=None) -> tuple[Contract, str]:
    """``(contract, label)`` for what ``--against`` names (see :func:`nbops.validate`)."""

    if isinstance(against, Contract):
        return against, against.source or "contract"
    pd = loaded("pandas")
    if pd is not None and isinstance(against, pd.DataFrame):
        label = f"DataFrame {against.shape[0]:,}x{against.shape[1]}"
        return infer(against, keys=keys, source=f"inferred from {label}"), label
    from ..sparkframes import is_spark

    if is_spark(against):
        from .spark import infer_contract_spark

        label = f"Spark DataFrame ({len(against.columns)} columns)"
        return infer_contract_spark(against, keys=keys, source=f"inferred from {label}"), label
    if not isinstance(against, (str, Path)):
        raise DataError(f"--against: a {type(against).__name__} is not a reference: pass a data-version name, "
                        f"run:ID, models:/NAME@ALIAS, a contract YAML file, a DataFrame or a Contract.")
    text = str(against).strip()
    if text.lower().endswith((".yaml", ".yml")) or Path(text).is_file():
        return Contract.load(text), text
    if text.startswith("run:"):
        rid = text[4:].strip()
        rid, _, name = rid.partition("/")
        if not rid:
            raise DataError("run: needs a run id, e.g. run:3f2a... (a run that logged the data).")
        return from_run(rid, name or None, label=text), text
    m = _MODEL.match(text)
    if m:
        from ..drift.sources import model_version

        try:
            info = model_version(m["name"], m["alias"], m["version"])
        except NbopsError as exc:
            raise DataError(str(exc)) from None
        return from_run(info["run_id"], None, label=text), f"{text} (run {info['run_id'][:8]})"
    if text.startswith("models:"):
        raise DataError(f"{text!r}: write a model reference as models:/NAME@ALIAS or models:/NAME/VERSION.")
    return from_name(text), f"data version {text!r}"

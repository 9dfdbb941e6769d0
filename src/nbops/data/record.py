"""Recording versions in MLflow: dataset inputs on a run, parquet snapshots, and what ``%dataversion`` does.

Where a version is recorded:

- inside a tracked run (``%%track --data df``, ``%dataversion df`` in a ``%%track`` cell, ``with nbops.track()``)
  it is a dataset input of that run;
- otherwise ``%dataversion`` / :func:`record_version` records it in a small run of kind ``dataversion``
  (tag ``nbops.kind=dataversion``, run name ``dataversion:<name>``, in the default experiment), unless the
  store already holds this exact content under this name -- then nothing new is written and the report
  points at the run that has it.

Every record goes through the tracker (and so through nbops's one writer). Validation -- fingerprinting the
data and writing the parquet snapshot -- happens before anything is buffered, so a refused object leaves no
half-logged dataset behind.
"""
from __future__ import annotations

import html
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._lazy import loaded
from ..errors import DataError, NbopsError, TrackingError
from .compare import DataDiff, compare, row_changes
from .lineage import SNAPSHOT_TAG, Lineage, history, runs_using, safe_name
from .version import DataVersion, digest_scheme, short_digest

log = logging.getLogger("nbops")
SNAPSHOT_DIR = "data"
RERUN_HINT = "re-run the training cell with `%%track --data df --snapshot` (or log_to_run(..., snapshot=True))"


# -- snapshots ------------------------------------------------------------------------------------------------------
def check_snapshot(obj: Any, name: str) -> None:
    """A DataError, before anything runs, when ``obj`` is a frame parquet cannot store as it is: duplicate column
    names (pyarrow refuses them only after the work is done)."""
    from ..sparkframes import is_spark

    if is_spark(obj):
        raise DataError(f"--snapshot {name}: a Spark frame is not copied into the run; write it as a table (e.g. "
                        f"{name}.write.parquet(PATH)) and version that, or drop --snapshot.", variable=name)
    pd = loaded("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame) and obj.columns.duplicated().any():
        dup = sorted(map(str, obj.columns[obj.columns.duplicated()].unique()))
        raise DataError(f"--snapshot {name}: duplicate column names {', '.join(dup)}; parquet needs one name per "
                        f"column: rename them (e.g. {name}.columns = [...]) or drop --snapshot.", variable=name,
                        columns=dup)


def write_snapshot(obj: Any, name: str, folder: Path) -> Path:
    """Write ``obj`` as ``folder/<name>.parquet``; a DataError (nothing written) if it cannot be stored."""
    check_snapshot(obj, name)
    target = folder / f"{safe_name(name)}.parquet"
    pd = loaded("pandas")
    pl = loaded("polars")
    import numpy as np

    from ..tracking.redact import frame as masked  # secret-named text columns: values masked, column kept

    try:
        if pd is not None and isinstance(obj, pd.DataFrame):
            masked(obj)[0].to_parquet(target)
        elif pd is not None and isinstance(obj, pd.Series):
            masked(obj.to_frame(name=str(obj.name) if obj.name is not None else name))[0].to_parquet(target)
        elif pl is not None and isinstance(obj, (pl.DataFrame, pl.Series)):
            masked(obj.to_frame() if isinstance(obj, pl.Series) else obj)[0].write_parquet(target)
        elif isinstance(obj, np.ndarray) and obj.ndim in (1, 2) and obj.dtype.kind in "biufMmOU":
            import pandas as pd

            frame = pd.DataFrame(obj if obj.ndim == 2 else obj.reshape(-1, 1))
            frame.columns = [str(c) for c in frame.columns]
            frame.to_parquet(target)
        elif isinstance(obj, (str, Path)) and Path(obj).suffix.lower() in (".parquet", ".pq") and Path(obj).is_file():
            shutil.copy2(obj, target)
        else:
            raise DataError(f"--snapshot {name}: a snapshot stores a DataFrame, Series, 1-/2-D array or a parquet "
                            f"file, not a {type(obj).__name__}. Read the data into a DataFrame first, or drop "
                            f"--snapshot.", variable=name)
    except DataError:
        target.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow's reasons, said in one sentence
        target.unlink(missing_ok=True)
        raise DataError(f"--snapshot {name}: the data cannot be stored as parquet ({type(exc).__name__}: "
                        f"{str(exc)[:300]}). Give every column a unique string name and one type per column (e.g. "
                        f"df[col] = df[col].astype(str)), or drop --snapshot.", variable=name) from exc
    return target


def log_to_run(tracker, obj: Any, name: str, snapshot: bool = False, context: str = "training",
               version: DataVersion | None = None) -> DataVersion:
    """Version ``obj`` and log it on ``tracker``'s run as an MLflow dataset input (nbops digest, schema, profile,
    source, ``mlflow.data.context``); with ``snapshot=True`` also store it as ``data/<name>.parquet``.

    Everything that can fail (an unsupported object, data parquet cannot hold) fails before anything is logged.
    """
    if not name or not str(name).strip():
        raise DataError("A dataset needs a name (the variable name, or --name).")
    name = str(name)
    v = version if version is not None else _fingerprint(obj, name)
    tmp = Path(tempfile.mkdtemp(prefix="nbops-snap-")) if snapshot else None
    try:
        snap = write_snapshot(obj, name, tmp) if snapshot else None
        record = v.to_record(name, context)
        if snap is not None:
            src = json.loads(record["source"])
            src["snapshot"] = f"{SNAPSHOT_DIR}/{snap.name}"
            record["source"] = json.dumps(src, default=str)
        tracker.log_dataset(record, v)
        from ..validation.store import attach  # the data contract, stored with the version (never raises)

        attach(tracker, obj, name, v)
        if snap is not None:
            tracker.log_artifact(str(snap), SNAPSHOT_DIR)
            tracker.set_tag(SNAPSHOT_TAG + safe_name(name), f"{SNAPSHOT_DIR}/{snap.name}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return v


def _fingerprint(obj, name):
    from .fingerprinting import fingerprint

    return fingerprint(obj, name)


def load_snapshot(run_id: str, name: str | None = None):
    """The DataFrame a run stored with ``--snapshot`` (``data/<name>.parquet``); ``name`` may be left out when the
    run stored one. Checks it against the digest the run logged (a mismatch is a warning) and sets
    ``df.attrs["nbops.digest"]`` / ``df.attrs["nbops.run_id"]``."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from ..tracking.writer import get_writer

    if not isinstance(run_id, str) or not run_id.strip():
        raise DataError("load_snapshot needs a run id (the run that logged `%%track --data df --snapshot`).")
    run_id = run_id.strip().removeprefix("runs:/").split("/")[0]
    client = get_writer().client
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise DataError(f"No run {run_id} in {get_writer().settings.tracking_uri}: check the run id (`nbops runs` "
                        f"lists recent runs).", run_id=run_id) from exc
    stored = sorted(a.path for a in client.list_artifacts(run_id, SNAPSHOT_DIR) if a.path.endswith(".parquet"))
    if not stored:
        raise DataError(f"Run {run_id} stored no data snapshot: {RERUN_HINT}.", run_id=run_id)
    if name is not None:
        want = f"{SNAPSHOT_DIR}/{safe_name(name)}.parquet"
        if want not in stored:
            raise DataError(f"Run {run_id} has no snapshot of {name!r} (it has: "
                            f"{', '.join(Path(p).stem for p in stored)}); pick one of those or {RERUN_HINT}.",
                            run_id=run_id)
        path = want
    elif len(stored) == 1:
        path = stored[0]
    else:
        raise DataError(f"Run {run_id} stored several snapshots ({', '.join(Path(p).stem for p in stored)}): "
                        f"say which with name=.", run_id=run_id)
    import mlflow.artifacts

    tmp = tempfile.mkdtemp(prefix="nbops-load-")
    try:
        from ..display.progress import no_transfer_bars

        with no_transfer_bars():
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                                        tracking_uri=get_writer().settings.tracking_uri)
        df = pd.read_parquet(local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stem = Path(path).stem
    logged = [di.dataset for di in (run.inputs.dataset_inputs if run.inputs else [])
              if safe_name(di.dataset.name) == stem]
    if logged:
        from ..tracking.redact import is_secret_name
        from .fingerprinting import fingerprint

        got = fingerprint(df, stem, profile=False).digest
        if any(is_secret_name(str(c)) for c in df.columns):  # masked on the way in: it cannot hash the same
            df.attrs["nbops.masked_columns"] = [str(c) for c in df.columns if is_secret_name(str(c))]
        elif got != logged[-1].digest and digest_scheme(got) == digest_scheme(logged[-1].digest) \
                and json.loads(logged[-1].source or "{}").get("type") == "pandas.DataFrame":
            log.warning("nbops: the snapshot %s of run %s does not hash to the digest the run logged (%s != %s); "
                        "parquet may have changed a dtype.", path, run_id, short_digest(got),
                        short_digest(logged[-1].digest))
        df.attrs["nbops.digest"] = logged[-1].digest
    df.attrs["nbops.run_id"] = run_id
    return df


# -- %dataversion ---------------------------------------------------------------------------------------------------
@dataclass
class VersionReport:
    """What ``%dataversion`` shows: the version, the runs that saw this exact content before, and the diff against
    the previous version recorded under the same name."""

    version: DataVersion
    seen_in: Lineage | None = None
    previous: DataVersion | None = None
    diff: DataDiff | None = None
    recorded_in: str | None = None        # run id the version was logged on now
    already_in: str | None = None         # run id that already held this exact version under this name
    warnings: list[str] = field(default_factory=list)

    def lineage_text(self) -> str:
        if self.seen_in is None:
            return "lineage unavailable"
        earlier = [r for r in self.seen_in.rows if r["run_id"] != self.recorded_in]
        if not earlier:
            if self.diff is not None and self.diff.scheme_changed:
                return ("new under digest scheme v2: earlier versions of this name have v1 digests, which cannot "
                        "say whether the content is the same")
            return "new: this exact content was not recorded before"
        runs = ", ".join(f"{r['run_name'] or r['run_id']} ({r['name']}, {r['time']:%Y-%m-%d %H:%M})"
                         for r in earlier[:5])
        more = f" and {len(earlier) - 5} more" if len(earlier) > 5 else ""
        return f"seen before in {len(earlier)} run(s): {runs}{more}"

    def record_text(self) -> str:
        if self.recorded_in:
            return f"recorded in run {self.recorded_in}"
        if self.already_in:
            return f"already recorded in run {self.already_in} (nothing new written)"
        return "not recorded"

    def diff_text(self) -> str:
        if self.diff is not None:
            return self.diff.summary()
        return "first version under this name" if self.seen_in is not None else ""

    def __repr__(self) -> str:
        lines = [repr(self.version), f"  lineage {self.lineage_text()}", f"  stored  {self.record_text()}"]
        if self.diff_text():
            lines.append(f"  diff    {self.diff_text()}")
        if self.diff is not None:
            lines += ["    " + line for line in repr(self.diff).splitlines()[1:]]
        lines += [f"  warning {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [self.version._repr_html_(),
                 f"<div><b>Lineage</b>: {e(self.lineage_text())}</div>",
                 f"<div><b>Stored</b>: {e(self.record_text())}</div>"]
        if self.diff is not None:
            parts.append(self.diff._repr_html_())
        elif self.diff_text():
            parts.append(f"<div><b>Diff</b>: {e(self.diff_text())}</div>")
        parts += [f"<div style='color:#a60'>warning: {e(w)}</div>" for w in self.warnings]
        return "".join(parts)

    def to_frame(self):
        return self.version.to_frame()


def record_version(obj: Any, name: str, snapshot: bool = False, *, experiment: str | None = None,
                   tags: dict | None = None) -> VersionReport:
    """Version ``obj`` under ``name``: look up lineage and the previous version, record it (see the module docs
    for where), and return a :class:`VersionReport`."""
    from ..tracking.run import current, track

    if not name or not str(name).strip():
        raise DataError("A data version needs a name: pass --name NAME.")
    v = _fingerprint(obj, name)
    report = VersionReport(v)
    hist = None
    from ..tracking.writer import get_writer

    if get_writer().settings.offline:
        report.warnings.append("offline (NBOPS_OFFLINE=1): lineage and the previous version were not looked up")
    else:
        try:
            report.seen_in = runs_using(v.digest)
            hist = history(name)
        except TrackingError as exc:  # a store nbops cannot read (its folder is not writable): version all the same
            report.warnings.append(f"lineage unavailable: {str(exc).splitlines()[0][:300]}")
        except NbopsError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreachable store must not stop versioning
            from ..tracking.mlflow_errors import store_down_note, unreachable

            report.warnings.append("lineage unavailable: " + (store_down_note() if unreachable(exc) else
                                                              f"{type(exc).__name__}: {str(exc)[:200]}"))
    if hist is not None:
        prev_row = next((r for r in hist.rows if r["digest"] != v.digest), None)
        if prev_row is not None:
            report.previous = DataVersion.from_dataset(prev_row["_dataset"], created=prev_row["time"])
            report.diff = compare(report.previous, v)
            snap_row = prev_row if prev_row.get("snapshot") else _snapshot_of(prev_row["digest"])
            if snap_row is not None:  # the same content stored under any name, by any run
                _exact_rows(report, obj, snap_row)
    tracker = current()
    if tracker is not None:
        log_to_run(tracker, obj, name, snapshot=snapshot, context="dataversion", version=v)
        report.recorded_in = tracker.run_id
        return report
    same = [r for r in (report.seen_in.rows if report.seen_in else []) if r["name"] == name
            and (r["snapshot"] or not snapshot)]
    if same:
        report.already_in = same[0]["run_id"]
        return report
    t = track(experiment, f"dataversion:{name}", kind="dataversion",
              tags={"nbops.data.name": name, "nbops.data.digest": v.digest, **(tags or {})})
    try:
        with t:
            log_to_run(t, obj, name, snapshot=snapshot, context="dataversion", version=v)
    except (TrackingError, OSError) as exc:
        if t.run is not None:  # the run started: a failure of its own, not of the store
            raise
        from ..tracking.mlflow_errors import untracked_note

        # the version is computed and shown all the same; one line says why nothing was recorded (or looked up)
        report.warnings = [w for w in report.warnings if not w.startswith("lineage unavailable")]
        report.warnings.append(untracked_note(exc))
        return report
    report.recorded_in = t.run_id
    if t.run is not None and t.run.spooled:
        report.warnings.append(f"the store did not answer: run {t.run_id} is spooled; `nbops sync` pushes it")
    return report


def _snapshot_of(digest: str) -> dict | None:
    try:
        return next((r for r in runs_using(digest).rows if r.get("snapshot")), None)
    except Exception as exc:  # noqa: BLE001 - only an extra
        log.debug("nbops: no snapshot lookup for %s: %s", digest, exc)
        return None


def _exact_rows(report: VersionReport, obj: Any, prev_row: dict) -> None:
    from .compare import pandas_frame

    new = pandas_frame(obj)
    if new is None:
        return
    try:
        old = load_snapshot(prev_row["run_id"], prev_row["name"])
    except Exception as exc:  # noqa: BLE001 - the profile diff stands without it
        report.warnings.append(f"could not load the previous snapshot for an exact row diff: {exc}")
        return
    rc = row_changes(old, new)
    if rc is not None:
        report.diff.rows_added, report.diff.rows_removed = rc

"""``nbops sync``: replay the spool into the tracking store, idempotently.

Per spooled run, ``state.json`` records the server run id and the last journal record replayed, updated after
every record, so a sync interrupted half-way resumes where it stopped. A run is created on the server with the
tag ``nbops.spool_id`` = its local id, and sync looks for that tag before creating one, so even a crash between
creating the run and saving the state does not duplicate it. ``idmap.json`` maps local run ids to server run ids
(parent links are rewritten through it).
"""
from __future__ import annotations

import fcntl
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..errors import TrackingError
from .spool import LOCAL_PREFIX, Spool, _atomic_json
from .writer import SPOOL_ID_TAG, RunRef, Writer, is_unreachable

log = logging.getLogger("nbops")


@dataclass
class SyncReport:
    target: str
    created: list[str] = field(default_factory=list)      # server run ids created now
    resumed: list[str] = field(default_factory=list)      # server runs that got records now
    records: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (local id, why)
    mapping: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def __str__(self) -> str:
        lines = [f"nbops sync -> {self.target}: {self.records} records pushed, {len(self.created)} runs created, "
                 f"{len(self.resumed)} runs updated, {len(self.skipped)} skipped"]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped]
        lines += [f"  {k} -> {v}" for k, v in self.mapping.items()]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def _read_journal(d: Path) -> list[dict]:
    """Journal records; a torn last line (a crash mid-append) is dropped, corruption elsewhere is an error."""
    path = d / "journal.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                log.warning("nbops sync: %s: dropped a torn last journal line", d.name)
                break
            raise TrackingError(f"spool entry {d.name} is corrupt at journal line {i + 1}; it was skipped "
                                f"(the rest of the spool is synced). Inspect or delete {path}.", path=str(path))
    return out


def sync(settings: config.Settings | None = None, spool_dir: str | Path | None = None) -> SyncReport:
    """Push every spooled record to the configured store. Safe to run any number of times."""
    s = settings or config.settings()
    if s.offline:
        s = config.Settings(**{**s.__dict__, "offline": False})
    spool = Spool(spool_dir or s.spool_dir)
    writer = Writer(s)
    report = SyncReport(s.tracking_uri)
    if not spool.root.is_dir():
        return report
    idmap_path = spool.root / "idmap.json"
    with open(spool.root / ".sync-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two syncs at once would race on the same state files
        idmap = json.loads(idmap_path.read_text()) if idmap_path.exists() else {}
        try:
            from tqdm.auto import tqdm

            entries = spool.entries()
            for d in tqdm(entries, desc="nbops sync", unit="run", disable=len(entries) < 5):
                try:
                    _sync_one(writer, d, idmap, report)
                except TrackingError as exc:
                    report.skipped.append((d.name, exc.message))
                except Exception as exc:  # noqa: BLE001
                    if is_unreachable(exc):
                        raise TrackingError(f"The tracking store at {s.tracking_uri} does not answer; nothing "
                                            f"more was synced ({exc}). Try again when it is up.",
                                            uri=s.tracking_uri) from exc
                    report.skipped.append((d.name, f"{type(exc).__name__}: {exc}"))
                finally:
                    _atomic_json(idmap_path, idmap)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return report


def _sync_one(writer: Writer, d: Path, idmap: dict, report: SyncReport) -> None:
    try:
        meta = json.loads((d / "meta.json").read_text())
    except ValueError as exc:
        raise TrackingError(f"spool entry {d.name} has a corrupt meta.json ({exc}); skipped.") from exc
    state_path = d / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    records = _read_journal(d)
    done = state.get("done", -1)
    if state.get("server_run_id") and done >= len(records) - 1:
        return  # already on the store
    client = writer.client
    local = meta["local_run_id"]
    server_id = state.get("server_run_id") or meta.get("server_run_id")
    exp_id = writer.experiment_id(meta["experiment"])
    if not server_id:
        found = client.search_runs([exp_id], filter_string=f"tags.`{SPOOL_ID_TAG}` = '{local}'", max_results=1)
        if found:
            server_id = found[0].info.run_id
        else:
            tags = _map_parent(dict(meta.get("tags") or {}), idmap)
            tags[SPOOL_ID_TAG] = local
            r = writer.call(client.create_run, exp_id, start_time=meta.get("start_time"), tags=tags,
                            run_name=meta.get("run_name"))
            server_id = r.info.run_id
            report.created.append(server_id)
        state["server_run_id"] = server_id
        _atomic_json(state_path, state)
    elif server_id not in report.created:
        report.resumed.append(server_id)
    idmap[local] = server_id
    report.mapping[local] = server_id
    run = RunRef(server_id, exp_id, meta["experiment"], meta.get("run_name"))
    for rec in records:
        if rec["seq"] <= done:
            continue
        _replay(writer, run, d, rec, idmap)
        report.records += 1
        state["done"] = rec["seq"]
        _atomic_json(state_path, state)


def _map_parent(tags: dict, idmap: dict) -> dict:
    parent = tags.get("mlflow.parentRunId")
    if parent and parent.startswith(LOCAL_PREFIX):
        if parent not in idmap:
            raise TrackingError(f"parent run {parent} is not synced yet; sync it first.")
        tags["mlflow.parentRunId"] = idmap[parent]
    return tags


def _replay(writer: Writer, run: RunRef, d: Path, rec: dict, idmap: dict) -> None:
    op = rec["op"]
    files = d / rec["files"] if rec.get("files") else None
    if op == "log_batch":
        writer._direct_batch(run.run_id, {**rec, "tags": _map_parent(dict(rec.get("tags") or {}), idmap)})
    elif op == "log_artifacts":
        writer._direct_artifacts(run, files, rec.get("artifact_path"))
    elif op == "log_inputs":
        writer._direct_inputs(run.run_id, rec["datasets"])
    elif op == "log_model":
        import cloudpickle

        with open(files / "model.pkl", "rb") as fh:
            obj = cloudpickle.load(fh)
        writer._direct_model(run, obj["model"], rec["name"], rec["flavor"], obj.get("input_example"))
    elif op == "end_run":
        writer.call(writer.client.set_terminated, run.run_id, rec["status"], rec["end_time"])
    else:
        raise TrackingError(f"unknown spool record {op!r} in {d.name}; skipped.")

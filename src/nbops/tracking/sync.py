"""``nbops sync``: replay the spool into the tracking stores, idempotently.

Each spooled run goes to the store it was recorded for (``target`` in its ``meta.json``), whatever
``MLFLOW_TRACKING_URI`` says now; ``nbops sync --to URI`` sends them to ``URI`` instead, on purpose. A store that
does not answer (probed first with MLflow's HTTP retries off and a short timeout) leaves its runs waiting, said in
one line per store; the other stores' runs are synced. Nothing is ever sent to a store it was not meant for.

Per spooled run and store, ``state.json`` (the recorded store; ``state-<hash>.json`` for a ``--to`` store) records the server run id and the last journal record replayed, updated after
every record, so a sync interrupted half-way resumes where it stopped. A run is created on the server with the
tag ``nbops.spool_id`` = its local id, and sync looks for that tag before creating one, so even a crash between
creating the run and saving the state does not duplicate it. The one record that may be replayed twice (sent,
then the process died before ``state.json`` was saved) is harmless: params and tags are set to the same value,
metric points and dataset inputs are keyed by their content on the store, artifacts are overwritten with the
same files, and a model is looked up by name on its run before it is logged again.

A journal torn in its last line (the process died mid-append, typically writing the end-of-run record) without
an end-of-run record is replayed up to the tear, then its run is closed FAILED with the tag ``nbops.incomplete``
= ``true`` (and ``nbops.incomplete.reason``); the report names it and ``nbops sync`` exits 1.

``idmap.json`` maps local run ids to server run ids, per store (syncing to A never marks a run synced for B);
parent links are rewritten through it, including on child
runs that reached the store directly while their parent was still spooled.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .. import config
from ..errors import TrackingError
from . import redact
from .outage import StoreNotWritable, bounded_http_retries, is_unavailable, is_unreachable, short_reason
from .spool import (_THREAD, LOCAL_PREFIX, REPLAYABLE, SPOOL_ID_TAG, RunRef, Spool, atomic_json,  # noqa: F401
                    holding_lock, read_journal, read_meta, read_state, write_state)

if TYPE_CHECKING:  # sync is handed writers by its callers; it never makes one
    from .writer import Writer

log = logging.getLogger("nbops")
PARENT_TAG = "mlflow.parentRunId"


@dataclass
class SyncReport:
    target: str
    created: list[str] = field(default_factory=list)      # server run ids created now
    resumed: list[str] = field(default_factory=list)      # server runs that got records now
    records: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (local id, why)
    mapping: dict[str, str] = field(default_factory=dict)  # local id -> server id, for runs touched now
    pushed: dict[str, Counter] = field(default_factory=dict)  # local id -> records pushed now, by kind
    relinked: list[str] = field(default_factory=list)     # server runs whose parent link was rewritten
    up_to_date: int = 0                                    # spooled runs that had nothing left to push
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (local id, server id) closed FAILED now
    waiting: list[tuple[str, list[str], str]] = field(default_factory=list)  # (store, local ids, why) not synced
    stores: dict[str, str] = field(default_factory=dict)  # local id -> the store it was pushed to now

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.incomplete and not self.waiting

    @property
    def waiting_runs(self) -> int:
        return sum(len(ids) for _, ids, _ in self.waiting)

    def __str__(self) -> str:
        wait = f", {self.waiting_runs} waiting" if self.waiting else ""
        many = len({*self.stores.values(), *(w[0] for w in self.waiting)}) > 1
        where = f"{len({*self.stores.values(), *(w[0] for w in self.waiting)})} stores" if many else self.target
        lines = [f"nbops sync -> {where}: {self.records} records pushed, {len(self.created)} runs created, "
                 f"{len(self.resumed)} runs updated, {self.up_to_date} already synced, {len(self.skipped)} skipped"
                 f"{wait}"]
        lines += [f"  waiting: {len(ids)} runs for {store}, which {why}; run `nbops sync` again when it is up"
                  for store, ids, why in self.waiting]
        for local, counts in self.pushed.items():
            what = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            on = f" on {self.stores[local]}" if many and local in self.stores else ""
            lines.append(f"  {local} -> {self.mapping.get(local, '?')}{on}: {what}")
        lines += [f"  relinked child run {r} to its synced parent" for r in self.relinked]
        lines += [f"  incomplete {k} -> {sid}: its journal was torn before the end-of-run record; the run is "
                  f"closed FAILED and tagged nbops.incomplete" for k, sid in self.incomplete]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self) -> str:
        import html

        from ..display.views import kv_html as table_html

        rows = [("store", html.escape(self.target)), ("records pushed", str(self.records)),
                ("runs created", str(len(self.created))), ("runs updated", str(len(self.resumed))),
                ("already synced", str(self.up_to_date))]
        rows += [(html.escape(k), html.escape(f"-> {self.mapping.get(k, '?')}: " + ", ".join(
            f"{n} {op}" for op, n in sorted(c.items())))) for k, c in self.pushed.items()]
        rows += [("skipped " + html.escape(k), html.escape(why)) for k, why in self.skipped]
        rows += [("waiting", html.escape(f"{len(ids)} runs for {store}, which {why}")) for store, ids, why in
                 self.waiting]
        rows += [("incomplete " + html.escape(k), html.escape(f"-> {sid}: journal torn before the end-of-run "
                                                              f"record; closed FAILED")) for k, sid in self.incomplete]
        return table_html(rows, "nbops sync")


def _read_journal(d: Path) -> list[dict]:
    try:
        return read_journal(d)
    except ValueError as exc:
        raise TrackingError(f"spool entry {d.name} is corrupt: {exc}; it was skipped (the rest of the spool is "
                            f"synced). Inspect or delete {d / 'journal.jsonl'}.",
                            path=str(d / "journal.jsonl")) from exc


class ParentPending(Exception):
    """The run's parent is a spooled run not synced yet (retried after the others)."""


@contextlib.contextmanager
def locked(root: Path, target: str) -> Iterator[dict]:
    """Hold the spool's sync lock (two pushers at once -- ``nbops sync`` and a kernel's background flusher --
    would race on the same state files) and yield the local -> server id map of the store ``target``, saved again
    on the way out. ``idmap.json`` holds one map per store; a map written by an older version names no store and
    is dropped (the runs' spool-id tags find them again)."""
    idmap_path = root / "idmap.json"
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / ".sync-lock", "a")
    except OSError as exc:
        raise TrackingError(f"nbops cannot lock the spool {root} ({(exc.strerror or str(exc)).lower()}): make it "
                            f"writable (chmod u+w {root}), or point NBOPS_SPOOL_DIR at a writable copy of it.",
                            path=str(root)) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _THREAD.depth = getattr(_THREAD, "depth", 0) + 1
        try:
            maps = _read_idmaps(idmap_path)
            idmap = dict(maps.get(target, {}))
            before = dict(idmap)
            try:
                yield idmap
            finally:
                if idmap != before:
                    save_idmap(root, target, idmap)
        finally:
            _THREAD.depth -= 1
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_idmaps(path: Path) -> dict[str, dict]:
    try:
        raw = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        log.warning("nbops sync: %s is corrupt; rebuilding it from the runs' state files", path)
        return {}
    stores = raw.get("stores") if isinstance(raw, dict) else None
    return {k: dict(v) for k, v in stores.items() if isinstance(v, dict)} if isinstance(stores, dict) else {}


def save_idmap(root: Path, target: str, idmap: dict) -> None:
    """Save ``target``'s id map now (the caller holds the sync lock): a sync killed later keeps it."""
    path = Path(root) / "idmap.json"
    maps = _read_idmaps(path)
    if maps.get(target) != idmap:
        maps[target] = dict(idmap)
        atomic_json(path, {"stores": maps})


def mapped(root: Path, target: str, local: str) -> str | None:
    """The id on ``target`` of the spooled run ``local``, if a push put it there (no lock: a read)."""
    return _read_idmaps(Path(root) / "idmap.json").get(target, {}).get(local)


def _quick_http():
    """MLflow's HTTP retries off and a short timeout, for a moment: a probe of a dead server fails at once."""
    return config.environ({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})


def probe(writer: Writer) -> str | None:
    """None when ``writer``'s store answers; otherwise why not, in a few words (a 4xx and other answers raise)."""
    if writer.settings.is_server:
        bounded_http_retries()  # the defaults for the pushes after the probe
    read_only = "cannot be written (its folder is read-only: make it writable, e.g. chmod u+w)"
    try:
        with _quick_http():
            writer.call(writer.client.search_experiments, max_results=1)
    except StoreNotWritable:
        return read_only
    except Exception as exc:  # noqa: BLE001 - classified
        if not is_unavailable(exc):
            raise
        verb = "does not answer" if is_unreachable(exc) else "cannot be written"
        return f"{verb} ({short_reason(exc)})"
    return read_only if writer.read_uri != writer.settings.tracking_uri else None


def sync(writer_for: Callable[..., "Writer"], settings: config.Settings | None = None,
         spool_dir: str | Path | None = None, to: str | None = None) -> SyncReport:
    """Push every spooled run to the store it was recorded for (``to``: to that store instead, on purpose), with
    writers made by ``writer_for(settings, fluent=...)`` (the Writer class: :func:`nbops.api.sync` passes it).
    Safe to run any number of times, and to interrupt."""
    s = settings or config.settings()
    root = Path(spool_dir or s.spool_dir)
    s = config.Settings(**{**s.__dict__, "offline": False, "spool_dir": root})
    to = config.normalize_uri(to) if to else None
    report = SyncReport(to or s.tracking_uri)
    spool = Spool(root)
    if not spool.root.is_dir():
        return report
    groups: dict[str, list[Path]] = {}
    roots: dict[str, str | None] = {}
    for d in spool.entries():
        try:
            meta = read_meta(d)
        except ValueError as exc:
            report.skipped.append((d.name, f"spool entry {d.name} has a corrupt meta.json ({exc}); it was skipped "
                                           f"(the rest of the spool is synced). Inspect or delete {d}."))
            continue
        target = to or meta.get("target") or s.tracking_uri
        groups.setdefault(target, []).append(d)
        roots.setdefault(target, None if to else meta.get("artifact_root"))  # (its own store's artifact folder)
    if groups:
        report.target = ", ".join(groups) if len(groups) > 1 else next(iter(groups))
    for target, dirs in groups.items():
        ts = config.settings_for(target, roots[target], s)
        writer = writer_for(ts, fluent=ts.tracking_uri == s.tracking_uri)
        why = probe(writer)
        if why:
            report.waiting.append((target, [d.name for d in dirs], why))
            continue
        _sync_store(writer, root, dirs, report, to is not None)
    return report


def _sync_store(writer: Writer, root: Path, todo: list[Path], report: SyncReport, override: bool) -> None:
    """Push the spooled runs ``todo`` to ``writer``'s store, parents before children."""
    from ..display.progress import tqdm

    target = writer.settings.tracking_uri
    with locked(root, target) as idmap:
        waiting: list[Path] = []
        for _ in range(len(todo) + 1):  # parents before children, whatever the folders' order
            waiting = []
            bar = tqdm(todo, desc="nbops sync", unit="run", leave=False, progress=False if len(todo) < 5 else None)
            for i, d in enumerate(bar):
                try:
                    push(writer, d, idmap, report, override=override)
                except ParentPending:
                    waiting.append(d)
                except TrackingError as exc:
                    report.skipped.append((d.name, exc.message))
                    log.warning("nbops sync: %s", exc.message)
                except Exception as exc:  # noqa: BLE001
                    if is_unavailable(exc):  # it stopped answering mid-way: the rest of its runs wait
                        left = [x.name for x in [*todo[i:], *waiting]]
                        report.waiting.append((target, left, f"stopped answering after {report.records} records "
                                                             f"were pushed ({short_reason(exc)})"))
                        return
                    report.skipped.append((d.name, f"{type(exc).__name__}: {exc}"))
                    log.warning("nbops sync: %s skipped: %s: %s", d.name, type(exc).__name__, exc)
                finally:
                    save_idmap(root, target, idmap)
            if len(waiting) == len(todo):
                break
            todo = waiting
        for d in todo if waiting else []:
            report.skipped.append((d.name, "its parent run is a spooled run that could not be synced; "
                                           "fix or delete the parent's spool entry and sync again."))


class WrongStore(TrackingError):
    """A spooled run was about to be pushed to a store it was not recorded for (never done silently)."""


def push(writer: Writer, d: Path, idmap: dict, report: SyncReport, live: bool = False, fresh: bool = False,
         override: bool = False) -> str:
    """Push one spooled run's records that are not on the store yet; returns its server run id. ``live``: the
    run is still being written by this process (a background flusher), so a cut-short last line is a write in
    progress, not a crash -- it is left for the next push instead of closing the run as incomplete. ``fresh``:
    this process made the run moments ago, so no earlier push can have created it (no search for it).
    ``override``: ``writer``'s store was chosen on purpose (``nbops sync --to``); otherwise a run recorded for
    another store raises :class:`WrongStore`."""
    try:
        meta = read_meta(d)
    except ValueError as exc:
        raise TrackingError(f"spool entry {d.name} has a corrupt meta.json ({exc}); it was skipped (the rest of "
                            f"the spool is synced). Inspect or delete {d}.", path=str(d)) from exc
    local, experiment = meta["local_run_id"], meta["experiment"]
    target, recorded = writer.settings.tracking_uri, meta.get("target")
    if recorded and recorded != target and not override:
        raise WrongStore(f"spooled run {local} was recorded for {recorded}, not {target}: it is left for "
                         f"`nbops sync` (which sends it there) or `nbops sync --to {target}`.", uri=recorded)
    state = read_state(d, target, recorded)
    records = _read_journal(d)
    done = state.get("done", -1)
    last = max((r["seq"] for r in records), default=-1)
    server_id = state.get("server_run_id")
    unfinished = records.torn and not live and not any(r["op"] == "end_run" for r in records)
    if server_id and done >= last and not (unfinished and not state.get("closed_incomplete")):
        idmap[local] = server_id
        report.up_to_date += 1
        return server_id  # already on the store
    tags = dict(meta.get("tags") or {})
    parent = tags.get(PARENT_TAG)
    if parent and parent.startswith(LOCAL_PREFIX) and parent not in idmap:
        raise ParentPending(parent)
    client = writer.client
    exp_id = writer.experiment_id(experiment)
    if not server_id and recorded == target:
        server_id = meta.get("server_run_id")  # an adopted run exists on its store already
    created = False
    if not server_id:
        found = [] if fresh else writer.call(client.search_runs, [exp_id],
                                             filter_string=f"tags.`{SPOOL_ID_TAG}` = '{local}'", max_results=1)
        if found:
            server_id = found[0].info.run_id
        else:
            tags = _map_parent(redact.mapping(tags, 5000), idmap)  # spools of older versions: masked now
            tags[SPOOL_ID_TAG] = local
            r = writer.call(client.create_run, exp_id, start_time=meta.get("start_time"), tags=tags,
                            run_name=meta.get("run_name"))
            server_id = r.info.run_id
            created = True
            report.created.append(server_id)
    if state.get("server_run_id") != server_id:
        state["server_run_id"] = server_id
        write_state(d, target, recorded, state)
    idmap[local] = server_id
    report.mapping[local] = server_id
    report.stores[local] = target
    if local.startswith(LOCAL_PREFIX) and not live:
        _relink_children(writer, local, server_id, report)
    run = RunRef(server_id, exp_id, experiment, meta.get("run_name"))
    pushed = Counter()
    for rec in records:
        if rec["seq"] <= done:
            continue
        _replay(writer, run, d, rec, idmap)
        report.records += 1
        pushed[rec["op"]] += 1
        state["done"] = rec["seq"]
        write_state(d, target, recorded, state)
    if unfinished and not state.get("closed_incomplete"):
        _close_incomplete(writer, run, d)
        state["closed_incomplete"] = True
        write_state(d, target, recorded, state)
        report.incomplete.append((local, server_id))
        log.warning("nbops sync: spooled run %s (now %s) ends in a torn journal line and has no end-of-run "
                    "record; it is closed FAILED and tagged nbops.incomplete", local, server_id)
    if pushed:
        report.pushed[local] = pushed
        if not created:
            report.resumed.append(server_id)
    return server_id


def _close_incomplete(writer: Writer, run: RunRef, d: Path) -> None:
    """End a run whose journal was torn before its end-of-run record: FAILED, tagged, at the journal's time."""
    from mlflow.entities import RunTag

    journal = d / "journal.jsonl"
    end_ms = int((journal.stat().st_mtime if journal.exists() else (d / "meta.json").stat().st_mtime) * 1000)
    writer.call(writer.client.log_batch, run.run_id, tags=[
        RunTag("nbops.incomplete", "true"),
        RunTag("nbops.incomplete.reason", "the spool journal was torn in its last line (the process stopped "
                                          "while writing); records up to the tear were synced")])
    writer.call(writer.client.set_terminated, run.run_id, "FAILED", end_ms)


def _relink_children(writer: Writer, local: str, server_id: str, report: SyncReport) -> None:
    """Runs that reached the store while their parent was spooled point at the parent's local id: fix them."""
    client = writer.client
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    if not exp_ids:
        return
    for r in writer.call(client.search_runs, exp_ids, filter_string=f"tags.`{PARENT_TAG}` = '{local}'",
                         max_results=1000):
        writer.call(client.set_tag, r.info.run_id, PARENT_TAG, server_id)
        report.relinked.append(r.info.run_id)


def _map_parent(tags: dict, idmap: dict) -> dict:
    parent = tags.get(PARENT_TAG)
    if parent and parent.startswith(LOCAL_PREFIX):
        if parent not in idmap:
            raise ParentPending(parent)
        tags[PARENT_TAG] = idmap[parent]
    return tags


def _replay(writer: Writer, run: RunRef, d: Path, rec: dict, idmap: dict) -> None:
    op = rec["op"]
    files = d / rec["files"] if rec.get("files") else None
    if files is not None and not files.exists():
        raise TrackingError(f"spool entry {d.name}: the files of record {rec['seq']} ({op}) are missing from "
                            f"{files}; it was skipped at that record. Restore them, or delete {d} to give up "
                            f"on the rest of this run.", path=str(files))
    if op == "log_batch":
        rec = {**rec, "params": redact.mapping(rec.get("params"), 6000),
               "tags": _map_parent(redact.mapping(rec.get("tags"), 5000), idmap)}
    elif op == "log_model" and _model_logged(writer, run, rec["name"]):
        return
    elif op not in REPLAYABLE:
        raise TrackingError(f"unknown spool record {op!r} in {d.name}; skipped.")
    writer.replay(run, rec, files)


def _model_logged(writer: Writer, run: RunRef, name: str) -> bool:
    """A model of this name already logged from this run (the replay before a crash got that far)."""
    client = writer.client
    try:
        models = client.search_logged_models(experiment_ids=[run.experiment_id], max_results=1000)
    except Exception as exc:  # noqa: BLE001 - a store without logged models: log it
        log.debug("nbops sync: cannot search logged models: %s", exc)
        return False
    return any(m.source_run_id == run.run_id and m.name == name and str(m.status) == "READY" for m in models)

"""The durable local spool: what the tracking store could not take, kept on disk until ``nbops sync``.

Layout, one folder a run under the spool root (``.nbops/spool`` by default, ``NBOPS_SPOOL_DIR`` to move it)::

    <local run id>/meta.json       experiment, run name, tags, start time, target store; ``server_run_id`` when
                                   the run already exists on the store (the store went away mid-run)
    <local run id>/journal.jsonl   one JSON record a line, appended and fsync'ed: log_batch, log_artifacts,
                                   log_inputs, log_model, log_trace (an MLflow trace linked to the run, by its
                                   client-made trace id), end_run, each with a sequence number
    <local run id>/files/<seq>/    the files that go with record <seq> (artifacts, a pickled model)
    <local run id>/artifacts/      a background run's artifacts, written there in place (its log_artifacts record
                                   names this folder)
    <local run id>/state.json      written by sync: the server run id and the last record replayed

Appends are atomic per line (one ``write`` of a complete line, then fsync), so a crash leaves at most a torn
last line. Sync skips it; when no end-of-run record made it to the journal, sync closes the run FAILED with the
tag ``nbops.incomplete`` and says so.

Everything in it has been through the redactor first (the writer masks before it spools): no secret is kept here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_PREFIX = "spool-"
SPOOL_ID_TAG = "nbops.spool_id"   # on a run created from the spool: its local id (sync finds it again by it)
REPLAYABLE = frozenset({"log_batch", "log_artifacts", "log_inputs", "log_model", "log_trace",  # journal records
                        "end_run"})


@dataclass
class RunRef:
    """A run nbops writes to: on the store (``spooled`` False) or in the local spool."""
    run_id: str
    experiment_id: str | None
    experiment: str
    run_name: str | None = None
    spooled: bool = False
    artifact_uri: str | None = None
    spool_reason: str | None = None
    model_uris: list[str] = field(default_factory=list)
    spool_id: str | None = None       # background mode: the run's folder in the spool until the flusher wrote it
    ended: bool = False               # background mode: its end-of-run record is in the journal

    @property
    def in_flight(self) -> bool:
        """A background run the flusher has not written to the store yet."""
        return self.spool_id is not None and self.spool_id == self.run_id

    def landed(self, server_run_id: str, experiment_id: str | None) -> None:
        """The flusher wrote this ended background run: from now on it is the store's run."""
        self.run_id, self.experiment_id, self.spooled = server_run_id, experiment_id, False


_THREAD = threading.local()


def holding_lock() -> bool:
    """This thread holds a spool's sync lock (so it must not wait for the flusher, which may wait for it)."""
    return getattr(_THREAD, "depth", 0) > 0


def atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def state_file(d: Path, target: str, recorded: str | None) -> Path:
    """Where sync keeps how far run ``d`` got on the store ``target``: ``state.json`` for the store the run was
    recorded for, ``state-<hash>.json`` for a store it was sent to on purpose (``nbops sync --to``)."""
    if target == recorded:
        return Path(d) / "state.json"
    return Path(d) / f"state-{hashlib.sha1(target.encode()).hexdigest()[:12]}.json"


def read_state(d: Path, target: str, recorded: str | None) -> dict:
    """The sync state of run ``d`` on ``target``; ``{}`` when it never reached that store (a state written by an
    older version names no store: it proves nothing, and sync looks the run up by its spool-id tag)."""
    path = state_file(d, target, recorded)
    try:
        st = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}  # a torn state file: the spool-id tag finds the run again, replays are harmless
    return st if isinstance(st, dict) and st.get("target") == target else {}


def write_state(d: Path, target: str, recorded: str | None, st: dict) -> None:
    st["target"] = target
    atomic_json(state_file(d, target, recorded), st)


def read_meta(d: Path) -> dict:
    """A spooled run's ``meta.json``; ``ValueError`` when it is unreadable."""
    try:
        meta = json.loads((Path(d) / "meta.json").read_text())
        meta["local_run_id"], meta["experiment"]  # noqa: B018 - required
        return meta
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(str(exc)) from exc


class Journal(list):
    """The records of one spooled run; ``torn`` is True when its last line was cut short (a crash mid-append)."""
    torn = False


def read_journal(d: Path) -> Journal:
    """The records of one spooled run. A torn last line (a crash mid-append) is left out and ``.torn`` set; a bad
    line anywhere else raises ``ValueError`` naming the line."""
    path = Path(d) / "journal.jsonl"
    out = Journal()
    if not path.exists():
        return out
    raw = path.read_bytes()
    lines = raw.splitlines()
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "op" not in rec or "seq" not in rec:
                raise ValueError("not a spool record")
            out.append(rec)
        except ValueError as exc:
            if i == len(lines) - 1 and not raw.endswith(b"\n"):
                out.torn = True
                break  # torn last line: the write never completed, so the record was never acknowledged
            raise ValueError(f"journal line {i + 1} is not a spool record ({exc})") from exc
    return out


class Spool:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _dir(self, run_id: str) -> Path:
        return self.root / run_id

    def new_run(self, experiment: str, run_name: str | None, tags: dict, start_ms: int, target: str,
                staging: bool = False, artifact_root: str | None = None):
        """A run that exists only in the spool; its id is local until sync maps it to a server id. ``staging``:
        with an ``artifacts/`` folder for the run's files to be written in place (:meth:`staging_dir`)."""
        run_id = LOCAL_PREFIX + uuid.uuid4().hex
        d = self._dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        if staging:
            (d / "artifacts").mkdir()
        meta = {"local_run_id": run_id, "experiment": experiment, "run_name": run_name, "tags": tags,
                "start_time": start_ms, "target": target, "artifact_root": artifact_root, "server_run_id": None,
                "created": time.time()}
        if staging:  # a background or held run: this process writes it to the store itself
            meta["writer_pid"] = os.getpid()
        atomic_json(d / "meta.json", meta)
        return RunRef(run_id, None, experiment, run_name, spooled=True)

    def adopt(self, run, target: str, artifact_root: str | None = None) -> None:
        """The store went away after ``run`` was created on it: spool the rest under the same id."""
        d = self._dir(run.run_id)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "meta.json").exists():
            atomic_json(d / "meta.json", {"local_run_id": run.run_id, "experiment": run.experiment,
                                           "run_name": run.run_name, "tags": {}, "start_time": None,
                                           "target": target, "artifact_root": artifact_root,
                                           "server_run_id": run.run_id, "created": time.time()})

    def staging_dir(self, run_id: str) -> Path:
        """The ``artifacts/`` folder of a run made with ``new_run(staging=True)``."""
        return self._dir(run_id) / "artifacts"

    def append(self, run_id: str, op: dict, files: dict | None = None) -> None:
        self.append_many(run_id, [(op, files)])

    def append_many(self, run_id: str, records: list[tuple[dict, dict | None]]) -> None:
        """Append ``(op, files)`` records to the run's journal in one write and one fsync. ``files`` is
        ``{"dir": folder}``: a folder inside the run's spool folder is named as it is, any other is copied in."""
        d = self._dir(run_id)
        journal = d / "journal.jsonl"
        seq = sum(1 for _ in open(journal, "rb")) if journal.exists() else 0
        inside = os.path.abspath(d) + os.sep
        lines = []
        for op, files in records:
            rec = dict(op, seq=seq)
            if files and files.get("dir"):
                src = os.path.abspath(files["dir"])
                if src.startswith(inside):  # staged in the run's own folder (a background run's artifacts)
                    rec["files"] = src[len(inside):]
                else:
                    dest = d / "files" / str(seq)
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                    rec["files"] = str(dest.relative_to(d))
            lines.append(json.dumps(rec, default=str) + "\n")
            seq += 1
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join(lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[Path]:
        """Spooled run folders, oldest first (parents before their children)."""
        if not self.root.is_dir():
            return []
        dirs = [p for p in self.root.iterdir() if p.is_dir() and (p / "meta.json").exists()]
        return sorted(dirs, key=lambda p: (p / "meta.json").stat().st_mtime)

    def pending(self) -> int:
        """How many spooled runs still have records that are not on the store and wait for ``nbops sync``
        (not counting the runs a live process is writing in the background: :meth:`writing`)."""
        return sum(1 for d in self.entries() if not self.being_written(d) and self.waiting(d))

    @staticmethod
    def waiting(d: Path) -> bool:
        """Run folder ``d`` has records that are not on the store it was recorded for yet (or is corrupt: sync
        reports it)."""
        try:
            target = read_meta(d).get("target")
        except ValueError:
            return True
        state = read_state(d, target, target)
        unfinished = False
        try:
            records = read_journal(d)
            last = max((r["seq"] for r in records), default=-1)
            unfinished = records.torn and not any(r["op"] == "end_run" for r in records) \
                and not state.get("closed_incomplete")
        except ValueError:
            last = state.get("done", -1) + 1
        return not state.get("server_run_id") or state.get("done", -1) < last or unfinished

    def writing(self) -> int:
        """How many spooled runs a live process (a kernel writing in the background, ``nbops run``) is still
        writing to the store itself."""
        return sum(self.being_written(d) for d in self.entries())

    @staticmethod
    def being_written(d: Path) -> bool:
        try:
            pid = json.loads((d / "meta.json").read_text()).get("writer_pid")
        except (OSError, ValueError):
            return False
        if not pid:
            return False
        try:
            os.kill(pid, 0)  # alive (a crashed writer's runs wait for `nbops sync`)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, another user's
        return True

"""Lineage read from the MLflow store: which runs used a given digest, and every version recorded under a name.

Both use MLflow's own search filter on dataset inputs (``dataset.digest = '...'``, ``dataset.name = '...'``,
supported by ``search_runs`` in MLflow 2.x/3.x), across every active experiment of the store; a store that
refuses the filter is scanned instead. Reads only (``get_writer().client``).

Digests carry their scheme (``v2:<hex>`` now, bare hex for versions recorded before digest scheme v2): a history
that spans both says where the scheme changed, since the same data has a different digest under each."""
from __future__ import annotations

import datetime as _dt
import html
import logging
import re
from dataclasses import dataclass, field

from ..errors import DataError
from .version import SCHEME_PREFIX, DataVersion, digest_scheme, short_digest

log = logging.getLogger("nbops")
SNAPSHOT_TAG = "nbops.data.snapshot."
_HEX = re.compile(r"^(v2:)?[0-9a-f]{6,32}$")


def safe_name(name: str) -> str:
    """The file / tag-key form of a dataset name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "data"


@dataclass
class Lineage:
    """Runs that recorded a dataset; newest first. ``to_frame()``, ``versions()``, iteration over row dicts."""

    title: str
    rows: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def run_ids(self) -> list[str]:
        return list(dict.fromkeys(r["run_id"] for r in self.rows))

    @property
    def scheme_changes(self) -> list[int]:
        """Positions ``i`` where row ``i`` and row ``i - 1`` carry digests of different schemes (newest first)."""
        out = []
        for i in range(1, len(self.rows)):
            a, b = self._scheme(self.rows[i - 1]), self._scheme(self.rows[i])
            if a != b and "bytes" not in (a, b):  # a file's bytes and a frame are different things, not schemes
                out.append(i)
        return out

    @staticmethod
    def _scheme(row: dict) -> int | str:
        return "bytes" if row.get("kind_data") in ("file", "folder") else digest_scheme(row["digest"])

    def versions(self) -> list[DataVersion]:
        """The distinct versions, newest first, each with the runs that recorded it in ``.runs``."""
        out: dict[str, DataVersion] = {}
        for r in self.rows:
            v = out.get(r["digest"])
            if v is None:
                v = out[r["digest"]] = DataVersion.from_dataset(r["_dataset"], created=r["time"])
            v.runs.append({k: r[k] for k in ("run_id", "run_name", "experiment", "time", "context")})
        return list(out.values())

    def to_frame(self):
        import pandas as pd

        cols = ["time", "name", "digest", "scheme", "rows", "columns", "context", "snapshot", "run_name", "run_id",
                "experiment", "kind", "status"]
        return pd.DataFrame([{**{k: r.get(k) for k in cols}, "scheme": digest_scheme(r["digest"])} for r in self.rows],
                            columns=cols)

    def __repr__(self) -> str:
        if not self.rows:
            return f"{self.title}: none recorded"
        lines = [f"{self.title}: {len(self.rows)} record(s)"]
        changes = set(self.scheme_changes)
        for i, r in enumerate(self.rows):
            if i in changes:
                lines.append(f"  -- digest scheme changed: v{digest_scheme(self.rows[i - 1]['digest'])} above, "
                             f"v{digest_scheme(r['digest'])} below (the same data has another digest under each "
                             f"scheme; this is not a data change) --")
            shape = f"{r['rows']:,} x {r['columns']}" if r.get("rows") is not None else ""
            lines.append(f"  {r['time']:%Y-%m-%d %H:%M:%S}  {r['name']:<16} {short_digest(r['digest']):<15}  "
                         f"{shape:<16} "
                         f"{r['context'] or '':<10} run {r['run_name'] or ''} ({r['run_id']})"
                         + ("  [snapshot]" if r.get("snapshot") else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = f"<div class='nbops-lineage'><b>{html.escape(self.title)}</b>: {len(self.rows)} record(s)</div>"
        if not self.rows:
            return head
        df = self.to_frame()
        df["digest"] = [short_digest(d) for d in df["digest"]]
        if self.scheme_changes:
            head += ("<div>digest scheme changed between records (v1 digests were made before scheme v2; the same "
                     "data has another digest under each scheme): see the <code>scheme</code> column</div>")
        from ..display.links import run_url
        from ..display.views import frame_html

        links = {"run_id": {r: run_url(r) for r in df["run_id"]}} if "run_id" in df.columns else None
        return head + frame_html(df, None, max_rows=100, links=links)


def _quote(value: str) -> str | None:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _search(filter_string: str | None, match) -> list[dict]:
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from ..tracking.writer import get_writer

    client = get_writer().client
    exps, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        exps += list(page)
        token = page.token
        if not token:
            break
    names = {e.experiment_id: e.name for e in exps}
    ids = list(names)
    runs, token = [], None
    if not ids:
        return []
    while True:
        try:
            page = client.search_runs(ids, filter_string or "", max_results=1000, page_token=token,
                                      order_by=["attributes.start_time DESC"])
        except MlflowException as exc:
            if not filter_string:
                raise
            log.debug("nbops: the store refused the dataset filter (%s); scanning every run", exc)
            filter_string, token, runs = None, None, []
            continue
        runs += list(page)
        token = page.token
        if not token:
            break
    rows = []
    for run in runs:
        tags = run.data.tags
        for di in run.inputs.dataset_inputs if run.inputs else []:
            ds = di.dataset
            if not match(ds):
                continue
            ctx = next((t.value for t in di.tags if t.key == "mlflow.data.context"), None)
            v = DataVersion.from_dataset(ds)
            rows.append({"time": _dt.datetime.fromtimestamp(run.info.start_time / 1000, _dt.timezone.utc),
                         "name": ds.name, "digest": ds.digest, "rows": v.rows, "columns": len(v.columns),
                         "context": ctx, "snapshot": f"{SNAPSHOT_TAG}{safe_name(ds.name)}" in tags,
                         "run_name": run.info.run_name, "run_id": run.info.run_id,
                         "experiment": names.get(run.info.experiment_id), "kind": tags.get("nbops.kind"),
                         "status": run.info.status, "kind_data": v.kind, "_dataset": ds})
    rows.sort(key=lambda r: r["time"], reverse=True)
    return rows


def _get_digest(digest) -> str:
    d = digest.digest if isinstance(digest, DataVersion) else str(digest).strip().lower()
    if not _HEX.match(d):
        raise DataError(f"{digest!r} is not a digest: give a DataVersion's digest ('v2:' and 32 hex digits, or the "
                        f"32 hex digits of an older one), or at least its first 6 hex digits, as `short` shows "
                        f"them.", digest=str(digest))
    return d


def runs_using(digest) -> Lineage:
    """Every run (in any active experiment) that logged a dataset with this digest -- a full digest, a prefix of
    at least 6 hex digits (``DataVersion.short``), or a :class:`DataVersion`."""
    d = _get_digest(digest)
    bare = d.removeprefix(SCHEME_PREFIX)
    if len(bare) == 32:
        rows = _search(f"dataset.digest = '{d}'", lambda ds: ds.digest == d)
    elif d.startswith(SCHEME_PREFIX):
        rows = _search(f"dataset.digest LIKE '{d}%'", lambda ds: ds.digest.startswith(d))
    else:  # a bare prefix: a v1 digest, or the hex digits of a v2 one
        rows = _search(f"dataset.digest LIKE '{d}%'", lambda ds: ds.digest.startswith(d))
        rows += _search(f"dataset.digest LIKE '{SCHEME_PREFIX}{d}%'",
                        lambda ds: ds.digest.startswith(SCHEME_PREFIX + d))
        rows.sort(key=lambda r: r["time"], reverse=True)
    return Lineage(f"runs using {short_digest(d)}", rows)


def history(name: str) -> Lineage:
    """Every version recorded under dataset name ``name``, newest first (one row per run that logged it)."""
    if not isinstance(name, str) or not name.strip():
        raise DataError("history() needs the dataset name a version was recorded under (e.g. 'train').")
    q = _quote(name)
    rows = _search(f"dataset.name = {q}" if q else None, lambda ds: ds.name == name)
    return Lineage(f"history of {name}", rows)

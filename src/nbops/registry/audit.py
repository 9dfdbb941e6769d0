"""The audit trail, kept on the model versions themselves as tags.

Each promotion or rollback writes, on the version that receives the alias, *before* the alias moves:

- readable tags for the latest event: ``nbops.promote.who``, ``.who_source`` (``mlflow`` user, ``os`` user, or
  ``jupyter``: the Jupyter server's logged-in user, for the JupyterLab UI), ``.when`` (ISO-8601 UTC),
  ``.notebook``, ``.run_id`` (the candidate run), ``.reason``, ``.alias``,
  ``.action`` (promote | rollback), ``.replaced`` (the version that held the alias, or ``none``),
  ``.gate.<n>`` (``pass|FAIL <gate>: <measured value>``), ``.event_run_id`` (the ``kind=promote`` run) and
  ``.status`` (``pending`` until the alias has moved, then ``promoted``; ``failed: <why>`` when the move was
  refused; ``rolled-back`` once a rollback took the alias away);
- one JSON record per event, ``nbops.audit.<UTC stamp>``, which :func:`history` reads back; its ``outcome``
  is ``pending`` until the alias moved, then ``done`` (or ``failed: ...``).

So the alias never points at a version whose audit is missing: the audit goes first.
"""
from __future__ import annotations

import getpass
import json
import os

from ..tracking.mlflow_errors import not_found, quote
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape

P = "nbops.promote."
AUDIT = "nbops.audit."
STATUS = P + "status"


def who(settings=None) -> tuple[str, str]:
    """(user, source): the MLflow user when a server with auth is used, else the OS user."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user and (settings is None or settings.is_server):
        return user, "mlflow"
    try:
        return getpass.getuser(), "os"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER", "unknown"), "os"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_key(dt: datetime) -> str:
    return AUDIT + dt.strftime("%Y%m%dT%H%M%S.%fZ")


def event_tags(event: dict, gates: list) -> dict[str, str]:
    """The readable tags for ``event`` plus its JSON record (``event["key"]``)."""
    tags = {STATUS: f"pending: moving '{event['alias']}' to this version, started {event['when']} by {event['who']}; "
                    f"if this stays, the {event['action']} did not complete and '{event['alias']}' was not moved"}
    tags.update({P + k: str(event[k]) for k in ("action", "alias", "who", "who_source", "when", "notebook", "run_id",
                                           "reason", "replaced", "event_run_id") if event.get(k) not in (None, "")})
    tags.setdefault(P + "replaced", "none")
    tags.setdefault(P + "reason", "")
    for i, g in enumerate(gates, 1):
        tags[f"{P}gate.{i}"] = f"{'pass' if g.passed else 'FAIL'} {g.name}: {g.detail}"[:4000]
    tags[event["key"]] = json.dumps({**{k: v for k, v in event.items() if k != "key"},
                                     "gates": [g.as_dict() for g in gates], "outcome": "pending"}, default=str)
    return tags


def stale_gate_keys(tags: dict, gates: list) -> list[str]:
    """Gate tags left from an earlier event on the same version with more gates than this one."""
    return [k for k in tags if k.startswith(P + "gate.") and k[len(P) + 5:].isdigit()
            and int(k[len(P) + 5:]) > len(gates)]


def finished(tags: dict, key: str, outcome: str) -> str:
    """The JSON record ``key`` with its ``outcome`` set."""
    rec = json.loads(tags[key])
    rec["outcome"] = outcome
    return json.dumps(rec, default=str)


def events(version) -> list[dict]:
    out = []
    for k, v in (version.tags or {}).items():
        if k.startswith(AUDIT):
            try:
                rec = json.loads(v)
            except ValueError:
                continue
            rec["version"] = str(version.version)
            rec["key"] = k
            out.append(rec)
    return out


@dataclass
class PromotionHistory:
    """Every promotion and rollback of a registered model, oldest first (``to_frame()``, HTML, text)."""
    name: str
    records: list[dict] = field(default_factory=list)
    aliases: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def rows(self) -> list[dict]:
        rows = []
        for r in self.records:
            gates = "; ".join(f"{'pass' if g.get('passed') else 'FAIL'} {g.get('gate')}: {g.get('detail')}"
                              for g in r.get("gates", []))
            rows.append({"when": r.get("when"), "action": r.get("action"), "alias": r.get("alias"),
                         "version": r.get("version"), "replaced": r.get("replaced") or "", "who": r.get("who"),
                         "run_id": r.get("run_id"), "notebook": r.get("notebook") or "",
                         "reason": r.get("reason") or "", "outcome": r.get("outcome"), "gates": gates})
        return rows

    def to_frame(self):
        import pandas as pd

        cols = ["when", "action", "alias", "version", "replaced", "who", "run_id", "notebook", "reason", "outcome",
                "gates"]
        return pd.DataFrame(self.rows(), columns=cols)

    def __repr__(self) -> str:
        head = f"Promotion history of {self.name!r}: {len(self.records)} event(s); aliases now: " + (
            ", ".join(f"{a}=v{v}" for a, v in sorted(self.aliases.items())) or "none")
        lines = [head]
        for r in self.rows():
            lines.append(f"  {r['when']}  {r['action']:<8} {r['alias']}: v{r['version']} (replaced "
                         f"{r['replaced'] or 'none'}) by {r['who']}  run {str(r['run_id'])[:8]}  "
                         f"[{r['outcome']}]" + (f"  reason: {r['reason']}" if r['reason'] else ""))
            if r["gates"]:
                lines.append(f"      gates: {r['gates']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display.links import run_url
        from ..display.views import frame_html

        df = self.to_frame().drop(columns=["notebook"]).rename(columns={"run_id": "run"})
        aliases = ", ".join(f"<code>{escape(a)}</code>&rarr;v{escape(str(v))}" for a, v in sorted(self.aliases.items()))
        return (f"<div class='nbops-promote-history'><b>Promotion history of {escape(self.name)}</b> "
                f"({len(self.records)} events; aliases now: {aliases or 'none'})"
                + frame_html(df, None, max_rows=200, links={"run": {r: run_url(r) for r in df["run"]}}) + "</div>")


def history(name: str, alias: str | None = None) -> PromotionHistory:
    """The audit records of every version of registered model ``name`` (``alias`` filters), oldest first."""
    from mlflow.exceptions import MlflowException

    from ..errors import PromotionError
    from ..tracking.writer import get_writer

    client = get_writer().client
    try:
        rm = client.get_registered_model(name)
    except MlflowException as exc:
        if not_found(exc):
            raise PromotionError(f"No registered model {name!r} in {client.tracking_uri}: promote a run first "
                                 f"(%promote {name} --run RUN_ID).", model=name) from None
        raise
    recs = []
    for mv in client.search_model_versions(f"name={quote(name)}"):
        recs += [e for e in events(mv) if alias is None or e.get("alias") == alias]
    recs.sort(key=lambda r: r["key"])
    return PromotionHistory(name, recs, dict(getattr(rm, "aliases", {}) or {}))


"""``%promote NAME --pick``: a table of candidate runs (metrics, data versions, drift status, registry state)
with a Promote button that calls :func:`nbops.promote` with the gates given on the magic line.

Headless kernels cannot click: under papermill / nbclient (``allow_stdin`` is False for their executions),
``nbops run`` (``NBOPS_NOTEBOOK_PATH``) or outside a Jupyter kernel, ``--pick`` refuses and says to pass
``--run`` or ``--best``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from html import escape

from ..display import headless_reason  # noqa: F401 - the magic asks here whether --pick can work

log = logging.getLogger("nbops")


@dataclass
class Picker:
    """Candidate runs for ``name`` and the options their promotion will use."""
    name: str
    experiment: str
    candidates: list = field(default_factory=list)
    drift: dict = field(default_factory=dict)        # run_id -> "no-drift at ..." | "drift at ..." | "unchecked"
    registered: dict = field(default_factory=dict)   # run_id -> "v3 (champion)"
    options: dict = field(default_factory=dict)
    last_result: object = None

    def metric_names(self) -> list[str]:
        names = sorted(set().union(*(c.metrics for c in self.candidates))) if self.candidates else []
        return [n for n in names if not n.startswith(("nbops.", "system/"))][:8]

    def rows(self) -> list[dict]:
        out = []
        for c in self.candidates:
            row = {"run_id": c.run_id, "run": c.run_name, "ended": _when(c.end_ms)}
            row.update({m: c.metrics.get(m) for m in self.metric_names()})
            row.update({"data": ", ".join(c.data_versions) or "-", "drift": self.drift.get(c.run_id, "unchecked"),
                        "registered": self.registered.get(c.run_id, "-")})
            out.append(row)
        return out

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __repr__(self) -> str:
        lines = [f"Candidates for {self.name!r} from experiment {self.experiment!r} ({len(self.candidates)} runs "
                 f"with a logged model):"]
        for r in self.rows():
            ms = ", ".join(f"{m}={_fmt(r[m])}" for m in self.metric_names() if r.get(m) is not None)
            lines.append(f"  {r['run_id'][:8]} {r['run'] or ''}: {ms}; data {r['data']}; drift {r['drift']}; "
                         f"registered {r['registered']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import pandas as pd

        from ..display.links import run_url
        from ..display.views import frame_html

        rows = self.rows()
        df = pd.DataFrame([{k: _fmt(v) for k, v in r.items()} for r in rows], columns=list(rows[0]) if rows
                          else ["run_id", "run"])
        exp = {c.run_id: c.experiment_id for c in self.candidates}
        return (f"<div class='nbops-pick'><b>Candidates for {escape(self.name)}</b> (experiment "
                f"{escape(self.experiment)})" + frame_html(df, None, max_rows=100, links={
                    "run_id": {r: run_url(r, exp.get(r)) for r in df["run_id"]}}) + "</div>")

    def promote(self, run_id: str, **overrides):
        """Promote one candidate with the picker's options (what the button does)."""
        from .core import promote

        return promote(self.name, run_id, **{**self.options, **overrides})

    def widget(self):
        """The candidates with a Promote button (``nbops.display.views.action_table``), a reason and dry run."""
        import ipywidgets as W
        import pandas as pd

        from ..display.views import action_table

        metric = (self.metric_names() or [None])[0]
        choices = [(f"{c.run_name or c.run_id[:8]} ({c.run_id[:8]})" +
                    (f" {metric}={_fmt(c.metrics.get(metric))}" if metric else ""), c.run_id)
                   for c in self.candidates]
        reason = W.Text(value=self.options.get("reason") or "", placeholder="why (kept in the audit trail)",
                        description="Reason:")
        dry = W.Checkbox(value=bool(self.options.get("dry_run")), description="dry run")

        def act(run_id):
            try:
                self.last_result = self.promote(run_id, reason=reason.value or None, dry_run=dry.value)
            except Exception as exc:
                self.last_result = getattr(exc, "result", None) or self.last_result
                raise
            return self.last_result

        rows = self.rows()
        df = pd.DataFrame([{k: _fmt(v) for k, v in r.items()} for r in rows], columns=None if rows else ["run_id"])
        box = action_table(df, "run_id", "Promote", act, f"Candidates for {self.name} ({self.experiment})",
                           choices=choices, extra=[W.HBox([reason, dry])], css_class="nbops-pick")
        box.button.button_style = "success"
        self._controls = {"table": box.children[0], "run": box.chooser, "reason": reason, "dry_run": dry,
                          "button": box.button, "output": box.result}
        return box


def pick(name: str, experiment: str | None = None, n: int = 50, **options) -> Picker:
    """Build the picker for registered model ``name`` from the finished runs of ``experiment`` that logged a
    model; ``options`` are :func:`nbops.promote`'s (alias, require, must_beat, require_no_drift, reason, ...)."""
    from .. import config
    from ..tracking.writer import get_writer
    from . import candidates
    from .core import check_alias, check_name, registered_model
    from .gates import DRIFT_CHECKED_AT, DRIFT_STATUS

    name = check_name(name)
    check_alias(options.get("alias", "champion"))
    experiment = experiment or config.settings().experiment
    c = get_writer().client
    cands = candidates.listing(c, experiment, n)
    p = Picker(name, experiment, cands, options=dict(options))
    rm = registered_model(c, name)
    if rm is not None and cands:
        by_uri = {x.model_uri: x.run_id for x in cands}
        held: dict[str, list[str]] = {}
        for alias, version in (getattr(rm, "aliases", {}) or {}).items():
            held.setdefault(str(version), []).append(alias)
        from ..tracking.mlflow_errors import quote

        for mv in c.search_model_versions(f"name={quote(name)}"):
            rid = by_uri.get(mv.source) or (mv.run_id if mv.run_id in {x.run_id for x in cands} else None)
            if rid is None:
                continue
            names = sorted(held.get(str(mv.version), []))
            p.registered[rid] = f"v{mv.version}" + (f" ({', '.join(names)})" if names else "")
            st = (mv.tags or {}).get(DRIFT_STATUS)
            if st:
                p.drift[rid] = f"{st} at {(mv.tags or {}).get(DRIFT_CHECKED_AT, '?')}"
    return p


def _when(ms) -> str:
    if not ms:
        return ""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)

"""``compare(run_ids)``: what differs between two or more runs -- params, metrics and the data they used
(columns added / removed / retyped, content changed, digests). The first run is the baseline.

One function for both front ends: ``%nbops compare RUN RUN...`` shows the :class:`RunComparison` under the
cell, JupyterLab's compare panel reads :meth:`RunComparison.to_dict` from ``/nbops/api/compare``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from ..errors import NbopsError

MAX_RUNS = 10


@dataclass
class RunComparison:
    runs: list[dict]                                  # run records (nbops.api.runview), in the order asked
    params: list[dict] = field(default_factory=list)  # {key, values, differs}
    metrics: list[dict] = field(default_factory=list)  # {key, values, differs, delta}
    data: list[dict] = field(default_factory=list)    # {name, versions, status, diffs}

    def to_dict(self) -> dict:
        """JSON-ready (the shape of ``GET /nbops/api/compare``, docs/server-api.md)."""
        brief = [{k: v for k, v in r.items() if k not in ("tags", "artifacts")} for r in self.runs]
        return {"runs": brief, "params": self.params, "metrics": self.metrics, "data": self.data,
                "differing": {"params": sum(r["differs"] for r in self.params),
                              "metrics": sum(r["differs"] for r in self.metrics),
                              "data": sum(r["status"] != "same" for r in self.data)}}

    def labels(self) -> list[str]:
        return [f"{r.get('run_name') or r['run_id'][:8]}" for r in self.runs]

    def to_frame(self):
        """One row per param and metric: section, key, one column per run (labelled by run name), differs."""
        import pandas as pd

        labels = _unique(self.labels())
        rows = [{"section": s, "key": r["key"], **dict(zip(labels, r["values"])), "differs": r["differs"]}
                for s, rows in (("param", self.params), ("metric", self.metrics)) for r in rows]
        return pd.DataFrame(rows, columns=["section", "key", *labels, "differs"])

    def _data_lines(self) -> list[str]:
        out = []
        for d in self.data:
            shorts = [v["short"] if v else "-" for v in d["versions"]]
            notes = [x["summary"] for x in d["diffs"] if x and x.get("summary")]
            more = f"; {'; '.join(notes)}" if notes else ""
            out.append(f"{d['name']}: {d['status']} ({' / '.join(shorts)}){more}")
        return out

    def headline(self) -> str:
        s = self.to_dict()["differing"]
        return (f"Compared {len(self.runs)} runs ({', '.join(self.labels())}): {s['params']} param(s), "
                f"{s['metrics']} metric(s) and {s['data']} dataset(s) differ.")

    def __repr__(self) -> str:
        from ..display.views import frame_text

        lines = [self.headline(), frame_text(self.to_frame())]
        if self.data:
            lines += ["data:"] + ["  " + x for x in self._data_lines()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display.links import a
        from ..display.views import frame_html

        df = self.to_frame()
        runs = ", ".join(a(r.get("url"), label) for r, label in zip(self.runs, self.labels()))
        data = "".join(f"<li>{html.escape(x)}</li>" for x in self._data_lines())
        return (f"<div class='nbops-compare'><p><b>{html.escape(self.headline())}</b><br>runs: {runs}</p>"
                f"{frame_html(df, None, highlight='differs', css_class='nbops-compare-table')}"
                f"{f'<p><b>data</b></p><ul>{data}</ul>' if data else ''}</div>")


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for x in labels:
        seen[x] = seen.get(x, 0) + 1
        out.append(x if seen[x] == 1 else f"{x} ({seen[x]})")
    return out


def _differs(values: list) -> bool:
    return len({repr(v) for v in values}) > 1


def compare(run_ids: list[str]) -> RunComparison:
    """Compare runs (store or spool) by id; the first is the baseline. 2 to 10 distinct ids."""
    from .runview import load_run

    ids = list(dict.fromkeys(str(r).strip() for r in run_ids if str(r).strip()))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise NbopsError(f"compare needs 2 to {MAX_RUNS} different run ids, got {len(ids)}: e.g. "
                         f"`%nbops compare RUN_A RUN_B` (`%nbops runs` lists the ids).")
    loaded = [load_run(i) for i in ids]
    records = [rec for rec, _ in loaded]
    cmp = RunComparison(records)
    for key in sorted({k for r in records for k in r["params"]}):
        values = [r["params"].get(key) for r in records]
        cmp.params.append({"key": key, "values": values, "differs": _differs(values)})
    for key in sorted({k for r in records for k in r["metrics"]}):
        values = [r["metrics"].get(key) for r in records]
        base = values[0]
        delta = [None] + [v - base if isinstance(v, (int, float)) and isinstance(base, (int, float)) else None
                          for v in values[1:]]
        cmp.metrics.append({"key": key, "values": values, "differs": _differs(values), "delta": delta})
    cmp.data = _data_rows([inputs for _, inputs in loaded])
    for rows in (cmp.params, cmp.metrics, cmp.data):
        rows.sort(key=lambda r: (not r.get("differs", r.get("status") != "same"), r.get("key") or r.get("name")))
    return cmp


def _data_rows(inputs_per_run: list[list]) -> list[dict]:
    from ..data.compare import compare as diff
    from ..data.version import DataVersion

    per_run: list[dict] = []
    for inputs in inputs_per_run:
        named = {}
        for di in inputs:
            try:
                named[di.dataset.name] = DataVersion.from_dataset(di.dataset)
            except Exception:  # noqa: BLE001 - a dataset nbops cannot read: compared by digest only
                named[di.dataset.name] = None
        per_run.append(named)
    names = list(dict.fromkeys(n for named in per_run for n in named))
    out = []
    for name in names:
        versions = [named.get(name) for named in per_run]
        present = [name in named for named in per_run]
        base = versions[0]
        diffs: list[dict | None] = [None]
        for v in versions[1:]:
            if base is None or v is None:
                diffs.append(None)
                continue
            d = diff(base, v)
            diffs.append({"summary": d.summary(), "columns_added": d.columns_added,
                          "columns_removed": d.columns_removed,
                          "columns_retyped": [list(x) for x in d.columns_retyped],
                          "columns_changed": d.columns_changed, "digest_changed": not d.identical,
                          "row_delta": d.row_delta})
        if not present[0]:
            status = "added"
        elif not all(present):
            status = "removed"
        elif len({v.digest for v in versions if v is not None}) > 1:
            status = "changed"
        else:
            status = "same"
        out.append({"name": name, "status": status, "diffs": diffs,
                    "versions": [{"digest": v.digest, "short": v.short, "rows": v.rows, "columns": len(v.columns)}
                                 if v is not None else None for v in versions]})
    return out

"""Group anomalous points into incidents: the AIOps step that turns many raw alerts into a few things to look at.

1. Per series, anomalous points closer than ``gap`` (default: 5 of the series' own steps) form one *episode*.
2. Episodes of different series join one incident when their time spans overlap (each padded by its gap) and
   they share a grouping label value (``instance``, ``job``, ``host`` by default) -- or when either has none of
   those labels (one host, one source). Joins are transitive.
3. An incident reports start, end, the series and metrics involved, the number of anomalous points, the peak
   score and where it was, and the *lead*: the series that went abnormal first (the likely cause).
"""
from __future__ import annotations

from dataclasses import dataclass, field

GROUP_BY = ("instance", "job", "host")


@dataclass
class Incident:
    id: int
    start: object  # pandas.Timestamp
    end: object
    series: list[str]
    metrics: list[str]
    points: int
    peak_score: float
    peak_series: str
    peak_time: object
    lead: str
    labels: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict:
        return {"id": self.id, "start": str(self.start), "end": str(self.end), "duration_s": self.duration_s,
                "lead": self.lead, "metrics": self.metrics, "series": self.series, "points": self.points,
                "peak_score": round(self.peak_score, 4), "peak_series": self.peak_series,
                "peak_time": str(self.peak_time), "labels": self.labels}


def series_name(metric: str, labels: str) -> str:
    return f"{metric}{{{labels}}}" if labels else metric


def _episodes(scored, gap):
    import numpy as np

    from .timeparse import parse_labels

    eps = []
    for (metric, labels), g in scored.groupby(["metric", "labels"], sort=False):
        g = g.sort_values("timestamp")
        ts = g["timestamp"].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0
        pad = gap if gap is not None else 5 * max(step, 1e-9)
        hit = g["anomaly"].to_numpy(bool)
        if not hit.any():
            continue
        times = g["timestamp"].to_numpy()[hit]
        secs = ts[hit]
        scores = g["score"].to_numpy(float)[hit]
        lab = parse_labels(labels)
        keys = {(k, lab[k]) for k in GROUP_BY if k in lab}
        cur = [0]
        for i in range(1, len(secs) + 1):
            if i == len(secs) or secs[i] - secs[i - 1] > pad:
                idx = cur
                eps.append({"series": series_name(metric, labels), "metric": metric, "keys": keys, "labels": lab,
                            "start": secs[idx[0]], "end": secs[idx[-1]], "t0": times[idx[0]], "t1": times[idx[-1]],
                            "pad": pad, "points": len(idx), "peak": float(np.max(scores[idx])),
                            "peak_t": times[idx[int(np.argmax(scores[idx]))]]})
                cur = [i]
            else:
                cur.append(i)
    return eps


def group(scored, gap: float | None = None) -> list[Incident]:
    """Incidents from a scored frame (columns timestamp, metric, labels, value, score, anomaly); ``gap`` in
    seconds (default: 5 steps of each series)."""
    import pandas as pd

    if scored is None or len(scored) == 0 or "anomaly" not in scored:
        return []
    eps = _episodes(scored, gap)
    eps.sort(key=lambda e: e["start"])
    parent = list(range(len(eps)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(eps):  # sweep: only episodes that start before a's padded end can overlap it
        for j in range(i + 1, len(eps)):
            b = eps[j]
            if b["start"] - b["pad"] > a["end"] + a["pad"]:
                break
            if not a["keys"] or not b["keys"] or a["keys"] & b["keys"]:
                parent[find(j)] = find(i)
    groups: dict[int, list[dict]] = {}
    for i, e in enumerate(eps):
        groups.setdefault(find(i), []).append(e)
    out = []
    for members in groups.values():
        members.sort(key=lambda e: (e["start"], -e["peak"]))
        peak = max(members, key=lambda e: e["peak"])
        shared = dict(members[0]["labels"])
        for e in members[1:]:
            shared = {k: v for k, v in shared.items() if e["labels"].get(k) == v}
        series = list(dict.fromkeys(e["series"] for e in members))
        out.append(Incident(0, pd.Timestamp(min(e["t0"] for e in members)), pd.Timestamp(max(e["t1"] for e in members)),
                            series, list(dict.fromkeys(e["metric"] for e in members)),
                            sum(e["points"] for e in members), peak["peak"], peak["series"],
                            pd.Timestamp(peak["peak_t"]), members[0]["series"], shared))
    out.sort(key=lambda inc: inc.start)
    for k, inc in enumerate(out, 1):
        inc.id = k
    return out


def to_frame(incidents: list[Incident]):
    import pandas as pd

    cols = ["id", "start", "end", "duration_s", "lead", "metrics", "points", "peak_score", "peak_series"]
    rows = [{**inc.as_dict(), "start": inc.start, "end": inc.end, "metrics": ", ".join(inc.metrics)}
            for inc in incidents]
    return pd.DataFrame(rows, columns=cols)

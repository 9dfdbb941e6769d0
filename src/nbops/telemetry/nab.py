"""The Numenta Anomaly Benchmark scorer (NAB v1.1 rules), written from the published rules.

A detector gives every row of a file an anomaly score. For a threshold, the rows whose score is at least the
threshold are *detections*. Each file:

- The first ``min(floor(0.15 * N), 750)`` rows are probationary: detections there are ignored, and a window that
  lies wholly inside that period is not scored.
- A labelled window ``[start, end]`` (inclusive, over the file's rows) that holds at least one detection scores
  ``A_TP * sigma(pos) / sigma(-1)`` for its *earliest* detection, where ``pos = -(right - i + 1) / width`` runs from
  -1 at the left edge towards 0 at the right edge and ``sigma(x) = 2 / (1 + exp(5x)) - 1`` (``-1`` past x > 3).
  Later detections in the same window neither add nor cost.
- A window with no detection costs ``A_FN``.
- A detection outside every window costs ``A_FP * sigma(d)`` (sigma is negative there),
  ``d = |i - right_prev| / (width_prev - 1)`` measured from the preceding window's right edge (so a detection
  just after a window costs little), or the full ``A_FP`` when no window precedes it.

Over a corpus the threshold is swept over every distinct score to maximise the summed raw score (one threshold for
all files, as NAB does), and the result is normalised: ``100 * (raw - null) / (perfect - null)`` where *null*
never fires (``-A_FN`` per window) and *perfect* detects every window at its left edge (``+A_TP`` per window).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: profile -> (A_TP, A_FP, A_FN)
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def scaled_sigmoid(x: float) -> float:
    """NAB's scaled sigmoid: +0.987 at x = -1, 0 at x = 0, towards -1 for large x; exactly -1 past 3."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n: int, percent: float = 0.15) -> int:
    """Rows at the start of a file that are not scored: ``min(floor(0.15 * n), 0.15 * 5000)``."""
    return int(min(math.floor(percent * n), percent * 5000))


def load_windows(path: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """``combined_windows.json``: ``{"category/file.csv": [[start, end], ...]}`` with timestamps as datetime64."""
    raw = json.loads(Path(path).read_text())
    return {k.replace("\\", "/"): [(np.datetime64(a.replace(" ", "T"), "ns"), np.datetime64(b.replace(" ", "T"), "ns"))
                                   for a, b in v] for k, v in raw.items()}


@dataclass
class FileLabels:
    """Per-row labelling of one file, independent of the detector and of the profile's weights.

    ``window[i]`` is the index of the window holding row i (-1 outside all windows, -2 inside a window that lies
    wholly in the probationary period); ``tp_value[i]`` is the unweighted true-positive value
    ``sigma(pos)/sigma(-1)`` inside a window; ``fp_value[i]`` the unweighted (negative) false-positive value
    outside; ``scored[i]`` is False in the probationary period.
    """
    name: str
    window: np.ndarray
    tp_value: np.ndarray
    fp_value: np.ndarray
    scored: np.ndarray

    @property
    def windows(self) -> list[int]:
        return sorted(set(self.window[self.window >= 0].tolist()))

    @classmethod
    def build(cls, name: str, timestamps, windows) -> "FileLabels":
        ts = np.asarray(timestamps, dtype="datetime64[ns]")
        n = len(ts)
        window = np.full(n, -1, dtype=np.int64)
        tp_value = np.zeros(n)
        fp_value = np.full(n, -1.0)
        scored = np.arange(n) >= probation_length(n)
        spans = []
        for start, end in windows:
            left = int(np.searchsorted(ts, np.datetime64(start, "ns"), side="left"))
            right = int(np.searchsorted(ts, np.datetime64(end, "ns"), side="right")) - 1
            if right >= left:
                spans.append((left, right))
        spans.sort()
        for k, (left, right) in enumerate(spans):
            width = right - left + 1
            idx = np.arange(left, right + 1)
            window[idx] = k if scored[left:right + 1].any() else -2
            tp_value[idx] = [scaled_sigmoid(-(right - i + 1) / width) / _MAX_TP for i in idx]
            nxt = spans[k + 1][0] if k + 1 < len(spans) else n
            after = np.arange(right + 1, nxt)
            den = float(width - 1) if width > 1 else 1.0
            fp_value[after] = [scaled_sigmoid(abs(right - i) / den) for i in after]
        return cls(name, window, tp_value, fp_value, scored)


@dataclass
class Result:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    per_file: dict = field(default_factory=dict)
    alerts: int = 0  #: scored rows at or above the threshold (detections, in windows or not)
    points: int = 0  #: scored rows (outside the probationary period)

    @property
    def fp_per_10k(self) -> float:
        """False-positive rows per 10,000 scored rows: how often this would page someone for nothing."""
        return 1e4 * self.fp / self.points if self.points else 0.0

    @property
    def hit_share(self) -> float:
        """Share of alerts (detection rows) that fall inside a labelled window."""
        return (self.alerts - self.fp) / self.alerts if self.alerts else 0.0

    @property
    def score(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null) if self.perfect != self.null else 0.0

    def line(self) -> str:
        return (f"{self.profile} score={self.score:.1f} threshold={self.threshold:.6g} "
                f"tp={self.tp} fp={self.fp} fn={self.fn} fp/10k={self.fp_per_10k:.2f} "
                f"alerts_in_windows={100 * self.hit_share:.0f}%")


def detections(scores, threshold: float, refractory: int = 0) -> np.ndarray:
    """The rows that alert at ``threshold``: score at least the threshold and, with ``refractory`` > 0, no earlier
    alert within the previous ``refractory`` rows (see :func:`nbops.telemetry.detectors.refractory`)."""
    from .detectors import refractory as _refractory

    det = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf) >= threshold
    return _refractory(det, refractory) if refractory else det


def score_at(files: list[tuple[FileLabels, np.ndarray]], threshold: float, profile: str = "standard",
             refractory: int = 0) -> Result:
    """The NAB score of a corpus at one threshold (``files`` pairs each file's labels with its scores); with
    ``refractory`` > 0 an alert silences the next ``refractory`` rows (the probationary rows included: that is
    what a streaming user would have seen)."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    raw = 0.0
    tp = fp = fn = n_win = alerts = points = 0
    per_file = {}
    for lab, scores in files:
        det = detections(scores, threshold, refractory) & lab.scored & (lab.window != -2)
        alerts += int(det.sum())
        points += int((lab.scored & (lab.window != -2)).sum())
        out = det & (lab.window == -1)
        fp += int(out.sum())
        f_raw = a_fp * float(lab.fp_value[out].sum())
        for k in lab.windows:
            hits = np.flatnonzero(det & (lab.window == k))
            if hits.size:
                tp += 1
                f_raw += a_tp * lab.tp_value[hits[0]]
            else:
                fn += 1
                f_raw -= a_fn
            n_win += 1
        raw += f_raw
        per_file[lab.name] = f_raw
    return Result(profile, threshold, raw, -a_fn * n_win, a_tp * n_win, tp, fp, fn, per_file, alerts, points)


def optimize(files: list[tuple[FileLabels, np.ndarray]], profile: str = "standard", refractory: int = 0) -> Result:
    """Sweep one threshold over every distinct score of the corpus; return the best (ties: the higher threshold).

    Exact and O(P log P): points are visited from the highest score down and the total is updated as each
    point becomes a detection (an outside point adds its FP cost; a window point can only move its window's
    value to an earlier, higher-valued row). With ``refractory`` see :func:`_sweep_refractory`.
    """
    if refractory:
        return _sweep_refractory(files, profile, refractory)
    a_tp, a_fp, a_fn = PROFILES[profile]
    parts_s, parts_w, parts_v, parts_k = [], [], [], []
    n_win = points = 0
    for lab, s in files:
        s = np.asarray(s, dtype=float)
        if len(s) != len(lab.window):
            raise ValueError(f"{lab.name}: {len(s)} scores for {len(lab.window)} rows")
        wins = lab.windows
        ids = {k: n_win + j for j, k in enumerate(wins)}
        n_win += len(wins)
        points += int((lab.scored & (lab.window != -2)).sum())
        idx = np.flatnonzero(lab.scored & np.isfinite(s) & (lab.window != -2))
        w = lab.window[idx]
        parts_s.append(s[idx])
        parts_w.append(np.array([ids.get(int(k), -1) for k in w], dtype=np.int64))
        parts_v.append(np.where(w >= 0, a_tp * lab.tp_value[idx], a_fp * lab.fp_value[idx]))
        parts_k.append(w)
    if not parts_s:
        raise ValueError("no files to score")
    s, wid, val, kind = (np.concatenate(p) for p in (parts_s, parts_w, parts_v, parts_k))
    order = np.argsort(-s, kind="stable")
    s, wid, val, kind = s[order], wid[order], val[order], kind[order]
    best_val = np.full(n_win, -np.inf)
    raw = -a_fn * n_win
    tp = fp = 0
    best = Result(profile, float("inf"), raw, -a_fn * n_win, a_tp * n_win, 0, 0, n_win, points=points)
    i, n = 0, len(s)
    while i < n:
        j = i
        while j < n and s[j] == s[i]:
            w = wid[j]
            if kind[j] == -1:
                raw += val[j]
                fp += 1
            elif best_val[w] == -np.inf:
                tp += 1
                raw += val[j] + a_fn
                best_val[w] = val[j]
            elif val[j] > best_val[w]:
                raw += val[j] - best_val[w]
                best_val[w] = val[j]
            j += 1
        if raw > best.raw + 1e-12:
            best = Result(profile, float(s[i]), raw, -a_fn * n_win, a_tp * n_win, tp, fp, n_win - tp,
                          alerts=j, points=points)
        i = j
    return best


MAX_ALERT_SHARE = 0.02  #: the refractory sweep stops once 2% of the rows score at or above the threshold


def _file_value(lab: FileLabels, wins, kept: np.ndarray, a_tp: float, a_fp: float, a_fn: float):
    """(raw, tp, fp, alerts) of one file (windows ``wins``) whose alerting rows are ``kept`` (sorted rows)."""
    kept = kept[lab.scored[kept] & (lab.window[kept] != -2)]
    w = lab.window[kept]
    out = kept[w == -1]
    raw = a_fp * float(lab.fp_value[out].sum())
    tp = 0
    for k in wins:
        hit = kept[w == k]
        if hit.size:
            tp += 1
            raw += a_tp * lab.tp_value[hit[0]]
        else:
            raw -= a_fn
    return raw, tp, int(out.size), int(kept.size)


def _sweep(files, profile: str, refractory: int):
    """Walk the threshold down over every distinct score (down to the one where :data:`MAX_ALERT_SHARE` of the
    rows reach it) when an alert silences the next ``refractory`` rows: the alerting rows are then no longer
    monotone in the threshold, so each time the threshold passes a row, that file's alerts are recomputed (exact).
    Yields ``(threshold, raw, tp, fp, alerts)`` after each distinct score."""
    import bisect

    a_tp, a_fp, a_fn = PROFILES[profile]
    wins = [lab.windows for lab, _ in files]
    state, s_all, f_all, i_all = [], [], [], []
    total_rows = 0
    for f, (lab, s) in enumerate(files):
        s = np.asarray(s, dtype=float)
        if len(s) != len(lab.window):
            raise ValueError(f"{lab.name}: {len(s)} scores for {len(lab.window)} rows")
        total_rows += len(s)
        idx = np.flatnonzero(np.isfinite(s))
        s_all.append(s[idx])
        f_all.append(np.full(idx.size, f))
        i_all.append(idx)
        state.append((-a_fn * len(lab.windows), 0, 0, 0))  # raw, tp, fp, alerts
    if not s_all:
        raise ValueError("no files to score")
    s, fi, ri = (np.concatenate(p) for p in (s_all, f_all, i_all))
    order = np.argsort(-s, kind="stable")
    s, fi, ri = s[order], fi[order], ri[order]
    limit = min(len(s), max(1, int(MAX_ALERT_SHARE * total_rows)))
    cands: list[list[int]] = [[] for _ in files]
    raw = sum(st[0] for st in state)
    i = 0
    while i < limit:
        j, touched = i, set()
        while j < len(s) and s[j] == s[i]:
            bisect.insort(cands[fi[j]], int(ri[j]))
            touched.add(int(fi[j]))
            j += 1
        for f in touched:
            kept, last = [], None
            for r in cands[f]:  # the same rule as detectors.refractory, on this file's candidate rows
                if last is None or r - last > refractory:
                    kept.append(r)
                    last = r
            new = _file_value(files[f][0], wins[f], np.asarray(kept, dtype=np.int64), a_tp, a_fp, a_fn)
            raw += new[0] - state[f][0]
            state[f] = new
        yield (float(s[i]), raw, sum(st[1] for st in state), sum(st[2] for st in state),
               sum(st[3] for st in state))
        i = j


def _sweep_refractory(files, profile: str, refractory: int) -> Result:
    """:func:`optimize` with a refractory period (see :func:`_sweep`)."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    n_win = sum(len(lab.windows) for lab, _ in files)
    points = sum(int((lab.scored & (lab.window != -2)).sum()) for lab, _ in files)
    best = Result(profile, float("inf"), -a_fn * n_win, -a_fn * n_win, a_tp * n_win, 0, 0, n_win, points=points)
    for th, raw, tp, fp, alerts in _sweep(files, profile, refractory):
        if raw > best.raw + 1e-12:
            best = Result(profile, th, raw, -a_fn * n_win, a_tp * n_win, tp, fp, n_win - tp, alerts=alerts,
                          points=points)
    return best


def threshold_for_fp_rate(files: list[tuple[FileLabels, np.ndarray]], fp_per_10k: float,
                          refractory: int = 0) -> float:
    """The lowest threshold whose false-positive rows stay at or below ``fp_per_10k`` per 10,000 scored rows
    (with ``refractory``: the last threshold, walking down from the top, before the false positives exceed it)."""
    if refractory:
        points = sum(int((lab.scored & (lab.window != -2)).sum()) for lab, _ in files)
        allowed = int(math.floor(fp_per_10k * points / 1e4 + 1e-9))
        last = float("inf")
        for th, _raw, _tp, fp, _alerts in _sweep(files, "standard", refractory):
            if fp > allowed:
                break
            last = th
        return last
    outside, points = [], 0
    for lab, s in files:
        s = np.asarray(s, dtype=float)
        keep = lab.scored & (lab.window != -2)
        points += int(keep.sum())
        o = s[keep & (lab.window == -1)]
        outside.append(o[np.isfinite(o)])
    o = np.sort(np.concatenate(outside))[::-1] if outside else np.array([])
    allowed = int(math.floor(fp_per_10k * points / 1e4 + 1e-9))
    if allowed >= len(o):
        return float(o[-1]) if len(o) else 0.0
    return float(np.nextafter(o[allowed], np.inf))


@dataclass
class HeldOut:
    """A leave-one-group-out evaluation: each group scored at the setting and threshold chosen on the others."""
    profile: str
    raw: float
    null: float
    perfect: float
    groups: dict  # group -> (chosen setting, Result on the held-out group)

    @property
    def score(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null) if self.perfect != self.null else 0.0

    @property
    def fp(self) -> int:
        return sum(r.fp for _, r in self.groups.values())

    @property
    def points(self) -> int:
        return sum(r.points for _, r in self.groups.values())

    @property
    def fp_per_10k(self) -> float:
        return 1e4 * self.fp / self.points if self.points else 0.0

    @property
    def hit_share(self) -> float:
        alerts = sum(r.alerts for _, r in self.groups.values())
        return (alerts - self.fp) / alerts if alerts else 0.0

    def line(self) -> str:
        return (f"{self.profile} leave-one-category-out score={self.score:.1f} fp={self.fp} "
                f"fp/10k={self.fp_per_10k:.2f} alerts_in_windows={100 * self.hit_share:.0f}%")


def leave_one_out(runs: dict, group_of, profile: str = "standard", refractory=None) -> HeldOut:
    """``runs``: setting -> list of (FileLabels, scores) over the same files. For each group (``group_of(name)``,
    e.g. the NAB category), the setting and the threshold are chosen on the *other* groups only (best normalised
    score there), and the held-out group is scored with them; the pooled score sums raw, null and perfect over the
    held-out groups. A group without windows is still scored (its false positives count)."""
    settings = list(runs)
    refr = refractory if callable(refractory) else (lambda key: refractory or 0)
    names = [lab.name for lab, _ in runs[settings[0]]]
    groups = sorted({group_of(n) for n in names})
    raw = null = perfect = 0.0
    out = {}
    for g in groups:
        best = None
        for key in settings:
            train = [f for f in runs[key] if group_of(f[0].name) != g]
            r = optimize(train, profile, refr(key))
            if best is None or r.score > best[1].score + 1e-12:
                best = (key, r)
        key, chosen = best
        test = [f for f in runs[key] if group_of(f[0].name) == g]
        r = score_at(test, chosen.threshold, profile, refr(key))
        raw, null, perfect = raw + r.raw, null + r.null, perfect + r.perfect
        out[g] = (key, r)
    return HeldOut(profile, raw, null, perfect, out)


def read_series(path: str | Path):
    """A NAB CSV as ``(timestamps datetime64[ns], values float)``."""
    import pandas as pd

    df = pd.read_csv(path)
    if "timestamp" not in df.columns or "value" not in df.columns:
        raise ValueError(f"{path}: expected columns timestamp,value; found {list(df.columns)}")
    return pd.to_datetime(df["timestamp"]).to_numpy("datetime64[ns]"), df["value"].to_numpy(float)

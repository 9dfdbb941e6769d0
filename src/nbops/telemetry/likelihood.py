"""HTM-style anomaly likelihood: a post-processing layer that turns any detector's raw scores into the probability
that the recent scores are unusual for this series, written from its published description.

Source: Ahmad, Lavin, Purdy and Agha (2017), "Unsupervised real-time anomaly detection for streaming data",
Neurocomputing 262, section "Computing anomaly likelihood": the raw scores of the last ``W`` rows are modelled as a
normal distribution (mean ``mu``, deviation ``sigma``), the mean of the last ``W'`` raw scores (``mu_short``) is
compared with it, and ``L = 1 - Q((mu_short - mu) / sigma)`` where ``Q`` is the normal tail; an anomaly is reported
when ``L >= 1 - epsilon`` (epsilon = 1e-5). The published NuPIC documentation of ``anomaly_likelihood`` gives the
remaining facts used here: a short window of 10 rows, a history of 8640 rows, a learning period of 288 rows and 100
estimation samples before the first estimate (0.5 until then), re-estimation every 100 rows, floors of 0.03 on the
mean and 0.0003 on the variance (so a perfectly quiet score stream does not make the slightest blip alarming), and
a filter that keeps only the first of consecutive rows in the red zone (the later ones are lowered to the
yellow zone, 1 - 1e-3). NAB scores HTM with the log-scaled likelihood
``log(1.0000000001 - L) / log(1e-10)`` (:func:`log_scale`), where the paper's threshold 1 - 1e-5 becomes 0.5.

The tail is one-sided, as in the paper: a short-term mean *below* the long-term one (a detector calmer than
usual) scores below 0.5, never high. Every value uses only raw scores up to its row (causal).
"""
from __future__ import annotations

import math

import numpy as np

from .detectors import Detector, check_direction, get

RED, YELLOW = 1.0 - 1e-5, 1.0 - 1e-3


def likelihood(raw, short: int = 10, window: int = 8640, learning: int = 288, estimation: int = 100,
               reestimate: int = 100, min_mean: float = 0.03, min_var: float = 0.0003,
               filtered: bool = True) -> np.ndarray:
    """The anomaly likelihood of every row of ``raw`` (NaN rows count as 0 and stay NaN)."""
    raw = np.asarray(raw, dtype=float)
    n = len(raw)
    bad = ~np.isfinite(raw)
    x = np.where(bad, 0.0, raw)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(n)
    lo = np.maximum(0, idx + 1 - short)
    avg = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)  # mu_short: mean of the last `short` raw scores
    out = np.full(n, 0.5)
    start = learning + estimation
    i = start
    while i < n:  # one estimate per block of `reestimate` rows, from the history before the block
        first = max(learning, i - window)  # the learning period is left out of the history
        hist = avg[first:i]
        mu = max(float(hist.mean()), min_mean)
        sigma = math.sqrt(max(float(hist.var()), min_var))
        stop = min(n, (i // reestimate + 1) * reestimate)
        z = (avg[i:stop] - mu) / sigma
        out[i:stop] = [1.0 - 0.5 * math.erfc(v / math.sqrt(2.0)) for v in z.tolist()]
        i = stop
    if filtered:
        red = out >= RED
        again = red & np.concatenate([[False], red[:-1]])
        out = np.where(again, YELLOW, out)
    out[bad] = np.nan
    return out


def log_scale(lik) -> np.ndarray:
    """NAB's log scale of a likelihood: 0.5 at 1 - 1e-5, 1.0 at 1 - 1e-10, about 0 at 0.5."""
    lik = np.asarray(lik, dtype=float)
    return np.log(1.0000000001 - lik) / math.log(1e-10)


class WithLikelihood(Detector):
    """A detector's scores (a registered name or an instance; default: CAD OSE's raw scores, without its rest
    period), turned into the log-scaled anomaly likelihood (0.5 = the paper's 1 - 1e-5 threshold)."""
    causal = True
    thresholds = {"low": 0.6, "medium": 0.5, "high": 0.4}

    def __init__(self, base: str | Detector | None = None, **kw):
        if base is None:
            from .cad_ose import CadOse

            base = CadOse(rest_period=None)
        self.base = get(base) if isinstance(base, str) else base
        self.name = f"{self.base.name}+likelihood"
        self.causal = self.base.causal
        self.kw = kw

    def score(self, t, y, direction="both"):
        direction = check_direction(direction)
        raw = self.base.score(t, y, direction)
        return log_scale(likelihood(raw, **self.kw))

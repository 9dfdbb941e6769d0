"""Small parsers shared by the sources and the magic: durations (``15s``, ``1h``, ``2d``), points in time
(ISO 8601, unix seconds, ``now``, ``now-1h``) and Prometheus-style label strings (``instance="a",job="b"``)."""
from __future__ import annotations

import re
import time as _time

from ..errors import TelemetryError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def duration(text, what: str = "duration") -> float:
    """Seconds in ``'90s'``, ``'1h30m'``, ``'2d'``; a number (int or float) is seconds. Text needs its unit: a
    bare ``'5'`` could mean seconds or minutes, so it is refused with the spellings that say which."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    try:
        n = float(s)
    except ValueError:
        pass
    else:
        if n == 0:
            return 0.0
        raise TelemetryError(f"{what} {text!r}: say the unit, e.g. {s}s, {s}m, {s}h or {s}d (seconds, minutes, "
                             f"hours, days).")
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise TelemetryError(f"{what} {text!r}: write a duration like 30s, 5m, 1h, 2d or 1h30m.")
    return total


def instant(text, now: float | None = None, what: str = "time") -> float:
    """Unix seconds for ``'now'``, ``'now-1h'``, unix seconds, or an ISO 8601 time (UTC unless it says)."""
    now = _time.time() if now is None else now
    if text is None:
        return now
    if isinstance(text, (int, float)):
        return float(text)
    if hasattr(text, "timestamp"):  # datetime / pandas.Timestamp
        import pandas as pd

        ts = pd.Timestamp(text)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp()
    s = str(text).strip()
    if s.lower() == "now":
        return now
    m = re.fullmatch(r"now\s*-\s*(\S+)", s, flags=re.I)
    if m:
        return now - duration(m.group(1), what)
    try:
        return float(s)
    except ValueError:
        pass
    import pandas as pd

    try:
        ts = pd.Timestamp(s)
    except (ValueError, TypeError) as exc:
        raise TelemetryError(f"{what} {text!r}: write an ISO time like 2024-05-01T12:00, unix seconds, or "
                             f"now-1h.") from exc
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp()


def window(last=None, start=None, end=None, now: float | None = None) -> tuple[float | None, float | None]:
    """``(start, end)`` in unix seconds from ``--last`` or ``--start/--end`` (either may stay open: None)."""
    if last is not None and start is not None:
        raise TelemetryError("Give either --last or --start/--end, not both.")
    now = _time.time() if now is None else now
    e = instant(end, now, "--end") if end is not None else None
    if last is not None:
        e = e if e is not None else now
        return e - duration(last, "--last"), e
    s = instant(start, now, "--start") if start is not None else None
    if s is not None and e is not None and s > e:
        raise TelemetryError("--start is after --end; swap them.")
    return s, e


def format_labels(labels: dict) -> str:
    """Canonical label string: sorted ``k="v"`` pairs joined by commas ('' when there are none)."""
    def esc(v):
        return str(v).replace("\\", "\\\\").replace('"', '\\"')

    return ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items()))


_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_labels(text: str) -> dict:
    """Inverse of :func:`format_labels` (also reads ``k=v`` without quotes)."""
    out, pos, text = {}, 0, text or ""
    while pos < len(text):
        m = _PAIR.match(text, pos)
        if not m:
            for part in text[pos:].split(","):
                if "=" in part:
                    k, v = part.split("=", 1)
                    out[k.strip()] = v.strip().strip('"')
            break
        out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
        pos = m.end()
    return out

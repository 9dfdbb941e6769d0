"""The ``prometheus`` source: PromQL over Prometheus's HTTP API (``/api/v1/query_range``, ``/api/v1/query``).

- URL: ``url=`` / ``--url``, else ``NBOPS_PROMETHEUS_URL``.
- Auth: ``NBOPS_PROMETHEUS_TOKEN`` (``Authorization: Bearer ...``), else ``NBOPS_PROMETHEUS_USER`` +
  ``NBOPS_PROMETHEUS_PASSWORD`` (basic auth).
- Prometheus refuses a range query of more than 11,000 points per series, so a long range is split into chunks
  of at most :data:`MAX_POINTS` steps that do not overlap, pulled one after the other (a tqdm bar when there are
  several) and stitched back into one frame.
- Every failure is a :class:`~nbops.errors.TelemetryError` naming the URL and the query: Prometheus's own error
  text for bad PromQL, and a sentence for an unreachable server, a timeout, an empty result (naming the selector
  that matched no series, asked of ``/api/v1/series``, or saying the expression filtered them all out) or a chunk
  that failed (then nothing is returned: no half frame, no empty plot).
"""
from __future__ import annotations

import logging
import math
import os

from ..errors import TelemetryError
from .timeparse import format_labels

log = logging.getLogger("nbops")
MAX_POINTS = 11_000  # Prometheus's limit per series and query
# Without --query: node-exporter's CPU and memory use per instance, named as the local sampler names them.
DEFAULT_QUERIES = (
    'label_replace(100 * (1 - avg by (instance, job) (rate(node_cpu_seconds_total{mode="idle"}[5m]))), '
    '"__name__", "cpu_utilization_percentage", "", "")',
    'label_replace(100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes), '
    '"__name__", "memory_usage_percentage", "", "")',
)
CHUNK_POINTS = 10_000


def resolve_url(url: str | None) -> str:
    url = url or os.environ.get("NBOPS_PROMETHEUS_URL")
    if not url:
        raise TelemetryError("No Prometheus URL: pass --url http://host:9090 (url=...) or set NBOPS_PROMETHEUS_URL.")
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def _auth_kwargs() -> dict:
    token = os.environ.get("NBOPS_PROMETHEUS_TOKEN")
    if token:
        return {"headers": {"Authorization": f"Bearer {token}"}}
    user = os.environ.get("NBOPS_PROMETHEUS_USER")
    if user:
        return {"auth": (user, os.environ.get("NBOPS_PROMETHEUS_PASSWORD", ""))}
    return {}


def _get(url: str, path: str, params: dict, query: str, timeout: float) -> dict:
    import requests

    try:
        r = requests.get(f"{url}{path}", params=params, timeout=timeout, **_auth_kwargs())
    except requests.Timeout as exc:
        raise TelemetryError(f"Prometheus at {url} did not answer within {timeout:g} s for {query!r}; narrow the "
                             f"range, raise --step or the timeout.", url=url, query=query) from exc
    except requests.RequestException as exc:
        raise TelemetryError(f"Cannot reach Prometheus at {url} ({type(exc).__name__}); check --url or "
                             f"NBOPS_PROMETHEUS_URL and that the server runs.", url=url, query=query) from exc
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code in (401, 403):
        raise TelemetryError(f"Prometheus at {url} refused the request (HTTP {r.status_code}); set "
                             f"NBOPS_PROMETHEUS_TOKEN or NBOPS_PROMETHEUS_USER/NBOPS_PROMETHEUS_PASSWORD.",
                             url=url, query=query, status=r.status_code)
    if not isinstance(body, dict) or body.get("status") != "success":
        err = (body or {}).get("error") if isinstance(body, dict) else None
        kind = (body or {}).get("errorType") if isinstance(body, dict) else None
        if err:
            raise TelemetryError(f"Prometheus rejected {query!r}: {err} ({kind}).", url=url, query=query,
                                 status=r.status_code, prometheus_error=err)
        raise TelemetryError(f"{url}{path} answered HTTP {r.status_code} without a Prometheus API response; is "
                             f"this a Prometheus server?", url=url, query=query, status=r.status_code)
    for w in body.get("warnings") or []:
        log.warning("nbops: Prometheus warns about %r: %s", query, w)
    return body["data"]


def chunks(start: float, end: float, step: float, points: int = CHUNK_POINTS) -> list[tuple[float, float]]:
    """Split ``[start, end]`` on the step grid into ranges of at most ``points`` evaluation points each; the
    chunks cover exactly the points of the whole range, none twice."""
    if step <= 0:
        raise TelemetryError("--step must be positive, e.g. --step 15s.")
    if end < start:
        raise TelemetryError("--start is after --end; swap them.")
    total = int(math.floor((end - start) / step + 1e-9)) + 1
    out = []
    for first in range(0, total, points):
        last = min(first + points, total) - 1
        out.append((start + first * step, start + last * step))
    return out


def query_range(query: str, start: float, end: float, step: float, url: str | None = None, timeout: float = 30.0,
                progress: bool | None = None):
    """A range query as a tidy frame (timestamp, metric, labels, value); long ranges are chunked and stitched."""
    import pandas as pd

    url = resolve_url(url)
    parts = chunks(start, end, step)
    series: dict[tuple[str, str], tuple[list, list]] = {}
    bar = None
    if progress is not False and len(parts) > 1:
        from ..display.progress import tqdm

        bar = tqdm(total=len(parts), desc="prometheus", unit="chunk", leave=False, progress=progress)
    try:
        for i, (a, b) in enumerate(parts):
            try:
                data = _get(url, "/api/v1/query_range",
                            {"query": query, "start": _fmt(a), "end": _fmt(b), "step": _fmt(step)}, query, timeout)
            except TelemetryError as exc:
                if len(parts) > 1:
                    raise TelemetryError(f"{exc} (chunk {i + 1} of {len(parts)}, {_iso(a)} to {_iso(b)}; nothing "
                                         f"was kept)", **exc.fields) from exc
                raise
            for s in data.get("result", []):
                key = _key(s.get("metric", {}), query)
                ts, vs = series.setdefault(key, ([], []))
                for t, v in s.get("values", []):
                    ts.append(float(t))
                    vs.append(float(v))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not series:
        raise _nothing(url, query, start, end, timeout)
    frames = []
    for (metric, labels), (ts, vs) in series.items():
        frames.append(pd.DataFrame({"timestamp": ts, "metric": metric, "labels": labels, "value": vs}))
    df = pd.concat(frames, ignore_index=True).drop_duplicates(["metric", "labels", "timestamp"], keep="last")
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s")
    return df.sort_values(["metric", "labels", "timestamp"], kind="stable").reset_index(drop=True)


def query_instant(query: str, time: float | None = None, url: str | None = None, timeout: float = 30.0):
    """An instant query (vector or scalar) as a tidy frame."""
    import pandas as pd

    url = resolve_url(url)
    params = {"query": query}
    if time is not None:
        params["time"] = _fmt(time)
    data = _get(url, "/api/v1/query", params, query, timeout)
    rows = []
    rtype = data.get("resultType")
    if rtype == "vector":
        for s in data.get("result", []):
            metric, labels = _key(s.get("metric", {}), query)
            rows.append((float(s["value"][0]), metric, labels, float(s["value"][1])))
    elif rtype in ("scalar", "string"):
        t, v = data["result"]
        rows.append((float(t), query, "", float(v)))
    elif rtype == "matrix":
        for s in data.get("result", []):
            metric, labels = _key(s.get("metric", {}), query)
            rows += [(float(t), metric, labels, float(v)) for t, v in s.get("values", [])]
    if not rows:
        import time as _time

        t = _time.time() if time is None else time
        raise _nothing(url, query, t - 300.0, t, timeout)
    df = pd.DataFrame(rows, columns=["timestamp", "metric", "labels", "value"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s")
    return df


def fetch(query=None, start=None, end=None, step=None, url=None, timeout: float = 30.0,
          progress: bool | None = None, **_ignored):
    """The ``prometheus`` source: one or more PromQL queries over ``[start, end]`` (unix seconds)."""
    import pandas as pd

    queries = [query] if isinstance(query, str) else list(query or []) or list(DEFAULT_QUERIES)
    if step is None:
        step = max(1.0, (end - start) / 500)  # ~500 points per series unless asked otherwise
    frames = [query_range(q, start, end, step, url=url, timeout=timeout, progress=progress) for q in queries]
    return pd.concat(frames, ignore_index=True)


#: words of PromQL that are not metric names (keywords, and the modifiers followed by a label list)
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
             "atan2", "inf", "nan"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(query: str) -> list[str]:
    """The vector selectors of a PromQL expression, as written (``name``, ``name{...}``, ``{...}``): what its
    result is made of. Strings, range durations (``[5m]``), numbers, function and aggregation names, keywords and
    the label lists of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` are not selectors."""
    import re

    out, i, n = [], 0, len(query)
    ident = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
    number = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?[a-zA-Z]*")

    def close(j: int, opening: str, closing: str) -> int:  # the index after the bracket closing query[j]
        depth, k = 0, j
        while k < n:
            c = query[k]
            if c in "\"'`":
                k = _skip_string(query, k)
                continue
            depth += (c == opening) - (c == closing)
            k += 1
            if depth == 0:
                break
        return k

    while i < n:
        c = query[i]
        if c in "\"'`":
            i = _skip_string(query, i)
        elif c == "[":
            i = close(i, "[", "]")
        elif c == "{":
            j = close(i, "{", "}")
            out.append(query[i:j])
            i = j
        elif ident.match(query, i):
            word = ident.match(query, i).group()
            j = i + len(word)
            rest = query[j:].lstrip()
            if word.lower() in _LABEL_LISTS and rest.startswith("("):
                j = close(len(query) - len(rest), "(", ")")  # by (instance, job): labels, not metrics
            elif rest.startswith("{"):
                k = len(query) - len(rest)
                j = close(k, "{", "}")
                out.append(word + query[k:j])
            elif (not rest.startswith("(") and not re.match(r"(?i)(by|without)\s*\(", rest)  # sum by (..) (..)
                  and word.lower() not in _KEYWORDS):
                out.append(word)
            i = j
        elif c.isdigit() or (c == "." and query[i + 1:i + 2].isdigit()):
            i = number.match(query, i).end()  # 1e3, 0x1f, 5m (offset, @)
        else:
            i += 1
    return list(dict.fromkeys(out))


def _skip_string(query: str, i: int) -> int:
    """The index after the string literal that starts at ``query[i]``."""
    quote, k = query[i], i + 1
    while k < len(query) and query[k] != quote:
        k += 2 if query[k] == "\\" and quote != "`" else 1
    return k + 1


def _nothing(url: str, query: str, start: float, end: float, timeout: float) -> TelemetryError:
    """The one line for a query that returned no series: the first of its selectors that matches no series in
    ``[start, end]`` (asked of ``/api/v1/series``), else that the expression itself filtered them all out."""
    window = f"{_iso(start)} to {_iso(end)}"
    for sel in selectors(query):
        try:
            found = _get(url, "/api/v1/series", {"match[]": sel, "start": _fmt(start), "end": _fmt(end)}, query,
                         timeout)
        except TelemetryError:
            break  # the series API is not there or refused: say what is known
        if not found:
            return TelemetryError(f"selector {sel} matched no series on {url} ({window}): check the metric "
                                  f"name/labels, or widen --last / --start.", url=url, query=query, selector=sel)
    else:
        if selectors(query):
            return TelemetryError(f"{query!r} returned no series on {url} ({window}) although its selectors match "
                                  f"series: the expression filters them all out (a comparison, unless, a range "
                                  f"with fewer than two samples).", url=url, query=query)
    return TelemetryError(f"Prometheus at {url} returned no series for {query!r} ({window}); check the metric name "
                          f"and labels, or widen --last / --start.", url=url, query=query)


def _key(metric: dict, query: str) -> tuple[str, str]:
    m = dict(metric)
    name = m.pop("__name__", None) or query
    return name, format_labels(m)


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _iso(x: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(x, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

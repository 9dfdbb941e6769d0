"""Telemetry sources: a small registry. Each source returns one tidy frame with columns
``timestamp`` (UTC, tz-naive datetime64), ``metric`` (str), ``labels`` (canonical ``k="v",...`` string) and
``value`` (float).

- ``local``: this host and kernel (:mod:`nbops.telemetry.local`);
- ``prometheus``: PromQL over the HTTP API (:mod:`nbops.telemetry.prometheus`);
- ``frame``: a DataFrame or CSV the user already has (tidy, or wide with one column per metric).
"""
from __future__ import annotations

from typing import Callable

from ..errors import TelemetryError

_SOURCES: dict[str, Callable] = {}
COLUMNS = ["timestamp", "metric", "labels", "value"]
_TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime")


def register(name: str, fn: Callable) -> None:
    """``fn(query=, start=, end=, step=, url=, timeout=, progress=, data=)`` -> tidy frame."""
    _SOURCES[name] = fn


def get(name: str) -> Callable:
    if name not in _SOURCES:
        raise TelemetryError(f"--source {name!r}: use local, prometheus, or the name of a DataFrame variable / "
                             f"a CSV path.", source=name)
    return _SOURCES[name]


def names() -> list[str]:
    return sorted(_SOURCES)


def _local(**kw):
    from . import local

    return local.fetch(**kw)


def _prometheus(**kw):
    from . import prometheus

    return prometheus.fetch(**kw)


def tidy(data, name: str = "value"):
    """Normalise a user's frame (or CSV path) to the tidy layout.

    Accepted: tidy (timestamp, metric, value[, labels]) -- ``labels`` may hold dicts or strings; or wide
    (a time column or DatetimeIndex plus numeric columns, one per metric; text columns become labels).
    """
    import pandas as pd

    from .timeparse import format_labels

    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        import os

        if not os.path.exists(data):
            raise TelemetryError(f"--source {data!r} is neither a variable in the notebook nor an existing CSV.",
                                 source=str(data))
        try:
            data = pd.read_csv(data)
        except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
            raise TelemetryError(f"Cannot read {data!r} as CSV: {exc}", source=str(data)) from exc
    if isinstance(data, pd.Series):
        data = data.to_frame(name=data.name or name)
    if not isinstance(data, pd.DataFrame):
        raise TelemetryError(f"--source: expected a pandas DataFrame or a CSV path, got {type(data).__name__}.")
    df = data.copy()
    if not all(isinstance(c, str) for c in df.columns):  # MultiIndex / integer labels: named as data versions do
        from ..data.fingerprinting import column_label

        df.columns = [column_label(c) for c in df.columns]
    tcol = next((c for c in df.columns if str(c).lower() in _TIME_NAMES), None)
    if tcol is None:
        if isinstance(df.index, pd.DatetimeIndex):
            df = df.reset_index(names="timestamp")
            tcol = "timestamp"
        else:
            raise TelemetryError(f"The frame has no time column: name one of {', '.join(_TIME_NAMES)} or use a "
                                 f"DatetimeIndex (columns: {list(df.columns)[:8]}).")
    try:
        ts = pd.to_datetime(df[tcol], utc=True)
    except (ValueError, TypeError) as exc:
        raise TelemetryError(f"Column {tcol!r} does not parse as times: {exc}", column=tcol) from exc
    df[tcol] = ts.dt.tz_localize(None)
    df = df.rename(columns={tcol: "timestamp"})
    if {"metric", "value"} <= set(df.columns):
        out = df[["timestamp", "metric", "value"]].copy()
        labels = df["labels"] if "labels" in df.columns else ""
        if "labels" in df.columns:
            labels = labels.map(lambda v: format_labels(v) if isinstance(v, dict) else ("" if pd.isna(v) else str(v)))
        out["labels"] = labels
        out["metric"] = out["metric"].astype(str)
    else:
        numeric = [c for c in df.columns if c != "timestamp" and pd.api.types.is_numeric_dtype(df[c])]
        text = [c for c in df.columns if c != "timestamp" and c not in numeric]
        if not numeric:
            raise TelemetryError("The frame has no numeric column to analyse; give a tidy frame (timestamp, "
                                 "metric, value) or a wide one with numeric columns.")
        out = df.melt(id_vars=["timestamp", *text], value_vars=numeric, var_name="metric", value_name="__value__")
        out = out.rename(columns={"__value__": "value"})
        out["labels"] = [format_labels({c: r[c] for c in text}) for _, r in out[text].iterrows()] if text else ""
        out["metric"] = out["metric"].astype(str)
    try:
        out["value"] = pd.to_numeric(out["value"]).astype(float)
    except (ValueError, TypeError) as exc:
        raise TelemetryError(f"Column 'value' is not numeric: {exc}", column="value") from exc
    out = out[COLUMNS].dropna(subset=["timestamp"])
    return out.sort_values(["metric", "labels", "timestamp"], kind="stable").reset_index(drop=True)


def _frame(data=None, **_kw):
    if data is None:
        raise TelemetryError("The frame source needs data=<DataFrame or CSV path>.")
    return tidy(data)


register("local", _local)
register("prometheus", _prometheus)
register("frame", _frame)

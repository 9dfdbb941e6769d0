"""Generic views every domain builds its results from: tables from DataFrames, figures, in-place live views.

Each helper comes in the three forms :func:`nbops.display.bundle` puts into one MIME bundle -- a widget for a
live JupyterLab / VS Code frontend, HTML for papermill outputs, nbconvert exports and frontends without a widget
manager, text for consoles -- so a result object's ``widget()`` / ``_repr_html_`` / ``__repr__`` are one-liners:

    class DriftReport:
        def to_frame(self): ...
        def __repr__(self):       return frame_text(self.to_frame(), "drift report")
        def _repr_html_(self):    return frame_html(self.to_frame(), "drift report", highlight="drifted")
        def widget(self):         return frame_widget(self.to_frame(), "drift report", highlight="drifted")

pandas, matplotlib and ipywidgets are imported inside the functions (``%load_ext nbops`` stays fast).
Every widget carries a CSS class (``nbops-table``, ``nbops-figure``, ``nbops-live``, plus the caller's) so
tests and users' stylesheets can find it.
"""
from __future__ import annotations

import base64
import html
import io
import logging
import threading
from typing import Any, Callable

log = logging.getLogger("nbops")

MAX_ROWS = 50
# Plain cells: JupyterLab, VS Code and nbconvert style rendered tables themselves; attributes (not CSS) keep
# padding and row rules where no stylesheet applies (e.g. a browser opening an exported fragment).
_TABLE_ATTRS = "cellpadding='3' rules='rows' style='border-collapse:collapse'"
_HIGHLIGHT = "background:#ffebe9"
_NOWRAP = " style='white-space:nowrap'"  # short cells (times, numbers) never break


def iso_ms(ms) -> str | None:
    """An MLflow timestamp (ms since the epoch) as ISO 8601 in UTC; None stays None."""
    from datetime import datetime, timezone

    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "" if v is None else str(v)


def _rows(df, max_rows: int):
    n = len(df)
    return (df if n <= max_rows else df.head(max_rows)), max(0, n - max_rows)


# ---- tables -----------------------------------------------------------------------------------------------

def frame_html(df, title: str | None = None, max_rows: int = MAX_ROWS, highlight: str | None = None,
               css_class: str = "", index: bool = False, links: dict | None = None) -> str:
    """``df`` as a compact HTML table; rows whose boolean column ``highlight`` is true (or whose entry in a
    ``highlight`` list of booleans is) are tinted; cells of a
    column in ``links`` (``{column: {value: url}}``) are links.

    At most ``max_rows`` rows; a footer says how many were left out.
    """
    from .links import a

    links = links or {}
    if index:
        df = df.reset_index()
    shown, hidden = _rows(df, max_rows)
    cols = list(shown.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    marks = list(highlight) if highlight is not None and not isinstance(highlight, str) else None
    for i, rec in enumerate(shown.itertuples(index=False)):
        row = dict(zip(cols, rec))
        tint = marks[i] if marks is not None else (highlight and bool(row.get(highlight)))
        style = f" style='{_HIGHLIGHT}'" if tint else ""
        body.append(f"<tr{style}>" + "".join(
            f"<td{_NOWRAP if len(_cell(row[c])) <= 24 else ''}>"
            f"{a(links[c].get(row[c]), _cell(row[c])) if c in links else html.escape(_cell(row[c]))}</td>"
            for c in cols) + "</tr>")
    cap = (f"<caption style='text-align:left;font-weight:bold;padding-bottom:4px'>{html.escape(title)}</caption>"
           if title else "")
    foot = (f"<tr><td colspan='{len(cols)}' style='text-align:left;color:#57606a'>... {hidden} more "
            f"rows (to_frame() has them all)</td></tr>" if hidden else "")
    if not len(df):
        foot = f"<tr><td colspan='{max(1, len(cols))}' style='text-align:left'>(no rows)</td></tr>"
    return (f"<table class='nbops-table {html.escape(css_class)}' {_TABLE_ATTRS}>{cap}"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}{foot}</tbody></table>")


def frame_text(df, title: str | None = None, max_rows: int = MAX_ROWS, index: bool = False) -> str:
    """``df`` as aligned text (for consoles and ``__repr__``)."""
    import pandas as pd

    shown, hidden = _rows(df, max_rows)
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.max_colwidth", 40):
        body = shown.to_string(index=index) if len(df) else "(no rows)"
    lines = ([title] if title else []) + [body] + ([f"... {hidden} more rows"] if hidden else [])
    return "\n".join(lines)


def frame_widget(df, title: str | None = None, max_rows: int = MAX_ROWS, highlight: str | None = None,
                 css_class: str = "", index: bool = False, links: dict | None = None):
    """An interactive table: sort by any column (ascending or descending) and show every row on demand.

    Sorting and paging re-render in the kernel; the frame itself is not changed.
    """
    import ipywidgets as w

    if index:
        df = df.reset_index()
    table = w.HTML(frame_html(df, title, max_rows, highlight, css_class, links=links))
    table.add_class("nbops-table-body")
    controls = []
    sort = w.Dropdown(options=[("(as computed)", None)] + [(str(c), c) for c in df.columns], value=None,
                      description="sort by", layout=w.Layout(width="260px"))
    desc = w.ToggleButton(value=False, description="descending", layout=w.Layout(width="110px"))
    every = w.ToggleButton(value=False, description=f"all {len(df)} rows", layout=w.Layout(width="110px"))

    def render(_=None):
        view = df
        if sort.value is not None:
            view = df.sort_values(sort.value, ascending=not desc.value, kind="stable", na_position="last")
        table.value = frame_html(view, title, len(df) if every.value else max_rows, highlight, css_class,
                                 links=links)

    for c in (sort, desc, every):
        c.observe(render, names="value")
    if len(df) > 1:
        controls += [sort, desc]
    if len(df) > max_rows:
        controls.append(every)
    box = w.VBox(([w.HBox(controls)] if controls else []) + [table])
    box.add_class("nbops-table")
    if css_class:
        box.add_class(css_class)
    return box


class FrameView:
    """Any DataFrame as a result object: ``show(FrameView(df, "runs"))`` sends table (widget) + HTML + text."""

    def __init__(self, df, title: str | None = None, max_rows: int = MAX_ROWS, highlight: str | None = None,
                 css_class: str = ""):
        self.df, self.title, self.max_rows, self.highlight, self.css_class = df, title, max_rows, highlight, css_class

    def to_frame(self):
        return self.df

    def __repr__(self) -> str:
        return frame_text(self.df, self.title, self.max_rows)

    def _repr_html_(self) -> str:
        return frame_html(self.df, self.title, self.max_rows, self.highlight, self.css_class)

    def widget(self):
        return frame_widget(self.df, self.title, self.max_rows, self.highlight, self.css_class)


def kv_html(rows: list[tuple[str, str]], title: str | None = None, css_class: str = "nbops") -> str:
    """A two-column label/value table (values are HTML, already escaped): the house style for small results."""
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em;vertical-align:top'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{v}</td></tr>" for k, v in rows)
    cap = f"<caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>" if title else ""
    return f"<table class='{css_class}'>{cap}{body}</table>"


def kv_text(rows: list[tuple[str, str]], title: str | None = None) -> str:
    """The same rows as aligned text."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(([title] if title else []) + [f"  {k:<{width}}  {v}" for k, v in rows])


# ---- figures ----------------------------------------------------------------------------------------------

def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure rendered to PNG bytes (the figure is left open; close it if you made it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def figure_html(fig_or_png, alt: str = "", css_class: str = "") -> str:
    """An ``<img>`` holding the figure inline (base64 PNG): survives nbconvert exports and papermill outputs."""
    png = fig_or_png if isinstance(fig_or_png, (bytes, bytearray)) else figure_png(fig_or_png)
    data = base64.b64encode(png).decode("ascii")
    return (f"<img class='nbops-figure {html.escape(css_class)}' alt='{html.escape(alt)}' "
            f"style='max-width:100%' src='data:image/png;base64,{data}'/>")


# ---- views that change in place ----------------------------------------------------------------------------

def _static_bundle(obj) -> dict:
    """HTML + text of ``obj`` (no widget): what an Output widget or a display update carries."""
    data = {"text/plain": repr(obj)}
    rh = getattr(obj, "_repr_html_", None)
    if rh is not None:
        data["text/html"] = rh()
    return data


class LiveView:
    """A view that redraws itself in place, e.g. ``%telemetry --live``.

    ``live = LiveView(); live.show(first)`` displays it; ``live.update(obj)`` -- callable from any thread --
    replaces what it shows with ``obj``'s HTML/text. In a kernel the view is an ipywidgets ``Output`` (updated
    through its comm, so updates reach JupyterLab even after the cell finished) *and* a display with an id, so
    frontends without widgets (papermill output, exports) keep the latest state. ``live.every(seconds, make)``
    calls ``make()`` on a daemon thread and shows its result until :meth:`stop`; ``make`` returning ``None``
    skips a tick, an exception stops the loop and is shown in the view.
    """

    def __init__(self, css_class: str = ""):
        self.css_class = css_class
        self._out = None
        self._handle = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.updates = 0
        self.last = None

    def _widget(self):
        from . import headless_reason, in_kernel
        if self._out is None and in_kernel() and headless_reason() is None:  # no widget in saved headless outputs
            try:
                import ipywidgets as w
                self._out = w.Output()
                self._out.add_class("nbops-live")
                if self.css_class:
                    self._out.add_class(self.css_class)
            except ImportError:  # pragma: no cover - ipywidgets is a dependency
                self._out = None
        return self._out

    def _data(self, obj) -> dict:
        data = _static_bundle(obj)
        out = self._widget()
        if out is not None:
            out.outputs = ({"output_type": "display_data", "data": dict(data), "metadata": {}},)
            data.update({k: v for k, v in out._repr_mimebundle_().items() if k != "text/plain"})
        return data

    def show(self, obj) -> None:
        """Display the view (once) showing ``obj``."""
        import sys
        self.last = obj
        ip = sys.modules.get("IPython")
        if ip is None or ip.get_ipython() is None:
            print(repr(obj))
            return
        from IPython.display import display
        self._handle = display(self._data(obj), raw=True, display_id=True)

    def update(self, obj) -> None:
        """Show ``obj`` instead of what the view shows now."""
        self.last = obj
        self.updates += 1
        if self._handle is None:
            self.show(obj)
            return
        data = self._data(obj)
        try:
            self._handle.update(data, raw=True)
        except Exception as exc:  # noqa: BLE001 - the widget already carries the update
            log.debug("nbops: display update failed: %s", exc)

    def every(self, seconds: float, make: Callable[[], Any]) -> "LiveView":
        """Refresh from ``make()`` every ``seconds`` on a daemon thread (the kernel stays free)."""
        if seconds <= 0:
            from ..errors import NbopsError
            raise NbopsError(f"A live view needs a refresh interval above 0 seconds, not {seconds}.")
        self.stop()
        self._stop = threading.Event()

        def loop(stop=self._stop):
            while not stop.wait(seconds):
                try:
                    obj = make()
                except Exception as exc:  # noqa: BLE001 - shown, then the loop ends
                    log.warning("nbops: live view stopped: %s", exc)
                    self.update(_Stopped(f"live view stopped: {exc}"))
                    return
                if obj is not None and not stop.is_set():
                    self.update(obj)

        self._thread = threading.Thread(target=loop, name="nbops-live", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the refresh thread (the view keeps its last state)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None


class _Stopped:
    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        return f"<div class='nbops-live-stopped' style='color:#cf222e'>{html.escape(self.message)}</div>"


# ---- tables with an action (e.g. the promotion picker) ----------------------------------------------------

def action_table(df, key: str, label: str, on_action: Callable[[Any], Any], title: str | None = None,
                 max_rows: int = MAX_ROWS, highlight: str | None = None, css_class: str = "",
                 choices: list | None = None, extra: list | None = None, links: dict | None = None):
    """A table with a chooser of ``df[key]`` values (or ``choices``: ``(label, key)`` pairs) and a button:
    clicking calls ``on_action(chosen_key)`` in the kernel and shows what it returns (a result object: its HTML)
    or the NbopsError it raised (with the ``result`` it carries, if any), under the table. ``extra`` widgets
    (options the action reads) go below the button. The button is disabled while the action runs, so a double
    click does not act twice. The box exposes ``.chooser``, ``.button`` and ``.result``.
    """
    import ipywidgets as w

    from ..errors import NbopsError

    if key not in df.columns:
        raise NbopsError(f"action_table: {key!r} is not a column of the table (columns: {', '.join(map(str, df.columns))}).")
    table = frame_widget(df, title, max_rows, highlight, links=links)
    keys = choices if choices is not None else [str(k) for k in df[key].tolist()]
    choose = w.Dropdown(options=keys, description=str(key), layout=w.Layout(width="420px"))
    button = w.Button(description=label, button_style="primary", disabled=not keys)
    button.add_class("nbops-action")
    result = w.HTML()
    result.add_class("nbops-action-result")

    def click(_):
        button.disabled = True
        try:
            out = on_action(choose.value)
            result.value = out._repr_html_() if hasattr(out, "_repr_html_") else html.escape(repr(out))
        except NbopsError as exc:
            carried = getattr(exc, "result", None)
            result.value = ((carried._repr_html_() if hasattr(carried, "_repr_html_") else "")
                            + f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>")
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged for the developer
            log.exception("nbops: %s failed", label)
            result.value = f"<span style='color:#cf222e'>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>"
        finally:
            button.disabled = False

    button.on_click(click)
    box = w.VBox([table, w.HBox([choose, button]), *(extra or []), result])
    box.chooser, box.button, box.result = choose, button, result
    box.add_class("nbops-action-table")
    if css_class:
        box.add_class(css_class)
    return box

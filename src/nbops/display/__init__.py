"""How results show themselves: renderers only (tables from frames, figures, live views, action tables, links).

Every result object has ``_repr_html_`` (complete, readable, self-contained HTML: what papermill outputs and
nbconvert exports show) and a text ``__repr__``. A result that is better interactive also has ``widget()``:
:func:`show` adds the widget view to the same bundle only when a person can use it -- a Jupyter frontend is
attached (not papermill, nbclient or ``nbops run``) -- so a saved headless notebook never carries a widget
that an export would render blank.
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("nbops")


def _shell():
    ip = sys.modules.get("IPython")
    return ip.get_ipython() if ip else None


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget frontend may be attached)."""
    shell = _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def headless_reason() -> str | None:
    """Why no person is looking at this kernel's outputs live, or None when a notebook frontend is attached."""
    from ..config import ENV_NOTEBOOK

    if os.environ.get(ENV_NOTEBOOK):
        return "this kernel runs under `nbops run`"
    shell = _shell()
    if shell is None:
        return "not running in IPython"
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return "not running in a Jupyter kernel"
    if not getattr(kernel, "_allow_stdin", True):  # papermill / nbclient execute with allow_stdin=False
        return "the kernel runs headless (papermill or nbclient)"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return "ipywidgets is not installed"
    return None


def bundle(obj) -> dict:
    """The MIME bundle for ``obj``: text, HTML, and the widget view when someone can interact with it."""
    data = {"text/plain": repr(obj)}
    html = getattr(obj, "_repr_html_", None)
    if html is not None:
        data["text/html"] = html()
    make_widget = getattr(obj, "widget", None)
    if make_widget is not None and headless_reason() is None:
        try:
            w = make_widget()
            if w is not None:
                data.update({k: v for k, v in w._repr_mimebundle_().items() if k != "text/plain"})
        except Exception as exc:  # noqa: BLE001 - a widget problem must not hide the result
            log.debug("nbops: widget view failed: %s", exc)
    return data


def show(obj, display_id: str | None = None) -> None:
    """Display ``obj`` in the current frontend (or print its text outside IPython). With ``display_id``, the
    output can be replaced later by :func:`update` (a run summary once its background write landed)."""
    if _shell() is None:
        print(repr(obj))  # a plain script: text is what there is
        return
    from IPython.display import display

    display(bundle(obj), raw=True, **({"display_id": display_id} if display_id else {}))


def update(obj, display_id: str) -> None:
    """Replace the output shown with ``display_id`` by ``obj``'s current view: in a Jupyter kernel only (a terminal
    would print it a second time)."""
    if not in_kernel():
        return
    from IPython.display import update_display

    update_display(bundle(obj), raw=True, display_id=display_id)

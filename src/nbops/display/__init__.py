"""How results show themselves. Every result object has ``_repr_html_`` and a text ``__repr__``; where a widget
view exists, :func:`show` sends one bundle holding the widget *and* the HTML and text fallbacks, so JupyterLab
renders the widget while papermill's output, VS Code without a widget manager and HTML exports read the HTML."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("nbops")


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget frontend may be attached)."""
    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def bundle(obj) -> dict:
    """The MIME bundle for ``obj``: widget view (if ``obj.widget()`` exists and a kernel runs), HTML, text."""
    data = {"text/plain": repr(obj)}
    html = getattr(obj, "_repr_html_", None)
    if html is not None:
        data["text/html"] = html()
    make_widget = getattr(obj, "widget", None)
    if make_widget is not None and in_kernel():
        try:
            w = make_widget()
            if w is not None:
                data.update({k: v for k, v in w._repr_mimebundle_().items() if k != "text/plain"})
        except Exception as exc:  # noqa: BLE001 - a widget problem must not hide the result
            log.debug("nbops: widget view failed: %s", exc)
    return data


def show(obj) -> None:
    """Display ``obj`` in the current frontend (or print its text outside IPython)."""
    ip = sys.modules.get("IPython")
    if ip is None or ip.get_ipython() is None:
        print(repr(obj))  # a plain script: text is what there is
        return
    from IPython.display import display

    display(bundle(obj), raw=True)

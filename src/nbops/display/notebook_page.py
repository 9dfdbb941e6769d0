"""An executed notebook as one self-contained HTML page: what ``nbops run`` stores beside the ``.ipynb``.

The MLflow UI shows an HTML artifact but not a notebook, so the page is how a scheduled run's results are read.
It shows every cell as the saved notebook has it: markdown rendered, code highlighted with its ``In [n]``, and
each output in the richest form a page can show without a kernel, a widget manager or the network (HTML, SVG,
PNG/JPEG inline, markdown, LaTeX source, plain text; a widget view falls back to the ``text/html`` / ``text/plain``
the output carries beside it), streams and tracebacks with their ANSI colours stripped.

nbconvert's HTML exporter makes a richer page (JupyterLab's theme, 280 kB of CSS), but it costs about 0.9 s of
CPU per notebook (its import, Jinja templates, a BeautifulSoup pass) on the critical path of every scheduled run;
this costs a few milliseconds plus pygments and mistune (already installed with Jupyter).
"""
from __future__ import annotations

import html
import json
import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_WIDGET = "application/vnd.jupyter.widget-view+json"
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:72em;color:#1f2328}
.cell{margin:.9em 0}.prompt{color:#57606a;font:12px monospace;margin:.2em 0}
pre{margin:0;padding:.5em .7em;overflow-x:auto;white-space:pre-wrap;font:13px/1.35 monospace}
.input pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px}
.output{padding:.2em .7em;overflow-x:auto}.output pre{padding:.2em 0}.stderr{background:#fff5f5}
.error pre{background:#ffebe9;color:#82071e}.output img{max-width:100%}
.output table{border-collapse:collapse;font-size:13px}.output th,.output td{border:1px solid #d0d7de;padding:2px 6px}
"""


def _pre(text: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f"<pre{klass}>{html.escape(_ANSI.sub('', text))}</pre>"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _markdown(source: str) -> str:
    try:
        import mistune

        return mistune.html(source)
    except Exception:  # noqa: BLE001 - mistune missing or a version without html(): the source stays readable
        return _pre(source)


def _highlighter(language: str | None):
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name

        lexer = get_lexer_by_name(language or "python")
        fmt = HtmlFormatter(nowrap=True)
        css = HtmlFormatter().get_style_defs(".highlight")
        return (lambda src: f'<pre class="highlight">{highlight(src, lexer, fmt)}</pre>'), css
    except Exception:  # noqa: BLE001 - no pygments or an unknown language: plain, escaped source
        return _pre, ""


def _data(data: dict) -> str:
    """One display_data / execute_result, in the richest form the page can show."""
    if "text/html" in data:
        return _text(data["text/html"])
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            b64 = _text(data[mime]).replace("\n", "")
            return f'<img src="data:{mime};base64,{b64}" alt="{mime} output">'
    if "text/markdown" in data:
        return _markdown(_text(data["text/markdown"]))
    if "text/latex" in data:
        return _pre(_text(data["text/latex"]))
    if "application/json" in data:
        return _pre(json.dumps(data["application/json"], indent=1, default=str))
    if "text/plain" in data:
        return _pre(_text(data["text/plain"]))
    rest = [m for m in data if m != _WIDGET]
    return _pre(f"[{', '.join(rest) or 'widget'} output: open the .ipynb to see it]")


def _output(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        name = out.get("name", "stdout")
        return f'<div class="output {name}">{_pre(_text(out.get("text", "")))}</div>'
    if kind == "error":
        tb = "\n".join(out.get("traceback") or []) or f"{out.get('ename')}: {out.get('evalue')}"
        return f'<div class="output error">{_pre(tb)}</div>'
    if kind in ("display_data", "execute_result"):
        return f'<div class="output">{_data(out.get("data", {}))}</div>'
    return ""


def render(nb, title: str = "notebook") -> str:
    """The page for notebook node ``nb`` (an nbformat v4 ``NotebookNode`` or the same plain dict)."""
    meta = nb.get("metadata", {})
    language = (meta.get("language_info") or {}).get("pygments_lexer") or \
        (meta.get("language_info") or {}).get("name") or (meta.get("kernelspec") or {}).get("language")
    code, code_css = _highlighter(language)
    parts = []
    for cell in nb.get("cells", []):
        src = _text(cell.get("source", ""))
        kind = cell.get("cell_type")
        if kind == "markdown":
            parts.append(f'<div class="cell markdown">{_markdown(src)}</div>')
        elif kind == "code":
            n = cell.get("execution_count")
            outs = "".join(_output(o) for o in cell.get("outputs", []))
            parts.append(f'<div class="cell code"><div class="prompt">In [{n if n is not None else " "}]:</div>'
                         f'<div class="input">{code(src)}</div>{outs}</div>')
        elif src.strip():
            parts.append(f'<div class="cell raw">{_pre(src)}</div>')
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}{code_css}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")

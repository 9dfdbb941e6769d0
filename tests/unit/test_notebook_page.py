"""The page `nbops run` stores beside the executed notebook (display/notebook_page.py): every result readable
with no kernel, widget manager or network; and the `nbops run` process's import trim leaves notebooks valid."""
import base64
import re
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nbops.display.notebook_page import render

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def visible_text(html: str) -> str:
    html = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Nightly *training*"),
        new_code_cell("print('loss', 0.25)", execution_count=1, outputs=[
            new_output("stream", name="stdout", text="\x1b[32mloss 0.25\x1b[0m\n"),
            new_output("stream", name="stderr", text="warn <careful>\n")]),
        new_code_cell("df", execution_count=2, outputs=[new_output(
            "execute_result", execution_count=2,
            data={"text/html": "<table><tr><td>accuracy=0.875</td></tr></table>", "text/plain": "accuracy"})]),
        new_code_cell("view", execution_count=3, outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
            "text/plain": "DRIFT -- 1 of 1 features drifted: a"})]),
        new_code_cell("plot()", execution_count=4, outputs=[new_output("display_data", data={"image/png": PNG})]),
        new_code_cell("1/0", execution_count=5, outputs=[new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]),
    ], metadata={"language_info": {"name": "python"}})


def test_page_shows_every_result_as_text_without_scripts():
    page = render(_notebook(), title="nightly.out.ipynb")
    text = visible_text(page)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "Nightly training" in text and "In [1]:" in text and "print" in text
    assert "loss 0.25" in text and "\x1b" not in page                      # streams, ANSI stripped
    assert "warn &lt;careful&gt;" in page                                  # text is escaped
    assert "accuracy=0.875" in text                                        # rich HTML output kept
    assert "DRIFT -- 1 of 1 features drifted: a" in text                   # widget view -> its text fallback
    assert f'src="data:image/png;base64,{PNG}"' in page                    # images inline, no network
    assert "ZeroDivisionError: division by zero" in text                   # tracebacks


def test_page_from_the_saved_json_of_a_notebook():
    nb = _notebook()
    assert render(nbformat.reads(nbformat.writes(nb), as_version=4)) == render(nb)


def test_the_run_process_skips_jsonschemas_iri_grammar_and_still_validates_notebooks(tmp_path):
    nbformat.write(_notebook(), str(tmp_path / "n.ipynb"))
    code = ("import sys\nfrom nbops.runner import _skip_unused_optional_imports\n_skip_unused_optional_imports()\n"
            "import papermill, nbformat\nnb = nbformat.read(sys.argv[1], as_version=4)\nnbformat.validate(nb)\n"
            "print(len(nb.cells), sys.modules.get('rfc3987_syntax'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "n.ipynb")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "None"]

"""A papermill-run notebook's saved outputs hold no bar nobody asked for (a headless kernel: nobody watches), and
a bar the cell asked for (progress=True) as text, never as a widget frozen in the file."""
import json

from nbops_testing import run_notebook, write_notebook


def test_saved_outputs_hold_only_the_bar_that_was_asked_for(store, tmp_path):
    nb = write_notebook(tmp_path / "bars.ipynb", [
        "%load_ext nbops",
        "from nbops.display.progress import tqdm\nfor _ in tqdm(range(3), delay=0, desc='unasked work'):\n    pass",
        "import numpy as np, pandas as pd, nbops\n"
        "df = pd.DataFrame({'x': np.arange(100_000, dtype=float)})\n"
        "nbops.fingerprint(df, 'quiet', progress=False)\nnbops.fingerprint(df, 'asked', progress=True);",
    ])
    out = json.loads(run_notebook(nb, tmp_path).read_text())
    text = json.dumps([o for c in out["cells"] for o in c.get("outputs", [])])
    assert "unasked work" not in text and "fingerprint quiet" not in text, text
    assert "fingerprint asked" in text, text
    assert "application/vnd.jupyter.widget-view+json" not in text and "widgets" not in out["metadata"], text

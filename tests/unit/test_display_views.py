"""Generic views (nbops.display.views): the same table / figure in widget, HTML and text forms."""
from __future__ import annotations

import base64

import pandas as pd
import pytest

from nbops.display import bundle
from nbops.tracking.summary import RunsTable, RunSummary
from nbops.display.views import (FrameView, LiveView, action_table, figure_html, figure_png,
                                 frame_html, frame_text, frame_widget)
from nbops.errors import NbopsError


@pytest.fixture
def df():
    return pd.DataFrame({"feature": [f"f{i}" for i in range(60)], "p_value": [i / 100 for i in range(60)],
                         "drifted": [i % 7 == 0 for i in range(60)]})


def test_html_table_escapes_truncates_and_highlights(df):
    df.loc[0, "feature"] = "<script>alert(1)</script>"
    h = frame_html(df, "drift <report>", max_rows=10, highlight="drifted")
    assert "<script>" not in h and "&lt;script&gt;" in h and "drift &lt;report&gt;" in h
    assert h.count("<tr") == 1 + 10 + 1                       # header, 10 rows, "more rows" footer
    assert "50 more rows" in h
    assert h.count("background:#ffebe9") == 2                 # rows 0 and 7 drifted
    assert "(no rows)" in frame_html(df.iloc[:0], "empty")


def test_text_table(df):
    t = frame_text(df, "drift", max_rows=5)
    assert t.splitlines()[0] == "drift" and "f4" in t and "f5" not in t and "55 more rows" in t


def test_table_widget_sorts_and_shows_every_row_on_demand(df):
    box = frame_widget(df, "t", max_rows=10)
    assert "nbops-table" in box._dom_classes
    (sort, desc, every), table = box.children[0].children, box.children[1]
    assert "f59" not in table.value
    desc.value = True
    sort.value = "p_value"
    assert table.value.index("f59") < table.value.index("f58")   # largest first
    every.value = True
    assert table.value.count("<tr") == 61
    assert len(df) == 60 and df["feature"].iloc[0] == "f0"       # the frame itself is untouched


def test_frame_view_bundle_outside_a_kernel_is_html_and_text_only(df):
    data = bundle(FrameView(df, "runs"))
    assert set(data) == {"text/plain", "text/html"}             # no widget frontend: the fallbacks
    assert data["text/plain"].startswith("runs") and "<table" in data["text/html"]


def test_figure_forms():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 3, 2])
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    h = figure_html(png, alt="cpu")
    assert base64.b64decode(h.split("base64,")[1].split("'")[0]) == png
    plt.close(fig)


def test_action_table_calls_back_with_the_chosen_key_and_shows_errors(df):
    seen = []

    def act(key):
        seen.append(key)
        if key == "f1":
            raise NbopsError("gate failed: accuracy 0.80 < 0.85")
        return FrameView(df.head(1), "promoted")

    box = action_table(df, "feature", "Promote", act)
    (choose, button), result = box.children[1].children, box.children[2]
    choose.value = "f3"
    button.click()
    assert seen == ["f3"] and "promoted" in result.value and not button.disabled
    choose.value = "f1"
    button.click()
    assert "gate failed" in result.value
    with pytest.raises(NbopsError, match="not a column"):
        action_table(df, "run_id", "Promote", act)


def test_live_view_refreshes_from_a_thread_until_stopped(capsys):
    import threading
    ticks = []
    done = threading.Event()

    def make():
        ticks.append(len(ticks))
        if len(ticks) >= 4:   # ticks 1-3 were shown before make() ran again
            done.set()
        return FrameView(pd.DataFrame({"tick": [len(ticks)]}), "live")

    live = LiveView()
    live.every(0.01, make)
    done.wait()
    live.stop()
    assert not live.running and live.updates >= 3
    assert "live" in repr(live.last)
    with pytest.raises(NbopsError, match="above 0 seconds"):
        live.every(0, make)


def test_runs_table_and_summary_widget():
    runs = RunsTable(pd.DataFrame({"run_id": ["a1"], "run_name": ["r"], "status": ["FINISHED"],
                                   "start_time": [pd.Timestamp("2024-01-02 03:04:05", tz="UTC")],
                                   "params.lr": ["0.1"], "metrics.lr": [0.5], "metrics.acc": [0.9]}), "nb.ipynb")
    assert "nbops runs of nb.ipynb (1)" in repr(runs)
    h = runs._repr_html_()
    assert "params.lr" in h and "metrics.lr" in h and ">acc<" in h   # clashing names keep their prefix
    assert "2024-01-02 03:04:05" in h
    assert 'href="http://127.0.0.1:5000/#/runs/a1"' in h          # run ids link to the MLflow UI
    s = RunSummary(run_id="abc123", run_name="n", experiment="e", status="FAILED", error="ValueError: bad",
                   params={f"p{i}": i for i in range(9)}, metrics={"acc": 0.9}, url="http://ui/#/runs/abc123")
    h = s._repr_html_()
    assert '<a href="http://ui/#/runs/abc123"' in h and "ValueError: bad" in h
    assert "p0=0, p1=1" in h and "p8=8" in h and "more params" not in h and not hasattr(s, "widget")
    s12 = RunSummary(run_id="abc123", run_name="n", experiment="e", status="FINISHED",
                     params={f"p{i}": i for i in range(12)})
    assert "p9=9 … and 2 more params" in s12._repr_html_() and "p10=" not in repr(s12)   # the first few, a count
    assert "error       ValueError: bad" in repr(s)

"""The runs table (``%nbops runs``, ``nbops.api.runs``) as a result object: widget, HTML, text, frame."""
from __future__ import annotations

from .views import frame_html, frame_text, frame_widget

_FIRST = ["run_name", "run_id", "status", "start_time"]


class RunsTable:
    """Recent runs, newest first. ``to_frame()`` is the DataFrame ``nbops.api.runs`` returned."""

    def __init__(self, df, notebook: str | None = None):
        self.df, self.notebook = df, notebook

    @property
    def title(self) -> str:
        where = f" of {self.notebook}" if self.notebook else ""
        return f"nbops runs{where} ({len(self.df)})"

    def _view(self):
        df = self.df
        if not len(df):
            return df
        cols = [c for c in _FIRST if c in df.columns] + [c for c in df.columns if c not in _FIRST and c != "end_time"]
        view = df[cols].copy()
        if "start_time" in view.columns:
            view["start_time"] = view["start_time"].astype(str).str.slice(0, 19)
        short = {c: c.split(".", 1)[1] for c in view.columns if c.startswith(("params.", "metrics."))}
        clash = {v for v in short.values() if list(short.values()).count(v) > 1 or v in view.columns}
        return view.rename(columns={c: v for c, v in short.items() if v not in clash})

    def to_frame(self):
        return self.df

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return frame_text(self._view(), self.title)

    def _repr_html_(self) -> str:
        return frame_html(self._view(), self.title, css_class="nbops-runs")

    def widget(self):
        return frame_widget(self._view(), self.title, css_class="nbops-runs")

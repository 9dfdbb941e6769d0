"""The result of a drift check: one row per column, a verdict for the batch, and how to show both."""
from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

FRAME_COLUMNS = ["role", "kind", "test", "statistic", "statistic_error", "p_value", "p_adjusted", "effect", "effect_name",
                 "wasserstein_norm", "psi", "missing_ref", "missing_cur", "missing_effect", "missing_p",
                 "missing_p_adjusted", "n_ref", "n_cur",
                 "drifted", "reason", "new_categories", "note"]


@dataclass
class FeatureDrift:
    """One column's result. ``drifted`` is True when a test's adjusted p-value is below ``p_val`` and its
    effect reaches ``min_effect``; ``reason`` says which test (distribution, missing values or both)."""
    feature: str
    role: str = "feature"                 # feature | target | prediction
    kind: str = "numeric"                 # numeric | categorical | datetime | identifier
    test: str = ""                        # KS | CvM | Chi2 | "" (skipped)
    statistic: float = float("nan")
    statistic_error: float = 0.0          # sketch mode (Spark): the statistic is known to +- this (rank error)
    p_value: float = float("nan")
    p_adjusted: float = float("nan")
    effect: float = float("nan")          # KS distance (numeric) or total variation distance (categorical)
    effect_name: str = ""
    wasserstein_norm: float = float("nan")  # Wasserstein-1 / reference std (numeric)
    psi: float = float("nan")             # population stability index (categorical)
    missing_ref: float = 0.0              # share of missing values
    missing_cur: float = 0.0
    missing_p: float = float("nan")
    missing_p_adjusted: float = float("nan")
    missing_effect: float = 0.0           # |missing_cur - missing_ref|
    n_ref: int = 0                        # present values tested
    n_cur: int = 0
    drifted: bool = False
    reason: str = ""
    new_categories: list = field(default_factory=list)
    note: str = ""
    plot_data: dict = field(default_factory=dict, repr=False)

    @property
    def tested(self) -> bool:
        return bool(self.test) or not math.isnan(self.missing_p)


@dataclass
class DriftReport:
    """``nbops.check_drift``'s answer: ``is_drift``, ``features`` (one :class:`FeatureDrift` each),
    ``to_frame()``, ``plot()``, ``widget()``; shown as a table in notebooks and as text elsewhere."""
    features: list[FeatureDrift]
    p_val: float = 0.05
    correction: str = "bonferroni"
    min_effect: float = 0.05
    test: str = "ks"
    engine: str = "nbops"
    mode: str = ""                        # Spark: "exact" or "sketch" (KLL quantile sketches); "" for pandas
    n_tests: int = 0
    reference: str = "DataFrame"
    current: str = "DataFrame"
    n_ref_rows: int = 0
    n_cur_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    run_id: str | None = None
    experiment: str | None = None
    model: dict | None = None
    on_drift: dict | None = None
    multivariate: dict | None = None
    data_versions: dict = field(default_factory=dict)

    # -- verdict --------------------------------------------------------------------------------------------
    @property
    def is_drift(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def feature_drift(self) -> bool:
        """Drift in the input features (it usually comes before output degradation)."""
        return any(f.drifted for f in self.features if f.role == "feature")

    @property
    def output_drift(self) -> bool:
        """Drift in the target or prediction columns."""
        return any(f.drifted for f in self.features if f.role != "feature")

    @property
    def share_drifted(self) -> float:
        tested = [f for f in self.features if f.role == "feature" and f.tested]
        return sum(f.drifted for f in tested) / len(tested) if tested else 0.0

    def __getitem__(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def __iter__(self):
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def verdict(self) -> str:
        if not self.is_drift:
            return f"no drift ({sum(f.tested for f in self.features)} columns tested)"
        parts = []
        feats = [f.feature for f in self.features if f.drifted and f.role == "feature"]
        outs = [f.feature for f in self.features if f.drifted and f.role != "feature"]
        if feats:
            parts.append(f"{len(feats)} of {sum(f.tested for f in self.features if f.role == 'feature')} features "
                         f"drifted: {', '.join(feats)}")
        if outs:
            parts.append(f"outputs drifted: {', '.join(outs)}")
        return "DRIFT -- " + "; ".join(parts)

    # -- views ----------------------------------------------------------------------------------------------
    def to_frame(self):
        """One row per column, indexed by column name; ``drifted`` is a boolean column."""
        import pandas as pd

        rows = []
        for f in self.features:
            d = {k: getattr(f, k) for k in FRAME_COLUMNS}
            d["new_categories"] = ", ".join(map(str, f.new_categories))
            rows.append(d)
        df = pd.DataFrame(rows, index=pd.Index([f.feature for f in self.features], name="feature", dtype=object),
                          columns=FRAME_COLUMNS)
        df["drifted"] = df["drifted"].astype(bool)
        return df

    def to_dict(self) -> dict:
        d = asdict(self)
        d["is_drift"] = self.is_drift
        d["share_drifted"] = self.share_drifted
        d["drifted"] = self.drifted
        d["verdict"] = self.verdict()
        return _clean(d)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), default=str, **kw)

    def _settings(self) -> str:
        return (f"{self.test.upper()}/Chi2, p-val {self.p_val:g}, {self.correction} over {self.n_tests} tests, "
                f"min effect {self.min_effect:g}" + (f", Spark {self.mode}" if self.mode else ""))

    def __repr__(self) -> str:
        lines = [f"DriftReport: {self.verdict()}",
                 f"  reference {self.reference} ({self.n_ref_rows:,} rows) vs current {self.current} "
                 f"({self.n_cur_rows:,} rows); {self._settings()}"]
        for title, group in self._groups():
            lines.append(f"  {title}:")
            lines.append(f"    {'column':<20} {'test':<5} {'p_adj':>9} {'effect':>7} {'missing':>13}  drifted")
            for f in group:
                miss = f"{f.missing_ref:.0%}->{f.missing_cur:.0%}" if (f.missing_ref or f.missing_cur) else ""
                lines.append(f"    {f.feature[:20]:<20} {f.test or '-':<5} {_num(f.p_adjusted):>9} "
                             f"{_num(f.effect, 3):>7} {miss:>13}  {'YES ' + f.reason if f.drifted else 'no'}"
                             + (f"  [{f.note}]" if f.note else ""))
        lines += [f"  warning: {w}" for w in self.warnings] + [f"  note: {n}" for n in self.notes]
        if self.on_drift:
            lines.append(f"  on drift: {_on_drift_text(self.on_drift)}")
        if self.run_id:
            lines.append(f"  logged to run {self.run_id}")
        return "\n".join(lines)

    def _groups(self):
        feats = [f for f in self.features if f.role == "feature"]
        outs = [f for f in self.features if f.role != "feature"]
        groups = [("features", feats)]
        if outs:
            groups.append(("target / prediction", outs))
        return groups

    def table(self, features: list[FeatureDrift] | None = None):
        """The report as a readable table: drifted columns first (largest change first), plain headers."""
        import pandas as pd

        rows = []
        for f in sorted(self.features if features is None else features,
                        key=lambda f: (not f.drifted, f.role != "feature", -(0 if math.isnan(f.effect) else f.effect))):
            miss = f"{f.missing_ref:.1%} -> {f.missing_cur:.1%}" if (f.missing_ref or f.missing_cur) else ""
            note = f.note + (f" new: {', '.join(map(str, f.new_categories[:10]))}" if f.new_categories else "")
            rows.append({"column": f.feature + ("" if f.role == "feature" else f" ({f.role})"),
                         "drifted": f"yes ({f.reason})" if f.drifted else "no",
                         "change": f"{_num(f.effect, 3)} {f.effect_name}".strip()
                         + (f" (sketch: {_num(f.statistic, 3)} \u00b1 {_num(f.statistic_error, 2)})"
                            if f.statistic_error else ""),
                         "p-value (adjusted)": _num(f.p_adjusted), "test": f.test or "-", "missing (ref -> cur)": miss,
                         "type": f.kind, "note": note.strip()})
        df = pd.DataFrame(rows, columns=["column", "drifted", "change", "p-value (adjusted)", "test",
                                         "missing (ref -> cur)", "type", "note"])
        return df[[c for c in df.columns if c in ("column", "drifted") or (df[c] != "").any()]]

    def png(self) -> bytes | None:
        """The figure of the drifted columns as PNG (None when nothing drifted); drawn once, then kept."""
        if not hasattr(self, "_png"):
            from ..display.views import figure_png

            fig = self.plot() if self.is_drift else None
            self._png = figure_png(fig, dpi=80) if fig is not None else None
        return self._png

    def _repr_html_(self) -> str:
        from ..display.links import run_link
        from ..display.views import figure_html, frame_html

        e = html.escape
        color = "#b00020" if self.is_drift else "#1b5e20"
        out = [f"<div class='nbops-drift'><p style='margin:0 0 .3em 0'><b style='color:{color};font-size:1.1em'>"
               f"{e(self.verdict())}</b><br><small>reference {e(self.reference)} ({self.n_ref_rows:,} rows) vs "
               f"current {e(self.current)} ({self.n_cur_rows:,} rows); {e(self._settings())}</small></p>"]
        if self.on_drift:
            out.append(f"<p style='margin:.2em 0'><b>on drift</b>: {e(_on_drift_text(self.on_drift))}</p>")
        groups = self._groups()
        for title, group in groups:
            table = self.table(group)
            out.append(frame_html(table, title if len(groups) > 1 else None, max_rows=100,
                                  highlight=[v != "no" for v in table["drifted"]], css_class="nbops-drift-table"))
        png = self.png()
        if png is not None:
            out.append(figure_html(png, alt=f"reference vs current: {', '.join(self.drifted)}", css_class="nbops-drift-plot"))
        out += [f"<p style='color:#8a6d00;margin:.2em 0'>&#9888; {e(w)}</p>" for w in self.warnings]
        out += [f"<p style='margin:.2em 0'><small>{e(n)}</small></p>" for n in self.notes]
        if self.run_id:
            out.append(f"<p><small>logged to run {run_link(self.run_id)}</small></p>")
        out.append("</div>")
        return "".join(out)

    def plot(self, features: list[str] | None = None, max_features: int = 12):
        """A matplotlib figure of the drifted columns (or of ``features``): reference vs current histograms
        and ECDFs for numbers, category shares for categories. ``None`` when there is nothing to draw."""
        from .plots import plot_report

        return plot_report(self, features, max_features)


def _on_drift_text(d: dict) -> str:
    nb = d.get("notebook", "")
    text = f"ran {nb}: {d.get('status', '?')}"
    if d.get("run_id"):
        text += f" (run {d['run_id']})"
    if d.get("error"):
        text += f" -- {d['error']}"
    return text


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _clean(o: Any):
    """JSON-safe: NaN -> None, numpy scalars/arrays -> Python."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o

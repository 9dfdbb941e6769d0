"""Figures of a drift report: reference vs current, for the columns that drifted (or the ones asked for)."""
from __future__ import annotations

REF_COLOR, CUR_COLOR = "#4c72b0", "#dd8452"


def plot_report(report, features=None, max_features: int = 12):
    """One row of panels per column: histogram + ECDF for numbers, category shares for categories."""
    rows = [f for f in report.features if f.plot_data and (f.feature in features if features else f.drifted)]
    if not rows and features is None:  # nothing drifted: show the largest effects, so the plot still informs
        rows = sorted((f for f in report.features if f.plot_data), key=lambda f: -(f.effect or 0))[:4]
    rows = rows[:max_features]
    if not rows:
        return None
    from matplotlib.figure import Figure  # not pyplot: no global state, no GUI backend needed

    fig = Figure(figsize=(10, 2.6 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (ax1, ax2), f in zip(axes, rows):
        d = f.plot_data
        title = f"{f.feature}: {'DRIFT' if f.drifted else 'no drift'} ({f.test}, p_adj={f.p_adjusted:.2g}, " \
                f"{f.effect_name} {f.effect:.3f})"
        if d["kind"] == "numeric":
            e = d["edges"]
            ax1.stairs(d["ref"], e, label="reference", color=REF_COLOR, fill=True, alpha=0.45)
            ax1.stairs(d["cur"], e, label="current", color=CUR_COLOR, linewidth=1.6)
            ax1.set_ylabel("share of rows")
            ax1.set_title(title, fontsize=9, loc="left")
            ax1.legend(fontsize=8)
            ax2.plot(d["ref_q"], d["probs"], color=REF_COLOR, label="reference", drawstyle="steps-post")
            ax2.plot(d["cur_q"], d["probs"], color=CUR_COLOR, label="current", drawstyle="steps-post")
            ax2.set_title(f"ECDF (KS distance = largest vertical gap {f.effect:.3f})", fontsize=9, loc="left")
            ax2.set_ylabel("cumulative share")
        else:
            import numpy as np

            labels = d["labels"]
            x = np.arange(len(labels))
            ax1.bar(x - 0.2, d["ref"], 0.4, color=REF_COLOR, label="reference")
            ax1.bar(x + 0.2, d["cur"], 0.4, color=CUR_COLOR, label="current")
            ax1.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, fontsize=8)
            ax1.set_ylabel("share of rows")
            ax1.set_title(title, fontsize=9, loc="left")
            ax1.legend(fontsize=8)
            diff = np.asarray(d["cur"]) - np.asarray(d["ref"])
            ax2.bar(x, diff, color=[CUR_COLOR if v > 0 else REF_COLOR for v in diff])
            ax2.axhline(0, color="black", linewidth=0.6)
            ax2.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, fontsize=8)
            ax2.set_title("current - reference share", fontsize=9, loc="left")
    return fig

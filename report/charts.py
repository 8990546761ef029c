"""The report's pictures, drawn with matplotlib (Agg: no display) and returned as PNG bytes."""

import io
import math
import tempfile
from pathlib import Path

from report.evaluation import BASELINE, CANDIDATE, OVERALL, Confusion, Curves, SliceMetrics, auc_of, reliability

COLORS = {CANDIDATE: "#1f77b4", BASELINE: "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    _plt().close(fig)
    return buffer.getvalue()


def roc(curves: dict[str, Curves]) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle="--", linewidth=1)
    for model, curve in sorted(curves.items(), key=lambda kv: kv[0] != CANDIDATE):
        xs, ys = zip(*curve.roc)
        ax.plot(xs, ys, color=COLORS.get(model), linewidth=2 if model == CANDIDATE else 1.2,
                label=f"{model} (area {auc_of(curve.roc):.3f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="ROC, whole eval split")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def calibration(curves: dict[str, Curves], bins: int = 10) -> bytes:
    plt = _plt()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 5.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle="--", linewidth=1, label="perfectly calibrated")
    for model, curve in sorted(curves.items(), key=lambda kv: kv[0] != CANDIDATE):
        points = reliability(curve.buckets, bins)
        if not points:
            continue
        xs, ys, ns = zip(*points)
        ax.plot(xs, ys, marker="o", color=COLORS.get(model), label=model)
        if model == CANDIDATE:
            hist.bar([(i + 0.5) / bins for i in range(bins)], _counts(curve, bins), width=0.9 / bins,
                     color=COLORS[CANDIDATE])
    ax.set(ylabel="share of big tippers", xlim=(0, 1), ylim=(0, 1.01), title=f"Calibration ({bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    hist.set(xlabel="predicted probability", ylabel="examples")
    return _png(fig)


def _counts(curve: Curves, bins: int) -> list[float]:
    counts = [0.0] * bins
    for b in curve.buckets:
        if b.examples:
            counts[min(max(int(max(b.lower, 0.0) * bins), 0), bins - 1)] += b.examples
    return counts


def confusion_matrix(confusion: Confusion) -> bytes:
    plt = _plt()
    cells = [[confusion.tn, confusion.fp], [confusion.fn, confusion.tp]]
    fig, ax = plt.subplots(figsize=(4.0, 3.6))
    ax.imshow(cells, cmap="Blues")
    top = max(max(row) for row in cells) or 1
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{cells[i][j]:.0f}", ha="center", va="center", fontsize=14,
                    color="white" if cells[i][j] > top / 2 else "black")
    ax.set_xticks([0, 1], ["predicted no", "predicted yes"])
    ax.set_yticks([0, 1], ["actual no", "actual yes"])
    ax.set_title(f"Confusion matrix at threshold {confusion.threshold:g}\naccuracy {confusion.accuracy:.4f}",
                 fontsize=10)
    return _png(fig)


def slices(metrics: list[SliceMetrics], names: tuple[str, ...] = ("auc", "binary_accuracy")) -> bytes:
    """Per-slice metrics as bars, with each slice's example count."""
    plt = _plt()
    rows = [m for m in metrics if m.slice != OVERALL]
    overall = next((m for m in metrics if m.slice == OVERALL), None)
    labels = [m.slice.rpartition("=")[2] for m in rows]
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(9, 2.0 * (len(names) + 1)), sharex=True)
    for ax, name in zip(axes, names):
        values = [math.nan if name == "auc" and m.candidate.get("mean_label") in (0.0, 1.0)
                  else m.candidate.get(name, math.nan) for m in rows]
        ax.bar(range(len(rows)), values, color=COLORS[CANDIDATE])
        if overall and name in overall.candidate:
            ax.axhline(overall.candidate[name], color="#d62728", linewidth=1, label=f"overall {overall.candidate[name]:.3f}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].bar(range(len(rows)), [m.candidate.get("example_count", 0) for m in rows], color="#7f7f7f")
    axes[-1].set_ylabel("examples")
    axes[-1].set_xticks(range(len(rows)), labels, fontsize=8)
    axes[-1].set_xlabel(rows[0].slice.rpartition("=")[0] if rows else "slice")
    axes[0].set_title("Metrics per slice (no AUC bar: the slice holds one class only)", fontsize=10)
    return _png(fig)


def durations(rows: list[tuple[str, str, float]]) -> bytes:
    """(node, state, seconds) as horizontal bars, in run order."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.0))
    names = [f"{node} ({state.lower()})" for node, state, _ in rows]
    colors = ["#2ca02c" if state == "COMPLETE" else "#9e9e9e" if state == "CACHED" else "#d62728"
              for _, state, _ in rows]
    ax.barh(range(len(rows)), [s for _, _, s in rows], color=colors)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (MLMD: execution created -> last updated)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def lineage_picture(run) -> bytes:
    """The run's lineage graph, as the lineage command draws it."""
    from lineage.render import draw, graph_of_run

    with tempfile.TemporaryDirectory(prefix="report-lineage-") as scratch:
        return draw(graph_of_run(run), Path(scratch) / "lineage.png").read_bytes()

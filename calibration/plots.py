"""PNG plots for the calibration report (matplotlib, Agg canvas, no pyplot global state).

Every function returns PNG bytes, or ``None`` when there is nothing to draw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_BLUE = "#2563eb"
_ORANGE = "#ea580c"
_GREY = "#6b7280"


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    """The figure as PNG bytes, for embedding in a self-contained HTML report."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_png(confusion: Mapping[str, Any]) -> bytes | None:
    """Heat map of a 2x2 confusion matrix (rows human, columns judge) with counts and shares."""
    matrix = confusion.get("matrix")
    if not matrix or not sum(sum(r) for r in matrix):
        return None
    labels = list(confusion.get("labels", ["verified", "not_verified"]))
    total = sum(sum(r) for r in matrix)
    fig = new_figure(4.2, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    peak = max(max(r) for r in matrix)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak * 0.55 else "black"
            ax.text(
                j,
                i,
                f"{count}\n{count / total:.0%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=12,
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("judge")
    ax.set_ylabel("human")
    ax.set_title("Confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return figure_png(fig)


def reliability_png(bins: Sequence[Mapping[str, Any]], *, ece: float | None = None) -> bytes | None:
    """Reliability diagram: observed accuracy per confidence bin, bin counts underneath."""
    if not bins:
        return None
    fig = new_figure(5.2, 4.4)
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0])
    counts_ax = fig.add_subplot(grid[1], sharex=ax)
    centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
    widths = [(b["hi"] - b["lo"]) * 0.9 for b in bins]
    ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, linewidth=1, label="perfect calibration")
    ax.bar(
        centres,
        [b["accuracy"] for b in bins],
        width=widths,
        color=_BLUE,
        alpha=0.75,
        edgecolor="white",
        label="observed accuracy",
    )
    ax.plot(
        centres,
        [b["mean_confidence"] for b in bins],
        "D",
        color=_ORANGE,
        label="mean confidence (expected accuracy)",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("observed accuracy")
    title = "Reliability: verdict confidence vs accuracy"
    ax.set_title(title if ece is None else f"{title} (ECE {ece:.3f})", fontsize=10)
    ax.legend(loc="center left", fontsize=8)
    ax.tick_params(labelbottom=False)
    counts_ax.bar(centres, [b["count"] for b in bins], width=widths, color=_GREY)
    for x, b in zip(centres, bins, strict=True):
        counts_ax.text(x, b["count"], str(b["count"]), ha="center", va="bottom", fontsize=8)
    counts_ax.set_ylabel("count")
    counts_ax.set_xlabel("verdict confidence")
    counts_ax.set_ylim(0, max(b["count"] for b in bins) * 1.35)
    return figure_png(fig)


def over_time_png(points: Sequence[Mapping[str, Any]], *, window: int) -> bytes | None:
    """Rolling accuracy and Cohen's kappa by label date."""
    if len(points) < 2:
        return None
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    times = [datetime.fromisoformat(p["at"]) for p in points]
    fig = new_figure(6.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(times, [p["accuracy"] for p in points], color=_BLUE, marker=".", label="accuracy")
    kappas = [p["cohen_kappa"] if p["cohen_kappa"] is not None else float("nan") for p in points]
    ax.plot(times, kappas, color=_ORANGE, marker=".", label="Cohen's kappa")
    ax.axhline(0.6, color=_GREY, linestyle=":", linewidth=1, label="kappa 0.6")
    ax.set_ylim(min(-0.05, *(k for k in kappas if k == k)), 1.05)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("agreement")
    ax.set_xlabel("label date")
    ax.set_title(f"Agreement over time (rolling window of {window} labels)", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def curve_png(
    series: Mapping[str, Sequence[tuple[float, float]]], *, xlabel: str, ylabel: str, title: str
) -> bytes | None:
    """Line plot of named ``(x, y)`` series (used for the replay sample-count curve)."""
    if not series:
        return None
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    xs: set[float] = set()
    for name, xy in series.items():
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=name)
        xs.update(x for x, _ in xy)
    ax.set_xticks(sorted(xs))  # the sample counts measured, not a regular grid
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)

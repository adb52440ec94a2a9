"""Accuracy vs cost per item of the pairwise policies (``pairwise_replay.policy_table``).

One panel per subset group; x is the cost per item (log scale), y the accuracy on the items the
policy decided, with its 95% interval; a policy that abstains is drawn hollow and labelled with
its abstain rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from calibration.plots import figure_png, new_figure

_COLOURS = {"GPT-4": "#2563eb", "ChatGPT": "#16a34a", "LLaMA2": "#ea580c"}
_MARKERS = {
    "single": "o",
    "swap_agree": "s",
    "jury_majority": "^",
    "jury_weighted": "v",
    "cascade": "D",
}


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def accuracy_cost_png(
    rows: Sequence[Mapping[str, Any]], *, strategies: Sequence[str], title: str
) -> bytes | None:
    """PNG of accuracy vs cost per item for the policy rows of the given strategies.

    Returns None when no row has both a finite accuracy and a positive cost.
    """
    chosen = [
        r
        for r in rows
        if r["strategy"] in strategies
        and _finite(r["accuracy"], r["cost_per_item_usd"])
        and r["cost_per_item_usd"] > 0
    ]
    if not chosen:
        return None
    groups = list(dict.fromkeys(r["group"] for r in chosen))
    fig = new_figure(4.2 * len(groups), 4.4)
    axes = [fig.add_subplot(1, len(groups), i + 1) for i in range(len(groups))]
    for ax, group in zip(axes, groups, strict=True):
        for r in (r for r in chosen if r["group"] == group):
            colour = _COLOURS.get(r["judges"], "#6b7280")
            marker = _MARKERS.get(r["policy"], "o")
            lo, hi = r["accuracy_ci"]
            abstains = (r["abstain_rate"] or 0) >= 0.005
            x, y = r["cost_per_item_usd"], r["accuracy"]
            if _finite(lo, hi):
                ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], color=colour, alpha=0.35, lw=1)
            ax.scatter(
                x,
                y,
                s=46,
                marker=marker,
                edgecolors=colour,
                facecolors="white" if abstains else colour,
                linewidths=1.5,
                zorder=3,
            )
            if abstains:
                ax.annotate(
                    f"{r['abstain_rate']:.0%} abst.",
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, -10),
                    fontsize=7,
                    color="#374151",
                )
        ax.set_xscale("log")
        ax.set_title(f"{group} ({', '.join(s for s in strategies if _has(chosen, group, s))})")
        ax.set_xlabel("cost per item, USD (log)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy on decided items")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, marker="o", ls="", label=name) for name, c in _COLOURS.items()
    ]
    handles.append(Line2D([], [], color="#6b7280", marker="o", ls="", label="jury / cascade"))
    handles += [
        Line2D([], [], color="#374151", marker=m, ls="", mfc="white", label=p)
        for p, m in _MARKERS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=9, fontsize=8)
    fig.suptitle(title)
    return figure_png(fig)


def _has(rows: Sequence[Mapping[str, Any]], group: str, strategy: str) -> bool:
    return any(r["group"] == group and r["strategy"] == strategy for r in rows)

"""Replay the recorded gpt-3.5 G-Eval judgements on Topical-Chat and print Markdown tables.

Run from the repository root: ``.venv/bin/python bench/replay_table.py [--out out]``.
Prints (1) correlations for 4 dimensions x 2 prompting modes (per-dialogue grouping by
``source``), (2) the sample-count curve K = 1, 3, 5, 10, 20, (3) fixed vs adaptive policy, with
the fixed policy at the same mean budget for reference, and (4) what the scale-aware parser buys
over a first-number parser. Saves the curve as ``out/replay_curve.png``. No network, no model.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibration.plots import curve_png  # noqa: E402
from calibration.replay import (  # noqa: E402
    AdaptivePolicy,
    compare_policies,
    load_recordings,
    replay,
)
from judge.parsing import parse_scale_score  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "topical_chat_judgments"
DIMENSIONS = {
    "naturalness": ("nat", 1.0, 3.0),
    "coherence": ("coh", 1.0, 3.0),
    "engagingness": ("eng", 1.0, 3.0),
    "groundedness": ("gro", 0.0, 1.0),
}
MODES = ("geval", "geval_no_auto_cot")
KS = (1, 3, 5, 10, 20)


def _f(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def _first_number(text: str | None, low: float, high: float) -> float | None:
    m = re.search(r"\d+(?:\.\d+)?", text or "")
    return float(m.group()) if m else None


def _zero(text: str | None, low: float, high: float) -> float | None:
    v = parse_scale_score(text, low, high)
    return 0.0 if v is None else v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"public data not found at {DATA} (see ../shared/datasets/README.md)")
    items = {
        (dim, mode): load_recordings(DATA / f"gpt3.5_{short}_{mode}.json")
        for dim, (short, _, _) in DIMENSIONS.items()
        for mode in MODES
    }

    print("### Replay: gpt-3.5 G-Eval judgements vs human scores (Topical-Chat)\n")
    print("20 recorded samples per item, scale-aware parser, item score = mean of parsed samples;")
    print("r = Pearson, rho = Spearman, tau = Kendall tau-b; per-dialogue = averaged within")
    print("each `source` (groups where both sides vary).\n")
    print(
        "| dimension | mode | items | r | rho | tau | per-dialogue r | per-dialogue rho "
        "| per-dialogue tau | dialogues | unparseable |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (dim, mode), rows in items.items():
        _, low, high = DIMENSIONS[dim]
        o = replay(rows, dimension=dim, low=low, high=high, group_by="source").to_dict()
        print(
            f"| {dim} | {mode} | {o['n_items']} | {_f(o['pearson'])} | {_f(o['spearman'])} | "
            f"{_f(o['kendall'])} | {_f(o['group_pearson'])} | {_f(o['group_spearman'])} | "
            f"{_f(o['group_kendall'])} | {o['groups_used']}/{o['groups_total']} | "
            f"{o['unparseable']} / {o['samples_used']} |"
        )

    print(
        "\n### Samples per item vs correlation (mode geval; dataset-level Spearman rho, "
        "per-dialogue rho in brackets)\n"
    )
    print("| K | " + " | ".join(DIMENSIONS) + " |")
    print("|---|" + "---|" * len(DIMENSIONS))
    series: dict[str, list[tuple[float, float]]] = {d: [] for d in DIMENSIONS}
    for k in KS:
        cells = []
        for dim, (_, low, high) in DIMENSIONS.items():
            o = replay(
                items[(dim, "geval")],
                dimension=dim,
                low=low,
                high=high,
                group_by="source",
                samples=k,
            ).to_dict()
            series[dim].append((k, o["spearman"]))
            cells.append(f"{_f(o['spearman'])} ({_f(o['group_spearman'])})")
        print(f"| {k} | " + " | ".join(cells) + " |")

    policy = AdaptivePolicy()
    print(
        f"\n### Fixed (20 samples) vs adaptive policy (mode geval; min_samples="
        f"{policy.min_samples}, tolerance={policy.tolerance} x scale width, "
        f"prior_weight={policy.prior_weight})\n"
    )
    print(
        "| dimension | samples/item fixed -> adaptive | saved | rho fixed -> adaptive (change) "
        "| per-dialogue rho fixed -> adaptive | rho of fixed K at the same budget |"
    )
    print("|---|---|---|---|---|---|")
    for dim, (_, low, high) in DIMENSIONS.items():
        rows = items[(dim, "geval")]
        o = compare_policies(
            rows, dimension=dim, low=low, high=high, group_by="source", adaptive=policy
        )
        fx = o["fixed"]
        budget = max(1, round(o["samples_per_item"]))
        same = replay(rows, dimension=dim, low=low, high=high, samples=budget).to_dict()
        print(
            f"| {dim} | {fx['samples_per_item']:.1f} -> {o['samples_per_item']:.1f} | "
            f"{o['samples_saved']:.0%} | {_f(fx['spearman'])} -> {_f(o['spearman'])} "
            f"({o['delta']['spearman']:+.3f}) | {_f(fx['group_spearman'])} -> "
            f"{_f(o['group_spearman'])} | K={budget}: {_f(same['spearman'])} |"
        )

    print("\n### What the scale-aware parser buys (Pearson r, 20 samples)\n")
    print("| dimension | mode | scale-aware | first number | unparseable = 0 |")
    print("|---|---|---|---|---|")
    for dim, mode in (
        ("groundedness", "geval"),
        ("groundedness", "analyze_rate"),
        ("naturalness", "analyze_rate"),
        ("coherence", "geval"),
    ):
        short, low, high = DIMENSIONS[dim]
        rows = load_recordings(DATA / f"gpt3.5_{short}_{mode}.json")
        vals = [
            replay(rows, dimension=dim, low=low, high=high, parser=p).to_dict()["pearson"]
            for p in (parse_scale_score, _first_number, _zero)
        ]
        print(f"| {dim} | {mode} | " + " | ".join(_f(v) for v in vals) + " |")

    png = curve_png(
        series,
        xlabel="samples per item (K)",
        ylabel="Spearman rho vs humans",
        title="gpt-3.5 G-Eval on Topical-Chat: samples per item vs correlation",
    )
    if png is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "replay_curve.png").write_bytes(png)
        print(f"\n(curve saved to {args.out / 'replay_curve.png'})")


if __name__ == "__main__":
    main()

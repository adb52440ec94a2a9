"""`judge replay-pairwise`: recorded pairwise judgments (LLMBar) replayed as judges and policies.

Reads the judgments and items files, prices every recorded call (:mod:`app.cli._pairwise_costs`),
and prints per judge and strategy (and subset group) the accuracy with its interval, Cohen's
kappa and the order-flip rate, then the policies (single call, swap-and-agree, juries, cascade)
with accuracy, abstain rate and cost per item, and how the project's pairwise parser agrees with
the recorded parse. ``--plot`` renders the accuracy-vs-cost PNG shown in docs/calibration.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli._common import fail, stderr

#: Strategies drawn in the plot: the plain prompt on each subset (MT-Bench's is Vanilla_NoRules).
PLOT_STRATEGIES = ("Vanilla", "Vanilla_NoRules")


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""
    app.command("replay-pairwise")(replay_pairwise)


def replay_pairwise(
    judgments: Annotated[
        Path, typer.Argument(help="Recorded pairwise judgments JSONL (llmbar_judgments.jsonl).")
    ],
    items: Annotated[
        Path,
        typer.Option("--items", help="The judged items JSONL (llmbar_items.jsonl), for costs."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown tables (as in docs/calibration.md).")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the accuracy-vs-cost PNG here.")
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", help="Only these prompting strategies (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Bootstrap seed.")] = 0,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap draws.")] = 1000,
) -> None:
    """Replay recorded pairwise judgments: judges, position bias, juries, cascades, costs."""
    if as_json and markdown:
        fail("choose one of --json and --markdown")
    from app.cli._pairwise_costs import load_items, price_rows, pricing_notes
    from calibration.pairwise_parse import compare_parses
    from calibration.pairwise_replay import (
        PairwiseInputError,
        judge_table,
        load_judgments,
        policy_table,
    )
    from calibration.report import clean
    from judge.pairwise import parse_preference

    try:
        rows = load_judgments(judgments)
        if strategy:
            known = sorted({r.strategy for r in rows})
            unknown = [s for s in strategy if s not in known]
            if unknown:
                fail(f"--strategy {unknown[0]!r} is not in the file; it has {', '.join(known)}")
            rows = [r for r in rows if r.strategy in strategy]
        rows = price_rows(rows, load_items(items))
    except (PairwiseInputError, ValueError) as exc:
        fail(str(exc))
    result: dict[str, Any] = {
        "judges": judge_table(rows, n_boot=n_boot, seed=seed),
        "policies": policy_table(rows, n_boot=n_boot, seed=seed),
        "parser": compare_parses(rows, parse_preference),
        "pricing": pricing_notes(),
        "settings": {"seed": seed, "n_boot": n_boot, "level": 0.95},
    }
    result = clean(result)
    if plot is not None:
        from calibration.pairwise_plot import accuracy_cost_png

        png = accuracy_cost_png(
            result["policies"],
            strategies=PLOT_STRATEGIES,
            title="LLMBar recorded judgments: accuracy vs cost per item (plain prompt)",
        )
        try:
            if png is None:
                fail("nothing to plot: no policy has both an accuracy and a cost")
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot.write_bytes(png)
        except OSError as exc:
            fail(f"cannot write the plot to {plot}: {exc}")
    if as_json:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    elif markdown:
        typer.echo(to_markdown(result))
    else:
        _print_tables(result)
    if plot is not None:
        stderr.print(f"plot written to {plot}", highlight=False)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _ci(pair: Any) -> str:
    lo, hi = pair
    return f"{_num(lo, 2)}-{_num(hi, 2)}"


def _usd(value: Any) -> str:
    if value is None:
        return "-"
    return f"${value:.5f}"


def _judge_cells(r: dict[str, Any]) -> list[str]:
    return [
        r["group"],
        r["judge"],
        r["strategy"],
        _num(r["accuracy"]),
        _ci(r["accuracy_ci"]),
        _num(r["cohen_kappa"]),
        _num(r["flip_rate"]),
        _num(r["first_position_rate"]),
        str(r["unparsed"]),
        _usd(r["cost_per_call_usd"]),
    ]


JUDGE_HEAD = [
    "subset",
    "judge",
    "strategy",
    "accuracy",
    "95% CI",
    "kappa",
    "flip rate",
    "first-slot share",
    "unparsed",
    "cost/call",
]
POLICY_HEAD = [
    "subset",
    "strategy",
    "policy",
    "judges",
    "accuracy (decided)",
    "95% CI",
    "abstain",
    "correct / all",
    "cost/item",
    "calls/item",
]


def _policy_cells(r: dict[str, Any]) -> list[str]:
    return [
        r["group"],
        r["strategy"],
        r["policy"],
        r["judges"],
        _num(r["accuracy"]),
        _ci(r["accuracy_ci"]),
        _num(r["abstain_rate"], 2),
        _num(r["correct_rate"]),
        _usd(r["cost_per_item_usd"]),
        _num(r["calls_per_item"], 2),
    ]


def _md(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def to_markdown(result: dict[str, Any]) -> str:
    """The judge table, the policy table and the parser agreement as Markdown."""
    parser = result["parser"]
    disagree = ", ".join(f"{k} {v}" for k, v in parser["disagree"].items() if v) or "none"
    gold = parser["gold_when_both_parsed"]
    return "\n\n".join(
        [
            "#### Judges",
            _md(JUDGE_HEAD, [_judge_cells(r) for r in result["judges"]]),
            "#### Policies",
            _md(POLICY_HEAD, [_policy_cells(r) for r in result["policies"]]),
            "#### Re-parse with judge.pairwise.parse_preference",
            f"{parser['agree']} of {parser['replies']} replies agree "
            f"({parser['agreement']:.2%}); disagreements: {disagree}"
            + (
                f"; where both found a choice the recorded parse equals the gold label "
                f"{gold['recorded']} times, the project's parser {gold['parser']} times."
                if parser["disagree"]["verdict_then_discussion"] or parser["disagree"]["other"]
                else "."
            ),
        ]
    )


def _print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, head, rows in (
        ("Judges (accuracy over both orders)", JUDGE_HEAD, map(_judge_cells, result["judges"])),
        ("Policies", POLICY_HEAD, map(_policy_cells, result["policies"])),
    ):
        table = Table(title=title)
        for i, column in enumerate(head):
            table.add_column(column, justify="left" if i < 4 else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
    parser = result["parser"]
    console.print(
        f"parser agreement: {parser['agree']} of {parser['replies']} "
        f"({parser['agreement']:.2%}); disagreements {parser['disagree']}",
        highlight=False,
    )

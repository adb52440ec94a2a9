"""`judge leaderboard`: agents or model paths by resolved rate, cost per resolved task and TCO.

From a results CSV (``--results``, columns mapped by options) or from the ledger (``--db``, one
row per model path, verified rate of each outcome's latest verdict). Prints a table (or JSON or
Markdown) and with ``--html`` writes a self-contained, sortable page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli._common import fail, stderr
from app.cli._sources import FromOpt, TenantOpt, ToOpt, open_ledger, parse_time


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""
    app.command("leaderboard")(leaderboard)


def _where(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column:
            fail(f"--where {item!r}: write COLUMN=VALUE, e.g. --where domain=retail")
        out[column] = value
    return out


def leaderboard(
    results: Annotated[
        Path | None, typer.Option("--results", help="Results CSV: one row per agent.")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Read model paths from this ledger instead.")
    ] = None,
    tenant: TenantOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    labor: Annotated[
        float,
        typer.Option("--labor", min=0, help="USD to finish one failed task by hand (for TCO)."),
    ] = 5.0,
    name_column: Annotated[
        list[str] | None,
        typer.Option("--name-column", help="Column(s) naming the agent (repeat to join)."),
    ] = None,
    rate_column: Annotated[
        str, typer.Option("--rate-column", help="Column with the resolved rate.")
    ] = "resolved_rate",
    cost_column: Annotated[
        str, typer.Option("--cost-column", help="Column with the cost per attempt (USD).")
    ] = "cost_per_attempt",
    fraction: Annotated[
        bool, typer.Option("--fraction", help="The rate column holds fractions, not percent.")
    ] = False,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Keep rows with COLUMN=VALUE (repeatable)."),
    ] = None,
    tasks: Annotated[
        int | None,
        typer.Option("--tasks", min=1, help="Tasks each CSV rate was measured on (interval)."),
    ] = None,
    detail_column: Annotated[
        list[str] | None,
        typer.Option("--detail-column", help="Extra CSV column(s) to show (repeatable)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the page.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the self-contained page here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
) -> None:
    """Rank agents by resolved rate with cost per attempt, cost per resolved task and TCO."""
    from ledger.leaderboard import (
        LeaderboardInputError,
        entries_from_csv,
        rank,
    )

    if as_json and markdown:
        fail("choose one of --json and --markdown")
    if (results is None) == (db is None):
        fail("give --results FILE (a results CSV) or --db URL (the ledger), one of the two")
    if not math.isfinite(labor):
        fail(f"--labor must be a finite amount, got {labor}")
    details = list(detail_column or [])
    notes: list[str] = []
    try:
        if results is not None:
            if tenant or since or until:
                fail("--tenant, --from and --to read the ledger; use them with --db")
            entries, counts = entries_from_csv(
                results,
                name_columns=list(name_column or ["name"]),
                rate_column=rate_column,
                cost_column=cost_column,
                percent=not fraction,
                where=_where(list(where or [])),
                tasks=tasks,
                detail_columns=details,
            )
            source = f"{results.name}: {counts['used']} of {counts['rows']} rows"
            left = {k: v for k, v in counts.items() if k not in ("rows", "used") and v}
            if left:
                source += " (left out: " + ", ".join(f"{k} {v}" for k, v in left.items()) + ")"
            if tasks is None:
                notes.append("no interval: pass --tasks N (the tasks each rate was measured on)")
        else:
            assert db is not None
            if where or name_column or detail_column or tasks:
                fail("--where, --name-column, --detail-column and --tasks read a results CSV")
            entries, source = _from_ledger(db, tenant, since, until)
        rows = rank(entries, labor=labor)
    except (LeaderboardInputError, ValueError) as exc:
        fail(str(exc))
    from calibration.report import clean

    rows = clean(rows)
    heading = title or "Leaderboard: cost per resolved task"
    if html is not None:
        from ledger.leaderboard_html import render_leaderboard

        page = render_leaderboard(
            rows, title=heading, source=source, detail_columns=details, notes=notes
        )
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write the page to {html}: {exc}")
    if as_json:
        typer.echo(json.dumps({"source": source, "rows": rows}, indent=2, allow_nan=False))
    elif markdown:
        typer.echo(to_markdown(rows, details))
    else:
        _print(rows, details, heading, source)
    if html is not None:
        stderr.print(f"leaderboard page written to {html}", highlight=False)


def _from_ledger(
    db: str, tenant: str | None, since: str | None, until: str | None
) -> tuple[list[Any], str]:
    from ledger.counted import judged_rows
    from ledger.leaderboard import entries_from_paths

    start, end = parse_time(since, "--from"), parse_time(until, "--to")
    engine, chosen, shown = open_ledger(db, tenant, tables={"verdicts", "outcomes", "tenants"})
    try:
        grouped = judged_rows(engine, chosen, since=start, until=end)
    finally:
        engine.dispose()
    if not grouped:
        fail(f"--db: no verdicts for tenant {chosen!r} in {shown}")
    return entries_from_paths(grouped), f"the ledger {shown} (tenant {chosen}), by model path"


def _money(value: Any) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _cells(r: dict[str, Any], details: list[str]) -> list[str]:
    low, high = r["resolved_rate_ci"]
    ci = f" ({low:.0%}-{high:.0%})" if low is not None and high is not None else ""
    b = r.get("breakeven_next")
    if not b:
        be = "-"
    elif b["flip_rule"] == "flips":
        be = f"above {_money(b['flip_labor'])}"
    elif b["flip_rule"] == "dominates":
        be = "always"
    else:
        be = "labour cost does not matter"
    cpr = r["cost_per_resolved"]
    return [
        str(r["rank"]),
        r["name"],
        *(str(r["details"].get(c, "")) for c in details),
        f"{r['resolved_rate']:.1%}{ci}",
        _money(r["cost_per_attempt"]) + (" (reported as $0)" if r.get("cost_note") else ""),
        _money(cpr) if cpr is not None else r.get("cost_reason", "-"),
        _money(r["tco"]),
        be,
    ]


def _head(rows: list[dict[str, Any]], details: list[str]) -> list[str]:
    labor = rows[0]["labor"] if rows else 0
    return [
        "#",
        "agent",
        *details,
        "resolved (95% CI)",
        "cost/attempt",
        "cost/resolved",
        f"TCO at ${labor:g}",
        "pays off vs next row at labour cost",
    ]


def to_markdown(rows: list[dict[str, Any]], details: list[str]) -> str:
    """The ranked rows as a Markdown table."""
    head = _head(rows, details)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r, details)) + " |" for r in rows]
    return "\n".join(lines)


def _print(rows: list[dict[str, Any]], details: list[str], heading: str, source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=heading, caption=source)
    for i, column in enumerate(_head(rows, details)):
        table.add_column(column, justify="left" if 0 < i <= 1 + len(details) else "right")
    for r in rows:
        table.add_row(*_cells(r, details))
    Console().print(table)

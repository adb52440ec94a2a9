"""`judge db partition`: partition a PostgreSQL ledger by month (opt-in, one transaction).

Converts an existing ledger (:func:`ledger.partitions.convert`), then creates the partitions of
the coming months (:func:`ledger.partition_upkeep.ensure_partitions`); a second run says the
ledger is already partitioned and only does the upkeep. ``--move-default`` moves the rows that
landed in a DEFAULT partition into partitions of their own months.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli._common import LedgerUrlOpt, fail, redact_url, stderr

db_app = typer.Typer(
    name="db", help="The ledger database: partition a PostgreSQL ledger by month.",
    no_args_is_help=True,
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("partition")
def partition(
    db: LedgerUrlOpt = None,
    months_ahead: Annotated[
        int,
        typer.Option(
            "--months-ahead", min=0, max=120, help="Monthly partitions created ahead of this one."
        ),
    ] = 3,
    move_default: Annotated[
        bool,
        typer.Option(
            "--move-default",
            help="Move the rows of each DEFAULT partition into partitions of their months "
            "(locks each table while it moves).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Partition the ledger's outcomes, facts, judge calls and meter entries by month.

    PostgreSQL only. The conversion runs in one transaction and locks those tables while it
    copies them: pause the service's writers for its duration. Idempotent.
    """
    from config.settings import get_settings
    from ledger.db import LedgerDatabaseError, make_engine
    from ledger.partition_upkeep import ensure_partitions, move_default_rows
    from ledger.partitions import convert, require_postgresql
    from ledger.schema import migrate

    url = db or get_settings().db_url
    try:
        engine = make_engine(url)
    except LedgerDatabaseError as exc:
        fail(str(exc))
    try:
        require_postgresql(engine)
        migrate(engine)
        report = convert(engine, months_ahead=months_ahead)
        moved = move_default_rows(engine) if move_default else {}
        upkeep = ensure_partitions(engine, months_ahead=months_ahead)
    except LedgerDatabaseError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    result: dict[str, Any] = {
        "db": redact_url(url),
        "converted": report.converted,
        "rows": report.rows,
        "partitions": report.partitions,
        "moved_from_default": moved,
        "created": upkeep.created,
        "blocked": upkeep.blocked,
        "default_rows": upkeep.default_rows,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if report.converted:
        copied = ", ".join(f"{t} {n:,}" for t, n in report.rows.items())
        typer.echo(f"partitioned {redact_url(url)} by month (rows copied: {copied})")
    else:
        typer.echo(f"{redact_url(url)} is already partitioned: nothing converted")
    for table, count in moved.items():
        typer.echo(f"moved {count:,} row(s) of {table} out of its DEFAULT partition")
    if upkeep.created:
        typer.echo(f"created partitions: {', '.join(upkeep.created)}")
    for name in upkeep.blocked:
        stderr.print(
            f"{name} not created: its rows are in the DEFAULT partition; run again with "
            "--move-default",
            highlight=False,
        )
    for table, count in upkeep.default_rows.items():
        typer.echo(f"{table}: {count:,} row(s) in the DEFAULT partition (see --move-default)")

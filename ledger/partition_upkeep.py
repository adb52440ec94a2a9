"""Upkeep of a partitioned ledger: next months' partitions ahead, and the DEFAULT partition.

A row whose partition key falls in a month without a partition goes to ``<table>_default``
(:mod:`ledger.partitions`): it is stored and read like any other, only not pruned, and the
month's partition can no longer be created while such rows are there (PostgreSQL refuses to
create a partition that rows of the DEFAULT partition belong to). So the months must exist before
their rows arrive: :func:`ensure_partitions` creates the current month and ``months_ahead`` more
(``judge worker`` calls it every :data:`UPKEEP_SECONDS`, ``judge db partition`` on every run),
and skips, and reports, a month whose rows are already in DEFAULT: it splits nothing.
:func:`move_default_rows` (``judge db partition --move-default``) moves such rows into their own
month partitions, one table per transaction, under an exclusive lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ledger.outcome_months import month_start, next_month
from ledger.partitions import (
    DEFAULT_MONTHS_AHEAD,
    PARTITION_KEYS,
    REVISIONS_FK,
    create_month_partition,
    default_partition,
    month_partition,
    months,
    partitioned_tables,
    plus_months,
    require_postgresql,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["UPKEEP_SECONDS", "UpkeepReport", "ensure_partitions", "move_default_rows"]

#: How often ``judge worker`` runs :func:`ensure_partitions` (seconds).
UPKEEP_SECONDS = 3600.0
#: How long upkeep waits for a table lock before giving up until the next round: a waiting
#: ACCESS EXCLUSIVE request would queue every reader behind it.
LOCK_TIMEOUT = "2s"


@dataclass
class UpkeepReport:
    """What :func:`ensure_partitions` found and did.

    Attributes
    ----------
    created
        Partitions created.
    blocked
        ``table_pYYYYMM`` partitions not created because DEFAULT holds rows of that month
        (move them with :func:`move_default_rows`).
    default_rows
        Rows in each table's DEFAULT partition (tables with none are left out).
    """

    created: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    default_rows: dict[str, int] = field(default_factory=dict)


def _existing(conn: Connection, table: str) -> set[str]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    )
    return {name for (name,) in rows}


def _in_default(conn: Connection, table: str, month: datetime) -> bool:
    key = PARTITION_KEYS[table]
    query = (
        f'SELECT EXISTS (SELECT 1 FROM "{default_partition(table)}" '
        f'WHERE "{key}" >= :start AND "{key}" < :end)'
    )
    found = conn.execute(sa.text(query), {"start": month, "end": next_month(month)})
    return bool(found.scalar_one())


def ensure_partitions(
    engine: Engine, *, months_ahead: int = DEFAULT_MONTHS_AHEAD, now: datetime | None = None
) -> UpkeepReport:
    """Create the partitions of the current month and the next ``months_ahead`` where missing.

    Does nothing on SQLite or on an unpartitioned PostgreSQL ledger (one catalog query). Each
    partition is created in its own short transaction that waits at most :data:`LOCK_TIMEOUT`
    for the table (a lock it cannot get now is tried again next round). Several processes may
    run it at once: they take turns on an advisory lock.
    """
    report = UpkeepReport()
    if engine.dialect.name != "postgresql":
        return report
    with engine.connect() as conn:
        tables = sorted(partitioned_tables(conn) & set(PARTITION_KEYS))
    start = month_start(now or datetime.now(UTC))
    last = plus_months(start, months_ahead)
    for table in tables:
        for month in months(start, last):
            name = month_partition(table, month)
            with engine.begin() as conn:
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": table})
                if name in _existing(conn, table):
                    continue
                if _in_default(conn, table, month):
                    report.blocked.append(name)
                    continue
                report.created.append(create_month_partition(conn, table, month))
    with engine.connect() as conn:
        for table in tables:
            count = conn.execute(
                sa.text(f'SELECT count(*) FROM "{default_partition(table)}"')
            ).scalar_one()
            if count:
                report.default_rows[table] = int(count)
    return report


def move_default_rows(engine: Engine) -> dict[str, int]:
    """Move every row of each DEFAULT partition into a partition of its own month.

    One transaction per table, holding it ACCESS EXCLUSIVE: the rows of each month are taken out
    of DEFAULT, the month's partition is created, and the rows go back in through the parent
    (the foreign key of ``outcome_revisions`` to ``outcomes`` is dropped for the move and added
    again, which checks every key row). Returns the rows moved per table.
    """
    require_postgresql(engine)
    moved: dict[str, int] = {}
    with engine.connect() as conn:
        tables = sorted(partitioned_tables(conn) & set(PARTITION_KEYS))
    for table in tables:
        key, default = PARTITION_KEYS[table], default_partition(table)
        with engine.begin() as conn:
            conn.execute(sa.text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
            found = conn.execute(
                sa.text(f"SELECT DISTINCT date_trunc('month', \"{key}\", 'UTC') FROM \"{default}\"")
            ).scalars()
            wanted = sorted(month_start(m) for m in found)
            if table == "outcomes" and wanted:
                conn.execute(sa.text("ALTER TABLE outcome_revisions DROP CONSTRAINT "
                                     "fk_outcome_revisions_outcome"))  # fmt: skip
            total = 0
            for month in wanted:
                staging = f"{table}__moving"
                conn.execute(sa.text(f'CREATE TEMPORARY TABLE "{staging}" (LIKE "{table}")'))
                conn.execute(
                    sa.text(
                        f'WITH gone AS (DELETE FROM "{default}" WHERE "{key}" >= :start AND '
                        f'"{key}" < :end RETURNING *) INSERT INTO "{staging}" SELECT * FROM gone'
                    ),
                    {"start": month, "end": next_month(month)},
                )
                create_month_partition(conn, table, month)
                total += conn.execute(
                    sa.text(f'INSERT INTO "{table}" SELECT * FROM "{staging}"')
                ).rowcount
                conn.execute(sa.text(f'DROP TABLE "{staging}"'))
            if table == "outcomes" and wanted:  # checks every key row again
                conn.execute(
                    sa.text(f"ALTER TABLE outcome_revisions ADD CONSTRAINT {REVISIONS_FK}")
                )
            if total:
                moved[table] = total
    return moved

"""PostgreSQL declarative partitioning by month for the ledger's large tables (opt-in).

``judge db partition --db postgresql+psycopg://...`` (:func:`convert`) turns an existing ledger
into this layout in one transaction; SQLite ledgers, and PostgreSQL ledgers never converted,
keep the plain layout. The ledger's code is the same on both: same table and column names.

Each table is partitioned by range on one timestamp column, one partition per UTC month
(``<table>_pYYYYMM``), plus a ``<table>_default`` partition for anything else:

==================  ===================  ===========================================
table               partition key        primary key / unique keys
==================  ===================  ===========================================
``outcomes``        ``received_at``      (pk, received_at); (tenant, outcome_id,
                                         revision, received_at)
``outcome_facts``   ``outcome_month``    (pk, outcome_month); (tenant, outcome_id,
                                         outcome_month)
``judge_calls``     ``at``               (pk, at)
``meter_entries``   ``booked_at``        (pk, booked_at)
==================  ===================  ===========================================

PostgreSQL has no index across partitions, so a unique key of a partitioned table must hold the
partition key. The two rules the ledger relies on are kept by the database all the same, through
two narrow, unpartitioned key tables (the "global index" PostgreSQL lacks), filled by a trigger
on ``outcomes`` in the same statement as the row:

- ``outcome_revisions`` (tenant, outcome_id, revision, received_at), primary key (tenant,
  outcome_id, revision): one row per revision. Every ``outcomes`` row references its key row on
  (tenant, outcome_id, revision, received_at), so two rows of one revision would need two key
  rows with one primary key: impossible. A duplicate revision with another ``received_at`` fails
  that foreign key (``fk_outcomes_revision_key``); with the same, ``uq_outcomes_revision``. The key
  row references its ``outcomes`` row back (deferred to commit), and ``verdicts`` and ``touches``
  reference the key row (``fk_verdicts_outcome_revision``, ``fk_touches_outcome_revision``): a
  verdict still names an existing revision.
- ``outcome_months`` (tenant, outcome_id, month, ...), primary key (tenant, outcome_id): the month
  of revision 1 (a check ties it to revision 1's ``received_at``). Every fact references it on
  (tenant, outcome_id, outcome_month) (``fk_outcome_facts_month``), so one outcome has one month
  and, through ``uq_outcome_facts_month``, one fact.

``judge_calls`` and ``meter_entries`` have no uniqueness besides their sequence-drawn ``pk``.

Queries that bound the partition key are pruned to the months they cover (the meters and the
cost report by ``booked_at``, the calls of a period by ``at``, job selections by ``received_at``;
``tests/ledger/test_partitions.py`` asserts it with EXPLAIN). Look-ups by outcome id visit one
index per partition. Partitions for the next months are created ahead
(:mod:`ledger.partition_upkeep`, run by ``judge worker`` and by the convert command).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ledger.db import LedgerDatabaseError
from ledger.outcome_months import month_start, next_month

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "DEFAULT_MONTHS_AHEAD",
    "KEY_TABLES",
    "PARTITION_KEYS",
    "REVISIONS_FK",
    "ConversionReport",
    "PartitionError",
    "convert",
    "default_partition",
    "month_partition",
    "months",
    "partitioned_tables",
    "plus_months",
    "require_postgresql",
]

#: Table -> the timestamp column it is partitioned by (range, one partition per UTC month).
PARTITION_KEYS: dict[str, str] = {
    "outcomes": "received_at",
    "outcome_facts": "outcome_month",
    "judge_calls": "at",
    "meter_entries": "booked_at",
}
#: The unpartitioned key tables that keep the uniqueness a partitioned table cannot.
KEY_TABLES = ("outcome_revisions", "outcome_months")
#: Months created ahead of the current one (by the conversion and by each upkeep round).
DEFAULT_MONTHS_AHEAD = 3
#: The same key as the migrations' lock (ledger/migrations/env.py): a conversion and a migration
#: never run at once.
_LOCK_KEY = zlib.crc32(b"outcome-judge ledger migrations")
#: Tables whose rows reference ``outcomes`` (locked with it while it is swapped).
_REFERENCING = ("verdicts", "touches")


class PartitionError(LedgerDatabaseError):
    """The ledger cannot be (or was not) partitioned; the message says why and what to do."""


@dataclass
class ConversionReport:
    """What :func:`convert` did.

    Attributes
    ----------
    converted
        False when the ledger was already partitioned (nothing was changed).
    rows
        Rows per table copied into the partitioned table (empty when not converted).
    partitions
        Partitions created, by table.
    """

    converted: bool
    rows: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, list[str]] = field(default_factory=dict)


def require_postgresql(engine: Engine) -> None:
    """Refuse a SQLite ledger with a message that names the fix."""
    if engine.dialect.name != "postgresql":
        raise PartitionError(
            f"partitioning needs PostgreSQL, and this ledger is {engine.dialect.name} "
            f"({engine.url.render_as_string(hide_password=True)}); SQLite ledgers are never "
            "partitioned. Move the ledger to PostgreSQL (--db postgresql+psycopg://user:password@"
            "host:5432/dbname) to partition it"
        )


def partitioned_tables(conn: Connection) -> set[str]:
    """Names of the partitioned tables in the current schema."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace"
        )
    )
    return {name for (name,) in rows}


def month_partition(table: str, month: datetime) -> str:
    """The name of ``table``'s partition for ``month`` (``outcomes_p202603``)."""
    return f"{table}_p{month.year:04d}{month.month:02d}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def months(first: datetime, last: datetime) -> Iterator[datetime]:
    """Every month start from ``first``'s month to ``last``'s, inclusive.

    >>> [m.strftime("%Y-%m") for m in months(datetime(2025, 11, 5), datetime(2026, 2, 1))]
    ['2025-11', '2025-12', '2026-01', '2026-02']
    """
    month = month_start(first)
    while month <= last.replace(tzinfo=last.tzinfo or UTC):
        yield month
        month = next_month(month)


def create_month_partition(conn: Connection, table: str, month: datetime) -> str:
    """``CREATE TABLE <table>_pYYYYMM PARTITION OF <table>`` for ``month``; returns its name."""
    name = month_partition(table, month)
    conn.execute(
        sa.text(
            f'CREATE TABLE "{name}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
        )
    )
    return name


def convert(
    engine: Engine, *, months_ahead: int = DEFAULT_MONTHS_AHEAD, now: datetime | None = None
) -> ConversionReport:
    """Partition the ledger's large tables by month, in ONE transaction (all or nothing).

    For each table of :data:`PARTITION_KEYS`: a partitioned twin is created with the same
    columns, defaults, checks and sequence; a partition per month that holds rows, per month
    from the current one to ``months_ahead`` ahead, and a DEFAULT one; every row is copied; the
    old table is dropped and the twin takes its name; its indexes, unique keys (with the
    partition key added) and foreign keys are recreated under their names. Then the key tables
    (:data:`KEY_TABLES`) are filled and the foreign keys that keep the ledger's uniqueness are
    added (they check every row copied). The tables are locked (ACCESS EXCLUSIVE) throughout:
    run it when the service can pause writes for as long as the copy takes.

    Migrate the ledger first (:func:`ledger.schema.migrate`; the CLI does). Idempotent: on a
    partitioned ledger nothing is changed and ``converted`` is False.

    Raises
    ------
    PartitionError
        SQLite, or rows the partitioned layout refuses (the message names them).
    """
    require_postgresql(engine)
    moment = month_start(now or datetime.now(UTC))
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        done = partitioned_tables(conn) & set(PARTITION_KEYS)
        if done == set(PARTITION_KEYS):
            return ConversionReport(converted=False)
        if done:
            raise PartitionError(
                f"the ledger is partly partitioned ({', '.join(sorted(done))} only): it was "
                "changed by hand; restore it from a backup, then run judge db partition again"
            )
        tables = [*PARTITION_KEYS, *_REFERENCING]
        conn.execute(sa.text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
        report = ConversionReport(converted=True)
        for table, key in PARTITION_KEYS.items():
            ahead = list(months(moment, plus_months(moment, months_ahead)))
            rows, made = _swap(conn, table, key, ahead)
            report.rows[table], report.partitions[table] = rows, made
        _add_key_tables(conn)
        for table in [*PARTITION_KEYS, *KEY_TABLES]:
            conn.execute(sa.text(f'ANALYZE "{table}"'))
    return report


def plus_months(month: datetime, count: int) -> datetime:
    """The month ``count`` months after ``month``."""
    for _ in range(count):
        month = next_month(month)
    return month


@dataclass(frozen=True)
class _Shape:
    """What a table has besides columns, captured before it is dropped."""

    sequence: str | None
    indexes: list[str]  # CREATE INDEX statements (not those behind constraints)
    primary: tuple[str, list[str]] | None  # name, columns
    uniques: list[tuple[str, list[str]]]
    foreign: list[tuple[str, str]]  # name, definition (FKs this table holds)


def _shape(conn: Connection, table: str) -> _Shape:
    sequence = conn.execute(
        sa.text("SELECT pg_get_serial_sequence(:t, 'pk')"), {"t": table}
    ).scalar_one()
    indexes = list(
        conn.execute(
            sa.text(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = CAST(:t AS regclass) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                "ORDER BY i.indexrelid"
            ),
            {"t": table},
        ).scalars()
    )
    if any(definition.startswith("CREATE UNIQUE") for definition in indexes):
        raise PartitionError(
            f"{table} has a unique index outside the ledger's schema; drop it or make it a "
            "named constraint, then run judge db partition again"
        )
    constraints = conn.execute(
        sa.text(
            "SELECT c.conname, c.contype, pg_get_constraintdef(c.oid), "
            "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) "
            "FROM pg_constraint c WHERE c.conrelid = CAST(:t AS regclass) ORDER BY c.oid"
        ),
        {"t": table},
    ).all()
    primary = next(((n, list(cols)) for n, kind, _, cols in constraints if kind == "p"), None)
    uniques = [(n, list(cols)) for n, kind, _, cols in constraints if kind == "u"]
    foreign = [(n, definition) for n, kind, definition, _ in constraints if kind == "f"]
    return _Shape(sequence, indexes, primary, uniques, foreign)


def _present_months(conn: Connection, table: str, key: str) -> list[datetime]:
    found = conn.execute(
        sa.text(f"SELECT DISTINCT date_trunc('month', \"{key}\", 'UTC') FROM \"{table}\"")
    ).scalars()
    return [month_start(m) for m in found]


def _swap(
    conn: Connection, table: str, key: str, ahead: Iterable[datetime]
) -> tuple[int, list[str]]:
    """Replace ``table`` by a partitioned twin holding the same rows; (rows, partitions made)."""
    shape = _shape(conn, table)
    old = f"{table}__unpartitioned"
    wanted = sorted({*_present_months(conn, table, key), *ahead})
    if shape.sequence:  # kept: the twin draws its pks from the same sequence
        conn.execute(sa.text(f"ALTER SEQUENCE {shape.sequence} OWNED BY NONE"))
    conn.execute(sa.text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(
        sa.text(
            f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            f'INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ("{key}")'
        )
    )
    made = [create_month_partition(conn, table, month) for month in wanted]
    conn.execute(
        sa.text(f'CREATE TABLE "{default_partition(table)}" PARTITION OF "{table}" DEFAULT')
    )
    made.append(default_partition(table))
    rows = conn.execute(sa.text(f'INSERT INTO "{table}" SELECT * FROM "{old}"')).rowcount
    # CASCADE: the foreign keys of verdicts and touches to outcomes go with it (re-added to the
    # key table by _add_key_tables).
    conn.execute(sa.text(f'DROP TABLE "{old}" CASCADE'))
    if shape.sequence:
        conn.execute(sa.text(f'ALTER SEQUENCE {shape.sequence} OWNED BY "{table}".pk'))
    if shape.primary is not None:
        name, columns = shape.primary
        conn.execute(sa.text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" PRIMARY KEY '
                             f"({_columns([*columns, key])})"))  # fmt: skip
    kept: set[frozenset[str]] = set()
    for name, columns in sorted(shape.uniques, key=lambda u: key not in u[1]):
        with_key = [*columns, key] if key not in columns else columns
        if frozenset(with_key) in kept:
            continue  # e.g. (tenant, outcome_id) of the facts: the month key already holds it
        kept.add(frozenset(with_key))
        conn.execute(sa.text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" UNIQUE '
                             f"({_columns(with_key)})"))  # fmt: skip
    for name, definition in shape.foreign:
        conn.execute(sa.text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    for definition in shape.indexes:
        conn.execute(sa.text(definition))
    return int(rows), made


def _columns(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


#: The key rows' foreign key to the outcomes rows they stand for (ledger.partition_upkeep drops
#: and re-adds it while it moves outcomes between partitions: PostgreSQL checks a foreign key to
#: a partitioned table per partition, so a row moved to another partition looks deleted).
REVISIONS_FK = """fk_outcome_revisions_outcome
        FOREIGN KEY (tenant, outcome_id, revision, received_at)
        REFERENCES outcomes (tenant, outcome_id, revision, received_at)
        DEFERRABLE INITIALLY DEFERRED"""
_KEY_TABLES_SQL = (
    """CREATE TABLE outcome_revisions (
        tenant VARCHAR(100) NOT NULL,
        outcome_id VARCHAR(200) NOT NULL,
        revision INTEGER NOT NULL,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_outcome_revisions PRIMARY KEY (tenant, outcome_id, revision),
        CONSTRAINT uq_outcome_revisions_received UNIQUE (tenant, outcome_id, revision, received_at)
    )""",
    """INSERT INTO outcome_revisions (tenant, outcome_id, revision, received_at)
        SELECT tenant, outcome_id, revision, received_at FROM outcomes""",
    """CREATE TABLE outcome_months (
        tenant VARCHAR(100) NOT NULL,
        outcome_id VARCHAR(200) NOT NULL,
        revision INTEGER NOT NULL DEFAULT 1,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL,
        month TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_outcome_months PRIMARY KEY (tenant, outcome_id),
        CONSTRAINT uq_outcome_months_month UNIQUE (tenant, outcome_id, month),
        CONSTRAINT ck_outcome_months_first CHECK (revision = 1),
        CONSTRAINT ck_outcome_months_month
            CHECK (month = date_trunc('month', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
    )""",
    """INSERT INTO outcome_months (tenant, outcome_id, received_at, month)
        SELECT tenant, outcome_id, received_at,
               date_trunc('month', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM outcomes WHERE revision = 1""",
    """ALTER TABLE outcomes ADD CONSTRAINT fk_outcomes_revision_key
        FOREIGN KEY (tenant, outcome_id, revision, received_at)
        REFERENCES outcome_revisions (tenant, outcome_id, revision, received_at)""",
    # Deferred: the trigger writes the key row just before the outcomes row it names.
    f"ALTER TABLE outcome_revisions ADD CONSTRAINT {REVISIONS_FK}",
    """ALTER TABLE outcome_months ADD CONSTRAINT fk_outcome_months_revision
        FOREIGN KEY (tenant, outcome_id, revision, received_at)
        REFERENCES outcome_revisions (tenant, outcome_id, revision, received_at)""",
    """ALTER TABLE verdicts ADD CONSTRAINT fk_verdicts_outcome_revision
        FOREIGN KEY (tenant, outcome_id, outcome_revision)
        REFERENCES outcome_revisions (tenant, outcome_id, revision)""",
    """ALTER TABLE touches ADD CONSTRAINT fk_touches_outcome_revision
        FOREIGN KEY (tenant, outcome_id, outcome_revision)
        REFERENCES outcome_revisions (tenant, outcome_id, revision)""",
    """ALTER TABLE outcome_facts ADD CONSTRAINT fk_outcome_facts_month
        FOREIGN KEY (tenant, outcome_id, outcome_month)
        REFERENCES outcome_months (tenant, outcome_id, month)""",
    # search_path FROM CURRENT: the trigger finds the key tables of this ledger's schema.
    """CREATE FUNCTION outcome_keys() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
    BEGIN
        -- ON CONFLICT DO NOTHING: a row moved out of the DEFAULT partition is inserted again;
        -- a true duplicate still fails uq_outcomes_revision or fk_outcomes_revision_key.
        INSERT INTO outcome_revisions (tenant, outcome_id, revision, received_at)
            VALUES (NEW.tenant, NEW.outcome_id, NEW.revision, NEW.received_at)
            ON CONFLICT DO NOTHING;
        IF NEW.revision = 1 THEN
            INSERT INTO outcome_months (tenant, outcome_id, received_at, month)
                VALUES (NEW.tenant, NEW.outcome_id, NEW.received_at,
                        date_trunc('month', NEW.received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                ON CONFLICT DO NOTHING;
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER tr_outcomes_keys BEFORE INSERT ON outcomes
        FOR EACH ROW EXECUTE FUNCTION outcome_keys()""",
)


def _add_key_tables(conn: Connection) -> None:
    """Fill the key tables from the copied rows and tie everything to them (checks every row)."""
    from sqlalchemy.exc import IntegrityError

    for statement in _KEY_TABLES_SQL:
        try:
            with conn.begin_nested():
                conn.execute(sa.text(statement))
        except IntegrityError as exc:
            first = str(exc.orig).strip().splitlines()[0]
            raise PartitionError(
                f"the partitioned layout refuses a row of this ledger ({first}); "
                f"{_FIX.get(_constraint(exc) or '', 'nothing was changed')}"
            ) from None


_FIX = {
    "fk_outcome_facts_month": "a fact whose outcome_month is not the month of its outcome's "
    "revision 1 (or whose outcome is missing) cannot be kept: nothing was changed; list them "
    "with SELECT f.tenant, f.outcome_id FROM outcome_facts f LEFT JOIN outcomes o ON "
    "(o.tenant, o.outcome_id, o.revision) = (f.tenant, f.outcome_id, 1) WHERE o.pk IS NULL OR "
    "date_trunc('month', o.received_at, 'UTC') <> f.outcome_month",
}


def _constraint(exc: Any) -> str | None:
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    return getattr(diag, "constraint_name", None)

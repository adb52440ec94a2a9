"""The ledger's schema: Alembic migrations to head, and the data steps that follow them.

Kept apart from :mod:`ledger.db` (engines and transactions), which every ledger module uses:
the data steps after an upgrade call the meters' code (:mod:`ledger.facts`,
:mod:`ledger.bookings`), which itself uses :mod:`ledger.db`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.db import _is_connect_failure, connection_error

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_tables", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATE_LOCK = threading.Lock()


def alembic_config() -> Config:
    """The Alembic configuration for the migrations shipped inside this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def migrate(engine: Engine, *, revision: str = "head") -> None:
    """Bring the ledger schema up to ``revision`` (default: the newest), in one transaction.

    Safe to call on every start: at head it only reads the version table. Processes that
    migrate at the same time take turns (PostgreSQL: a transaction-level advisory lock; SQLite:
    ``BEGIN IMMEDIATE``); threads of one process take turns on a lock (Alembic is not
    thread-safe).

    >>> from ledger.db import make_engine
    >>> engine = make_engine("sqlite://")
    >>> migrate(engine)
    >>> {"alembic_version", "outcomes", "verdicts"} <= current_tables(engine)
    True
    """
    from alembic import command
    from sqlalchemy.exc import DBAPIError

    config = alembic_config()
    try:
        # Alembic's ``context`` is process-global: one migration at a time in this process.
        with _MIGRATE_LOCK, engine.begin() as connection:
            config.attributes["connection"] = connection
            before = _current_revision(connection)
            command.upgrade(config, revision)
            _after_upgrade(connection, before)
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_connect_failure(exc):
            raise connection_error(exc, engine.url) from None
        raise


#: The revision that created ``outcome_facts``: upgrading across it back-fills the facts.
_FACTS_REVISION = "0005"
#: The revision that created ``meter_entries``: upgrading across it books the facts' entries.
_ENTRIES_REVISION = "0006"
#: The revision that created ``review_queue``: upgrading across it fills the queue.
_QUEUE_REVISION = "0013"
#: The revision that created ``meter_rollups``: upgrading across it rolls the final days up.
_ROLLUP_REVISION = "0016"


def _current_revision(connection: Any) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _after_upgrade(connection: Any, before: str | None) -> None:
    """Data steps that need today's code (a self-contained migration must not import it).

    Crossing 0005 from an older ledger: build the meters' facts from the verdicts already stored
    (:func:`ledger.facts.backfill_facts`), in the migration's transaction; crossing 0006: book
    the meter entries of the facts and revocations stored before it
    (:func:`ledger.bookings.backfill_entries`); crossing 0013: fill the review queue
    (:func:`ledger.review_index.backfill_review_queue`); crossing 0016: roll up the meter days
    already published final or closed (:func:`ledger.meter_rollups.backfill_rollups`, after the
    entries' back-fill). Revision ids are
    zero-padded, so string order is migration order. A fresh database (``before`` None) has no
    verdicts to back-fill.
    """
    after = _current_revision(connection)
    if before is None or after is None:
        return
    if before < _FACTS_REVISION <= after:
        from ledger.facts import backfill_facts

        backfill_facts(connection)  # books the new facts' meter entries too
    elif before < _ENTRIES_REVISION <= after:
        from ledger.bookings import backfill_entries

        backfill_entries(connection)
    if before < _QUEUE_REVISION <= after:
        from ledger.review_index import backfill_review_queue

        backfill_review_queue(connection)
    if before < _ROLLUP_REVISION <= after:
        from ledger.meter_rollups import backfill_rollups

        backfill_rollups(connection)


def current_tables(engine: Engine) -> set[str]:
    """Names of the tables that exist in the database (in the default schema)."""
    from sqlalchemy import inspect

    return set(inspect(engine).get_table_names())

"""Alembic environment for the ledger.

Append-only migration policy (the ledger is a system of record):

- Never edit or delete a migration that has been released; every schema change is a new
  revision file in ``versions/`` (``NNNN_short_name.py``, ``down_revision`` = the previous one).
- Migrations are self-contained: they spell out their column types instead of importing
  ``ledger.tables`` (the models change; a migration must keep meaning what it meant).
- Every constraint and index is named explicitly (SQLite batch mode needs names to alter them).
- Prefer additive changes (new tables, new nullable columns, new indexes); never rewrite history
  rows. ``tests/ledger/test_migrations.py`` fails when the models and the migrated schema differ.

Used two ways: programmatically by :func:`ledger.schema.migrate` (which passes its open
connection in ``config.attributes["connection"]``), and from the command line for new revisions::

    .venv/bin/alembic -c ledger/alembic.ini revision --autogenerate -m "add api keys"

(the URL comes from ``-x url=...`` or ``OUTCOME_JUDGE_DB_URL``; default ``sqlite:///outcome-judge.db``).
"""

from __future__ import annotations

import os
import zlib
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import ledger.tables  # registers the ledger tables on SQLModel.metadata

target_metadata = SQLModel.metadata

# pg_advisory_xact_lock key: processes that migrate the same database at once take turns.
_LOCK_KEY = zlib.crc32(b"outcome-judge ledger migrations")


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or context.config.get_main_option("sqlalchemy.url")
        or os.environ.get("OUTCOME_JUDGE_DB_URL")
        or "sqlite:///outcome-judge.db"
    )


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the ledger's custom types as plain SQLAlchemy types (self-contained)."""
    if type_ == "type" and isinstance(obj, ledger.tables.Money):
        return f"sa.Numeric(precision={obj.impl.precision}, scale={obj.impl.scale})"
    if type_ == "type" and isinstance(obj, ledger.tables.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = _url()
    _configure(
        url=url,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from ledger.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


# Only when Alembic runs this file (pytest --doctest-modules merely imports it).
if getattr(context, "_proxy", None) is not None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()

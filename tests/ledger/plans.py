"""Reading PostgreSQL's plans in tests: how many rows the statements a read made visited."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def rows_visited(plan: dict[str, Any], tables: set[str]) -> int:
    """Rows a plan's scans of ``tables`` read: returned plus filtered out, over every loop."""
    own = 0
    if plan.get("Relation Name") in tables:
        kept = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        own = int(kept * plan.get("Actual Loops", 1))
    return own + sum(rows_visited(child, tables) for child in plan.get("Plans", []))


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) sent through ``engine`` inside the block."""
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statements.append((args[2], args[3]))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)


def replayed_rows(engine: Engine, statements: list[tuple[str, Any]], tables: set[str]) -> int:
    """Rows of ``tables`` the ``statements`` visit when run again under EXPLAIN ANALYZE, in one
    transaction, their own settings (``SET ..``) replayed too."""
    visited = 0
    with engine.begin() as conn:
        for statement, parameters in statements:
            if statement.startswith("SET "):
                conn.exec_driver_sql(statement)
                continue
            (plan,) = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            ).scalar_one()
            visited += rows_visited(plan["Plan"], tables)
    return visited


@contextmanager
def ledger_without_autovacuum(*tables: str) -> Iterator[Engine]:
    """A migrated PostgreSQL ledger (a fresh schema) whose ``tables`` are never analyzed but by
    :func:`analyze`: rows written after it stay unseen by the planner's statistics, as a
    tenant's first big import is until autovacuum comes by."""
    from ledger.db import make_engine
    from ledger.schema import migrate
    from tests.ledger.conftest import _pg_schema

    with _pg_schema() as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with engine.begin() as conn:
                for table in tables:
                    conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            yield engine
        finally:
            engine.dispose()


def analyze(engine: Engine) -> None:
    """Gather the planner's statistics now (what it knows until the next call)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")

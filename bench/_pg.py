"""A throwaway PostgreSQL schema for one benchmark run (shared by the bench scripts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def pg_schema(base: str, *, prefix: str) -> Iterator[str]:
    """A dedicated schema ``<prefix>_<random>`` (dropped afterwards); yields a URL using it."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(make_url(base).set(drivername="postgresql+psycopg"))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()

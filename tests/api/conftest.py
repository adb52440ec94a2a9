"""API fixtures: a database per test (SQLite and PostgreSQL), tenants with keys, an in-process
client and a real `judge serve` process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.live import LiveServer
from tests.ledger.conftest import BACKENDS, _pg_schema


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty ledger database: a SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/service.db"
        return
    with _pg_schema() as url:
        yield url


def make_key(db_url: str, tenant: str, **limits: object) -> str:
    """Create ``tenant`` (migrating the database first) and return its API key."""
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.tenants import create_tenant

    engine = make_engine(db_url)
    try:
        migrate(engine)
        return create_tenant(engine, tenant, **limits).key  # type: ignore[arg-type]
    finally:
        engine.dispose()


@pytest.fixture
def keys(db_url: str) -> dict[str, str]:
    """Two tenants, ``acme`` and ``globex``, and their keys."""
    return {name: make_key(db_url, name) for name in ("acme", "globex")}


@pytest.fixture
def client(db_url: str, keys: dict[str, str]) -> Iterator[TestClient]:
    """An in-process client (lifespan run) with no embedded worker; no key set."""
    from api.app import create_app

    with TestClient(create_app(db_url=db_url, embedded_worker=False)) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def live(db_url: str, keys: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    """A real `judge serve` process on 127.0.0.1 (embedded worker on SQLite)."""
    server = LiveServer(db_url, log=tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()

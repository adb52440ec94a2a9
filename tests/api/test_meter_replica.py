"""``OUTCOME_JUDGE_METER_READ_URL``: the meter counts on a read replica once it is safe (#16).

A real replica needs a second server; these tests stand one in with what matters to the code:
a read-only role on the same database (a connection the meter cannot write through, named by
its ``application_name``, so the test sees it used), a stale copy whose final mark lags the
primary's (not used until it catches up), and a replica that does not answer (the primary
answers). PostgreSQL only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from config.settings import get_settings
from ledger.db import make_engine
from tests.api.conftest import auth, make_key
from tests.api.live import free_port
from tests.ledger.conftest import _pg_schema, pg_base_url
from tests.ledger.test_meters import fill

pytestmark = pytest.mark.postgres

METER = "/v1/meters/verified-outcomes"
QUERY = {"from": "2026-02-01T00:00:00Z", "to": "2027-01-01T00:00:00Z", "window": "month"}


def _schema_of(url: str) -> str:
    return str(make_url(url).query["options"]).removeprefix("-csearch_path=")


@pytest.fixture
def primary() -> Iterator[tuple[str, str]]:
    """A migrated ledger with acme's outcomes (final months and some provisional): URL, key."""
    with _pg_schema() as url:
        key = make_key(url, "acme")
        make_key(url, "globex")
        engine = make_engine(url)
        fill(engine)
        engine.dispose()
        yield url, key


@pytest.fixture
def reader(primary: tuple[str, str]) -> Iterator[tuple[str, str, str]]:
    """A LOGIN role that may only read the primary's schema: its URL, role and marker."""
    url, _ = primary
    schema, role = _schema_of(url), f"oj_meter_{uuid.uuid4().hex[:10]}"
    marker = f"meter-replica-{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(make_url(pg_base_url()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    replica = (
        make_url(url)
        .set(username=role, password="reader")
        .update_query_dict({"application_name": marker})
        .render_as_string(hide_password=False)
    )
    try:
        yield replica, role, marker
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _meter(url: str, key: str, replica: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The meter's rows through the app, with OUTCOME_JUDGE_METER_READ_URL = ``replica``."""
    from api.app import create_app

    if replica is None:
        monkeypatch.delenv("OUTCOME_JUDGE_METER_READ_URL", raising=False)
    else:
        monkeypatch.setenv("OUTCOME_JUDGE_METER_READ_URL", replica)
    get_settings.cache_clear()
    try:
        with TestClient(create_app(db_url=url, embedded_worker=False)) as client:
            response = client.get(METER, params=QUERY, headers=auth(key))
            assert response.status_code == 200, response.text
            return response.json()["rows"], client.app.state.meter_engine  # type: ignore[attr-defined]
    finally:
        get_settings.cache_clear()


def _used_by(role: str, marker: str) -> int:
    admin = sa.create_engine(make_url(pg_base_url()))
    try:
        with admin.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE usename = :role AND application_name = :marker"
                    ),
                    {"role": role, "marker": marker},
                ).scalar_one()
            )
    finally:
        admin.dispose()


def test_the_meter_reads_through_the_read_only_url(
    primary: tuple[str, str], reader: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    url, key = primary
    replica, role, marker = reader
    want, _ = _meter(url, key, None, monkeypatch)
    assert sum(r["value"] for r in want) > 5 and {r["status"] for r in want} == {
        "final",
        "provisional",
    }
    monkeypatch.setenv("OUTCOME_JUDGE_METER_READ_URL", replica)
    get_settings.cache_clear()
    try:
        with TestClient(create_app(db_url=url, embedded_worker=False)) as client:
            assert _used_by(role, marker) == 0  # not connected at start-up
            response = client.get(METER, params=QUERY, headers=auth(key))
            assert response.status_code == 200, response.text
            assert response.json()["rows"] == want  # the same rows, final and provisional
            # The read went through the read-only role (its pooled connection is still open);
            # that role cannot write, so the final mark was published on the primary.
            assert _used_by(role, marker) >= 1
            other = client.get("/v1/tenant", headers=auth(key))  # other routes: the primary
            assert other.status_code == 200
    finally:
        get_settings.cache_clear()


def test_a_replica_behind_the_final_mark_is_not_used_until_it_catches_up(
    primary: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = primary
    want, _ = _meter(url, key, None, monkeypatch)
    with _pg_schema() as stale:  # a copy that has replayed nothing of acme's yet
        make_key(stale, "acme")
        rows, _ = _meter(url, key, stale, monkeypatch)
        assert rows == want  # its final mark is behind the primary's: the primary counted
        engine = make_engine(stale)
        with engine.begin() as conn:  # the copy "replays" a final mark past the primary's
            conn.execute(
                sa.text("UPDATE tenants SET meter_final_through = :w"),
                {"w": datetime(2100, 1, 1, tzinfo=UTC)},
            )
        engine.dispose()
        rows, _ = _meter(url, key, stale, monkeypatch)
        assert rows == []  # now the copy counts (and it holds no entries): it was used


def test_a_replica_that_does_not_answer_leaves_the_meter_to_the_primary(
    primary: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = primary
    want, _ = _meter(url, key, None, monkeypatch)
    down = f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/x?connect_timeout=2"
    rows, engine = _meter(url, key, down, monkeypatch)
    assert engine is not None and rows == want


def test_a_read_url_with_a_sqlite_ledger_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.app import create_app

    monkeypatch.setenv("OUTCOME_JUDGE_METER_READ_URL", "postgresql+psycopg://u@h/db")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="SQLite: unset it"):
            create_app(db_url="sqlite:///x.db")
    finally:
        get_settings.cache_clear()

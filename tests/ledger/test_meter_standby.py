"""The meter on a real PostgreSQL streaming standby (``OUTCOME_JUDGE_METER_READ_URL``).

``.ci/run`` starts a hot standby of the test server (``pg_basebackup -R``, port 5433) and sets
``OUTCOME_JUDGE_TEST_PG_STANDBY_URL``. Replay is paused and resumed on the standby, so the tests
see exactly what the meter does with a replica that lags: it is never read for a final mark it
has not replayed (the primary answers, with the same rows), it is read once it has, and then its
final rows are the primary's while its provisional rows may miss what was booked since.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger.db import make_engine
from ledger.meters import verified_outcomes, verified_outcomes_raw
from ledger.schema import migrate
from tests.conftest import machine_lock
from tests.ledger.conftest import _pg_schema, _with_schema, required_url
from tests.ledger.test_meters import at, fill, record

pytestmark = pytest.mark.postgres

STANDBY_ENV = "OUTCOME_JUDGE_TEST_PG_STANDBY_URL"
SINCE, UNTIL = datetime(2026, 2, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def standby_base_url() -> str:
    return required_url(
        STANDBY_ENV,
        "start a hot standby of the test server on port 5433 (as .ci/run does) and set it to "
        "postgresql+psycopg://postgres:postgres@127.0.0.1:5433/outcome_judge_test",
    )


def _lsn(conn: Any, query: str) -> str:
    return str(conn.exec_driver_sql(query).scalar_one())


def wait_replayed(primary: Engine, standby: Engine, *, timeout: float = 60.0) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    with primary.connect() as conn:
        target = _lsn(conn, "SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + timeout
    with standby.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        while not conn.exec_driver_sql(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
        ).scalar_one():
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")
            time.sleep(0.05)


def _replay(standby: Engine, action: str) -> None:
    with standby.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f"SELECT pg_wal_replay_{action}()"
        )


class Statements:
    """The SQL each engine ran (to tell which server answered a read)."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._saw)

    def _saw(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def counted(self) -> bool:
        return any("meter_rollups" in s or "meter_entries" in s for s in self.seen)


@pytest.fixture
def ledgers() -> Iterator[tuple[Engine, Engine]]:
    """A filled ledger on the primary and the same schema on the standby, replayed."""
    standby_base = standby_base_url()
    # The tests pause and resume the one standby's replay: one at a time on this machine.
    with machine_lock("standby"), _pg_schema() as url:
        primary = make_engine(url)
        migrate(primary)
        fill(primary)
        schema = str(make_url(url).query["options"]).removeprefix("-csearch_path=")
        standby = make_engine(_with_schema(standby_base, schema))
        try:
            wait_replayed(primary, standby)
            yield primary, standby
        finally:
            _replay(standby, "resume")
            standby.dispose()
            primary.dispose()


def _read(primary: Engine, standby: Engine | None, now: datetime) -> list[dict[str, Any]]:
    return verified_outcomes(
        primary, "acme", since=SINCE, until=UNTIL, window="month", group_by=["agent"], now=now,
        read_engine=standby,
    )  # fmt: skip


def _raw(primary: Engine, now: datetime) -> list[dict[str, Any]]:
    return verified_outcomes_raw(
        primary, "acme", since=SINCE, until=UNTIL, window="month", group_by=["agent"], now=now
    )


def test_a_standby_is_read_only_once_it_has_replayed_the_final_mark(
    ledgers: tuple[Engine, Engine],
) -> None:
    primary, standby = ledgers
    now = datetime.now(UTC)
    _replay(standby, "pause")
    seen = Statements(standby)
    # This read publishes the final mark on the primary; the paused standby has not replayed
    # it, so the primary counts, and the rows are the raw count's.
    rows = _read(primary, standby, now)
    assert rows == _raw(primary, now)
    assert {r["status"] for r in rows} == {"final", "provisional"}
    assert seen.seen and not seen.counted(), "the standby was asked for its mark, not the count"

    _replay(standby, "resume")
    wait_replayed(primary, standby)
    again = _read(primary, standby, now)
    assert seen.counted(), "once it has replayed the mark, the standby counts"
    assert again == rows


def test_a_standby_that_lags_keeps_final_rows_and_may_miss_provisional_ones(
    ledgers: tuple[Engine, Engine],
) -> None:
    primary, standby = ledgers
    now = datetime.now(UTC)
    _read(primary, None, now)  # the final mark, published on the primary...
    wait_replayed(primary, standby)  # ...and replayed by the standby
    _replay(standby, "pause")
    # A verified outcome booked since: provisional (its customer wrote an hour ago).
    late = at((now - timedelta(hours=1)).replace(microsecond=0), "acme-late", "bot:fin")
    record(primary, "acme", [(late, {"decision": "verified", "tier": "confirmed"})])

    seen = Statements(standby)
    on_standby, on_primary = _read(primary, standby, now), _raw(primary, now)
    assert seen.counted()

    def split(rows: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["status"] == status]

    assert split(on_standby, "final") == split(on_primary, "final")
    provisional = sum(r["value"] for r in split(on_primary, "provisional"))
    assert sum(r["value"] for r in split(on_standby, "provisional")) == provisional - 1

    _replay(standby, "resume")
    wait_replayed(primary, standby)
    assert _read(primary, standby, now) == on_primary

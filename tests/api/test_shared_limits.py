"""Which limits a ledger gets, failing closed, and the request counters' round trip (issue 16).

PostgreSQL shares the rate buckets, failed-key counters and request counters between API
processes through the database; SQLite, served by one process, keeps them in memory (and refuses
to be asked otherwise). The real multi-process runs are in ``test_shared_limits_serve.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.request_stats import LATENCY_BUCKETS, RequestStats
from config.settings import get_settings
from tests.api.conftest import auth, make_key
from tests.api.live import REPO, free_port
from tests.ledger.conftest import _pg_schema


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Set an OUTCOME_JUDGE_* variable for one test (the settings are read again)."""

    def setenv(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield setenv
    monkeypatch.undo()
    get_settings.cache_clear()


def _rows(db_url: str, table: str) -> int:
    from ledger.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_each_backend_gets_its_limits(
    client: TestClient, db_url: str, keys: dict[str, str]
) -> None:
    from api.limits import LocalGate
    from api.shared_state import SharedGate

    for _ in range(3):
        assert client.get("/v1/tenant", headers=auth(keys["acme"])).status_code == 200
    assert client.get("/metrics", headers=auth(keys["acme"])).status_code == 200
    state = client.app.state  # type: ignore[attr-defined]
    if db_url.startswith("sqlite"):
        # One process: the bucket and counters in memory; the tables stay empty.
        assert isinstance(state.gate, LocalGate) and state.shared_counters is None
        assert _rows(db_url, "rate_buckets") == _rows(db_url, "metric_counters") == 0
    else:
        assert isinstance(state.gate, SharedGate) and state.shared_counters is not None
        assert _rows(db_url, "rate_buckets") == 1
        assert _rows(db_url, "metric_counters") > 0  # the scrape wrote what came before it


def test_shared_limits_on_sqlite_are_refused_with_the_fix(
    env: Callable[[str, str], None], tmp_path: Path
) -> None:
    from api.app import create_app

    env("OUTCOME_JUDGE_SHARED_LIMITS", "true")
    with pytest.raises(ValueError, match=r"needs PostgreSQL.*unset it"):
        create_app(db_url="sqlite:///x.db")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--db", f"sqlite:///{tmp_path}/x.db"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "OUTCOME_JUDGE_SHARED_LIMITS=true needs PostgreSQL" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


@pytest.mark.postgres
def test_shared_limits_can_be_turned_off_on_postgresql(env: Callable[[str, str], None]) -> None:
    from api.app import create_app
    from api.limits import LocalGate

    with _pg_schema() as url:
        key = make_key(url, "acme")
        env("OUTCOME_JUDGE_SHARED_LIMITS", "false")
        with TestClient(create_app(db_url=url, embedded_worker=False)) as client:
            assert client.get("/v1/tenant", headers=auth(key)).status_code == 200
            assert isinstance(client.app.state.gate, LocalGate)  # type: ignore[attr-defined]
        assert _rows(url, "rate_buckets") == 0


def test_an_unreachable_limits_database_fails_closed_with_503(
    client: TestClient, db_url: str, keys: dict[str, str]
) -> None:
    """The limits' database does not answer: 503 with Retry-After and the fix, never a pass."""
    from api.shared_state import SharedAuthThrottle, SharedGate, SharedRateLimiter
    from ledger.db import make_engine

    dead = make_engine(f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/x", check=False)
    try:
        state = client.app.state  # type: ignore[attr-defined]
        state.gate = SharedGate(
            SharedRateLimiter(dead), SharedAuthThrottle(dead, max_failures=10, lockout=300)
        )
        response = client.get("/v1/tenant", headers=auth(keys["acme"]))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        error = response.json()["error"]
        assert error["code"] == "unavailable"
        assert "kept in PostgreSQL" in error["message"] and "GET /readyz" in error["message"]
    finally:
        dead.dispose()


# -- the request counters' round trip through the database --------------------------------

ROUTES = st.sampled_from(["/v1/tenant", "/v1/outcomes/{outcome_id}", "/metrics"])
OBSERVATION = st.tuples(
    st.sampled_from(["acme", "globex"]),
    ROUTES,
    st.sampled_from(["GET", "POST"]),
    st.sampled_from([200, 201, 401, 429, 500]),
    st.floats(min_value=0, max_value=30, allow_nan=False),
)


@settings(max_examples=40)
@given(batches=st.lists(st.lists(OBSERVATION, max_size=20), min_size=1, max_size=4))
def test_counts_written_in_batches_read_back_as_counted(
    batches: list[list[tuple[str, str, str, int, float]]],
) -> None:
    """However the observations are split between writes, the totals read back equal what one
    process counting them all in memory shows (the figures as /metrics renders them)."""
    from api.shared_metrics import SharedCounters
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.tenants import create_tenant

    engine = make_engine("sqlite://")
    migrate(engine)
    for name in ("acme", "globex"):
        create_tenant(engine, name)
    everything = RequestStats()
    shared = SharedCounters(engine, RequestStats(), interval=60)
    for batch in batches:
        for observation in batch:
            everything.observe(*observation)
            shared.stats.observe(*observation)
        shared.flush()
    last = batches[-1][:3]  # some counted after the last write: still shown
    for observation in last:
        everything.observe(*observation)
        shared.stats.observe(*observation)
    for tenant in ("acme", "globex"):
        want, got = everything.snapshot(tenant), shared.totals(tenant)
        assert got.requests == want.requests
        assert got.rate_limited == want.rate_limited
        assert set(got.latency) == set(want.latency)
        for key, hist in want.latency.items():
            assert got.latency[key].buckets == hist.buckets
            assert got.latency[key].count == hist.count
            assert got.latency[key].total == pytest.approx(hist.total)
            assert len(hist.buckets) == len(LATENCY_BUCKETS)
    engine.dispose()


def test_a_failed_write_keeps_the_counts_for_the_next() -> None:
    from api.shared_metrics import SharedCounters
    from ledger.db import make_engine

    engine = make_engine("sqlite://")  # not migrated: the write fails
    stats = RequestStats()
    stats.observe("acme", "/v1/tenant", "GET", 200, 0.01)
    stats.observe("acme", "/v1/tenant", "GET", 429, 0.002)
    counters = SharedCounters(engine, stats, interval=60)
    with pytest.raises(sa.exc.OperationalError):
        counters.flush()
    kept = stats.snapshot("acme")
    assert kept.requests == {("/v1/tenant", "GET", "200"): 1, ("/v1/tenant", "GET", "429"): 1}
    assert kept.rate_limited == 1 and kept.latency[("/v1/tenant", "GET")].count == 2
    engine.dispose()


def test_chores_repeat_survive_failures_and_run_once_more_at_stop() -> None:
    """The shared state's chores (writing counters, pruning counters) run every interval, go on
    after a failure, and run a last time when the app stops (so a clean stop loses no count)."""
    import asyncio

    from api.shared_state import repeat

    runs: list[bool] = []  # whether each run started after the stop
    stop = asyncio.Event()

    def job() -> None:
        runs.append(stop.is_set())
        if len(runs) == 2:
            raise RuntimeError("the database went away")

    async def main() -> None:
        task = asyncio.create_task(repeat(stop, 0.05, job, "a chore"))
        await asyncio.sleep(0.28)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert len(runs) >= 4 and not any(runs[:3])  # every 50 ms, on after the failed 2nd run
    assert runs[-1]  # and a last run that started after the stop

"""Rate limits, failed-key lock-outs and /metrics across API processes (issue 16), for real.

`judge serve --workers 3` on PostgreSQL, requests on fresh connections from many threads so the
kernel hands them to different processes: together the processes grant the tenant's rate, not
three times it; a lock-out holds in all of them; and every scrape, whichever process answers,
counts every request once the other processes have written their counts. A control run with
``OUTCOME_JUDGE_SHARED_LIMITS=false`` (each process its own bucket, as before) shows the
requests do spread over the processes, so the first test can fail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import auth, make_key
from tests.api.live import LiveServer
from tests.ledger.conftest import _pg_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: The tenant's rate in these tests (a token every 1.5 s).
RATE = 40
#: Requests fired: three times the rate, so per-process buckets would let most through.
SENT = 120


@pytest.fixture
def pg_url() -> Iterator[str]:
    with _pg_schema() as url:
        yield url


def fire(url: str, key: str, *, threads: int = 12) -> tuple[list[httpx.Response], float]:
    """``SENT`` GET /v1/tenant from ``threads`` threads, each request on a new connection."""
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    per_thread = SENT // threads

    def client() -> None:
        for _ in range(per_thread):
            with httpx.Client(base_url=url, timeout=60) as http:  # a new connection each time
                response = http.get("/v1/tenant", headers=auth(key))
            with lock:
                responses.append(response)

    started = time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return responses, time.monotonic() - started


def scrape(url: str, key: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.get("/metrics", headers=auth(key))
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    """The sum of ``name`` over every series but the scrapes' own."""
    return sum(
        v for (n, labels), v in samples.items() if n == name and ("route", "/metrics") not in labels
    )


def serve(url: str, tmp_path: Path, *, shared: bool) -> LiveServer:
    return LiveServer(
        url,
        log=tmp_path / f"serve-{shared}.log",
        extra_args=["--workers", "3"],
        env={
            "OUTCOME_JUDGE_SHARED_LIMITS": "true" if shared else "false",
            "OUTCOME_JUDGE_METRICS_FLUSH_SECONDS": "0.5",
        },
    )


def test_three_processes_grant_the_rate_once_and_count_every_request(
    pg_url: str, tmp_path: Path
) -> None:
    from ledger.db import make_engine
    from ledger.tenants import set_limits

    key = make_key(pg_url, "limited", requests_per_minute=RATE)
    owner_key = make_key(pg_url, "victim")
    server = serve(pg_url, tmp_path, shared=True)
    try:
        responses, elapsed = fire(server.url, key)
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {200, 429}, (statuses, server.output())
        # The bucket starts full (RATE tokens) and refills RATE a minute: while the requests ran,
        # at most RATE + RATE * elapsed / 60 tokens existed, whichever process took them.
        assert RATE <= statuses[200] <= RATE + RATE * elapsed / 60 + 1, (statuses, elapsed)
        for r in responses:
            if r.status_code == 429:
                assert 1 <= int(r.headers["retry-after"]) <= 2  # a token every 1.5 s
                assert r.json()["error"]["details"]["requests_per_minute"] == RATE

        # Every scrape, whichever process answers it, counts all SENT requests: the others have
        # written theirs (every 0.5 s here). Raise the rate first so the scrapes get tokens.
        engine = make_engine(pg_url)
        set_limits(engine, "limited", requests_per_minute=60_000)
        engine.dispose()
        time.sleep(1.5)
        scrapes_seen = []
        for _ in range(6):
            seen = scrape(server.url, key)
            assert total(seen, "outcome_judge_http_requests_total") == SENT
            assert total(seen, "outcome_judge_http_request_duration_seconds_count") == SENT
            limited = seen[("outcome_judge_rate_limited_requests_total", frozenset())]
            assert limited == statuses[429]
            own = frozenset({("route", "/metrics"), ("method", "GET"), ("status", "200")})
            scrapes_seen.append(seen.get(("outcome_judge_http_requests_total", own), 0.0))
        # The scrapes' own count never drops from one scrape to the next, whichever process
        # answers (a drop would read as a counter reset to Prometheus).
        assert scrapes_seen == sorted(scrapes_seen), scrapes_seen

        # A lock-out holds in every process: 25 wrong secrets for a real key id, each on a new
        # connection (so spread over the processes), from an address of its own.
        wrong = owner_key[:-4] + ("AAAA" if not owner_key.endswith("AAAA") else "BBBB")
        attempts: Counter[int] = Counter()
        transport = httpx.HTTPTransport(local_address="127.0.0.3")
        for _ in range(25):
            with httpx.Client(base_url=server.url, transport=transport, timeout=60) as http:
                attempts[http.get("/v1/tenant", headers=auth(wrong)).status_code] += 1
        assert attempts == {401: 10, 429: 15}, server.output()
        with httpx.Client(base_url=server.url, timeout=60) as owner:  # 127.0.0.1 never failed
            assert owner.get("/v1/tenant", headers=auth(owner_key)).status_code == 200
    finally:
        server.stop()
    # A clean stop wrote the last counts: the table holds every request, scrapes included.
    from ledger.db import make_engine as engine_for
    from ledger.metric_counters import read_counts

    engine = engine_for(pg_url)
    rows = read_counts(engine, "limited")
    engine.dispose()
    requests = sum(v for name, _, v in rows if name == "http_requests")
    assert requests == SENT + 6


def test_control_per_process_buckets_let_more_through(pg_url: str, tmp_path: Path) -> None:
    """Without shared limits each of the 3 processes grants the rate: the requests above do
    reach several processes (else the test above could not fail)."""
    key = make_key(pg_url, "limited", requests_per_minute=RATE)
    server = serve(pg_url, tmp_path, shared=False)
    try:
        responses, elapsed = fire(server.url, key)
    finally:
        server.stop()
    granted = sum(r.status_code == 200 for r in responses)
    assert granted > RATE + RATE * elapsed / 60 + 1, (granted, elapsed)

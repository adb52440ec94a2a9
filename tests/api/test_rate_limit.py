"""The per-tenant request rate: 429 with Retry-After and the error shape, one tenant at a time.

The end-to-end test runs a real `judge serve` on loopback (SQLite and PostgreSQL); the token
bucket's arithmetic is checked on its own with a fake clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import make_key
from tests.api.live import LiveServer


def test_sixth_request_in_a_minute_is_429_and_other_tenants_are_unaffected(
    db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    slow = make_key(db_url, "slow", requests_per_minute=5)
    server = LiveServer(db_url, log=tmp_path / "serve.log")
    try:
        with server.client(slow) as http:
            statuses = [http.get("/v1/tenant").status_code for _ in range(5)]
            refused = http.get("/v1/tenant")
        assert statuses == [200] * 5, server.output()
        assert refused.status_code == 429
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 12  # one token every 60/5 = 12 s
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert "5 requests per minute" in error["message"]
        assert error["details"]["requests_per_minute"] == 5
        assert error["details"]["retry_after_seconds"] == retry_after

        # Other tenants have their own buckets (and the default rate).
        for key in keys.values():
            with server.client(key) as http:
                assert [http.get("/v1/tenant").status_code for _ in range(10)] == [200] * 10
        # The health routes need no key and no token.
        with server.client() as http:
            assert http.get("/readyz").status_code == 200
    finally:
        server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    import api.limits

    fake = FakeClock()
    monkeypatch.setattr(api.limits.time, "monotonic", fake)
    return fake


def test_bucket_allows_a_burst_then_refills_at_the_rate(clock: FakeClock) -> None:
    from api.limits import RateLimiter

    limiter = RateLimiter()
    assert [limiter.check("acme", 6) for _ in range(6)] == [None] * 6
    assert limiter.check("acme", 6) == 10  # 6 a minute: the next token in 10 s
    clock.now += 5
    assert limiter.check("acme", 6) == 5
    clock.now += 5
    assert limiter.check("acme", 6) is None
    assert limiter.check("globex", 6) is None  # a bucket per tenant
    clock.now += 3600  # a long pause refills to the burst size, no more
    assert [limiter.check("acme", 6) for _ in range(7)] == [None] * 6 + [10]


def test_a_changed_rate_applies_to_the_next_request(clock: FakeClock) -> None:
    from api.limits import RateLimiter

    limiter = RateLimiter()
    assert [limiter.check("acme", 2) for _ in range(3)] == [None, None, 30]
    clock.now += 1
    assert limiter.check("acme", 600) is None  # 10 a second now: 1 s refilled 10 tokens

"""Failed API key attempts are throttled per key id and per client address (issue 17).

A hostile run sent 300 wrong secrets for a real key id and never got a 429. Now ten failures
in a minute lock the address (and the key id, for the addresses that failed) with 429 and
``Retry-After``, while the key's owner, sending the right key from elsewhere, is never blocked.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient

from api.limits import AuthThrottle
from tests.api.conftest import auth
from tests.api.live import LiveServer


def wrong(key: str) -> str:
    """The key's id with a wrong secret."""
    return key[:-6] + ("AAAAAA" if not key.endswith("AAAAAA") else "BBBBBB")


def from_address(client: TestClient, host: str) -> TestClient:
    """Another client of the same (started) app, seen from ``host``."""
    return TestClient(client.app, client=(host, 40000))


@pytest.mark.slow
def test_300_wrong_secrets_for_a_real_key_id_get_429_over_real_http(
    live: LiveServer, keys: dict[str, str]
) -> None:
    key = keys["acme"]
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=live.url, timeout=30) as attacker:
        for _ in range(300):
            response = attacker.get("/v1/tenant", headers=auth(wrong(key)))
            statuses[response.status_code] += 1
            if response.status_code == 429:
                last = response
    assert statuses == {401: 10, 429: 290}
    assert int(last.headers["Retry-After"]) > 0
    error = last.json()["error"]
    assert error["code"] == "rate_limited" and "failed API key attempts" in error["message"]
    assert error["details"]["scope"] == "address"
    # The owner, on another address (127.0.0.2 is loopback too), is not blocked.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=live.url, timeout=30, transport=transport) as owner:
        assert owner.get("/v1/tenant", headers=auth(key)).status_code == 200


def test_a_locked_key_id_still_admits_its_owner(client: TestClient, keys: dict[str, str]) -> None:
    key = keys["acme"]
    # A spray from ten addresses, one wrong guess each: the key id locks.
    for n in range(10):
        response = from_address(client, f"10.0.0.{n}").get("/v1/tenant", headers=auth(wrong(key)))
        assert response.status_code == 401
    again = from_address(client, "10.0.0.3").get("/v1/tenant", headers=auth(wrong(key)))
    assert again.status_code == 429 and again.json()["error"]["details"]["scope"] == "key_id"
    assert int(again.headers["Retry-After"]) > 0
    # Even the right key is refused from an address that guessed wrong for this key id ...
    assert from_address(client, "10.0.0.3").get("/v1/tenant", headers=auth(key)).status_code == 429
    # ... but the owner's address never failed: it is let in, and another tenant is untouched.
    owner = from_address(client, "192.0.2.7")
    assert owner.get("/v1/tenant", headers=auth(key)).json()["name"] == "acme"
    other = from_address(client, "10.0.0.3").get("/v1/tenant", headers=auth(keys["globex"]))
    assert other.status_code == 200
    # A new address gets its one guess: wrong is 401 (and then 429), never a success.
    newcomer = from_address(client, "10.9.9.9")
    assert newcomer.get("/v1/tenant", headers=auth(wrong(key))).status_code == 401
    assert newcomer.get("/v1/tenant", headers=auth(wrong(key))).status_code == 429


def test_a_request_without_a_key_is_not_a_failed_attempt(
    client: TestClient, keys: dict[str, str]
) -> None:
    for _ in range(30):
        assert client.get("/v1/tenant").status_code == 401
    assert client.get("/v1/tenant", headers=auth(keys["acme"])).status_code == 200


def test_locks_expire_and_old_failures_slide_out_of_the_window() -> None:
    now = [1000.0]
    throttle = AuthThrottle(max_failures=3, lockout=30.0, window=60.0, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("k1", "a")
    now[0] += 61  # the first two failures leave the window
    throttle.failed("k1", "a")
    assert throttle.refused("k1", "a") is None
    throttle.failed("k1", "a")
    throttle.failed("k1", "a")
    refusal = throttle.refused("k1", "a")
    assert refusal is not None and refusal.scope == "address" and refusal.retry_after == 30
    assert throttle.refused("k1", "b") is None  # b never failed for k1
    now[0] += 31
    assert throttle.refused("k1", "a") is None
    assert throttle.refused(None, "a") is None

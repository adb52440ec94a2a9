"""The service's ground rules: health without a key, 401 without one, 413 over the body limit,
one error shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.live import LiveServer


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}],
    ids=["none", "unknown", "wrong-scheme"],
)
def test_routes_need_a_key(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/tenant", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    expected = "judge tenants create" if not headers else "unknown or revoked"
    if headers.get("Authorization", "").startswith("Basic"):
        expected = "judge tenants create"
    assert expected in error["message"]


def test_revoked_key_is_refused(client: TestClient, db_url: str, keys: dict[str, str]) -> None:
    from ledger.db import make_engine
    from ledger.tenants import revoke_key

    engine = make_engine(db_url)
    key_id = keys["acme"].split("_")[1]
    assert revoke_key(engine, key_id)
    engine.dispose()
    assert client.get("/v1/tenant", headers=auth(keys["acme"])).status_code == 401


def test_oversize_body_is_413_before_parsing(client: TestClient, keys: dict[str, str]) -> None:
    from config.settings import get_settings

    limit = get_settings().max_body_bytes
    response = client.post(
        "/v1/outcomes",
        content=b"[" + b" " * (limit + 10) + b"]",
        headers={**auth(keys["acme"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["details"]["max_bytes"] == limit


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_real_server_answers_on_loopback(live: LiveServer, keys: dict[str, str]) -> None:
    with live.client() as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/tenant").status_code == 401

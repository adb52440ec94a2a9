"""405 answers name every allowed method in ``Allow`` and ``OPTIONS`` answers 204 with it
(RFC 9110 15.5.6 and 9.3.7; issue 17: OPTIONS was a 405 whose ``Allow`` named one route)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.live import LiveServer

ALLOWED = {
    "/v1/outcomes": "GET, OPTIONS, POST",
    "/v1/outcomes/T-1": "GET, OPTIONS",
    "/v1/labels": "OPTIONS, POST",
    "/v1/verifications": "GET, OPTIONS, POST",
    "/v1/rubrics/x": "GET, OPTIONS",
    "/healthz": "GET, OPTIONS",
    "/ui/login": "GET, OPTIONS, POST",
    "/ui/review/T-1": "GET, OPTIONS, POST",
    "/ui/static/app.css": "GET, HEAD, OPTIONS",
}


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_options_answers_204_with_allow(
    client: TestClient, keys: dict[str, str], path: str
) -> None:
    response = client.options(path, headers=auth(keys["acme"]))
    assert response.status_code == 204 and response.content == b""
    assert response.headers["allow"] == ALLOWED[path]
    assert client.options(path).headers["allow"] == ALLOWED[path]  # no key needed


def test_a_405_names_every_allowed_method(client: TestClient, keys: dict[str, str]) -> None:
    for method, path in [
        ("PUT", "/v1/outcomes"),
        ("DELETE", "/v1/outcomes/T-1"),
        ("PATCH", "/v1/labels"),
        ("POST", "/ui/static/app.css"),
    ]:
        response = client.request(method, path, headers=auth(keys["acme"]))
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == ALLOWED[path], (method, path)
        error = response.json()["error"]
        assert error["code"] == "method_not_allowed" and method in error["message"]


def test_options_on_an_unknown_path_is_404(client: TestClient) -> None:
    response = client.options("/v1/nothing-here")
    assert response.status_code == 404 and "allow" not in response.headers


@pytest.mark.slow
def test_allow_over_real_http(live: LiveServer) -> None:
    with live.client() as http:
        options = http.options("/v1/outcomes")
        assert options.status_code == 204 and options.headers["allow"] == "GET, OPTIONS, POST"
        put = http.put("/v1/outcomes")
        assert put.status_code == 405 and put.headers["allow"] == "GET, OPTIONS, POST"

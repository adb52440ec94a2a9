"""Issue 17: times. ``GET /v1/calibration`` with a time that has no UTC equivalent gave a 500
(the meters already answered 422): the three routes now share the ledger's ``Timestamp``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.hostile_helpers import refused


def test_calibration_with_a_time_outside_utc_is_422_like_the_meters(
    client: TestClient, keys: dict[str, str]
) -> None:
    key = keys["acme"]
    for param in ("from", "to"):
        for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            response = client.get("/v1/calibration", params={param: value}, headers=auth(key))
            refused(response, param, "out of range once converted to UTC", "send a UTC time")
    for path in ("/v1/meters/verified-outcomes", "/v1/metrics/cost-per-verified-outcome"):
        params = {"from": "0001-01-01T00:00:00+01:00", "to": "2026-01-01"}
        refused(client.get(path, params=params, headers=auth(key)), "from", "out of range")

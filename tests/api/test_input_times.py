"""Issue 17: times. ``GET /v1/calibration`` with a time that has no UTC equivalent gave a 500
(the meters already answered 422): the three routes now share the ledger's ``Timestamp``. And a
plain number was taken as Unix seconds where the schema says ``date-time`` (``to=0.5``, a label's
``at: 0``, ``from=-1`` answering 1969): every date-time, in queries and bodies, is now an ISO 8601
string and a number is a 422 naming the field (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.hostile_helpers import refused, send, table_rows
from tests.api.test_outcomes import ticket


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


TIMES_AS_NUMBERS = [
    ("/v1/metrics/cost-per-verified-outcome", {"to": "0.5"}, "to"),
    ("/v1/metrics/cost-per-verified-outcome", {"from": "1700000000"}, "from"),
    ("/v1/meters/verified-outcomes", {"from": "-1", "to": "2026-01-01"}, "from"),
    ("/v1/meters/verified-outcomes", {"from": "2026-01-01", "to": "1e9"}, "to"),
    ("/v1/calibration", {"from": "0"}, "from"),
    ("/v1/calibration", {"to": "1767225600"}, "to"),
]


def test_numbers_are_not_times_in_queries(client: TestClient, keys: dict[str, str]) -> None:
    for path, params, field in TIMES_AS_NUMBERS:
        response = client.get(path, params=params, headers=auth(keys["acme"]))
        refused(response, field, "not a valid datetime", "ISO 8601", "Unix times")


def _at(value: Any) -> list[tuple[str, dict[str, Any], str]]:
    """Bodies with ``value`` in every date-time field the API takes, and the field named."""
    convo = [{"role": "customer", "text": "hi", "at": value}]
    return [
        ("/v1/labels", {"labels": [{"outcome_id": "T-1", "resolved": True, "at": value}]},
         "labels.0.at"),
        ("/v1/outcomes", {"outcomes": [ticket("N-1") | {"conversation": convo}]},
         "outcomes.0.conversation.0.at"),
        ("/v1/outcomes", {"outcomes": [ticket("N-1", signals={"closed_at": value})]},
         "outcomes.0.signals.closed_at"),
        ("/v1/outcomes", {"outcomes": [ticket("N-1", signals={"reopened_at": value})]},
         "outcomes.0.signals.reopened_at"),
        ("/v1/outcomes", {"outcomes": [ticket("N-1", signals={"recontact_at": value})]},
         "outcomes.0.signals.recontact_at"),
        ("/v1/outcomes",
         {"outcomes": [ticket("N-1", touches=[{"actor": "a", "kind": "ai", "at": value}])]},
         "outcomes.0.touches.0.at"),
        ("/v1/outcomes",
         {"outcomes": [ticket("N-1", label={"resolved": True, "at": value})]},
         "outcomes.0.label.at"),
        ("/v1/outcomes",
         {"outcomes": [{"specversion": "1.0", "id": "E-1", "source": "s", "type": "t",
                        "time": value, "data": ticket("E-1")}]},
         "outcomes.0.time"),
        ("/v1/verifications", {"filter": {"received_from": value}}, "filter.received_from"),
        ("/v1/verifications", {"filter": {"received_to": value}}, "filter.received_to"),
    ]  # fmt: skip


@pytest.mark.parametrize("value", [0, 1767225600, 0.5, -1, "1767225600", "-1"])
def test_numbers_are_not_times_in_bodies(
    client: TestClient, keys: dict[str, str], db_url: str, value: Any
) -> None:
    key = keys["acme"]
    assert send(client, key, "/v1/outcomes", {"outcomes": [ticket("T-1")]}).status_code == 200
    before = table_rows(db_url)
    for path, body, field in _at(value):
        refused(send(client, key, path, body), field, "not a valid datetime", "ISO 8601")
    assert table_rows(db_url) == before
    # The same fields take ISO 8601 strings, with or without an offset.
    for path, body, field in _at("2026-03-01T10:00:00+01:00"):
        response = send(client, key, path, body)
        assert response.status_code in (200, 202, 422), (path, response.text)
        if response.status_code == 422:  # e.g. a job filter that selects nothing
            assert field not in [d.get("field") for d in response.json()["error"]["details"]]

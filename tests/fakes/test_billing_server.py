"""The fake billing server speaks each vendor's ingestion protocol (see billing_server.py)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.billing_server import FakeBillingServer

CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
METER_EVENTS = "/stripe/v1/billing/meter_events"
ADJUSTMENTS = "/stripe/v1/billing/meter_event_adjustments"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def billing() -> Iterator[FakeBillingServer]:
    with FakeBillingServer() as server:
        yield server


def call(
    server: FakeBillingServer,
    path: str,
    body: Any = None,
    *,
    content_type: str | None = JSON,
    token: str | None = "sk_test_123",
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body or None) of one request, errors included."""
    data = b"" if body is None else json.dumps(body).encode()
    if form is not None:
        data, content_type = (
            urllib.parse.urlencode(form).encode(),
            "application/x-www-form-urlencoded",
        )
    req = urllib.request.Request(server.base_url + path, data=data, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with _OPENER.open(req, timeout=5) as resp:
            status, got, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, got, raw = err.code, dict(err.headers), err.read()
    return status, got, json.loads(raw) if raw else None


def cloudevent(event_id: str, source: str = "judge", **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": source, "type": "verdict", **extra}


def meter_event(identifier: str, value: str = "5", **extra: str) -> dict[str, str]:
    return {
        "event_name": "verdicts",
        "payload[stripe_customer_id]": "cus_1",
        "payload[value]": value,
        "identifier": identifier,
        **extra,
    }


def lago_event(txn: str, **extra: Any) -> dict[str, Any]:
    event = {"transaction_id": txn, "external_subscription_id": "sub_1", "code": "verdicts"}
    return {**event, "timestamp": 1_700_000_000, "properties": {"count": 3}, **extra}


# ---------------------------------------------------------------------------- CloudEvents


def test_cloudevents_single_and_batch_are_accepted_and_deduplicated(
    billing: FakeBillingServer,
) -> None:
    assert call(billing, "/cloudevents", cloudevent("1"), content_type=CE)[0] == 204
    batch = [cloudevent("1"), cloudevent("2"), cloudevent("1", source="other")]
    assert call(billing, "/cloudevents", batch, content_type=f"{CE_BATCH}; charset=utf-8")[0] == 204
    assert call(billing, "/cloudevents", [], content_type=CE_BATCH)[0] == 204  # may be empty
    assert [(e["source"], e["id"]) for e in billing.cloudevents] == [
        ("judge", "1"),
        ("judge", "2"),
        ("other", "1"),
    ]
    assert billing.duplicates["cloudevents"] == 1


def test_cloudevents_rejects_malformed_events_formats_and_missing_auth(
    billing: FakeBillingServer,
) -> None:
    for bad in ({**cloudevent("1"), "specversion": "0.3"}, {"specversion": "1.0", "id": "1"}):
        status, headers, body = call(billing, "/cloudevents", bad, content_type=CE)
        assert status == 400 and headers["Content-Type"] == "application/problem+json"
        assert body["status"] == 400
    bad_time = cloudevent("1", time="yesterday")
    assert (
        call(billing, "/cloudevents", [cloudevent("2"), bad_time], content_type=CE_BATCH)[0] == 400
    )
    assert call(billing, "/cloudevents", cloudevent("1"), content_type=JSON)[0] == 415
    assert call(billing, "/cloudevents", cloudevent("1"), content_type=CE, token=None)[0] == 401
    assert billing.cloudevents == []  # a rejected batch keeps nothing
    query = "/cloudevents?access_token=t0k"  # the webhook spec's second way to send the token
    assert call(billing, query, cloudevent("1"), content_type=CE, token=None)[0] == 204


# ---------------------------------------------------------------------------- OpenMeter


def test_openmeter_ingests_single_batch_and_json_and_dedupes(billing: FakeBillingServer) -> None:
    event = cloudevent("a", subject="customer-1", data={"verdicts": 2})
    status, headers, body = call(billing, "/api/v1/events", event, content_type=CE)
    assert (status, body, headers.get("Content-Length")) == (204, None, "0")
    second = cloudevent("b", subject="customer-1", data={"verdicts": -1})
    assert call(billing, "/api/v1/events", [event, second], content_type=CE_BATCH)[0] == 204
    assert (
        call(billing, "/api/v1/events", [cloudevent("c", subject="s")], content_type=JSON)[0] == 204
    )
    assert [e["id"] for e in billing.openmeter] == ["a", "b", "c"]
    assert billing.duplicates["openmeter"] == 1


def test_openmeter_rejects_as_its_handler_does(billing: FakeBillingServer) -> None:
    event = cloudevent("a", subject="customer-1")
    status, headers, body = call(
        billing, "/api/v1/events", event, content_type=f"{CE}; charset=utf-8"
    )
    assert (status, headers["Content-Type"]) == (400, "application/problem+json")
    assert body["detail"].startswith("invalid content type")
    status, _, body = call(
        billing, "/api/v1/events", cloudevent("b"), content_type=CE
    )  # no subject
    assert status == 400 and body["detail"].startswith("invalid event")
    assert call(billing, "/api/v1/events", [], content_type=JSON)[0] == 400
    assert call(billing, "/api/v1/events", event, content_type=CE, token=None)[0] == 401
    assert billing.openmeter == []


# ---------------------------------------------------------------------------- Lago


def test_lago_event_is_returned_and_a_repeated_transaction_id_is_a_422(
    billing: FakeBillingServer,
) -> None:
    status, _, body = call(billing, "/lago/api/v1/events", {"event": lago_event("t1")})
    assert status == 200
    assert body["event"]["transaction_id"] == "t1"
    assert body["event"]["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert body["event"]["properties"] == {"count": 3}
    status, _, body = call(billing, "/lago/api/v1/events", {"event": lago_event("t1")})
    assert status == 422
    assert body == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": {"transaction_id": ["value_already_exist"]},
    }
    assert len(billing.lago) == 1 and billing.duplicates["lago"] == 1


def test_lago_rejects_missing_fields_bad_timestamps_and_missing_auth(
    billing: FakeBillingServer,
) -> None:
    incomplete = {"event": {"transaction_id": "t1", "timestamp": "2024-01-01T00:00:00Z"}}
    status, _, body = call(billing, "/lago/api/v1/events", incomplete)
    assert status == 422
    assert body["error_details"] == {
        "external_subscription_id": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
        "timestamp": ["invalid_format"],
    }
    status, _, body = call(billing, "/lago/api/v1/events", {"event": lago_event("t1")}, token=None)
    assert (status, body) == (401, {"status": 401, "error": "Unauthorized"})
    assert billing.lago == []


def test_lago_batch_is_atomic_and_holds_at_most_100(billing: FakeBillingServer) -> None:
    path = "/lago/api/v1/events/batch"
    bad = {"events": [lago_event("b1"), lago_event("b1"), {"transaction_id": "b3"}]}
    status, _, body = call(billing, path, bad)
    assert status == 422
    assert body["error_details"]["1"] == {"transaction_id": ["value_already_exist"]}
    assert body["error_details"]["2"]["code"] == ["value_is_mandatory"]
    assert billing.lago == []
    too_many = {"events": [lago_event(f"x{i}") for i in range(101)]}
    assert call(billing, path, too_many)[2]["error_details"] == {"events": ["too_many_events"]}
    assert call(billing, path, {"events": []})[2]["error_details"] == {"events": ["no_events"]}
    status, _, body = call(billing, path, {"events": [lago_event("b1"), lago_event("b2")]})
    assert status == 200 and [e["transaction_id"] for e in body["events"]] == ["b1", "b2"]


def test_lago_takes_negative_values_and_clickhouse_store_replaces() -> None:
    with FakeBillingServer(lago_event_store="clickhouse") as billing:
        refund = lago_event("t1", properties={"count": -2})
        assert call(billing, "/lago/api/v1/events", {"event": refund})[0] == 200
        fixed = lago_event("t1", properties={"count": -1})  # same transaction id and timestamp
        assert call(billing, "/lago/api/v1/events", {"event": fixed})[0] == 200
        moved = lago_event("t1", timestamp=1_700_000_001)  # a new timestamp: a second event
        assert call(billing, "/lago/api/v1/events", {"event": moved})[0] == 200
        assert [e["properties"]["count"] for e in billing.lago] == [-1, 3]
        assert billing.duplicates["lago"] == 1


# ---------------------------------------------------------------------------- Stripe


def test_stripe_meter_event_is_form_encoded_and_unique_for_24_hours(
    billing: FakeBillingServer,
) -> None:
    status, _, body = call(billing, METER_EVENTS, form=meter_event("ev-1", value="-3"))
    assert status == 200
    assert body["object"] == "billing.meter_event"
    assert body["payload"] == {"stripe_customer_id": "cus_1", "value": "-3"}
    assert abs(body["timestamp"] - billing.now) < 5  # defaults to "now"
    status, _, body = call(billing, METER_EVENTS, form=meter_event("ev-1"))
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "An event already exists with identifier ev-1."
    assert billing.duplicates["stripe_events"] == 1 and len(billing.stripe_events) == 1
    billing.advance(24 * 3600 + 1)  # Stripe promises uniqueness for (at least) 24 hours
    assert call(billing, METER_EVENTS, form=meter_event("ev-1", value="4"))[0] == 200
    assert billing.stripe_total("cus_1") == 1


def test_stripe_timestamps_must_be_within_35_days_past_and_5_minutes_future(
    billing: FakeBillingServer,
) -> None:
    billing.now = 1_800_000_000
    cases = {1_800_000_000 - 35 * 86_400 - 1: 400, 1_800_000_000 - 35 * 86_400: 200}
    cases.update({1_800_000_300: 200, 1_800_000_301: 400})
    for i, (ts, expected) in enumerate(cases.items()):
        status, _, body = call(billing, METER_EVENTS, form=meter_event(f"t{i}", timestamp=str(ts)))
        assert status == expected, (ts, body)
        if status == 400:
            assert body["error"]["param"] == "timestamp"


def test_stripe_rejects_missing_params_and_keys_and_reports_payload_errors(
    billing: FakeBillingServer,
) -> None:
    status, _, body = call(billing, METER_EVENTS, form={"payload[value]": "1"})
    assert (status, body["error"]["param"]) == (400, "event_name")
    assert call(billing, METER_EVENTS, form=meter_event("e1"), token=None)[0] == 401
    basic = base64.b64encode(b"sk_test_123:").decode()  # the key as the basic-auth user name
    status, _, _ = call(
        billing,
        METER_EVENTS,
        form=meter_event("e1"),
        token=None,
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200
    no_customer = {"event_name": "verdicts", "payload[value]": "1", "identifier": "e2"}
    assert call(billing, METER_EVENTS, form=no_customer)[0] == 200  # Stripe validates later
    assert call(billing, METER_EVENTS, form=meter_event("e3", value="1.5"))[0] == 200
    codes = [r["code"] for r in billing.stripe_error_reports]
    assert codes == ["meter_event_no_customer_defined", "meter_event_invalid_value"]
    assert [e["identifier"] for e in billing.stripe_events] == ["e1"]


def test_stripe_cancels_only_within_24_hours_of_receipt(billing: FakeBillingServer) -> None:
    for identifier in ("keep", "cancel", "late"):
        call(billing, METER_EVENTS, form=meter_event(identifier))
    cancel = {"event_name": "verdicts", "type": "cancel", "cancel[identifier]": "cancel"}
    status, _, body = call(billing, ADJUSTMENTS, form=cancel)
    assert status == 200
    assert body == {
        "object": "billing.meter_event_adjustment",
        "livemode": False,
        "status": "pending",
        "event_name": "verdicts",
        "type": "cancel",
        "cancel": {"identifier": "cancel"},
    }
    assert call(billing, ADJUSTMENTS, form=cancel)[0] == 200  # again: not applied twice
    assert billing.duplicates["stripe_adjustments"] == 1 and len(billing.stripe_adjustments) == 1
    assert billing.stripe_total("cus_1") == 10 and billing.stripe_cancelled == {"cancel"}
    billing.advance(24 * 3600 + 1)
    late = {**cancel, "cancel[identifier]": "late"}
    status, _, body = call(billing, ADJUSTMENTS, form=late)
    assert status == 400 and "24 hours" in body["error"]["message"]
    unknown = {**cancel, "cancel[identifier]": "nope"}
    assert call(billing, ADJUSTMENTS, form=unknown)[0] == 400
    assert call(billing, ADJUSTMENTS, form={**cancel, "type": "void"})[0] == 400
    assert billing.stripe_total("cus_1") == 10


def test_stripe_idempotency_key_replays_the_first_answer(billing: FakeBillingServer) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = call(billing, METER_EVENTS, form=meter_event("i1"), headers=key)
    again = call(billing, METER_EVENTS, form=meter_event("i1"), headers=key)
    assert first[0] == again[0] == 200 and first[2] == again[2]
    assert again[1].get("Idempotent-Replayed") == "true"
    assert len(billing.stripe_events) == 1 and billing.duplicates["stripe_events"] == 1
    status, _, body = call(billing, METER_EVENTS, form=meter_event("i2"), headers=key)
    assert (status, body["error"]["type"]) == (400, "idempotency_error")


# ---------------------------------------------------------------------------- knobs and log


def test_fail_next_answers_errors_then_recovers(billing: FakeBillingServer) -> None:
    billing.fail_next(METER_EVENTS, 500, times=2)
    billing.fail_next("/lago/api/v1/events", 429, retry_after="7")
    key = {"Idempotency-Key": "retry-1"}
    for _ in range(2):
        status, _, body = call(billing, METER_EVENTS, form=meter_event("r1"), headers=key)
        assert (status, body["error"]["type"]) == (500, "api_error")
    assert call(billing, METER_EVENTS, form=meter_event("r1"), headers=key)[0] == 200
    status, headers, body = call(billing, "/lago/api/v1/events", {"event": lago_event("t1")})
    assert (status, headers["Retry-After"], body["status"]) == (429, "7", 429)
    assert call(billing, "/lago/api/v1/events", {"event": lago_event("t1")})[0] == 200
    assert len(billing.stripe_events) == 1 and len(billing.lago) == 1


def test_every_request_is_recorded_with_its_parsed_body(billing: FakeBillingServer) -> None:
    call(billing, METER_EVENTS, form=meter_event("log"), headers={"Idempotency-Key": "x"})
    call(billing, "/nowhere", {"a": 1})
    first, second = billing.requests
    assert (first.method, first.path) == ("POST", METER_EVENTS)
    assert first.body["payload"] == {"stripe_customer_id": "cus_1", "value": "5"}
    assert first.header("idempotency-key") == "x" and first.header("authorization").startswith(
        "Bearer"
    )
    assert (second.path, second.body) == ("/nowhere", {"a": 1})
    assert call(billing, "/cloudevents", method="GET", content_type=None)[0] == 405

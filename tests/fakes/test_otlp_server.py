"""The fake OTLP/HTTP receiver answers as the OTLP spec says, and the GenAI trace fixture is
valid OTLP/JSON with the per-conversation token totals its README promises."""

from __future__ import annotations

import copy
import gzip
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.otlp_server import (
    EVALUATION_EVENT,
    LOGS_PATH,
    RETRYABLE_STATUSES,
    TRACES_PATH,
    FakeOTLPReceiver,
    OTLPDecodeError,
    decode_any_value,
    decode_attributes,
)

FIXTURE = Path(__file__).resolve().parents[1] / "judge" / "fixtures" / "otel" / "genai_traces.json"

#: A ``gen_ai.evaluation.result`` event parented to the fixture's second chat span of trace 1
#: (the same body as the example in the fixture README).
EVAL_REQUEST: dict[str, Any] = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "outcome-judge"}}]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "outcome_judge", "version": "0.1.0"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1749737012000000000",
                            "observedTimeUnixNano": "1749737012000000000",
                            "severityNumber": 9,
                            "severityText": "INFO",
                            "eventName": "gen_ai.evaluation.result",
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "d8c7b6a5f4e3d2c1",
                            "flags": 1,
                            "attributes": [
                                {
                                    "key": "gen_ai.evaluation.name",
                                    "value": {"stringValue": "Helpfulness"},
                                },
                                {
                                    "key": "gen_ai.evaluation.score.value",
                                    "value": {"doubleValue": 4.0},
                                },
                                {
                                    "key": "gen_ai.evaluation.score.label",
                                    "value": {"stringValue": "pass"},
                                },
                                {
                                    "key": "gen_ai.evaluation.explanation",
                                    "value": {"stringValue": "Resolved the refund in one turn."},
                                },
                                {
                                    "key": "gen_ai.response.id",
                                    "value": {
                                        "stringValue": "chatcmpl-BmT9yH5dR2wA9sM5oQ8tZ4xF7bG1"
                                    },
                                },
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _post(
    url: str,
    body: Any,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def _record(request: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    return record


@pytest.fixture
def otlp() -> Iterator[FakeOTLPReceiver]:
    with FakeOTLPReceiver() as receiver:
        yield receiver


def test_an_evaluation_event_is_accepted_and_decoded(otlp: FakeOTLPReceiver) -> None:
    status, headers, body = _post(otlp.logs_url, EVAL_REQUEST)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {}  # full success: partialSuccess left unset
    (event,) = otlp.events(EVALUATION_EVENT)
    assert event.event_name == "gen_ai.evaluation.result"
    assert event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event.span_id == "d8c7b6a5f4e3d2c1"
    assert event.time_unix_nano == 1749737012000000000
    assert event.severity_number == 9 and event.flags == 1
    assert event.attributes == {
        "gen_ai.evaluation.name": "Helpfulness",
        "gen_ai.evaluation.score.value": 4.0,
        "gen_ai.evaluation.score.label": "pass",
        "gen_ai.evaluation.explanation": "Resolved the refund in one turn.",
        "gen_ai.response.id": "chatcmpl-BmT9yH5dR2wA9sM5oQ8tZ4xF7bG1",
    }
    assert event.resource == {"service.name": "outcome-judge"}
    assert event.scope_name == "outcome_judge"
    (seen,) = otlp.requests_to(LOGS_PATH)
    assert seen.body == EVAL_REQUEST and seen.headers["Content-Type"] == "application/json"


def test_a_legacy_event_name_attribute_is_not_an_event(otlp: FakeOTLPReceiver) -> None:
    legacy = copy.deepcopy(EVAL_REQUEST)
    record = _record(legacy)
    del record["eventName"]
    record["attributes"].append(
        {"key": "event.name", "value": {"stringValue": "gen_ai.evaluation.result"}}
    )
    assert _post(otlp.logs_url, legacy)[0] == 200
    assert otlp.events() == []
    (view,) = otlp.log_records()
    assert view.event_name is None and view.legacy_event_name == "gen_ai.evaluation.result"


def test_gzip_bodies_and_uppercase_hex_ids_are_accepted(otlp: FakeOTLPReceiver) -> None:
    upper = copy.deepcopy(EVAL_REQUEST)
    _record(upper)["traceId"] = "4BF92F3577B34DA6A3CE929D0E0E4736"  # hex is case-insensitive
    data = gzip.compress(json.dumps(upper).encode())
    status, _, _ = _post(otlp.logs_url, data, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert otlp.events()[0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_empty_request_succeeds(otlp: FakeOTLPReceiver) -> None:
    assert _post(otlp.traces_url, {})[:1] == (200,)
    assert _post(otlp.logs_url, {"resourceLogs": []})[0] == 200
    assert otlp.spans() == [] and otlp.log_records() == []


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "text/plain", ""])
def test_other_media_types_get_415(otlp: FakeOTLPReceiver, content_type: str) -> None:
    status, _, body = _post(otlp.logs_url, EVAL_REQUEST, content_type=content_type)
    assert status == 415 and b"application/json" in body
    assert otlp.log_records() == []


def _mutate(path: str, value: Any) -> dict[str, Any]:
    request = copy.deepcopy(EVAL_REQUEST)
    record = _record(request)
    if path == "attributes[0]":
        record["attributes"][0] = value
    else:
        record[path] = value
    return request


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (_mutate("traceId", "S/kvNXezTaajzpKdDg5HNg=="), "hex"),  # base64, as plain proto3 JSON
        (_mutate("spanId", "d8c7b6a5"), "16 hex digits"),
        (_mutate("severityNumber", "SEVERITY_NUMBER_INFO"), "MUST be integers"),
        (_mutate("timeUnixNano", "12.5"), "decimal integer"),
        (_mutate("attributes[0]", {"key": "k", "value": {"intValue": "ten"}}), "decimal integer"),
        (
            _mutate("attributes[0]", {"key": "k", "value": {"stringValue": 1, "intValue": 1}}),
            "oneof",
        ),
        (_mutate("attributes[0]", {"key": "k", "value": {"kvlistValue": []}}), "values"),
        (_mutate("attributes[0]", {"key": "gen_ai.response.id", "value": {}}), "duplicate"),
        ({"resource_logs": []}, "lowerCamelCase"),
    ],
)
def test_bad_data_gets_400_with_a_status_body(
    otlp: FakeOTLPReceiver, body: Any, needle: str
) -> None:
    status, headers, raw = _post(otlp.logs_url, body)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert needle in json.loads(raw)["message"]
    assert 400 not in RETRYABLE_STATUSES
    assert [r.status for r in otlp.requests_to(LOGS_PATH)] == [400]
    assert otlp.log_records() == []  # nothing from a refused request


def test_fail_next_answers_a_retryable_status_with_retry_after(otlp: FakeOTLPReceiver) -> None:
    otlp.fail_next(LOGS_PATH, 503, times=2, retry_after="2")
    for _ in range(2):
        status, headers, body = _post(otlp.logs_url, EVAL_REQUEST)
        assert status == 503 and headers["Retry-After"] == "2"
        assert "message" in json.loads(body)
    assert _post(otlp.logs_url, EVAL_REQUEST)[0] == 200
    assert [r.status for r in otlp.requests_to(LOGS_PATH)] == [503, 503, 200]
    assert len(otlp.events()) == 1  # only the accepted copy counts
    assert 503 in RETRYABLE_STATUSES and 429 in RETRYABLE_STATUSES
    assert _post(otlp.traces_url, {})[0] == 200  # knobs are per path


def test_fail_next_without_retry_after_sends_no_header(otlp: FakeOTLPReceiver) -> None:
    otlp.fail_next(TRACES_PATH, 429)
    status, headers, _ = _post(otlp.traces_url, {})
    assert status == 429 and "Retry-After" not in headers


def test_disconnect_next_closes_without_an_answer(otlp: FakeOTLPReceiver) -> None:
    otlp.disconnect_next(LOGS_PATH)
    with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
        _post(otlp.logs_url, EVAL_REQUEST)
    assert _post(otlp.logs_url, EVAL_REQUEST)[0] == 200
    assert [r.status for r in otlp.requests_to(LOGS_PATH)] == [0, 200]


def test_partial_success_sets_the_rejected_count_as_a_string(otlp: FakeOTLPReceiver) -> None:
    otlp.partial_success_next(LOGS_PATH, rejected=1, message="score.value must be a double")
    status, _, body = _post(otlp.logs_url, EVAL_REQUEST)
    assert status == 200
    assert json.loads(body) == {
        "partialSuccess": {
            "rejectedLogRecords": "1",
            "errorMessage": "score.value must be a double",
        }
    }
    assert json.loads(_post(otlp.logs_url, EVAL_REQUEST)[2]) == {}


def test_unknown_paths_methods_and_oversized_bodies() -> None:
    with FakeOTLPReceiver(max_body_bytes=64) as otlp:
        assert _post(otlp.base_url + "/v1/metrics", {})[0] == 404
        status, headers, _ = _post(otlp.logs_url, b"", method="PUT")
        assert status == 405 and headers["Allow"] == "POST"
        assert _post(otlp.logs_url, EVAL_REQUEST)[0] == 413
        with pytest.raises(ValueError):
            otlp.fail_next("/v1/metrics", 503)


def test_int64_numbers_are_accepted_unless_strings_are_required() -> None:
    numbers = _mutate("timeUnixNano", 1749737012000000000)
    _record(numbers)["attributes"][0] = {"key": "n", "value": {"intValue": 3}}
    with FakeOTLPReceiver() as lenient:  # "either numbers or strings are accepted"
        assert _post(lenient.logs_url, numbers)[0] == 200
        assert lenient.log_records()[0].attributes["n"] == 3
    with FakeOTLPReceiver(int64_as_string=True) as strict:
        status, _, body = _post(strict.logs_url, numbers)
        assert status == 400 and "timeUnixNano" in json.loads(body)["message"]
        assert _post(strict.logs_url, EVAL_REQUEST)[0] == 200


def test_wait_for_sees_a_request_from_another_thread(otlp: FakeOTLPReceiver) -> None:
    thread = threading.Thread(target=_post, args=(otlp.logs_url, EVAL_REQUEST))
    thread.start()
    assert otlp.wait_for(lambda r: len(r.events()) == 1, timeout=5)
    thread.join()
    assert not otlp.wait_for(lambda r: len(r.events()) == 2, timeout=0.05)
    otlp.reset()
    assert otlp.requests == []


def test_any_values_decode_to_python_values() -> None:
    nested = {
        "kvlistValue": {
            "values": [
                {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "-7"}, {}]}}},
                {"key": "bytes", "value": {"bytesValue": "aGk="}},
                {"key": "nan", "value": {"doubleValue": "NaN"}},
                {"key": "flag", "value": {"boolValue": False}},
            ]
        }
    }
    decoded = decode_any_value(nested)
    assert decoded["list"] == [-7, None] and decoded["bytes"] == b"hi"
    assert decoded["nan"] != decoded["nan"] and decoded["flag"] is False
    assert decode_attributes(None) == {}
    with pytest.raises(OTLPDecodeError):
        decode_any_value({"intValue": str(2**63)})
    with pytest.raises(OTLPDecodeError):
        decode_any_value({"boolValue": "true"})


# ---------------------------------------------------------------------------- the fixture

#: Per conversation: (input tokens, output tokens) of its inference (``chat``) spans, as the
#: fixture README states them. invoke_agent spans repeat their children's usage and are excluded.
EXPECTED_TOKENS = {
    "conv_7Qm2Lk9PzX4rTb8NcV1sYh3D": {
        "gpt-4o-mini-2024-07-18": (2522, 198),
        "gpt-4o-2024-08-06": (1890, 310),
    },
    "conv_Hn4Rt8WqZ2bLx6Pj0KvM5cYe": {
        "claude-haiku-4-5-20251001": (2210, 388),
        "acme-support-ft-2025-06": (640, 95),
    },
    "conv_b1LL9nT3xQ0aZr7Uw2MkP5fG": {"gpt-4o-mini-2024-07-18": (1717, 184)},
}


def test_the_genai_fixture_is_canonical_otlp_json_with_the_documented_totals() -> None:
    with FakeOTLPReceiver(int64_as_string=True) as otlp:
        assert _post(otlp.traces_url, FIXTURE.read_bytes())[0] == 200
        spans = otlp.spans()
    assert len(spans) == 18
    assert len({s.span_id for s in spans}) == 18
    ops: dict[str | None, int] = defaultdict(int)
    for span in spans:
        ops[span.attributes.get("gen_ai.operation.name")] += 1
    assert ops == {"chat": 8, "invoke_agent": 3, "execute_tool": 2, None: 5}
    totals: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for span in spans:
        attrs = span.attributes
        if attrs.get("gen_ai.operation.name") != "chat":
            continue
        assert ("gen_ai.provider.name" in attrs) != ("gen_ai.system" in attrs)
        if "gen_ai.usage.input_tokens" not in attrs:  # the failed call
            assert span.status_code == 2 and attrs["error.type"] == "RateLimitError"
            continue
        model = attrs.get("gen_ai.response.model") or attrs["gen_ai.request.model"]
        conversation = totals[attrs["gen_ai.conversation.id"]]
        before = conversation.get(model, (0, 0))
        usage = (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"])
        conversation[model] = (before[0] + usage[0], before[1] + usage[1])
    assert totals == EXPECTED_TOKENS
    legacy = [s for s in spans if "gen_ai.system" in s.attributes]
    assert {s.resource["service.name"] for s in legacy} == {"billing-agent"}
    by_id = {s.span_id: s for s in spans}
    for span in spans:  # every parent is in the file, and every trace has one root
        assert span.parent_span_id is None or span.parent_span_id in by_id
    assert sum(s.parent_span_id is None for s in spans) == 4

"""A fake OTLP/HTTP receiver on 127.0.0.1 for tests that export logs (events) and traces as JSON.

Faithful to the OTLP spec (https://opentelemetry.io/docs/specs/otlp/#otlphttp) wherever a client
could tell: ``POST /v1/logs`` takes an ``ExportLogsServiceRequest``, ``POST /v1/traces`` an
``ExportTraceServiceRequest``; success is ``200`` with an ``Export*ServiceResponse`` whose
``partialSuccess`` is unset ("MUST leave the `partial_success` field unset in case of a
successful response") unless :meth:`FakeOTLPReceiver.partial_success_next` sets it
(``rejectedLogRecords``/``rejectedSpans``, an int64 so a JSON string, and ``errorMessage``); an
empty request succeeds; a body that does not decode is ``400``, one over 20 MiB (the recommended
limit) ``413``; error bodies are a JSON ``google.rpc.Status`` (``message`` only: "the server MAY
omit `Status.code`"); ``Content-Encoding: gzip`` is accepted. JSON rules checked: ``traceId`` and
``spanId`` are case-insensitive hex (32/16 digits), not base64; 64-bit integers (``intValue``,
``*UnixNano``) may be strings or numbers; enums (``kind``, ``severityNumber``, ``status.code``)
MUST be integers; unknown fields are ignored; a log record with an ``eventName`` is an event.

Simplified, or stricter than an OpenTelemetry Collector: JSON only (``application/x-protobuf``,
which servers SHOULD also accept, gets ``415`` like any other media type); no ``/v1/metrics``;
proto field names as keys (``resource_logs``) are a ``400`` (the spec calls them not valid);
``int64_as_string=True`` also refuses 64-bit integers written as JSON numbers (legal to decode,
but the proto3 JSON mapping writes strings); a request needs ``Content-Length``; no gzip answers.

Knobs for retry tests: :meth:`~FakeOTLPReceiver.fail_next` (a status, optionally with
``Retry-After``) and :meth:`~FakeOTLPReceiver.disconnect_next` (close without answering). Every
request is recorded (path, headers, decoded body, status); the helpers flatten what was accepted
into :class:`LogRecordView` / :class:`SpanView` rows with attributes decoded to Python values.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOGS_PATH = "/v1/logs"
TRACES_PATH = "/v1/traces"
JSON_CONTENT_TYPE = "application/json"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
#: The statuses a client SHOULD retry ("All other 4xx or 5xx response status codes MUST NOT").
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
EVALUATION_EVENT = "gen_ai.evaluation.result"

#: path -> (resource list key, scope list key, record list key, partial-success counter key)
_SIGNALS: dict[str, tuple[str, str, str, str]] = {
    LOGS_PATH: ("resourceLogs", "scopeLogs", "logRecords", "rejectedLogRecords"),
    TRACES_PATH: ("resourceSpans", "scopeSpans", "spans", "rejectedSpans"),
}
_PROTO_NAMES = ("resource_logs", "resource_spans", "scope_logs", "scope_spans", "log_records")
_INT64 = re.compile(r"-?\d+\Z")
_HEX = re.compile(r"[0-9a-fA-F]*\Z")


class OTLPDecodeError(ValueError):
    """The body is not a valid OTLP/JSON message (the receiver answers 400)."""


# ---------------------------------------------------------------------------- value decoding


def decode_any_value(value: Any, where: str = "value") -> Any:
    """The Python value of an OTLP ``AnyValue`` JSON object (common.proto): str, bool, int,
    float, list, dict, bytes (``bytesValue`` is base64, unlike the ids), or None when empty."""
    if not isinstance(value, dict):
        raise OTLPDecodeError(f"{where}: an AnyValue must be an object, got {value!r}")
    known = [key for key in _ANY_VALUE_KEYS if key in value]
    if len(known) > 1:
        raise OTLPDecodeError(f"{where}: AnyValue sets more than one of its oneof: {known}")
    if not known:
        return None  # "valid for all values to be unspecified": an empty AnyValue
    key, inner = known[0], value[known[0]]
    here = f"{where}.{key}"
    if key in ("stringValue", "boolValue"):
        if not isinstance(inner, str if key == "stringValue" else bool):
            raise OTLPDecodeError(f"{here}: wrong JSON type: {inner!r}")
        return inner
    if key == "intValue":
        return _int64(inner, here, signed=True)
    if key == "doubleValue":
        if isinstance(inner, bool) or not isinstance(inner, int | float | str):
            raise OTLPDecodeError(f"{here}: not a number: {inner!r}")
        try:
            return float(inner)  # proto3 JSON also allows "NaN", "Infinity", "1.5"
        except ValueError as exc:
            raise OTLPDecodeError(f"{here}: not a number: {inner!r}") from exc
    if key == "bytesValue":
        try:
            return base64.b64decode(inner, validate=True)
        except (binascii.Error, TypeError) as exc:
            raise OTLPDecodeError(f"{here}: not base64: {inner!r}") from exc
    values = inner.get("values", []) if isinstance(inner, dict) else None
    if not isinstance(values, list):
        raise OTLPDecodeError(f'{here}: must be {{"values": [...]}}, got {inner!r}')
    if key == "arrayValue":
        return [decode_any_value(item, f"{here}[{n}]") for n, item in enumerate(values)]
    return decode_attributes(values, here)


_ANY_VALUE_KEYS: tuple[str, ...] = ("stringValue", "boolValue", "intValue", "doubleValue")
_ANY_VALUE_KEYS += ("arrayValue", "kvlistValue", "bytesValue")


def decode_attributes(pairs: Any, where: str = "attributes") -> dict[str, Any]:
    """A ``repeated KeyValue`` (``[{"key": ..., "value": AnyValue}]``) as a dict; keys MUST be
    unique, so a repeated key is an error."""
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise OTLPDecodeError(f"{where}: must be a list of KeyValue, got {pairs!r}")
    out: dict[str, Any] = {}
    for n, pair in enumerate(pairs):
        here = f"{where}[{n}]"
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise OTLPDecodeError(f"{here}: a KeyValue needs a string key: {pair!r}")
        if pair["key"] in out:
            raise OTLPDecodeError(f"{here}: duplicate attribute key {pair['key']!r}")
        raw = pair.get("value", {})
        out[pair["key"]] = decode_any_value(raw, f"{here}.value")
    return out


def _int64(value: Any, where: str, *, signed: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OTLPDecodeError(f"{where}: a 64-bit integer must be a string or number: {value!r}")
    if isinstance(value, str) and not _INT64.match(value):
        raise OTLPDecodeError(f"{where}: not a decimal integer: {value!r}")
    number = int(value)
    low, high = (-(2**63), 2**63 - 1) if signed else (0, 2**64 - 1)
    if not low <= number <= high:
        raise OTLPDecodeError(f"{where}: {number} is out of range")
    return number


def _enum(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise OTLPDecodeError(f"{where}: enum values MUST be integers in OTLP/JSON, got {value!r}")
    return value


def _hex_id(value: Any, size: int, where: str) -> str | None:
    """A lowercase hex id, or None when absent, empty or all zeroes (all are "invalid", and a
    receiver SHOULD then treat the record as not associated with a trace or span)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEX.match(value) or len(value) != 2 * size:
        raise OTLPDecodeError(f"{where}: not {2 * size} hex digits (hex, not base64): {value!r}")
    lowered = value.lower()
    return None if set(lowered) == {"0"} else lowered


def _list(parent: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = parent.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise OTLPDecodeError(f"{where}.{key}: must be a list of objects")
    return items


@dataclass(frozen=True, kw_only=True)
class _View:
    resource: dict[str, Any]  # the resource's attributes, decoded
    scope_name: str
    scope_version: str
    trace_id: str | None  # lowercase hex; None when absent, empty or all zeroes
    span_id: str | None
    attributes: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)  # the record's JSON as received


@dataclass(frozen=True, kw_only=True)
class LogRecordView(_View):
    """One received log record with its resource and scope, everything decoded."""

    event_name: str | None  # LogRecord.eventName; None when absent or empty (not an event)
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    flags: int

    @property
    def legacy_event_name(self) -> str | None:
        """The deprecated ``event.name`` attribute (older SDKs put the event name there)."""
        value = self.attributes.get("event.name")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, kw_only=True)
class SpanView(_View):
    """One received span with its resource and scope, everything decoded (span events are
    left in ``raw``)."""

    parent_span_id: str | None
    name: str
    kind: int  # SpanKind: 1 INTERNAL, 2 SERVER, 3 CLIENT, 4 PRODUCER, 5 CONSUMER
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int  # 0 UNSET, 1 OK, 2 ERROR
    status_message: str


def _walk(body: Any, path: str) -> list[tuple[dict[str, Any], str]]:
    """(the fields every view shares, where) for each record of an ``Export*ServiceRequest``."""
    if not isinstance(body, dict):
        raise OTLPDecodeError("the request body must be a JSON object")
    snake = [key for key in _PROTO_NAMES if key in body]
    if snake:
        raise OTLPDecodeError(f"keys must be lowerCamelCase JSON names, not proto names: {snake}")
    resources_key, scopes_key, records_key, _ = _SIGNALS[path]
    out = []
    for r, resource_block in enumerate(_list(body, resources_key, "$")):
        where_r = f"{resources_key}[{r}]"
        resource = _object(resource_block, "resource", where_r)
        resource_attrs = decode_attributes(resource.get("attributes"), f"{where_r}.resource")
        for s, scope_block in enumerate(_list(resource_block, scopes_key, where_r)):
            where_s = f"{where_r}.{scopes_key}[{s}]"
            scope = _object(scope_block, "scope", where_s)
            for n, rec in enumerate(_list(scope_block, records_key, where_s)):
                where = f"{where_s}.{records_key}[{n}]"
                common = {
                    "resource": resource_attrs,
                    "scope_name": str(scope.get("name") or ""),
                    "scope_version": str(scope.get("version") or ""),
                    "trace_id": _hex_id(rec.get("traceId"), 16, f"{where}.traceId"),
                    "span_id": _hex_id(rec.get("spanId"), 8, f"{where}.spanId"),
                    "attributes": decode_attributes(rec.get("attributes"), f"{where}.attributes"),
                    "raw": rec,
                }
                out.append((common, where))
    return out


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key) or {}
    if not isinstance(value, dict):
        raise OTLPDecodeError(f"{where}.{key}: must be an object")
    return value


def flatten_log_records(body: Any) -> list[LogRecordView]:
    """Every log record of an ``ExportLogsServiceRequest`` (raises :class:`OTLPDecodeError`)."""
    views = []
    for common, where in _walk(body, LOGS_PATH):
        rec = common["raw"]
        event_name = rec.get("eventName")
        if event_name is not None and not isinstance(event_name, str):
            raise OTLPDecodeError(f"{where}.eventName: must be a string")
        views.append(
            LogRecordView(
                **common,
                event_name=event_name or None,
                time_unix_nano=_nanos(rec, "timeUnixNano", where),
                observed_time_unix_nano=_nanos(rec, "observedTimeUnixNano", where),
                severity_number=_enum(rec.get("severityNumber"), f"{where}.severityNumber"),
                severity_text=str(rec.get("severityText") or ""),
                body=decode_any_value(rec.get("body") or {}, f"{where}.body"),
                flags=_enum(rec.get("flags"), f"{where}.flags"),  # fixed32, a JSON number
            )
        )
    return views


def flatten_spans(body: Any) -> list[SpanView]:
    """Every span of an ``ExportTraceServiceRequest`` (raises :class:`OTLPDecodeError`)."""
    views = []
    for common, where in _walk(body, TRACES_PATH):
        span = common["raw"]
        status = _object(span, "status", where)
        views.append(
            SpanView(
                **common,
                parent_span_id=_hex_id(span.get("parentSpanId"), 8, f"{where}.parentSpanId"),
                name=str(span.get("name") or ""),
                kind=_enum(span.get("kind"), f"{where}.kind"),
                start_time_unix_nano=_nanos(span, "startTimeUnixNano", where),
                end_time_unix_nano=_nanos(span, "endTimeUnixNano", where),
                status_code=_enum(status.get("code"), f"{where}.status.code"),
                status_message=str(status.get("message") or ""),
            )
        )
    return views


def int64_numbers(node: Any, where: str = "$") -> list[str]:
    """Where a 64-bit integer field (``intValue``, ``*UnixNano``) is a JSON number instead of the
    decimal string the proto3 JSON mapping encodes it as (decoders accept both)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _INT64_FIELDS and isinstance(value, int) and not isinstance(value, bool):
                found.append(f"{where}.{key}")
            else:
                found.extend(int64_numbers(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for n, item in enumerate(node):
            found.extend(int64_numbers(item, f"{where}[{n}]"))
    return found


_INT64_FIELDS = {"intValue", "timeUnixNano"} | {
    f"{k}TimeUnixNano" for k in ("observed", "start", "end")
}


def _nanos(record: dict[str, Any], key: str, where: str) -> int:
    value = record.get(key)
    if value is None:
        return 0  # "Value of 0 indicates unknown or missing timestamp"
    return _int64(value, f"{where}.{key}", signed=False)


# ---------------------------------------------------------------------------- the server


@dataclass
class Received:
    """One request: ``raw`` is the body after gzip decoding, ``body`` its JSON (None when it did
    not parse), ``status`` the answer (0 for a dropped connection)."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int
    at: float


@dataclass
class _Knob:
    kind: str  # "fail", "disconnect" or "partial"
    times: int
    status: int = 0
    retry_after: str | None = None
    message: str = ""
    rejected: int = 0


class FakeOTLPReceiver:
    """Start with ``with FakeOTLPReceiver() as otlp:``; point an exporter at ``otlp.base_url``
    (it appends ``/v1/logs`` and ``/v1/traces``) or at ``otlp.logs_url`` / ``otlp.traces_url``."""

    def __init__(
        self, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, int64_as_string: bool = False
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.int64_as_string = int64_as_string
        self.requests: list[Received] = []
        self._knobs: dict[tuple[str, bool], list[_Knob]] = {}  # (path, is partial) -> queue
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        serve = {"poll_interval": 0.02}  # shutdown() waits up to one poll
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs=serve, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def logs_url(self) -> str:
        return self.base_url + LOGS_PATH

    @property
    def traces_url(self) -> str:
        return self.base_url + TRACES_PATH

    def __enter__(self) -> FakeOTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ knobs

    def fail_next(
        self,
        path: str,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        message: str = "",
    ) -> None:
        """The next ``times`` requests to ``path`` answer ``status`` with a Status body (and a
        ``Retry-After`` header when given, e.g. ``"2"``), whatever they carry."""
        text = message or f"injected failure {status}"
        self._push(path, _Knob("fail", times, status, retry_after=retry_after, message=text))

    def disconnect_next(self, path: str, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` are read, then the connection is closed with
        no response (the spec: the client "SHOULD retry and send the same request")."""
        self._push(path, _Knob("disconnect", times))

    def partial_success_next(self, path: str, rejected: int, message: str, times: int = 1) -> None:
        """The next ``times`` valid requests to ``path`` answer 200 with ``partialSuccess`` set
        (``rejected`` 0 with a message is a warning; the client MUST NOT retry either way)."""
        self._push(path, _Knob("partial", times, message=message, rejected=rejected))

    def _push(self, path: str, knob: _Knob) -> None:
        if path not in _SIGNALS:
            raise ValueError(f"not an OTLP path this receiver serves: {path!r}")
        if knob.times < 1:
            raise ValueError("times must be at least 1")
        with self._cond:
            self._knobs.setdefault((path, knob.kind == "partial"), []).append(knob)

    def _take(self, path: str, partial: bool) -> _Knob | None:
        with self._cond:
            queue = self._knobs.get((path, partial), [])
            if not queue:
                return None
            knob = queue[0]
            knob.times -= 1
            if knob.times == 0:
                queue.pop(0)
            return knob

    def reset(self) -> None:
        """Forget the recorded requests and any pending knobs."""
        with self._cond:
            self.requests.clear()
            self._knobs.clear()

    def requests_to(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def accepted(self, path: str) -> list[Received]:
        """The requests to ``path`` answered 200: the data the receiver took."""
        return [r for r in self.requests_to(path) if r.status == 200]

    def log_records(self) -> list[LogRecordView]:
        """Every log record of every accepted ``/v1/logs`` request, in arrival order."""
        return [view for r in self.accepted(LOGS_PATH) for view in flatten_log_records(r.body)]

    def events(self, name: str = EVALUATION_EVENT) -> list[LogRecordView]:
        """The accepted log records whose ``eventName`` is ``name`` (not the legacy attribute)."""
        return [record for record in self.log_records() if record.event_name == name]

    def spans(self) -> list[SpanView]:
        """Every span of every accepted ``/v1/traces`` request, in arrival order."""
        return [view for r in self.accepted(TRACES_PATH) for view in flatten_spans(r.body)]

    def wait_for(self, predicate: Callable[[FakeOTLPReceiver], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (checked after every request), or time out."""
        with self._cond:  # an RLock: the predicate may read the records
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def _record(self, received: Received) -> None:
        with self._cond:
            self.requests.append(received)
            self._cond.notify_all()

    # ------------------------------------------------------------------ routing

    def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, problem: _Problem = None
    ) -> _Answer:
        """The answer to one request, which is recorded; ``problem`` is a transport-level
        failure the handler found (gzip that does not inflate, a body over the limit)."""
        lowered = {key.lower(): value for key, value in headers.items()}
        parsed = _try_json(raw)
        try:
            answer = self._decide(method, path, lowered, parsed, problem)
        except Exception as exc:  # a bug here must show as a 500, not a hung client
            answer = _status(500, f"fake receiver error: {exc!r}")
        if path in _SIGNALS:
            body = None if parsed is _UNPARSED else parsed
            self._record(Received(method, path, headers, raw, body, answer[0], time.monotonic()))
        return answer

    def _decide(
        self, method: str, path: str, headers: dict[str, str], parsed: Any, problem: _Problem
    ) -> _Answer:
        if path not in _SIGNALS:
            return _text(404, f"404 no OTLP endpoint at {path}")
        if method != "POST":
            return _text(405, "405 method not allowed, supported: [POST]", {"Allow": "POST"})
        knob = self._take(path, partial=False)
        if knob is not None and knob.kind == "disconnect":
            return 0, "", b"", {}
        if knob is not None:
            extra = {"Retry-After": knob.retry_after} if knob.retry_after is not None else {}
            return _status(knob.status, knob.message, extra)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != JSON_CONTENT_TYPE:
            supported = f"[{JSON_CONTENT_TYPE}] ({PROTOBUF_CONTENT_TYPE} is not implemented)"
            return _text(415, f"415 unsupported media type {media!r}, supported: {supported}")
        if problem is not None:
            return _status(*problem)
        if parsed is _UNPARSED:
            return _status(400, "the body is not valid JSON")
        flatten = flatten_log_records if path == LOGS_PATH else flatten_spans
        try:
            records = flatten(parsed)
        except OTLPDecodeError as exc:
            return _status(400, str(exc))
        numbers = int64_numbers(parsed) if self.int64_as_string else []
        if numbers:
            return _status(400, f"64-bit integers written as JSON numbers: {numbers[:5]}")
        partial = self._take(path, partial=True) if records else None
        response: dict[str, Any] = {}
        if partial is not None:  # int64 counter, so a JSON string
            counter = _SIGNALS[path][3]
            rejected = str(partial.rejected)
            response["partialSuccess"] = {counter: rejected, "errorMessage": partial.message}
        return 200, JSON_CONTENT_TYPE, json.dumps(response).encode(), {}


#: (status, content type, body, extra headers); status 0 means "close without answering".
_Answer = tuple[int, str, bytes, dict[str, str]]
_Problem = tuple[int, str] | None  # a transport-level failure: (status, message)
_UNPARSED: Any = object()


def _try_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else _UNPARSED
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _UNPARSED


def _text(status: int, message: str, extra: dict[str, str] | None = None) -> _Answer:
    return status, "text/plain; charset=utf-8", message.encode(), extra or {}


def _status(status: int, message: str, extra: dict[str, str] | None = None) -> _Answer:
    """A ``google.rpc.Status`` as JSON; ``code`` omitted ("the server MAY omit Status.code")."""
    return status, JSON_CONTENT_TYPE, json.dumps({"message": message}).encode(), extra or {}


def _handler(receiver: FakeOTLPReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients expect

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _read_body(self) -> tuple[bytes, _Problem]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if length > receiver.max_body_bytes:
                self.close_connection = True
                return b"", (413, "the request body is over the size limit")
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            if encoding in ("", "identity"):
                return raw, None
            if encoding != "gzip":
                return b"", (400, f"unsupported Content-Encoding {encoding!r}")
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                    inflated = stream.read(receiver.max_body_bytes + 1)
            except (OSError, EOFError, zlib.error):
                return b"", (400, "the gzip body does not decompress")
            if len(inflated) > receiver.max_body_bytes:
                return b"", (413, "the decompressed body is over the size limit")
            return inflated, None

        def _serve(self) -> None:
            raw, problem = self._read_body()
            headers = {key: value for key, value in self.headers.items()}
            path = self.path.split("?", 1)[0]
            status, ctype, body, extra = receiver.answer(self.command, path, headers, raw, problem)
            if status == 0:  # dropped: close without a response
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = do_PUT = _serve

    return Handler

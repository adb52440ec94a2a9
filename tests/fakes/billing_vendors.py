"""Vendor rules of the fake billing server (see ``billing_server.py`` for the HTTP side).

``BillingLedger`` holds what each target accepted and decides every request the way the vendor
documents it. Sources (quoted in ``/work/notes/billing_apis.md``):

- CloudEvents 1.0 (spec, HTTP binding, HTTP webhook): structured ``application/cloudevents+json``
  and batched ``application/cloudevents-batch+json``; ``specversion`` "1.0", non-empty ``id``,
  ``source``, ``type``; RFC 3339 ``time``; duplicates by (``source``, ``id``) are dropped, as the
  spec lets a consumer assume; 204 on success, 415 for a format it does not understand, bearer
  token in ``Authorization`` or the ``access_token`` query parameter.
- OpenMeter ``POST /api/v1/events``: the three content types its handler switches on (compared
  verbatim, so ``; charset=...`` is refused), 204 No Content, RFC 7807 ``problem+json`` 400s
  (``invalid content type: ...`` / ``invalid event: ...``), ``subject`` required, ``data`` an
  object, silent de-duplication on (``source``, ``id``).
- Lago ``POST /api/v1/events`` and ``/events/batch`` (served under ``/lago``): 200 with the event
  object; 422 ``validation_errors`` with ``value_is_mandatory`` / ``invalid_format`` /
  ``value_already_exist`` / ``no_events`` / ``too_many_events``; batches of at most 100, atomic,
  errors keyed by index. ``lago_event_store="postgres"`` (default) rejects a repeated
  (``transaction_id``, ``external_subscription_id``) with 422; ``"clickhouse"`` accepts it with 200
  and the newest copy replaces the one with the same transaction id, subscription, code and
  timestamp. Negative property values are accepted.
- Stripe ``POST /v1/billing/meter_events`` and ``/meter_event_adjustments`` (under ``/stripe``):
  form encoding, secret key as bearer or basic-auth user, identifiers unique for 24 h (then
  accepted again: Stripe promises *at least* 24 h), timestamps within 35 days past / 5 minutes
  future, cancel only within 24 h of receipt, ``Idempotency-Key`` replay for 24 h with
  ``Idempotent-Replayed: true`` and an ``idempotency_error`` on reuse with other parameters.
  Negative whole-number values are accepted. Payload problems (no customer, bad value) are
  asynchronous at Stripe: the fake answers 200 and files them in ``stripe_error_reports``.

Simplified: no binary-mode CloudEvents; Lago subscriptions, billable metrics and Stripe meters
and customers are not modelled (any code, subscription, event name or customer is taken); Stripe
payload keys are the defaults (``stripe_customer_id``, ``value``); an adjustment is applied at once
(reported ``pending``) and refused synchronously when it cannot apply; error messages are the
fake's own words except where noted.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

JSON = "application/json"
PROBLEM = "application/problem+json"
CE_SINGLE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
FORM = "application/x-www-form-urlencoded"
DAY = 86_400.0
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
STRIPE_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
)


@dataclass
class BillingRequest:
    """One request as received: ``body`` is parsed JSON (or a nested dict for form bodies)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    body: Any
    at: float
    json_error: str | None = None

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")

    @property
    def media_type(self) -> str:
        return self.header("Content-Type").split(";")[0].strip().lower()


@dataclass
class Reply:
    status: int
    body: Any = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def parse_body(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    """(parsed body, JSON error): JSON for ``*json`` types, nested dict for form bodies."""
    media = content_type.split(";")[0].strip().lower()
    if media == FORM:
        return parse_form(raw.decode("utf-8", "replace")), None
    if not raw or "json" not in media:
        return None, None
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, str(exc)


def parse_form(text: str) -> dict[str, Any]:
    """``payload[value]=3&cancel[identifier]=x`` -> ``{"payload": {"value": "3"}, ...}``."""
    out: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def bearer_token(req: BillingRequest) -> str:
    scheme, _, token = req.header("Authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def stripe_key(req: BillingRequest) -> str:
    """Stripe takes the secret key as the basic-auth user name or as a bearer token."""
    scheme, _, cred = req.header("Authorization").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(cred.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return bearer_token(req)


def problem(status: int, detail: str) -> Reply:
    """RFC 7807 body as OpenMeter writes it (no detail on 500)."""
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase}
    body["status"] = status
    if detail and status != 500:
        body["detail"] = detail
    return Reply(status, body, PROBLEM)


def stripe_error(
    status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
) -> Reply:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    return Reply(status, {"error": error})


def lago_error(status: int, details: dict[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase}
    if details is not None:
        body["code"] = "validation_errors"
        body["error_details"] = details
    return Reply(status, body)


def vendor_error(path: str, status: int, message: str) -> Reply:
    """An error shaped as the vendor serving ``path`` shapes its errors."""
    if path.startswith("/stripe/"):
        return stripe_error(
            status, message, kind="api_error" if status >= 500 else "invalid_request_error"
        )
    if path.startswith("/lago/"):
        return lago_error(status)
    return problem(status, message)


def cloudevent_problem(event: Any, openmeter: bool = False) -> str | None:
    """Why ``event`` is not a valid CloudEvent (OpenMeter also needs subject and object data)."""
    if not isinstance(event, dict):
        return "an event must be a JSON object"
    if event.get("specversion") != "1.0":
        return f"specversion must be '1.0', got {event.get('specversion')!r}"
    for name in ("id", "source", "type", "subject"):
        value = event.get(name)
        if (name != "subject" or openmeter or value is not None) and (
            not isinstance(value, str) or not value
        ):
            return f"{name} must be a non-empty string"
    time = event.get("time")
    if time is not None and not (isinstance(time, str) and _RFC3339.fullmatch(time)):
        return "time must be an RFC 3339 timestamp"
    if openmeter and event.get("data") is not None and not isinstance(event["data"], dict):
        return "data must be a JSON object"
    if openmeter and event.get("datacontenttype") not in (None, JSON):
        return "datacontenttype must be application/json"
    return None


def _lago_timestamp(value: Any) -> float | None:
    """Lago parses the timestamp with ``Float(...)``: numbers or numeric strings only."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Saved:
    path: str
    params: dict[str, Any]
    reply: Reply
    at: float


class BillingLedger:
    """Accepted events per target, duplicate counts, a settable clock and the vendors' rules."""

    LAGO_BATCH_MAX = 100
    STRIPE_PAST = 35 * DAY
    STRIPE_FUTURE = 300.0

    def __init__(self, api_key: str | None = None, lago_event_store: str = "postgres") -> None:
        self.api_key = api_key
        self.lago_event_store = lago_event_store
        self.cloudevents: list[dict[str, Any]] = []
        self.openmeter: list[dict[str, Any]] = []
        self.lago: list[dict[str, Any]] = []
        self.stripe_events: list[dict[str, Any]] = []
        self.stripe_adjustments: list[dict[str, Any]] = []
        self.stripe_error_reports: list[dict[str, Any]] = []
        self.stripe_cancelled: set[str] = set()
        self.duplicates: Counter[str] = Counter()
        self._clock: float | None = None
        self._ce_seen: set[tuple[str, str]] = set()
        self._om_seen: set[tuple[str, str]] = set()
        self._lago_index: dict[tuple[Any, ...], int] = {}
        self._stripe_seen: dict[str, float] = {}
        self._stripe_live: dict[str, tuple[dict[str, Any], float]] = {}
        self._cancelled_objects: set[int] = set()
        self._idempotency: dict[str, _Saved] = {}

    # ------------------------------------------------------------------ clock and helpers

    @property
    def now(self) -> float:
        """Seconds since the epoch: the wall clock until set, then frozen at the set value."""
        if self._clock is None:
            return datetime.now(UTC).timestamp()
        return self._clock

    @now.setter
    def now(self, value: float) -> None:
        self._clock = float(value)

    def advance(self, seconds: float) -> None:
        self.now = self.now + seconds

    def stripe_total(self, customer: str, event_name: str | None = None) -> int:
        """Sum of ``payload[value]`` over the customer's accepted, uncancelled meter events."""
        return sum(
            int(e["payload"]["value"])
            for e in self.stripe_events
            if e["payload"].get("stripe_customer_id") == customer
            and (event_name is None or e["event_name"] == event_name)
            and id(e) not in self._cancelled_objects
        )

    def _token_ok(self, token: str) -> bool:
        return bool(token) and (self.api_key is None or token == self.api_key)

    def _keep(self, events: list[dict[str, Any]], store: list[dict[str, Any]], target: str) -> None:
        seen = self._ce_seen if target == "cloudevents" else self._om_seen
        for event in events:
            key = (event["source"], event["id"])
            if key in seen:
                self.duplicates[target] += 1
            else:
                seen.add(key)
                store.append(event)

    def dispatch(self, req: BillingRequest) -> Reply:
        routes: dict[str, Callable[[BillingRequest], Reply]] = {
            "/cloudevents": self._cloudevents,
            "/api/v1/events": self._openmeter,
            "/lago/api/v1/events": self._lago_single,
            "/lago/api/v1/events/batch": self._lago_batch,
            "/stripe/v1/billing/meter_events": self._stripe_meter_event,
            "/stripe/v1/billing/meter_event_adjustments": self._stripe_adjustment,
        }
        route = routes.get(req.path)
        if route is None:
            return vendor_error(
                req.path, 404, f"Unrecognized request URL ({req.method}: {req.path})."
            )
        if req.method == "OPTIONS" and req.path == "/cloudevents":
            origin = req.header("WebHook-Request-Origin") or "*"
            allowed = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}
            return Reply(200, None, headers={**allowed, "Allow": "POST, OPTIONS"})
        if req.method != "POST":
            reply = vendor_error(req.path, 405, f"{req.method} is not allowed on {req.path}.")
            reply.headers["Allow"] = "POST"
            return reply
        return route(req)

    # ------------------------------------------------------------------ CloudEvents sink

    def _cloudevents(self, req: BillingRequest) -> Reply:
        if not self._token_ok(bearer_token(req) or req.query.get("access_token", "")):
            return problem(401, "a non-empty bearer token is required")
        if req.media_type not in (CE_SINGLE, CE_BATCH):
            return problem(415, f"unsupported content type: {req.media_type or '(none)'}")
        if req.json_error is not None:
            return problem(400, f"malformed JSON: {req.json_error}")
        if req.media_type == CE_BATCH and not isinstance(req.body, list):
            return problem(400, "a batch must be a JSON array")
        events = req.body if req.media_type == CE_BATCH else [req.body]
        for index, event in enumerate(events):
            why = cloudevent_problem(event)
            if why is not None:
                return problem(400, f"event {index}: {why}")
        self._keep(events, self.cloudevents, "cloudevents")
        return Reply(204)

    # ------------------------------------------------------------------ OpenMeter

    def _openmeter(self, req: BillingRequest) -> Reply:
        if not self._token_ok(bearer_token(req)):
            return problem(401, "unauthorized")
        content_type = req.header("Content-Type")  # OpenMeter compares the header verbatim
        if content_type not in (CE_SINGLE, CE_BATCH, JSON):
            return problem(400, f"invalid content type: {content_type}")
        if req.json_error is not None:
            return problem(400, f"invalid event: {req.json_error}")
        body = req.body
        if content_type == CE_BATCH and not isinstance(body, list):
            return problem(400, "invalid event: a batch must be a JSON array")
        events = body if isinstance(body, list) and content_type != CE_SINGLE else [body]
        if content_type == JSON and not events:
            return problem(400, "invalid event: no events found")
        for event in events:
            why = cloudevent_problem(event, openmeter=True)
            if why is not None:
                return problem(400, f"invalid event: {why}")
        self._keep(events, self.openmeter, "openmeter")
        return Reply(204)

    # ------------------------------------------------------------------ Lago

    def _lago_errors(self, event: Any) -> dict[str, list[str]]:
        if not isinstance(event, dict):
            return {"event": ["invalid_format"]}
        errors: dict[str, list[str]] = {}
        for name in ("transaction_id", "external_subscription_id", "code"):
            value = event.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                errors[name] = ["value_is_mandatory"]
        if event.get("timestamp") is not None and _lago_timestamp(event["timestamp"]) is None:
            errors["timestamp"] = ["invalid_format"]
        return errors

    def _lago_key(self, event: dict[str, Any]) -> tuple[Any, ...]:
        key = (str(event["transaction_id"]), str(event["external_subscription_id"]))
        if self.lago_event_store == "clickhouse":
            return (*key, str(event["code"]), _lago_timestamp(event["timestamp"]))
        return key

    def _lago_view(self, event: dict[str, Any]) -> dict[str, Any]:
        ts = _lago_timestamp(event["timestamp"]) or 0.0
        amount = event.get("precise_total_amount_cents")
        return {
            "lago_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lago:{event['transaction_id']}")),
            "transaction_id": event["transaction_id"],
            "lago_customer_id": None,
            "code": event["code"],
            "timestamp": _iso(ts),
            "lago_subscription_id": None,
            "external_subscription_id": event["external_subscription_id"],
            "precise_total_amount_cents": None if amount is None else str(amount),
            "properties": event.get("properties") or {},
            "created_at": _iso(self.now),
        }

    def _lago_store(self, event: dict[str, Any]) -> dict[str, Any]:
        stored = {**event, "timestamp": event.get("timestamp", self.now)}
        key = self._lago_key(stored)
        if key in self._lago_index:  # ClickHouse store: the newest copy replaces the old one
            self.duplicates["lago"] += 1
            self.lago[self._lago_index[key]] = stored
        else:
            self._lago_index[key] = len(self.lago)
            self.lago.append(stored)
        return self._lago_view(stored)

    def _lago_auth(self, req: BillingRequest) -> Reply | None:
        if not self._token_ok(bearer_token(req)):
            return lago_error(401)
        if req.json_error is not None or not isinstance(req.body, dict):
            return lago_error(400)
        return None

    def _lago_single(self, req: BillingRequest) -> Reply:
        refused = self._lago_auth(req)
        if refused is not None:
            return refused
        event = req.body.get("event")
        if not isinstance(event, dict):
            return lago_error(400)
        errors = self._lago_errors(event)
        if errors:
            return lago_error(422, errors)
        if self.lago_event_store == "postgres" and self._lago_key(event) in self._lago_index:
            self.duplicates["lago"] += 1
            return lago_error(422, {"transaction_id": ["value_already_exist"]})
        return Reply(200, {"event": self._lago_store(event)})

    def _lago_batch(self, req: BillingRequest) -> Reply:
        refused = self._lago_auth(req)
        if refused is not None:
            return refused
        events = req.body.get("events")
        if not isinstance(events, list) or not events:
            return lago_error(422, {"events": ["no_events"]})
        if len(events) > self.LAGO_BATCH_MAX:
            return lago_error(422, {"events": ["too_many_events"]})
        errors: dict[str, dict[str, list[str]]] = {}
        in_batch: set[tuple[Any, ...]] = set()
        for index, event in enumerate(events):
            event_errors = self._lago_errors(event)
            if not event_errors and self.lago_event_store == "postgres":
                key = self._lago_key(event)
                if key in self._lago_index or key in in_batch:
                    self.duplicates["lago"] += 1
                    event_errors = {"transaction_id": ["value_already_exist"]}
                in_batch.add(key)
            if event_errors:
                errors[str(index)] = event_errors
        if errors:  # batches are atomic: nothing is kept
            return lago_error(422, errors)
        return Reply(200, {"events": [self._lago_store(event) for event in events]})

    # ------------------------------------------------------------------ Stripe

    def _stripe(
        self, req: BillingRequest, target: str, execute: Callable[[dict[str, Any]], Reply]
    ) -> Reply:
        secret = stripe_key(req)
        if not self._token_ok(secret):
            return stripe_error(401, "Invalid API Key provided." if secret else STRIPE_NO_KEY)
        params = req.body if isinstance(req.body, dict) else {}
        key = req.header("Idempotency-Key")
        saved = self._idempotency.get(key) if key else None
        if saved is not None and self.now - saved.at < DAY:
            if (saved.path, saved.params) != (req.path, params):
                message = f"Idempotency-Key {key!r} was first used with other parameters."
                return stripe_error(400, message, kind="idempotency_error")
            self.duplicates[target] += 1
            replay = saved.reply
            return Reply(replay.status, replay.body, headers={"Idempotent-Replayed": "true"})
        reply = execute(params)
        if key and reply.status == 200:  # a request refused by validation is not saved
            self._idempotency[key] = _Saved(req.path, params, reply, self.now)
        return reply

    def _stripe_meter_event(self, req: BillingRequest) -> Reply:
        return self._stripe(req, "stripe_events", self._create_meter_event)

    def _stripe_adjustment(self, req: BillingRequest) -> Reply:
        return self._stripe(req, "stripe_adjustments", self._cancel_meter_event)

    def _create_meter_event(self, params: dict[str, Any]) -> Reply:
        for name in ("event_name", "payload"):
            if not params.get(name):
                return stripe_error(400, f"Missing required param: {name}.", name)
        payload = params["payload"]
        if not isinstance(payload, dict):
            return stripe_error(400, "Invalid object", "payload")
        raw_ts = params.get("timestamp")
        try:
            ts = int(self.now) if raw_ts in (None, "") else int(raw_ts)
        except (TypeError, ValueError):
            return stripe_error(400, f"Invalid integer: {raw_ts}", "timestamp")
        earliest = int(self.now - self.STRIPE_PAST)
        if ts < earliest:  # wording as reported by Stripe users
            message = (
                "The event timestamp cannot be more than 35 days in past. "
                f"Expected a timestamp greater than or equal to {earliest}."
            )
            return stripe_error(400, message, "timestamp")
        if ts > self.now + self.STRIPE_FUTURE:
            return stripe_error(
                400, "The event timestamp cannot be more than 5 minutes in the future.", "timestamp"
            )
        identifier = str(params.get("identifier") or f"fake_{uuid.uuid4().hex}")
        if len(identifier) > 100:
            return stripe_error(400, "identifier is longer than 100 characters.", "identifier")
        seen_at = self._stripe_seen.get(identifier)
        if seen_at is not None and self.now - seen_at < DAY:
            self.duplicates["stripe_events"] += 1
            return stripe_error(
                400, f"An event already exists with identifier {identifier}.", "identifier"
            )
        self._stripe_seen[identifier] = self.now
        event: dict[str, Any] = {
            "object": "billing.meter_event",
            "created": int(self.now),
            "event_name": str(params["event_name"]),
            "identifier": identifier,
            "livemode": False,
            "payload": {k: str(v) for k, v in payload.items()},
            "timestamp": ts,
        }
        issue = self._stripe_async_issue(event["payload"])
        if issue is None:
            self.stripe_events.append(event)
            self._stripe_live[identifier] = (event, self.now)
        else:
            code, message = issue
            report = {"code": code, "error_message": message, "identifier": identifier}
            self.stripe_error_reports.append({**report, "event": event})
        return Reply(200, event)

    @staticmethod
    def _stripe_async_issue(payload: dict[str, str]) -> tuple[str, str] | None:
        """What Stripe would report later in a ``v1.billing.meter.error_report_triggered``."""
        if not payload.get("stripe_customer_id"):
            return (
                "meter_event_no_customer_defined",
                "Customer mapping key stripe_customer_id not found in payload.",
            )
        if "value" not in payload:
            return "meter_event_value_not_found", "Value key value not found in payload."
        if not re.fullmatch(r"-?\d+", payload["value"]):
            return "meter_event_invalid_value", "The value must be a whole number."
        return None

    def _cancel_meter_event(self, params: dict[str, Any]) -> Reply:
        for name in ("event_name", "type"):
            if not params.get(name):
                return stripe_error(400, f"Missing required param: {name}.", name)
        if params["type"] != "cancel":
            return stripe_error(400, "Invalid type: must be one of cancel.", "type")
        cancel = params.get("cancel")
        identifier = cancel.get("identifier") if isinstance(cancel, dict) else None
        if not identifier:
            return stripe_error(
                400, "Missing required param: cancel[identifier].", "cancel[identifier]"
            )
        found = self._stripe_live.get(identifier)
        if found is None:
            return stripe_error(
                400, f"No meter event with identifier {identifier}.", "cancel[identifier]"
            )
        event, received_at = found
        if event["event_name"] != params["event_name"]:
            return stripe_error(400, "event_name does not match the event.", "event_name")
        adjustment = {
            "object": "billing.meter_event_adjustment",
            "livemode": False,
            "status": "pending",
            "event_name": event["event_name"],
            "type": "cancel",
            "cancel": {"identifier": identifier},
        }
        if id(event) in self._cancelled_objects:
            self.duplicates["stripe_adjustments"] += 1
            return Reply(200, adjustment)
        if self.now - received_at > DAY:
            message = "You can only cancel events within 24 hours of Stripe receiving them."
            return stripe_error(400, message, "cancel[identifier]")
        self._cancelled_objects.add(id(event))
        self.stripe_cancelled.add(identifier)
        self.stripe_adjustments.append(adjustment)
        return Reply(200, adjustment)

"""How each billing system takes a verified-outcome event, and the HTTP that sends it.

Formats follow each vendor's public API reference:

- **CloudEvents** 1.0 over HTTP, batched (``application/cloudevents-batch+json``); idempotency by
  ``source`` + ``id``; a correction is a new event whose ``data.value`` is -1.
- **OpenMeter** ``POST /api/v1/events`` (CloudEvents, ``subject`` required); dedup by ``source``
  + ``id``; corrections as above.
- **Lago** ``POST /api/v1/events/batch`` (at most 100, atomic); idempotency by
  ``transaction_id`` (a repeat is 422 ``value_already_exist``: already delivered); a correction
  is a new ``transaction_id`` with ``properties.value`` -1 (negative values count on a sum metric).
- **Stripe** ``POST /v1/billing/meter_events`` (form-encoded; ``identifier`` unique for at least
  24 h, a repeat is a 400 saying it exists: already delivered; timestamps within the past 35
  days) and ``POST /v1/billing/meter_event_adjustments`` (``type=cancel``, only within 24 h of
  Stripe receiving the event); after that, a negative ``payload[value]``.

Credentials come from the environment only and go only to the configured endpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.export.plan import Action
from app.http_retry import DeliveryError, Poster

__all__ = [
    "CANCEL_WINDOWS",
    "TARGETS",
    "TOKEN_ENV",
    "ExportError",
    "Sender",
    "TargetConfig",
    "cloudevent",
    "destination_of",
    "lago_event",
    "stripe_identifier",
]

TARGETS = ("cloudevents", "openmeter", "lago", "stripe")
#: How long after the target received a usage event a correction may cancel it instead of
#: sending a negative one (Stripe: 24 h; a margin keeps clock drift on the safe side).
CANCEL_WINDOWS: dict[str, timedelta] = {"stripe": timedelta(hours=24) - timedelta(minutes=10)}
#: The environment variable each target's token is read from by default.
TOKEN_ENV = {
    "cloudevents": "OUTCOME_JUDGE_CLOUDEVENTS_TOKEN",
    "openmeter": "OPENMETER_API_KEY",
    "lago": "LAGO_API_KEY",
    "stripe": "STRIPE_API_KEY",
}
BATCH = {"cloudevents": 100, "openmeter": 100, "lago": 100, "stripe": 1}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STRIPE_PAST = timedelta(days=35) - timedelta(hours=1)
_CE_TYPE = "com.outcome-judge.verified_outcome"


ExportError = DeliveryError


def destination_of(endpoint: str) -> str:
    """The endpoint without credentials, query or fragment: what the export log keys on.

    >>> destination_of("https://user:pw@api.example:8443/v1/?token=x")
    'https://api.example:8443/v1'
    """
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """Where and how to send: the target, its base URL, the token, and the ids it bills by."""

    target: str
    endpoint: str
    token: str
    tenant: str
    subject: str | None = None
    customer: str | None = None
    subscription: str | None = None
    event_name: str = "verified_outcomes"

    @property
    def source(self) -> str:
        return f"/outcome-judge/{urllib.parse.quote(self.tenant, safe='')}"

    @property
    def destination(self) -> str:
        return destination_of(self.endpoint)


def _data(action: Action) -> dict[str, Any]:
    entry = action.entry
    data: dict[str, Any] = {"value": action.value, "outcome_id": action.outcome_id}
    if entry is not None:
        data.update(
            reason=entry.reason,
            tier=entry.tier,
            agent=entry.agent,
            agent_version=entry.agent_version,
            model_path=entry.model_path,
        )
    else:
        data["reason"] = "retracted"
    if action.corrects is not None:
        data["corrects"] = action.corrects
    return {k: v for k, v in data.items() if v is not None}


def _when(action: Action, now: datetime) -> datetime:
    return action.entry.booked_at if action.entry is not None else now


def cloudevent(action: Action, config: TargetConfig, now: datetime) -> dict[str, Any]:
    """The CloudEvents 1.0 structured event of ``action``."""
    return {
        "specversion": "1.0",
        "id": action.key,
        "source": config.source,
        "type": _CE_TYPE if action.value > 0 else f"{_CE_TYPE}.correction",
        "subject": config.subject or config.tenant,
        "time": _when(action, now).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": _data(action),
    }


def lago_event(action: Action, config: TargetConfig, now: datetime) -> dict[str, Any]:
    """The Lago usage event of ``action`` (an explicit timestamp: retries stay identical)."""
    return {
        "transaction_id": action.key,
        "external_subscription_id": config.subscription,
        "code": config.event_name,
        "timestamp": int(_when(action, now).timestamp()),
        "properties": _data(action),
    }


def stripe_identifier(key: str) -> str:
    """The key as a Stripe identifier (at most 100 characters; longer keys are hashed)."""
    return key if len(key) <= 100 else "oj-" + hashlib.sha256(key.encode()).hexdigest()[:60]


@dataclass
class Sender:
    """Sends planned actions to one target; returns the keys the target now holds."""

    config: TargetConfig
    sleep: Callable[[float], None] = time.sleep
    already_delivered: int = 0
    poster: Poster = field(init=False)

    def __post_init__(self) -> None:
        self.poster = Poster(RETRY_STATUSES, sleep=self.sleep)

    @property
    def requests(self) -> int:
        return self.poster.requests

    def send(self, actions: Sequence[Action], now: datetime) -> list[str]:
        target = self.config.target
        if target in ("cloudevents", "openmeter"):
            path = "/api/v1/events" if target == "openmeter" else ""
            body = json.dumps([cloudevent(a, self.config, now) for a in actions]).encode()
            self._post(path, body, "application/cloudevents-batch+json")
            return [a.key for a in actions]
        if target == "lago":
            return self._lago(actions, now)
        if target == "stripe":
            return [self._stripe(a, now) for a in actions]
        raise ExportError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")

    def _lago(self, actions: Sequence[Action], now: datetime) -> list[str]:
        events = [lago_event(a, self.config, now) for a in actions]
        status, _ = self._post(
            "/api/v1/events/batch",
            json.dumps({"events": events}).encode(),
            "application/json",
            accept=(422,),
        )
        if status != 422:
            return [a.key for a in actions]
        # The batch is atomic: one event already there refuses all. Send them one by one, and
        # take "value_already_exist" on transaction_id as delivered.
        for event in events:
            status, body = self._post(
                "/api/v1/events",
                json.dumps({"event": event}).encode(),
                "application/json",
                accept=(422,),
            )
            if status == 422:
                details = (body or {}).get("error_details") or {}
                if "value_already_exist" not in details.get("transaction_id", []):
                    raise ExportError(
                        f"Lago refused event {event['transaction_id']}: {json.dumps(body)[:300]}"
                    )
                self.already_delivered += 1
        return [a.key for a in actions]

    def _stripe(self, action: Action, now: datetime) -> str:
        c = self.config
        if action.kind == "cancel":
            assert action.corrects is not None
            form = {
                "event_name": c.event_name,
                "type": "cancel",
                "cancel[identifier]": stripe_identifier(action.corrects),
            }
            path = "/v1/billing/meter_event_adjustments"
        else:
            when = min(max(_when(action, now), now - _STRIPE_PAST), now)
            form = {
                "event_name": c.event_name,
                "payload[stripe_customer_id]": c.customer or "",
                "payload[value]": str(action.value),
                "identifier": stripe_identifier(action.key),
                "timestamp": str(int(when.timestamp())),
            }
            path = "/v1/billing/meter_events"
        status, body = self._post(
            path,
            urllib.parse.urlencode(form).encode(),
            "application/x-www-form-urlencoded",
            accept=(400,),
            extra={"Idempotency-Key": stripe_identifier(action.key)},
        )
        if status == 400:
            message = str(((body or {}).get("error") or {}).get("message", ""))
            if "already exists" not in message:
                raise ExportError(f"Stripe refused {action.kind} {action.key}: {message[:300]}")
            self.already_delivered += 1
        return action.key

    def _post(
        self,
        path: str,
        body: bytes,
        content_type: str,
        *,
        accept: Collection[int] = (),
        extra: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json",
            "Authorization": f"Bearer {self.config.token}",
            **(extra or {}),
        }
        url = self.config.endpoint.rstrip("/") + path
        return self.poster.post(
            url, body, headers, shown=self.config.destination + path, accept=accept
        )

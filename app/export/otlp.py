"""``judge export verdicts``: each verdict as an OpenTelemetry ``gen_ai.evaluation.result`` event.

Sent over OTLP/HTTP with the JSON encoding (``POST {endpoint}/v1/logs``): a log record whose
``eventName`` is ``gen_ai.evaluation.result`` (GenAI semantic conventions, Development status),
with ``gen_ai.evaluation.name`` (the rubric), ``gen_ai.evaluation.score.label`` (the decision),
``gen_ai.evaluation.score.value`` (the panel's confidence in it) and
``gen_ai.evaluation.explanation`` (the panel's reasons). When the outcome's agent cost came from
traces (``--traces``), the record carries that conversation's last inference span in
``traceId``/``spanId``, so the verdict shows beside the agent's span in the tracing tool. 64-bit
integers are decimal strings and ids hex, as OTLP JSON requires.

Delivery is recorded like the meter exports (pending, then sent): a verdict is sent once per
endpoint; a run that died after the receiver accepted a batch sends it again (OTLP receivers do
not deduplicate: at least once). Retries follow OTLP/HTTP: 429, 502, 503, 504 only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.http_retry import DeliveryError, Poster
from ledger.meter_exports import (
    ExportedEvent,
    VerdictToExport,
    mark_sent,
    record_pending,
    verdicts_to_export,
)
from ledger.tables import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "EVALUATION_EVENT",
    "VerdictExport",
    "evaluation_record",
    "export_verdicts",
    "otlp_headers",
]

EVALUATION_EVENT = "gen_ai.evaluation.result"
OTLP_RETRY = frozenset({429, 502, 503, 504})
BATCH = 100
_EXPLANATION_CHARS = 2_000
_TARGET = "otlp"


def _nanos(at: datetime) -> str:
    return str(int(at.timestamp() * 1_000_000) * 1000)


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {
            "key": key,
            "value": {"arrayValue": {"values": [{"stringValue": str(v)} for v in value]}},
        }
    return {"key": key, "value": {"stringValue": str(value)}}


def evaluation_record(item: VerdictToExport, now: datetime) -> dict[str, Any]:
    """The OTLP JSON log record of one verdict."""
    verdict = item.verdict
    rubric = str(verdict.get("rubric", ""))
    conversation = item.metadata.get("conversation_id")
    attributes: dict[str, Any] = {
        "gen_ai.evaluation.name": rubric.split("@", 1)[0] or "outcome",
        "gen_ai.evaluation.score.label": verdict.get("decision"),
        "gen_ai.evaluation.score.value": float(verdict.get("confidence") or 0.0),
        "gen_ai.evaluation.explanation": "; ".join(verdict.get("reasons") or [])[
            :_EXPLANATION_CHARS
        ]
        or None,
        "gen_ai.conversation.id": conversation if isinstance(conversation, str) else None,
        "outcome_judge.outcome_id": item.outcome_id,
        "outcome_judge.rubric": rubric or None,
        "outcome_judge.panel": verdict.get("panel"),
        "outcome_judge.tier": verdict.get("tier"),
        "outcome_judge.flags": list(verdict.get("flags") or []) or None,
    }
    record: dict[str, Any] = {
        "timeUnixNano": _nanos(item.created_at),
        "observedTimeUnixNano": _nanos(now),
        "severityNumber": 9,
        "severityText": "INFO",
        "eventName": EVALUATION_EVENT,
        "attributes": [_attribute(k, v) for k, v in attributes.items() if v is not None],
    }
    otel = item.metadata.get("otel")
    if isinstance(otel, dict) and otel.get("trace_id") and otel.get("span_id"):
        record.update(traceId=str(otel["trace_id"]), spanId=str(otel["span_id"]), flags=1)
    return record


def _body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": [_attribute("service.name", "outcome-judge")]},
                    "scopeLogs": [{"scope": {"name": "outcome_judge"}, "logRecords": records}],
                }
            ]
        }
    ).encode()


@dataclass
class VerdictExport:
    """What one run sent (``error``: the receiver refused a batch; the run stopped there)."""

    destination: str
    planned: int = 0
    sent: int = 0
    linked: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)
    requests: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "planned": self.planned,
            "sent": self.sent,
            "linked_to_spans": self.linked,
            "rejected": self.rejected,
            "rejections": self.rejections,
            "requests": self.requests,
            "error": self.error,
        }


def export_verdicts(
    engine: Engine,
    tenant: str,
    *,
    endpoint: str,
    headers: dict[str, str],
    since: datetime | None = None,
    until: datetime | None = None,
    now: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> VerdictExport:
    """Send the tenant's verdicts not yet at ``endpoint`` as evaluation events."""
    from app.export.targets import destination_of

    destination = destination_of(endpoint)
    items = verdicts_to_export(engine, tenant, _TARGET, destination, since=since, until=until)
    result = VerdictExport(destination=destination, planned=len(items))
    poster = Poster(OTLP_RETRY, sleep=sleep)
    url = endpoint.rstrip("/") + "/v1/logs"
    try:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            events = [
                ExportedEvent(f"{tenant}:verdict:{v.pk}", "evaluation", v.pk, v.outcome_id, 0,
                              None, "pending", None)
                for v in batch
            ]  # fmt: skip
            record_pending(engine, tenant, _TARGET, destination, events)
            records = [evaluation_record(v, now()) for v in batch]
            _, answer = poster.post(
                url,
                _body(records),
                {"Content-Type": "application/json", **headers},
                shown=destination + "/v1/logs",
            )
            partial = (answer or {}).get("partialSuccess") or {}
            # A rejected record is not retried (OTLP: a partial success is final); say so.
            result.rejected += int(partial.get("rejectedLogRecords") or 0)
            if partial.get("errorMessage"):
                result.rejections.append(str(partial["errorMessage"])[:300])
            mark_sent(engine, tenant, _TARGET, destination, [e.key for e in events], now())
            result.sent += len(batch)
            result.linked += sum(1 for r in records if "spanId" in r)
    except DeliveryError as exc:
        result.error = str(exc)
    result.requests = poster.requests
    return result


def otlp_headers(value: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, values URL-encoded) as a dict.

    >>> otlp_headers("api-key=secret%20key, x-team=a")
    {'api-key': 'secret key', 'x-team': 'a'}
    """
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for item in value.split(","):
        key, sep, raw = item.partition("=")
        if sep and key.strip():
            headers[key.strip()] = unquote(raw.strip())
    return headers

"""Connector records (Airbyte, Singer/Meltano taps) for Intercom and Zendesk -> Outcomes.

Each line is one record of one stream, in any of the three shapes connectors write:

- Airbyte record files: ``{"stream": "conversations", "data": {...}, "emitted_at": 1707747714058}``;
- Airbyte protocol messages: ``{"type": "RECORD", "record": {"stream", "data", "emitted_at"}}``;
- Singer messages: ``{"type": "RECORD", "stream": "tickets", "record": {...}}``.

Other message types (``STATE``, ``SCHEMA``, ``LOG``, ``TRACE``...) are skipped. Streams are joined
by conversation or ticket id and converted by the Intercom or Zendesk importer: Intercom
``conversations`` + ``conversation_parts`` (by ``conversation_id``) and ``tickets``; Zendesk
``tickets`` + ``users`` + ``ticket_comments`` / ``ticket_audits`` + ``satisfaction_ratings`` +
``ticket_metrics`` (by ``ticket_id``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext
from judge.importers.intercom import convert_any
from judge.importers.native import Located, iter_json_values, json_type
from judge.importers.zendesk import TicketConverter
from judge.importers.zendesk_collect import Collector

INTERCOM_STREAMS = frozenset({"conversations", "conversation_parts"})
ZENDESK_STREAMS = frozenset(
    {
        "tickets",
        "users",
        "ticket_comments",
        "ticket_audits",
        "satisfaction_ratings",
        "ticket_metrics",
    }
)
SKIPPED_TYPES = frozenset({"STATE", "SCHEMA", "LOG", "TRACE", "SPEC", "CATALOG", "CONTROL"})


def unwrap(value: Any) -> tuple[str, Any] | None:
    """(stream, data) of one connector line, or ``None`` for a non-record message.

    >>> unwrap({"stream": "tickets", "data": {"id": 1}, "emitted_at": 1})
    ('tickets', {'id': 1})
    >>> unwrap({"type": "RECORD", "stream": "tickets", "record": {"id": 1}})
    ('tickets', {'id': 1})
    >>> unwrap({"type": "STATE", "value": {}}) is None
    True
    """
    if not isinstance(value, dict):
        return None
    if value.get("type") == "RECORD" and isinstance(value.get("record"), dict):
        record = value["record"]
        if "stream" in value:  # Singer
            return str(value["stream"]), record
        if "stream" in record and "data" in record:  # Airbyte protocol
            return str(record["stream"]), record["data"]
    if "stream" in value and "data" in value:
        return str(value["stream"]), value["data"]
    return None


def looks_connector(value: Any) -> bool:
    """True for a connector record or message line (Airbyte or Singer)."""
    if unwrap(value) is not None:
        return True
    if not isinstance(value, dict) or value.get("type") not in SKIPPED_TYPES:
        return False
    # Airbyte nests the payload under the lower-case type ({"type": "LOG", "log": {...}});
    # Singer writes SCHEMA with a stream and STATE with a value.
    return str(value["type"]).lower() in value or "stream" in value or "value" in value


def _is_intercom_ticket(data: Any) -> bool:
    return isinstance(data, dict) and (data.get("type") == "ticket" or "ticket_parts" in data)


class _Intercom:
    def __init__(self) -> None:
        self.conversations: dict[str, tuple[RecordContext, dict[str, Any]]] = {}
        self.tickets: list[tuple[RecordContext, dict[str, Any]]] = []
        self.parts: dict[str, list[Any]] = defaultdict(list)
        self.has_parts_stream = False

    def add(self, ctx: RecordContext, stream: str, data: dict[str, Any]) -> None:
        if stream == "conversation_parts":
            self.has_parts_stream = True
            cid = data.get("conversation_id")
            if cid in (None, ""):
                raise ctx.error("missing required field", "data.conversation_id")
            self.parts[str(cid)].append(data)
        elif stream == "conversations":
            if data.get("id") in (None, ""):
                raise ctx.error("missing required field", "data.id")
            self.conversations[str(data["id"])] = (ctx, data)
        else:
            self.tickets.append((ctx, data))

    def outcomes(self, ictx: ImportContext) -> Iterator[Located]:
        for cid, (ctx, data) in self.conversations.items():
            conv = dict(data)
            if "conversation_parts" not in conv:
                if not self.has_parts_stream:
                    raise ctx.error(
                        "the conversations stream carries no parts and the file has no "
                        "conversation_parts stream: only the opening message would be judged; "
                        "enable the conversation_parts stream in the connector",
                        "data.conversation_parts",
                    )
                parts = sorted(self.parts.get(cid, []), key=lambda p: p.get("created_at") or 0)
                conv["conversation_parts"] = {
                    "type": "conversation_part.list",
                    "conversation_parts": parts,
                    "total_count": len(parts),
                }
            yield Located(convert_any(ctx, conv, ictx), ctx.line, ctx.record)
        for ctx, data in self.tickets:
            yield Located(convert_any(ctx, data, ictx), ctx.line, ctx.record)
        orphans = sorted(set(self.parts) - set(self.conversations))
        if orphans:
            ictx.report.note(
                f"conversation_parts for {len(orphans)} conversation(s) not in the "
                "conversations stream were not used"
            )


def iter_connector(path: Path, ictx: ImportContext) -> Iterator[Located]:
    """Yield the outcomes of a connector file (see the module docstring)."""
    intercom = _Intercom()
    zendesk = Collector(path, ictx)
    used_zendesk = False
    skipped: dict[str, int] = defaultdict(int)
    for value, line in iter_json_values(path):
        record = unwrap(value)
        if record is None:
            if looks_connector(value):
                continue
            raise RecordContext(path, line, None).error(
                f"expected a connector record with 'stream' and 'data' (Airbyte) or "
                f"'type': 'RECORD' (Singer), got {json_type(value)}"
            )
        stream, data = record
        ctx = RecordContext(path, line, f"stream {stream}")
        if not isinstance(data, dict):
            raise ctx.error(f"expected the record data to be an object, got {json_type(data)}")
        if stream in INTERCOM_STREAMS or (stream == "tickets" and _is_intercom_ticket(data)):
            intercom.add(ctx, stream, data)
        elif stream in ZENDESK_STREAMS:
            used_zendesk = True
            _zendesk_record(zendesk, ctx, stream, data)
        else:
            skipped[stream] += 1
    for stream, count in sorted(skipped.items()):
        ictx.report.unmapped_fields[f"stream:{stream}"] += count
    yield from intercom.outcomes(ictx)
    if used_zendesk:
        found = zendesk.found
        zendesk._pair_loose_comments()
        converter = TicketConverter(found, ictx)
        for tid, at in found.tickets.items():
            yield Located(converter.convert(tid), at.ctx.line, at.ctx.record)


def _zendesk_record(
    collector: Collector, ctx: RecordContext, stream: str, data: dict[str, Any]
) -> None:
    found = collector.found
    if stream == "tickets":
        collector.ticket(ctx, data)
    elif stream == "users":
        collector.users(ctx, [data], "data")
    elif stream == "ticket_comments":
        if data.get("ticket_id") in (None, ""):
            raise ctx.error("missing required field", "data.ticket_id")
        collector.comments(ctx, [data], None)
    elif stream == "ticket_audits":
        collector.keyed(ctx, [data], "data", found.audits)
    elif stream == "satisfaction_ratings":
        collector.latest(ctx, [data], "data", found.ratings)
    else:
        collector.latest(ctx, [data], "data", found.metrics)

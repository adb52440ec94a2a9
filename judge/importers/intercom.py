"""Intercom conversations and tickets -> Outcomes (API 2.14 to 2.16 shapes; Unix timestamps).

Accepted: a retrieved conversation (``GET /conversations/{id}``, with ``conversation_parts``), a
JSON array or JSON Lines of them, a ``conversation.list`` page whose conversations carry their
parts, and Intercom tickets (``type: ticket`` with ``ticket_parts``, or a ``ticket.list`` page).
List and search results carry no parts (Intercom omits them), so such a page is refused with the
fix: retrieve each conversation. See :mod:`judge.importers.intercom_authors` for who counts as AI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext, from_validation_error
from judge.importers.fields import array, flag, obj, text, unix_time
from judge.importers.html_text import html_to_text
from judge.importers.intercom_thread import Thread, read_parts
from judge.importers.native import Located, iter_json_values, json_type
from judge.models import AgentInfo, Message, Outcome, Signals, VendorClaim

__all__ = ["convert_conversation", "convert_ticket", "html_to_text", "iter_intercom"]

ESCALATED_STATES = frozenset({"routed_to_team", "escalated", "procedure_handoff"})
"""``ai_agent.resolution_state`` values meaning Fin handed over (2.14: routed_to_team; 2.16:
escalated, procedure_handoff)."""
KNOWN_STATES = ESCALATED_STATES | {
    "assumed_resolution",
    "confirmed_resolution",
    "abandoned",
    "negative_feedback",
}
"""Every resolution state of API 2.14 and 2.16."""
CONVERSATION_FIELDS = frozenset(
    {
        "type",
        "id",
        "title",
        "created_at",
        "updated_at",
        "state",
        "open",
        "priority",
        "source",
        "tags",
        "statistics",
        "conversation_rating",
        "custom_attributes",
        "ai_agent",
        "ai_agent_participated",
        "conversation_parts",
        "admin_assignee_id",
        "team_assignee_id",
        "assignee",
        "contacts",
        "channel",
    }
)
TICKET_FIELDS = frozenset(
    {
        "type",
        "id",
        "ticket_id",
        "ticket_attributes",
        "ticket_state",
        "ticket_type",
        "category",
        "contacts",
        "admin_assignee_id",
        "team_assignee_id",
        "created_at",
        "updated_at",
        "ticket_parts",
        "open",
        "ticket_state_internal_label",
        "ticket_state_external_label",
    }
)
STAT_KEYS = (
    "count_reopens",
    "count_assignments",
    "count_conversation_parts",
    "time_to_admin_reply",
    "time_to_first_close",
    "median_time_to_reply",
    "first_close_at",
    "last_close_at",
)
_NO_PARTS = (
    "this conversation has no conversation_parts: Intercom leaves them out of List and Search "
    "results, so only the opening message would be judged; retrieve each conversation with "
    "GET /conversations/{id} (or run judge pull intercom) and convert those"
)


def looks_intercom(value: Any) -> bool:
    """True for an Intercom conversation, ticket or list page of either.

    >>> looks_intercom({"type": "conversation", "id": "1", "conversation_parts": {}})
    True
    >>> looks_intercom({"type": "ticket", "id": "70", "ticket_parts": {}})
    True
    """
    if not isinstance(value, dict):
        return False
    if value.get("type") in ("conversation", "conversation.list", "ticket", "ticket.list"):
        return True
    if isinstance(value.get("conversations"), list):
        return True
    return "conversation_parts" in value or "ticket_parts" in value


def _tags(raw: Any) -> list[str]:
    container = raw.get("tags") if isinstance(raw, dict) else raw
    if not isinstance(container, list):
        return []
    return [str(t.get("name")) for t in container if isinstance(t, dict) and t.get("name")]


def _csat(ctx: RecordContext, value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ctx.error(f"rating must be an integer 1-5, got {value!r}", field)
    return value


def _resolution(
    ctx: RecordContext, ictx: ImportContext, ai_agent: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """Fin's resolution state, checked against API 2.14/2.16, and the signals it implies.

    ``confirmed_resolution`` is the claim Intercom bills Fin's resolutions on: it stays in
    ``vendor_claim`` and implies no confirmation, or ``judge audit`` would support the claim with
    itself and a judge could cite it as the customer's word. States that tell against the
    vendor (``negative_feedback``, the hand-offs) are kept as signals: a claim against one's own
    bill needs no second witness.
    """
    state = text(ctx, ai_agent.get("resolution_state"), "ai_agent.resolution_state") or None
    implied: dict[str, Any] = {}
    if state is None:
        return None, implied
    if state not in KNOWN_STATES:
        ictx.report.note(
            f"ai_agent.resolution_state {state!r} is not a state of Intercom API 2.14-2.16; "
            "it is kept in vendor_claim and implies no signal"
        )
    if state == "negative_feedback":
        implied["customer_confirmed"] = False
    if state in ESCALATED_STATES:
        implied["escalated"] = True
    return state, implied


def _metadata(conv: dict[str, Any], ai_agent: dict[str, Any], kind: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": "intercom", f"{kind}_id": str(conv["id"])}
    for key in ("state", "title", "priority", "admin_assignee_id", "team_assignee_id"):
        if conv.get(key) not in (None, "", {}):
            meta[key] = conv[key]
    raw_source = conv.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    if source.get("type"):
        meta["channel"] = source["type"]
    if source.get("delivered_as"):
        meta["delivered_as"] = source["delivered_as"]
    assignee = conv.get("assignee")
    if isinstance(assignee, dict) and assignee.get("id"):
        meta["assignee"] = {"type": assignee.get("type"), "id": str(assignee["id"])}
    if isinstance(conv.get("custom_attributes"), dict) and conv["custom_attributes"]:
        meta["custom_attributes"] = conv["custom_attributes"]
    tags = _tags(conv.get("tags"))
    if tags:
        meta["tags"] = tags
    stats = conv.get("statistics")
    if isinstance(stats, dict):
        kept = {k: stats[k] for k in STAT_KEYS if stats.get(k) is not None}
        if kept:
            meta["statistics"] = kept
    if conv.get("ai_agent_participated") is not None:
        meta["ai_agent_participated"] = conv["ai_agent_participated"]
    for key in ("source_type", "source_title", "last_answer_type", "resolution_state"):
        if ai_agent.get(key) is not None:
            meta[f"ai_agent_{key}"] = ai_agent[key]
    if ai_agent.get("rating") is not None:
        meta["fin_rating"] = ai_agent["rating"]
    if ai_agent.get("rating_remark"):
        meta["fin_rating_remark"] = ai_agent["rating_remark"]
    return meta


def convert_conversation(ctx: RecordContext, conv: Any, ictx: ImportContext) -> Outcome:
    """Convert one retrieved Intercom conversation (see the module docstring)."""
    if not isinstance(conv, dict):
        raise ctx.error(f"expected a conversation object, got {json_type(conv)}")
    if conv.get("id") in (None, ""):
        raise ctx.error("missing required field", "id")
    ictx.report.unmapped("conversation", conv, CONVERSATION_FIELDS)
    found = read_parts(ctx, conv, "conversation_parts")
    if found is None:
        raise ctx.error(_NO_PARTS, "conversation_parts")
    parts, parts_field = found
    ai_participated = bool(flag(ctx, conv.get("ai_agent_participated"), "ai_agent_participated"))
    thread = Thread(ctx, ictx, ai_participated=ai_participated)
    created = unix_time(ctx, conv.get("created_at"), "created_at")

    source = obj(ctx, conv.get("source"), "source")
    body = html_to_text(text(ctx, source.get("body"), "source.body"))
    subject = html_to_text(text(ctx, source.get("subject"), "source.subject"))
    kind, actor = thread.author(source.get("author"), "source.author")
    thread.opening(kind, actor, f"{subject}\n{body}".strip(), created)
    for index, part in enumerate(parts):
        thread.part(part, f"{parts_field}.{index}")
    if not thread.messages:
        raise ctx.error(
            "the conversation has no message (empty source body and no part with a body)",
            "source.body",
        )

    stats = obj(ctx, conv.get("statistics"), "statistics")
    state = conv.get("state")
    closed_at = None
    if state == "closed":
        closed_at = unix_time(ctx, stats.get("last_close_at"), "statistics.last_close_at")
        closed_at = closed_at or thread.closed_at
        if closed_at is None:
            ictx.report.note(
                "some closed conversations say nowhere when they closed (no statistics, no close "
                "part): their closed_at is left empty (it is never guessed from updated_at)"
            )
    reopens = stats.get("count_reopens")
    if thread.reopened_at is None and isinstance(reopens, int) and reopens > 0:
        ictx.report.note(
            "some conversations count reopens in statistics.count_reopens but carry no "
            "reopen part; their reopened_at is left empty (it is never guessed from "
            "updated_at)"
        )

    rating = obj(ctx, conv.get("conversation_rating"), "conversation_rating")
    ai_agent = obj(ctx, conv.get("ai_agent"), "ai_agent")
    csat = _csat(ctx, rating.get("rating"), "conversation_rating.rating")
    fin_rating = _csat(ctx, ai_agent.get("rating"), "ai_agent.rating")
    resolution, implied = _resolution(ctx, ictx, ai_agent)
    metadata = _metadata(conv, ai_agent, "conversation")
    if csat is None and fin_rating is not None:
        csat = fin_rating
        metadata["csat_source"] = "ai_agent.rating"
    claim = VendorClaim(
        vendor="intercom",
        resolution_state=resolution,
        status=str(state) if state else None,
        automated=(resolution in ("assumed_resolution", "confirmed_resolution"))
        if resolution
        else None,
        evidence=["ai_agent.resolution_state"] if resolution else ["state"],
    )
    return _outcome(
        ctx,
        f"intercom-{conv['id']}",
        thread,
        Signals(
            csat=csat,
            closed_at=closed_at,
            reopened_at=thread.reopened_at,
            **implied,
        ),
        claim,
        metadata,
    )


def _ticket_state(ctx: RecordContext, raw: Any) -> str | None:
    """``ticket_state``: a string (API 2.10-2.13, connectors) or an object with ``category``."""
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return text(ctx, raw.get("category"), "ticket_state.category") or None
    raise ctx.error(f"expected a string or a ticket_state object, got {json_type(raw)}")


def convert_ticket(ctx: RecordContext, ticket: Any, ictx: ImportContext) -> Outcome:
    """Convert one Intercom ticket: its title and description open it, ``ticket_parts`` follow.

    The opening message is the customer's when the ticket has a contact, else a ``system``
    message (a back-office or tracker ticket has no customer, and the report says so).
    ``ticket_state`` ``resolved`` -> ``closed_at`` at the part that resolved it.
    """
    if not isinstance(ticket, dict):
        raise ctx.error(f"expected a ticket object, got {json_type(ticket)}")
    if ticket.get("id") in (None, ""):
        raise ctx.error("missing required field", "id")
    ictx.report.unmapped("ticket", ticket, TICKET_FIELDS)
    found = read_parts(ctx, ticket, "ticket_parts")
    parts, parts_field = found if found is not None else ([], "ticket_parts")
    thread = Thread(ctx, ictx, ai_participated=False)
    created = unix_time(ctx, ticket.get("created_at"), "created_at")
    attributes = obj(ctx, ticket.get("ticket_attributes"), "ticket_attributes")
    title = text(ctx, attributes.get("_default_title_"), "ticket_attributes._default_title_")
    description = text(
        ctx, attributes.get("_default_description_"), "ticket_attributes._default_description_"
    )
    opening = f"{title}\n{html_to_text(description)}".strip()
    contacts = array(
        ctx, obj(ctx, ticket.get("contacts"), "contacts").get("contacts"), "contacts.contacts"
    )
    if opening and contacts and isinstance(contacts[0], dict):
        thread.opening("customer", f"customer:{contacts[0].get('id')}", opening, created)
    elif opening:
        thread.messages.append(Message(role="system", author="ticket", text=opening, at=created))
    for index, part in enumerate(parts):
        thread.part(part, f"{parts_field}.{index}")
    if not thread.messages:
        raise ctx.error("the ticket has no title, description or part with a body", "ticket_parts")
    state = _ticket_state(ctx, ticket.get("ticket_state"))
    ticket_type = obj(ctx, ticket.get("ticket_type"), "ticket_type")
    metadata = _metadata(ticket, {}, "ticket")
    metadata["ticket_state"] = state
    for key, value in (
        ("ticket_number", ticket.get("ticket_id")),
        ("ticket_type", ticket_type.get("name")),
        ("category", ticket.get("category") or ticket_type.get("category")),
    ):
        if value not in (None, ""):
            metadata[key] = value
    claim = VendorClaim(vendor="intercom", status=state, evidence=["ticket_state"])
    return _outcome(
        ctx,
        f"intercom-ticket-{ticket['id']}",
        thread,
        Signals(
            closed_at=thread.closed_at if state == "resolved" else None,
            reopened_at=thread.reopened_at,
        ),
        claim,
        metadata,
    )


def _outcome(
    ctx: RecordContext,
    outcome_id: str,
    thread: Thread,
    signals: Signals,
    claim: VendorClaim,
    metadata: dict[str, Any],
) -> Outcome:
    try:
        return Outcome(
            id=outcome_id,
            kind="support_ticket",
            conversation=thread.messages,
            signals=signals,
            touches=thread.sorted_touches(),
            agent=AgentInfo(name=thread.agent_name()),
            vendor_claim=claim,
            metadata=metadata,
        )
    except ValidationError as exc:
        raise from_validation_error(ctx.path, exc, line=ctx.line, record=ctx.record) from exc


def convert_any(ctx: RecordContext, value: Any, ictx: ImportContext) -> Outcome:
    """A conversation or a ticket, told apart by ``type`` (or ``ticket_parts``)."""
    if isinstance(value, dict) and (value.get("type") == "ticket" or "ticket_parts" in value):
        return convert_ticket(ctx, value, ictx)
    return convert_conversation(ctx, value, ictx)


def iter_intercom(path: Path, ictx: ImportContext) -> Iterator[Located]:
    """Yield one support-ticket Outcome per Intercom conversation or ticket.

    A conversation or ticket repeated in the file (``judge pull`` appends one each time it
    changes) is converted once, in its latest version (greatest ``updated_at``), and said.
    """
    latest: dict[tuple[str, str], tuple[RecordContext, Any]] = {}
    replaced = 0
    for ctx, item in _items(path):
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            latest[("", str(len(latest)))] = (ctx, item)  # converted to a located error below
            continue
        key = (str(item.get("type") or "conversation"), str(item["id"]))
        old = latest.get(key)
        if old is not None:
            replaced += 1
            if (item.get("updated_at") or 0) < (old[1].get("updated_at") or 0):
                continue
        latest[key] = (ctx, item)
    if replaced:
        ictx.report.note(
            f"{replaced} record(s) repeated a conversation or ticket id (each pull appends what "
            "changed): the latest version was kept"
        )
    for ctx, item in latest.values():
        yield Located(convert_any(ctx, item, ictx), ctx.line, ctx.record)


def _items(path: Path) -> Iterator[tuple[RecordContext, Any]]:
    for value, line in iter_json_values(path):
        items: list[tuple[str | None, Any]]
        if isinstance(value, dict) and isinstance(value.get("conversations"), list):
            items = [(f"conversations.{i}", c) for i, c in enumerate(value["conversations"])]
        elif isinstance(value, dict) and isinstance(value.get("tickets"), list):
            items = [(f"tickets.{i}", t) for i, t in enumerate(value["tickets"])]
        elif isinstance(value, list):
            items = [(str(i), c) for i, c in enumerate(value)]
        else:
            items = [(None, value)]
        for record, item in items:
            yield RecordContext(path, line, record), item

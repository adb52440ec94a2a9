"""Zendesk ticket exports -> Outcomes.

Field names follow Zendesk's Tickets, Ticket Comments, Ticket Audits and Users APIs. Accepted
shapes (JSON document, or JSON Lines with one ticket or one page per line):

- a bundle ``{"tickets": [...], "users": [...], "comments": {"<ticket id>": [...]},
  "audits": {"<ticket id>": [...]}}`` (``comments``/``audits`` may also be flat lists whose items
  carry ``ticket_id``; ``users`` is the ``include=users`` side-load);
- ticket objects with their comments embedded as ``comments`` (and optionally ``audits``);
- ``{"ticket": {...}}`` (a single Show Ticket response), or a JSON array of tickets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext, from_validation_error
from judge.importers.html_text import html_to_text
from judge.importers.native import Located, iter_json_values, json_type
from judge.models import AgentInfo, Message, Outcome, Signals, Touch

CSAT_SCORES: dict[str, int] = {"good": 5, "bad": 1}
"""Zendesk's binary satisfaction score mapped onto the 1-5 CSAT scale (offered/unoffered: none)."""
BOT_CHANNELS = frozenset({"api", "answer_bot", "ai_agent"})
"""``via.channel`` values whose agent comments are treated as written by a bot."""
AUTOMATION_CHANNELS = frozenset({"rule", "automation"})
BOT_TAGS = frozenset({"bot", "ai_agent", "ai-agent", "answer_bot"})
REOPEN_TAGS = frozenset({"reopened", "reopen"})
ESCALATION_TAGS = frozenset({"escalated", "escalation", "escalated_to_human", "handoff"})
CLOSED_STATUSES = frozenset({"solved", "closed"})


def _time(ctx: RecordContext, value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ctx.error(f"expected an ISO 8601 timestamp string, got {json_type(value)}", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ctx.error(f"not an ISO 8601 timestamp: {value!r}", field) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _tags(value: Any) -> set[str]:
    return {str(t).lower() for t in value} if isinstance(value, list) else set()


def _is_bot_user(user: dict[str, Any]) -> bool:
    raw_fields = user.get("user_fields")
    fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
    return bool(
        user.get("bot")
        or user.get("is_bot")
        or fields.get("bot")
        or fields.get("is_bot")
        or _tags(user.get("tags")) & BOT_TAGS
    )


def _by_ticket(ctx: RecordContext, value: Any, key: str) -> dict[str, list[Any]]:
    """``{"<ticket id>": [...]}`` or a flat list of items with ``ticket_id`` -> dict by id."""
    if value is None:
        return {}
    if isinstance(value, dict):
        out: dict[str, list[Any]] = {}
        for tid, items in value.items():
            if not isinstance(items, list):
                raise ctx.error(f"expected a list of {key}", f"{key}.{tid}")
            out[str(tid)] = items
        return out
    if isinstance(value, list):
        grouped: dict[str, list[Any]] = {}
        for i, item in enumerate(value):
            if not isinstance(item, dict) or item.get("ticket_id") is None:
                raise ctx.error(
                    f"a flat {key} list needs 'ticket_id' on each item", f"{key}.{i}.ticket_id"
                )
            grouped.setdefault(str(item["ticket_id"]), []).append(item)
        return grouped
    raise ctx.error(f"expected {key} to be an object keyed by ticket id or a list", key)


class _Page:
    """Side-loaded users, comments and audits that tickets refer to."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[Any]] = {}
        self.audits: dict[str, list[Any]] = {}

    def absorb(self, ctx: RecordContext, value: dict[str, Any]) -> None:
        users = value.get("users")
        if users is not None:
            if not isinstance(users, list):
                raise ctx.error("expected a list of users", "users")
            for i, user in enumerate(users):
                if not isinstance(user, dict) or user.get("id") is None:
                    raise ctx.error("each user needs an 'id'", f"users.{i}.id")
                self.users[str(user["id"])] = user
        self.comments.update(_by_ticket(ctx, value.get("comments"), "comments"))
        self.audits.update(_by_ticket(ctx, value.get("audits"), "audits"))


def _who(
    page: _Page, ticket: dict[str, Any], author_id: Any, channel: str | None
) -> tuple[str, str]:
    """(kind, actor): kind is customer, ai, human or automation."""
    user = page.users.get(str(author_id), {})
    role = user.get("role")
    if role == "end-user" or (not user and str(author_id) == str(ticket.get("requester_id"))):
        return "customer", f"customer:{author_id}"
    if channel in AUTOMATION_CHANNELS or author_id in (-1, "-1"):
        return "automation", f"automation:{channel or 'zendesk'}"
    name = user.get("name")
    if _is_bot_user(user) or channel in BOT_CHANNELS:
        return "ai", f"bot:{name or author_id}"
    return "human", str(name or f"agent:{author_id}")


def _reopen_from_audits(ctx: RecordContext, audits: list[Any], field: str) -> datetime | None:
    """Time of the first status change from solved/closed back to an open state."""
    for i, audit in enumerate(audits):
        if not isinstance(audit, dict):
            continue
        for event in audit.get("events") or []:
            if (
                isinstance(event, dict)
                and event.get("field_name") == "status"
                and event.get("previous_value") in CLOSED_STATUSES
                and event.get("value") not in CLOSED_STATUSES
            ):
                return _time(ctx, audit.get("created_at"), f"{field}.{i}.created_at")
    return None


def _solved_from_audits(ctx: RecordContext, audits: list[Any], field: str) -> datetime | None:
    """Time of the last status change to solved/closed."""
    found: datetime | None = None
    for i, audit in enumerate(audits):
        if not isinstance(audit, dict):
            continue
        for event in audit.get("events") or []:
            if (
                isinstance(event, dict)
                and event.get("field_name") == "status"
                and event.get("value") in CLOSED_STATUSES
            ):
                found = _time(ctx, audit.get("created_at"), f"{field}.{i}.created_at") or found
    return found


def convert_ticket(ctx: RecordContext, ticket: Any, page: _Page) -> Outcome:
    """Convert one Zendesk ticket (see :func:`iter_zendesk` for the mapping)."""
    if not isinstance(ticket, dict):
        raise ctx.error(f"expected a ticket object, got {json_type(ticket)}")
    if ticket.get("id") in (None, ""):
        raise ctx.error("missing required field", "id")
    tid = str(ticket["id"])
    tags = _tags(ticket.get("tags"))
    if "comments" in ticket:
        comments, cfield = ticket["comments"], "comments"
    else:
        comments, cfield = page.comments.get(tid, []), f"comments.{tid}"
    if not isinstance(comments, list):
        raise ctx.error(f"expected a list of comments, got {json_type(comments)}", cfield)
    audits = ticket.get("audits", page.audits.get(tid, []))
    afield = "audits" if "audits" in ticket else f"audits.{tid}"
    if not isinstance(audits, list):
        raise ctx.error("expected a list of audits", afield)

    messages: list[Message] = []
    touches: dict[str, Touch] = {}
    bots: list[str] = []
    for i, comment in enumerate(comments):
        field = f"{cfield}.{i}"
        if not isinstance(comment, dict):
            raise ctx.error(f"expected a comment object, got {json_type(comment)}", field)
        if comment.get("author_id") is None:
            raise ctx.error("missing required field", f"{field}.author_id")
        for key in ("plain_body", "body", "html_body"):
            raw = comment.get(key)
            if raw is not None and not isinstance(raw, str):
                raise ctx.error(f"{key} must be a string, got {json_type(raw)}", f"{field}.{key}")
        text = comment.get("plain_body") or comment.get("body") or ""
        if not text and comment.get("html_body"):
            text = html_to_text(comment["html_body"])
        at = _time(ctx, comment.get("created_at"), f"{field}.created_at")
        via = comment.get("via")
        channel = via.get("channel") if isinstance(via, dict) else None
        kind, actor = _who(page, ticket, comment["author_id"], channel)
        public = comment.get("public", True)
        if not isinstance(public, bool):
            raise ctx.error("public must be true or false", f"{field}.public")
        if kind == "customer":
            messages.append(Message(role="customer", author=actor, text=text, at=at))
            continue
        messages.append(Message(role="agent", author=actor, text=text, at=at, public=public))
        if actor not in touches:
            touches[actor] = Touch(actor=actor, kind=kind, at=at)  # type: ignore[arg-type]
        if kind == "ai" and actor not in bots:
            bots.append(actor)

    created = _time(ctx, ticket.get("created_at"), "created_at")
    updated = _time(ctx, ticket.get("updated_at"), "updated_at")
    if not messages:
        description = ticket.get("description")
        if not isinstance(description, str) or not description.strip():
            raise ctx.error("the ticket has no comments and no description", cfield)
        requester = ticket.get("requester_id")
        messages.append(
            Message(role="customer", author=f"customer:{requester}", text=description, at=created)
        )

    status = ticket.get("status")
    closed_at = None
    if status in CLOSED_STATUSES:
        closed_at = _solved_from_audits(ctx, audits, afield) or updated
    reopened_at = _reopen_from_audits(ctx, audits, afield)
    if reopened_at is None and tags & REOPEN_TAGS:
        reopened_at = updated

    csat = None
    rating = ticket.get("satisfaction_rating")
    if isinstance(rating, dict):
        score = rating.get("score")
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            csat = score
        elif isinstance(score, str):
            csat = CSAT_SCORES.get(score.lower())
        elif score is not None:
            raise ctx.error(f"unknown satisfaction score {score!r}", "satisfaction_rating.score")

    via = ticket.get("via")
    metadata: dict[str, Any] = {"source": "zendesk", "ticket_id": ticket["id"], "status": status}
    if ticket.get("subject"):
        metadata["subject"] = ticket["subject"]
    if tags:
        metadata["tags"] = sorted(tags)
    if isinstance(via, dict) and via.get("channel"):
        metadata["via"] = via["channel"]
    if isinstance(rating, dict) and rating.get("score"):
        metadata["satisfaction"] = rating["score"]
    custom = ticket.get("custom_fields") or ticket.get("fields")
    if isinstance(custom, list):
        metadata["custom_fields"] = {
            str(f.get("id")): f.get("value") for f in custom if isinstance(f, dict)
        }

    try:
        return Outcome(
            id=f"zendesk-{tid}",
            kind="support_ticket",
            conversation=messages,
            signals=Signals(
                csat=csat,
                escalated=True if tags & ESCALATION_TAGS else None,
                reopened_at=reopened_at,
                closed_at=closed_at,
            ),
            touches=list(touches.values()),
            agent=AgentInfo(name=bots[0].removeprefix("bot:") if bots else None),
            metadata=metadata,
        )
    except ValidationError as exc:
        raise from_validation_error(ctx.path, exc, line=ctx.line, record=ctx.record) from exc


def iter_zendesk(path: Path, ictx: ImportContext | None = None) -> Iterator[Located]:
    """Yield one support-ticket Outcome per Zendesk ticket.

    Mapping: comments by the requester or an ``end-user`` -> ``customer``; by ``agent``/``admin``
    users -> ``agent`` (``public: false`` kept as an internal note). An agent author is a bot
    (touch kind ``ai``) when the user has ``bot``/``is_bot`` set (top level or ``user_fields``),
    a ``bot``/``ai_agent`` tag, or the comment came ``via`` channel ``api``, ``answer_bot`` or
    ``ai_agent``; channel ``rule`` is ``automation``; other agents are ``human``. ``status``
    solved/closed -> ``closed_at`` (last solve in the audits, else ``updated_at``); a status
    change from solved/closed back to open in the audits (else a ``reopened`` tag, at
    ``updated_at``) -> ``reopened_at``; ``satisfaction_rating.score`` good -> CSAT 5, bad -> 1;
    an ``escalated`` tag -> ``escalated``. No comments: the ``description`` is the customer's
    message.
    """
    page = _Page()
    for value, line in iter_json_values(path):
        if isinstance(value, dict) and isinstance(value.get("tickets"), list):
            page.absorb(RecordContext(path, line, None), value)
            items: list[tuple[str | None, Any]] = [
                (f"tickets.{i}", t) for i, t in enumerate(value["tickets"])
            ]
        elif isinstance(value, dict) and isinstance(value.get("ticket"), dict):
            page.absorb(RecordContext(path, line, None), value)
            items = [("ticket", value["ticket"])]
        elif isinstance(value, list):
            items = [(str(i), t) for i, t in enumerate(value)]
        else:
            items = [(None, value)]
        for record, ticket in items:
            ctx = RecordContext(path, line, record)
            yield Located(convert_ticket(ctx, ticket, page), line, record)

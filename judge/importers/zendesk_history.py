"""A Zendesk ticket's comments and status history, from whichever endpoint the file holds.

Comments come from (first that has any): the Ticket Comments API (embedded ``comments``, paired
List Comments pages), Comment events of Ticket Audits, or Comment child events of the Incremental
Ticket Event Export (``include=comment_events``). Status changes come from ``Create``/``Change``
events with ``field_name: status`` in audits, and from status child events in ticket events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from judge.importers.errors import RecordContext
from judge.importers.fields import flag, iso_time, text, unix_time
from judge.importers.html_text import html_to_text
from judge.importers.native import json_type

CLOSED_STATUSES = frozenset({"solved", "closed"})
COMMENT_FIELDS = frozenset(
    {
        "id",
        "type",
        "author_id",
        "body",
        "html_body",
        "plain_body",
        "public",
        "created_at",
        "via",
        "attachments",
        "metadata",
        "audit_id",
        "event_type",
        "via_reference_id",
        "ticket_id",
        "uploads",
    }
)


@dataclass(frozen=True)
class Comment:
    """One comment, whatever endpoint it came from."""

    id: str | None
    author_id: Any
    text: str
    public: bool
    at: datetime | None
    via: Any
    field: str


@dataclass(frozen=True)
class StatusChange:
    """A status set or changed: ``previous`` is ``None`` for the value set at creation."""

    at: datetime | None
    previous: str | None
    value: str
    via: Any
    author_id: Any
    field: str


def comment_text(ctx: RecordContext, raw: dict[str, Any], field: str) -> str:
    """``plain_body``, else ``body``, else ``html_body`` as plain text."""
    for key in ("plain_body", "body", "html_body"):
        value = text(ctx, raw.get(key), f"{field}.{key}")
        if value.strip():
            return html_to_text(value) if key == "html_body" else value.strip()
    return ""


def _comment(
    ctx: RecordContext, raw: Any, field: str, *, author: Any = None, at: Any = None, via: Any = None
) -> Comment:
    if not isinstance(raw, dict):
        raise ctx.error(f"expected a comment object, got {json_type(raw)}", field)
    author_id = raw.get("author_id", author)
    if author_id is None:
        raise ctx.error(
            "missing required field (the comment's author decides customer or agent)",
            f"{field}.author_id",
        )
    public = flag(ctx, raw.get("public"), f"{field}.public")
    when = at
    if "created_at" in raw:
        when = iso_time(ctx, raw.get("created_at"), f"{field}.created_at")
    return Comment(
        id=str(raw["id"]) if raw.get("id") is not None else None,
        author_id=author_id,
        text=comment_text(ctx, raw, field),
        public=True if public is None else public,
        at=when,
        via=raw.get("via") if raw.get("via") is not None else via,
        field=field,
    )


def from_comments(ctx: RecordContext, items: list[Any], field: str) -> list[Comment]:
    return [_comment(ctx, raw, f"{field}.{i}") for i, raw in enumerate(items)]


def _events(ctx: RecordContext, holder: Any, key: str, field: str) -> list[Any]:
    if not isinstance(holder, dict):
        raise ctx.error(f"expected an object, got {json_type(holder)}", field)
    events = holder.get(key) or []
    if not isinstance(events, list):
        raise ctx.error(f"expected an array, got {json_type(events)}", f"{field}.{key}")
    return events


def from_audits(ctx: RecordContext, audits: list[Any], field: str) -> list[Comment]:
    """Comment (and VoiceComment) events; author, time and channel default to the audit's."""
    found: list[Comment] = []
    for i, audit in enumerate(audits):
        afield = f"{field}.{i}"
        events = _events(ctx, audit, "events", afield)
        at = iso_time(ctx, audit.get("created_at"), f"{afield}.created_at")
        for j, event in enumerate(events):
            if isinstance(event, dict) and event.get("type") in ("Comment", "VoiceComment"):
                found.append(
                    _comment(
                        ctx,
                        {k: v for k, v in event.items() if k != "created_at"},
                        f"{afield}.events.{j}",
                        author=audit.get("author_id"),
                        at=at,
                        via=audit.get("via"),
                    )
                )
    return found


def _event_time(ctx: RecordContext, event: dict[str, Any], field: str) -> datetime | None:
    if event.get("created_at") is not None:
        return iso_time(ctx, event["created_at"], f"{field}.created_at")
    return unix_time(ctx, event.get("timestamp"), f"{field}.timestamp")


def from_ticket_events(ctx: RecordContext, events: list[Any], field: str) -> list[Comment]:
    """Comment child events (present only with ``include=comment_events``)."""
    found: list[Comment] = []
    for i, event in enumerate(events):
        efield = f"{field}.{i}"
        at = _event_time(ctx, event, efield)
        for j, child in enumerate(_events(ctx, event, "child_events", efield)):
            if not isinstance(child, dict) or child.get("event_type") != "Comment":
                continue
            if "body" not in child and "html_body" not in child and "plain_body" not in child:
                continue  # comment_present/comment_public only: the sideload was not requested
            found.append(
                _comment(
                    ctx,
                    child,
                    f"{efield}.child_events.{j}",
                    author=event.get("updater_id"),
                    at=at,
                    via=event.get("via"),
                )
            )
    return found


def comments_hidden_in_events(events: list[Any]) -> bool:
    """True when ticket events flag comments (``comment_present``) without their text."""
    return any(
        isinstance(child, dict) and child.get("comment_present") is True and "body" not in child
        for event in events
        if isinstance(event, dict)
        for child in (event.get("child_events") or [])
    )


def _status(child: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """(previous, value) when a Create/Change event sets the status, else ``None``."""
    if child.get("type", child.get("event_type")) not in ("Create", "Change"):
        return None
    if child.get("field_name") == "status":
        value, previous = child.get("value"), child.get("previous_value")
    elif "status" in child:  # ticket events name the field as the key
        value, previous = child.get("status"), child.get("previous_value")
    else:
        return None
    return (str(previous) if previous is not None else None), (
        str(value) if value is not None else None
    )


def status_history(
    ctx: RecordContext, audits: list[Any], events: list[Any], afield: str, efield: str
) -> list[StatusChange]:
    """Every status set or change, oldest first, from audits and ticket events."""
    found: list[StatusChange] = []
    sources = (
        (audits, "events", afield, "author_id"),
        (events, "child_events", efield, "updater_id"),
    )
    for holders, key, base, author_key in sources:
        for i, holder in enumerate(holders):
            hfield = f"{base}.{i}"
            at = _event_time(ctx, holder, hfield)
            for j, child in enumerate(_events(ctx, holder, key, hfield)):
                if not isinstance(child, dict):
                    continue
                change = _status(child)
                if change is None or change[1] is None:
                    continue
                found.append(
                    StatusChange(
                        at=at,
                        previous=change[0],
                        value=change[1],
                        via=child.get("via") if child.get("via") is not None else holder.get("via"),
                        author_id=holder.get(author_key),
                        field=f"{hfield}.{key}.{j}",
                    )
                )
    found.sort(key=lambda c: (c.at is None, c.at or datetime.min))
    return found


def first_reopen(history: list[StatusChange]) -> StatusChange | None:
    """The first change from solved/closed back to an open state: a real reopen."""
    for change in history:
        if change.previous in CLOSED_STATUSES and change.value not in CLOSED_STATUSES:
            return change
    return None


def last_solve(history: list[StatusChange]) -> StatusChange | None:
    """The last change to solved (or closed, when never solved)."""
    solved = [c for c in history if c.value == "solved"]
    closed = [c for c in history if c.value in CLOSED_STATUSES]
    chosen = solved or closed
    return chosen[-1] if chosen else None

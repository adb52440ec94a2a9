"""Building one Outcome's conversation from Intercom parts (conversations and tickets alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext
from judge.importers.fields import obj, text, unix_time
from judge.importers.html_text import html_to_text
from judge.importers.intercom_authors import author_says_ai, classify
from judge.importers.native import json_type
from judge.models import Message, Touch

PART_FIELDS = frozenset(
    {
        "type",
        "id",
        "part_type",
        "body",
        "created_at",
        "updated_at",
        "notified_at",
        "assigned_to",
        "author",
        "attachments",
        "external_id",
        "redacted",
        "metadata",
        "email_message_metadata",
        "state",
        "tags",
        "event_details",
        "app_package_code",
        "ticket_state",
        "previous_ticket_state",
        "updated_attribute_data",
        "conversation_id",
    }
)
"""Part keys read or known (``conversation_id`` is the connector's join key)."""
ASSIGNMENT_PARTS = frozenset({"assignment", "default_assignment", "away_mode_assignment"})
RANK = {"router": 0, "automation": 1, "human": 2, "ai": 2}
"""Which touch kind wins when one actor both acted (an event) and answered (a message)."""


class Thread:
    """Messages, touches and AI actors of one conversation or ticket, in time order."""

    def __init__(self, ctx: RecordContext, ictx: ImportContext, *, ai_participated: bool) -> None:
        self.ctx, self.ictx, self.ai_participated = ctx, ictx, ai_participated
        self.messages: list[Message] = []
        self.touches: dict[str, Touch] = {}
        self.ai_actors: list[str] = []
        self.closed_at: datetime | None = None
        self.reopened_at: datetime | None = None
        self.state: str | None = None

    def touch(self, actor: str, kind: str, at: datetime | None) -> None:
        """Record that ``actor`` worked on it; an answer outranks an event by the same actor."""
        old = self.touches.get(actor)
        if old is None:
            self.touches[actor] = Touch(actor=actor, kind=kind, at=at)  # type: ignore[arg-type]
        elif RANK[kind] > RANK[old.kind]:
            self.touches[actor] = Touch(actor=actor, kind=kind, at=old.at or at)  # type: ignore[arg-type]
        if kind == "ai" and actor not in self.ai_actors:
            self.ai_actors.append(actor)

    def author(self, raw: Any, field: str) -> tuple[str, str]:
        author = obj(self.ctx, raw, field)
        return classify(author, ai_participated=self.ai_participated, ctx=self.ictx)

    def event_kind(self, raw: Any, kind: str, part_type: str) -> str:
        """The touch kind of a body-less part: assignments route; a bot that is AI only because
        Fin took part in the conversation did not answer here (a workflow step): automation."""
        if part_type in ASSIGNMENT_PARTS:
            return "router"
        if kind == "ai" and not author_says_ai(raw if isinstance(raw, dict) else {}, self.ictx):
            return "automation"
        return kind

    def add(self, kind: str, actor: str, body: str, at: datetime | None, *, public: bool) -> None:
        """One message: the customer's, or an agent's (AI, human or automation) with a touch."""
        if kind == "customer":
            self.messages.append(Message(role="customer", author=actor, text=body, at=at))
            return
        self.messages.append(Message(role="agent", author=actor, text=body, at=at, public=public))
        self.touch(actor, kind, at)

    def opening(self, kind: str, actor: str, body: str, at: datetime | None) -> None:
        if body:
            self.add(kind, actor, body, at, public=True)

    def part(self, raw: Any, field: str) -> None:
        """Read one conversation or ticket part (see :func:`read_parts`)."""
        ctx = self.ctx
        if not isinstance(raw, dict):
            raise ctx.error(f"expected a part object, got {json_type(raw)}", field)
        self.ictx.report.unmapped("parts[]", raw, PART_FIELDS)
        part_type = text(ctx, raw.get("part_type"), f"{field}.part_type") or "comment"
        at = unix_time(ctx, raw.get("created_at"), f"{field}.created_at")
        kind, actor = self.author(raw.get("author"), f"{field}.author")
        body = html_to_text(text(ctx, raw.get("body"), f"{field}.body"))
        # Each conversation part records the conversation's state when it was created
        # (``state``); a part whose state turns closed closes it, one that turns open reopens it.
        state = raw.get("state") if isinstance(raw.get("state"), str) else None
        turned = state is not None and self.state is not None and state != self.state
        closes = (
            part_type == "close"
            or raw.get("ticket_state") == "resolved"
            or (state == "closed" and self.state != "closed")
        )
        reopens = (
            part_type == "open"
            or (turned and self.state == "closed" and state == "open")
            or (
                raw.get("previous_ticket_state") == "resolved"
                and raw.get("ticket_state") not in (None, "resolved")
            )
        )
        self.state = state or self.state
        if closes:
            self.closed_at = at or self.closed_at
        elif (
            (reopens or (kind == "customer" and body))
            and self.closed_at is not None
            and self.reopened_at is None
        ):
            # A reopen part, or the customer writing again after a close (which reopens it).
            self.reopened_at = at
        if body:
            self.add(kind, actor, body, at, public=part_type != "note")
        elif kind != "customer":
            self.touch(actor, self.event_kind(raw.get("author"), kind, part_type), at)

    def sorted_touches(self) -> list[Touch]:
        return sorted(self.touches.values(), key=lambda t: t.at or datetime.min.replace(tzinfo=UTC))

    def agent_name(self) -> str | None:
        return self.ai_actors[0].removeprefix("bot:") if self.ai_actors else None


def read_parts(ctx: RecordContext, value: dict[str, Any], key: str) -> tuple[list[Any], str] | None:
    """The parts list under ``key`` (``conversation_parts`` or ``ticket_parts``).

    Intercom nests it: ``{"conversation_parts": {"type": "conversation_part.list",
    "conversation_parts": [...]}}``; a bare list is accepted too. ``None`` when the key is
    absent (a list or search result, which Intercom returns without parts).
    """
    if key not in value:
        return None
    container = value[key]
    if container is None:
        return [], key
    if isinstance(container, list):
        return container, key
    if isinstance(container, dict):
        parts = container.get(key, [])
        if isinstance(parts, list):
            return parts, f"{key}.{key}"
    raise ctx.error(f"expected {key} to be a list or {{{key}: [...]}}", key)

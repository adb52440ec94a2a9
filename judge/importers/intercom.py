"""Intercom conversation exports -> Outcomes, and the HTML-to-text helper both exports need.

Accepted shapes: a ``{"type": "conversation.list", "conversations": [...]}`` page, a JSON array of
conversations, a single conversation object, or JSON Lines with one conversation (or page) per
line. Field names follow Intercom's Conversations API (``source``, ``conversation_parts``,
``conversation_rating``, ``statistics``, ``ai_agent``); timestamps are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.errors import RecordContext, from_validation_error
from judge.importers.native import Located, iter_json_values, json_type
from judge.models import AgentInfo, Message, Outcome, Signals, Touch

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "pre",
        "blockquote",
        "table",
        "hr",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "head"})
_CUSTOMER_TYPES = frozenset({"user", "lead", "contact"})
_BOT_TYPES = frozenset({"bot"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, blocks on their own lines.

    >>> html_to_text("<p>Hi Jane,</p><p>Refund &amp; credit: <b>done</b></p>")
    'Hi Jane,\\nRefund & credit: done'
    >>> html_to_text("<ul><li>one</li><li>two</li></ul>")
    '- one\\n- two'
    """
    if "<" not in html and "&" not in html:
        return html.strip()
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _time(ctx: RecordContext, value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ctx.error(f"expected a Unix timestamp, got {json_type(value)}", field)
    if isinstance(value, str):
        if value.strip().isdigit():
            value = int(value)
        else:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ctx.error(f"not a timestamp: {value!r}", field) from exc
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ctx.error(f"timestamp out of range: {value!r}", field) from exc


def _actor(author: dict[str, Any]) -> tuple[str, str]:
    """(role, actor label) for an Intercom author; role is customer, ai, human or router."""
    kind = str(author.get("type") or "")
    name = author.get("name") or author.get("id") or kind or "unknown"
    if kind in _CUSTOMER_TYPES:
        return "customer", f"customer:{author.get('id') or name}"
    if kind in _BOT_TYPES or author.get("from_ai_agent") or author.get("is_ai_answer"):
        return "ai", f"bot:{name}"
    return "human", str(name)


def _author(ctx: RecordContext, raw: Any, field: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ctx.error(f"expected an author object, got {json_type(raw)}", field)
    return raw


def _body(ctx: RecordContext, raw: Any, field: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ctx.error(f"body must be a string, got {json_type(raw)}", field)
    return html_to_text(raw)


def _parts(ctx: RecordContext, conv: dict[str, Any]) -> list[Any]:
    container = conv.get("conversation_parts")
    if container is None:
        return []
    if isinstance(container, list):
        return container
    if isinstance(container, dict):
        parts = container.get("conversation_parts", [])
        if isinstance(parts, list):
            return parts
    raise ctx.error(
        "expected conversation_parts to be a list or {conversation_parts: [...]}",
        "conversation_parts",
    )


def convert_conversation(ctx: RecordContext, conv: Any) -> Outcome:
    """Convert one Intercom conversation object (see the module docstring for the mapping)."""
    if not isinstance(conv, dict):
        raise ctx.error(f"expected a conversation object, got {json_type(conv)}")
    if conv.get("id") in (None, ""):
        raise ctx.error("missing required field", "id")
    conv_id = str(conv["id"])
    created = _time(ctx, conv.get("created_at"), "created_at")
    messages: list[Message] = []
    touches: dict[str, Touch] = {}
    bots: list[str] = []

    def touch(actor: str, kind: str, at: datetime | None) -> None:
        if actor not in touches:
            touches[actor] = Touch(actor=actor, kind=kind, at=at)  # type: ignore[arg-type]
        if kind == "ai" and actor not in bots:
            bots.append(actor)

    def add(role: str, actor: str, text: str, at: datetime | None, public: bool) -> None:
        if role == "customer":
            messages.append(Message(role="customer", author=actor, text=text, at=at))
        else:
            messages.append(Message(role="agent", author=actor, text=text, at=at, public=public))
            touch(actor, role, at)

    source = conv.get("source")
    if source is not None:
        if not isinstance(source, dict):
            raise ctx.error(f"expected a source object, got {json_type(source)}", "source")
        text = _body(ctx, source.get("body"), "source.body")
        subject = source.get("subject")
        if isinstance(subject, str) and subject.strip():
            text = f"{html_to_text(subject)}\n{text}".strip()
        if text:
            role, actor = _actor(_author(ctx, source.get("author"), "source.author"))
            add(role, actor, text, created, True)

    closed_at: datetime | None = None
    reopened_at: datetime | None = None
    for index, part in enumerate(_parts(ctx, conv)):
        field = f"conversation_parts.{index}"
        if not isinstance(part, dict):
            raise ctx.error(f"expected a conversation part, got {json_type(part)}", field)
        part_type = str(part.get("part_type") or "comment")
        at = _time(ctx, part.get("created_at"), f"{field}.created_at")
        role, actor = _actor(_author(ctx, part.get("author"), f"{field}.author"))
        text = _body(ctx, part.get("body"), f"{field}.body")
        if part_type == "close":
            closed_at = at or closed_at
        elif (part_type == "open" or role == "customer") and closed_at and reopened_at is None:
            reopened_at = at
        if part_type == "assignment" and role != "customer" and not text:
            touch(actor, "router", at)
            continue
        if text:
            add(role, actor, text, at, part_type != "note")

    if not messages:
        raise ctx.error("the conversation has no messages (empty source and parts)", "source.body")

    raw_stats = conv.get("statistics")
    stats: dict[str, Any] = raw_stats if isinstance(raw_stats, dict) else {}
    state = conv.get("state")
    if state == "closed":
        closed_at = (
            _time(ctx, stats.get("last_close_at"), "statistics.last_close_at")
            or closed_at
            or _time(ctx, conv.get("updated_at"), "updated_at")
        )
    elif state in ("open", "snoozed"):
        closed_at = None
    reopens = stats.get("count_reopens")
    if reopened_at is None and isinstance(reopens, int) and reopens > 0:
        reopened_at = _time(ctx, conv.get("updated_at"), "updated_at")

    csat: int | None = None
    rating = conv.get("conversation_rating")
    if isinstance(rating, dict) and rating.get("rating") is not None:
        value = rating["rating"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ctx.error(
                f"rating must be an integer 1-5, got {value!r}", "conversation_rating.rating"
            )
        csat = value

    raw_ai = conv.get("ai_agent")
    ai_agent: dict[str, Any] = raw_ai if isinstance(raw_ai, dict) else {}
    resolution = ai_agent.get("resolution_state")
    metadata: dict[str, Any] = {"source": "intercom", "conversation_id": conv_id, "state": state}
    for key in ("title", "priority"):
        if conv.get(key):
            metadata[key] = conv[key]
    if resolution:
        metadata["ai_agent_resolution_state"] = resolution
    tags = conv.get("tags")
    if isinstance(tags, dict) and isinstance(tags.get("tags"), list):
        metadata["tags"] = [t.get("name") for t in tags["tags"] if isinstance(t, dict)]

    try:
        return Outcome(
            id=f"intercom-{conv_id}",
            kind="support_ticket",
            conversation=messages,
            signals=Signals(
                customer_confirmed=True if resolution == "confirmed_resolution" else None,
                csat=csat,
                escalated=True if resolution == "routed_to_team" else None,
                reopened_at=reopened_at,
                closed_at=closed_at,
            ),
            touches=sorted(
                touches.values(),
                key=lambda t: t.at or datetime.min.replace(tzinfo=UTC),
            ),
            agent=AgentInfo(name=bots[0].removeprefix("bot:") if bots else None),
            metadata=metadata,
        )
    except ValidationError as exc:
        raise from_validation_error(ctx.path, exc, line=ctx.line, record=ctx.record) from exc


def iter_intercom(path: Path) -> Iterator[Located]:
    """Yield one support-ticket Outcome per Intercom conversation.

    Mapping: ``source`` and ``comment`` parts become messages (HTML -> plain text); ``note``
    parts are agent messages with ``public=False``; authors of type ``user``/``lead``/``contact``
    are the customer, ``bot`` authors (or ``from_ai_agent``) are AI touches, ``admin``/``team``
    authors are human touches; body-less ``assignment`` parts are router touches. ``state``
    closed -> ``signals.closed_at`` (``statistics.last_close_at``, else the last close part); an
    ``open`` part or customer reply after a close (or ``statistics.count_reopens`` > 0) ->
    ``reopened_at``; ``conversation_rating.rating`` -> ``csat``; ``ai_agent.resolution_state``
    ``confirmed_resolution`` -> ``customer_confirmed``, ``routed_to_team`` -> ``escalated``.
    """
    for value, line in iter_json_values(path):
        if isinstance(value, dict) and isinstance(value.get("conversations"), list):
            items: list[tuple[str | None, Any]] = [
                (f"conversations.{i}", c) for i, c in enumerate(value["conversations"])
            ]
        elif isinstance(value, list):
            items = [(str(i), c) for i, c in enumerate(value)]
        else:
            items = [(None, value)]
        for record, conv in items:
            ctx = RecordContext(path, line, record)
            yield Located(convert_conversation(ctx, conv), line, record)

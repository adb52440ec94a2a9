"""Read any help desk through a declarative mapping (:mod:`judge.importers.mapping_schema`).

Each JSON value of the file (a document, or one line of JSON Lines) holds ticket records at the
mapping's ``records`` path; each record becomes one Outcome. Messages from every listed source
are merged in time order; the opening field (a description) leads unless a message already
carries its text. Who wrote a message comes from the mapping's role, AI and automation rules
(plus ``--ai-authors``); a role value the mapping does not list is an error, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext, from_validation_error
from judge.importers.fields import iso_time, unix_time
from judge.importers.html_text import html_to_text
from judge.importers.mapping_schema import Mapping, MessageSource, RoleRule, listed
from judge.importers.native import Located, iter_json_values, json_type
from judge.models import AgentInfo, Message, Outcome, Signals, Touch, VendorClaim, as_utc

MISSING: Any = object()


def get(value: Any, path: str) -> Any:
    """The value at a dotted path, or :data:`MISSING`.

    >>> get({"a": {"b": [{"c": 1}]}}, "a.b.0.c"), get({"a": 1}, "") == {"a": 1}
    (1, True)
    >>> get({"a": None}, "a.b") is MISSING
    True
    """
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


class RecordReader:
    """Converts the records of one file with one mapping."""

    def __init__(self, mapping: Mapping, ictx: ImportContext) -> None:
        self.mapping, self.ictx = mapping, ictx
        self.name = f"mapping '{mapping.name}'"

    def time(self, ctx: RecordContext, value: Any, field: str) -> datetime | None:
        if not _present(value):
            return None
        if self.mapping.time == "iso":
            return iso_time(ctx, value, field)
        if self.mapping.time == "unix_ms":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ctx.error(f"expected Unix milliseconds, got {json_type(value)}", field)
            value = value / 1000
        return unix_time(ctx, value, field)

    def text(self, ctx: RecordContext, value: Any, field: str, *, html: bool) -> str:
        if not _present(value):
            return ""
        if not isinstance(value, str):
            raise ctx.error(f"expected text, got {json_type(value)} ({self.name})", field)
        return html_to_text(value) if html else value.strip()

    def role(self, ctx: RecordContext, rule: Any, message: Any, field: str) -> str:
        if not isinstance(rule, RoleRule):
            return str(rule)
        value = get(message, rule.path)
        if listed(value, rule.customer):
            return "customer"
        if listed(value, rule.agent):
            return "agent"
        raise ctx.error(
            f"{'missing' if value is MISSING else repr(value)} is neither a customer value "
            f"{rule.customer} nor an agent value {rule.agent} of {self.name}; add it to "
            "role.customer or role.agent in the mapping",
            f"{field}.{rule.path}",
        )

    def messages(self, ctx: RecordContext, record: dict[str, Any]) -> list[tuple[Message, str]]:
        """(message, touch kind) for every message of every source, oldest first.

        A message without a time keeps its place in its own list (it sorts at the time of the
        message before it there, or first): sorted last, a reply sent before the customer's
        complaint would come after it, and the complaint would no longer be the customer's last
        word after the agent's."""
        found: list[tuple[Message, str]] = []
        when: list[datetime] = []
        for source in self.mapping.messages:
            previous = datetime.min.replace(tzinfo=UTC)
            items = get(record, source.path)
            if items is None or (items is MISSING and _parent_is_null(record, source.path)):
                continue  # an empty relationship (Salesforce writes null for no children)
            if items is MISSING:
                self.ictx.report.note(
                    f"records carry no '{source.path}' ({self.name}): their messages from that "
                    "list are missing; export the tickets with their messages"
                )
                continue
            if not isinstance(items, list):
                raise ctx.error(f"expected a list, got {json_type(items)}", source.path)
            keys = self.mapping.message_keys(source)
            for i, item in enumerate(items):
                field = f"{source.path}.{i}"
                if not isinstance(item, dict):
                    raise ctx.error(f"expected a message object, got {json_type(item)}", field)
                if not all(rule.holds(get(item, rule.path)) for rule in source.only):
                    continue
                self.ictx.report.unmapped(f"{source.path}[]", item, frozenset(keys))
                if any(rule.holds(get(item, rule.path)) for rule in source.skip):
                    continue
                pair = self.message(ctx, source, item, field)
                if pair[0].at is None:
                    self.ictx.report.note(
                        f"some messages have no time ({self.name}): each is kept after the "
                        "message before it in its list"
                    )
                else:
                    previous = as_utc(pair[0].at)
                found.append(pair)
                when.append(previous)
        order = sorted(range(len(found)), key=lambda i: when[i])  # stable: list order on ties
        return [found[i] for i in order]

    def message(
        self, ctx: RecordContext, source: MessageSource, item: dict[str, Any], field: str
    ) -> tuple[Message, str]:
        text = self.text(ctx, get(item, source.text), f"{field}.{source.text}", html=source.html)
        at = self.time(ctx, get(item, source.at) if source.at else None, f"{field}.{source.at}")
        author = get(item, source.author) if source.author else MISSING
        name = get(item, source.author_name) if source.author_name else MISSING
        email = get(item, source.author_email) if source.author_email else MISSING
        identities = [v for v in (author, name, email) if _present(v)]
        label = str(name if _present(name) else author if _present(author) else "unknown")
        public = not _private(source, item)
        role = self.role(ctx, source.role, item, field)
        by_ai, by_automation, by_staff = (
            rule is not None and rule.holds(get(item, rule.path))
            for rule in (source.ai, source.automation, source.staff)
        )
        named = self.ictx.named_ai(*identities)
        if role == "customer" and not (named or by_ai or by_automation or by_staff):
            return Message(role="customer", author=f"customer:{label}", text=text, at=at), ""
        if role == "customer" and not named:
            # The sender the mapping recognises as a bot, automation or the team is never the
            # customer, whatever its direction flag says: the billed party's integration sets
            # that flag, and its "thanks, all sorted" would otherwise pass for the customer's.
            who = "an AI agent" if by_ai else "automation" if by_automation else "the team"
            self.ictx.report.note(
                f"some messages marked as the customer's come from a sender the mapping "
                f"recognises as {who} ({self.name}): read as the agent's"
            )
        if by_ai or named:
            kind, actor = "ai", f"bot:{label}"
        elif by_automation:
            kind, actor = "automation", f"automation:{label}"
        else:
            kind, actor = "human", label
        return Message(role="agent", author=actor, text=text, at=at, public=public), kind

    def convert(self, ctx: RecordContext, record: Any) -> Outcome:
        mapping = self.mapping
        if not isinstance(record, dict):
            raise ctx.error(f"expected a ticket record object, got {json_type(record)}")
        self.ictx.report.unmapped("record", record, frozenset(mapping.ticket_keys()))
        raw_id = get(record, mapping.id)
        if not _present(raw_id) or raw_id == "":
            raise ctx.error(f"missing required field ({self.name} reads the id here)", mapping.id)
        pairs = self.messages(ctx, record)
        messages = [m for m, _ in pairs]
        created = None
        if mapping.created_at:
            created = self.time(ctx, get(record, mapping.created_at), mapping.created_at)
        opening = mapping.opening
        if opening is not None:
            text = self.text(ctx, get(record, opening.text), opening.text, html=opening.html)
            # Left out only when a message of the opening's own role carries it: an agent's
            # note quoting the request must not take the customer's words out of their mouth.
            said = {_norm(m.text) for m in messages if m.role == opening.role}
            if text and _norm(text) not in said:
                at = self.time(ctx, get(record, opening.at), opening.at) if opening.at else created
                who = get(record, opening.author) if opening.author else MISSING
                author = f"{opening.role}:{who if _present(who) else 'opening'}"
                messages.insert(0, Message(role=opening.role, author=author, text=text, at=at))
        if not messages:
            raise ctx.error(f"the record has no message ({self.name}): nothing to judge")
        touches: dict[str, Touch] = {}
        for message, kind in pairs:
            if kind and message.author and message.author not in touches:
                touch = Touch(actor=message.author, kind=kind, at=message.at)  # type: ignore[arg-type]
                touches[message.author] = touch
        ai = [t.actor.removeprefix("bot:") for t in touches.values() if t.kind == "ai"]
        status = self.status(record)
        closed_at = None
        if status is not None and status in mapping.closed_statuses:
            if mapping.closed_at:
                closed_at = self.time(ctx, get(record, mapping.closed_at), mapping.closed_at)
            if closed_at is None:
                self.ictx.report.note(
                    f"some closed records say nowhere when they closed ({self.name}): "
                    "closed_at is left empty"
                )
        reopened = None
        if mapping.reopened_at:
            reopened = self.time(ctx, get(record, mapping.reopened_at), mapping.reopened_at)
        metadata: dict[str, Any] = {"source": mapping.vendor, "mapping": mapping.name}
        if status is not None:
            metadata["status"] = status
        for key, path in {**mapping.metadata, "reopens": mapping.reopens or ""}.items():
            value = get(record, path) if path else MISSING
            if _present(value):
                metadata[key] = value
        state = get(record, mapping.resolution_state) if mapping.resolution_state else MISSING
        try:
            return Outcome(
                id=f"{mapping.id_prefix}{raw_id}",
                kind="support_ticket",
                conversation=messages,
                signals=Signals(
                    csat=self.csat(ctx, record), closed_at=closed_at, reopened_at=reopened
                ),
                touches=list(touches.values()),
                agent=AgentInfo(name=ai[0] if ai else None),
                vendor_claim=VendorClaim(
                    vendor=mapping.vendor,
                    status=status,
                    resolution_state=str(state) if _present(state) else None,
                    evidence=[p for p in (mapping.status, mapping.resolution_state) if p],
                ),
                metadata=metadata,
            )
        except ValidationError as exc:
            raise from_validation_error(ctx.path, exc, line=ctx.line, record=ctx.record) from exc

    def status(self, record: dict[str, Any]) -> str | None:
        if not self.mapping.status:
            return None
        raw = get(record, self.mapping.status)
        if not _present(raw):
            return None
        return self.mapping.status_map.get(str(raw), str(raw))

    def csat(self, ctx: RecordContext, record: dict[str, Any]) -> int | None:
        if not self.mapping.csat:
            return None
        raw = get(record, self.mapping.csat)
        if not _present(raw):
            return None
        if str(raw) in self.mapping.csat_map:
            return self.mapping.csat_map[str(raw)]
        if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 5:
            return raw
        raise ctx.error(
            f"CSAT value {raw!r} is not 1-5 and not in csat_map of {self.name}; add it to csat_map",
            self.mapping.csat,
        )


def _parent_is_null(record: Any, path: str) -> bool:
    """True when a prefix of ``path`` is present and null (``CaseComments: null``)."""
    parts = path.split(".")
    return any(get(record, ".".join(parts[:n])) is None for n in range(1, len(parts)))


def _private(source: MessageSource, item: dict[str, Any]) -> bool:
    rule = source.public
    if rule is None or rule is True:
        return False
    if rule is False:
        return True
    value = get(item, rule.path)
    return value in rule.private or str(value) in {str(v) for v in rule.private}


def iter_mapping(path: Path, ictx: ImportContext) -> Iterator[Located]:
    """Yield one Outcome per ticket record, read with ``ictx.mapping``."""
    mapping = ictx.mapping
    if not isinstance(mapping, Mapping):
        raise RecordContext(path, None, None).error("--format mapping needs --mapping FILE")
    reader = RecordReader(mapping, ictx)
    for value, line in iter_json_values(path):
        holder = get(value, mapping.records)
        base = mapping.records
        if not _present(holder):
            raise RecordContext(path, line, None).error(
                f"no ticket records at '{mapping.records}' ({reader.name}); is this the "
                f"{mapping.vendor} export the mapping describes?",
                mapping.records or None,
            )
        records = holder if isinstance(holder, list) else [holder]
        for i, record in enumerate(records):
            where = None
            if isinstance(holder, list):
                where = f"{base}.{i}" if base else str(i)
            ctx = RecordContext(path, line, where)
            yield Located(reader.convert(ctx, record), line, where)

"""Gather every Zendesk page in a file, keyed by ticket id, before any ticket is converted.

A Zendesk export is spread over several endpoints (Tickets, Users, Ticket Comments, Ticket Audits,
Incremental Exports, Satisfaction Ratings, Ticket Metrics). One file, JSON or JSON Lines with one
page per line, may hold any mix of their pages; they are joined by ``ticket_id``. List Comments
pages carry no ``ticket_id``: they belong to the ticket they were bundled with
(``{"ticket": {...}, "comments": [...]}``), or to the file's only ticket.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext
from judge.importers.native import iter_json_values, json_type

PAGE_KEYS = frozenset(
    {
        "tickets",
        "ticket",
        "users",
        "user",
        "comments",
        "audits",
        "audit",
        "ticket_events",
        "satisfaction_ratings",
        "satisfaction_rating",
        "ticket_metrics",
        "ticket_metric",
    }
)
"""Top-level keys of the Zendesk responses this importer reads."""
PAGINATION_KEYS = frozenset(
    {
        "count",
        "next_page",
        "previous_page",
        "end_of_stream",
        "end_time",
        "after_cursor",
        "after_url",
        "before_cursor",
        "before_url",
        "meta",
        "links",
    }
)
"""Pagination bookkeeping of list and incremental responses (not data)."""


def looks_zendesk(value: Any) -> bool:
    """True for a Zendesk ticket or a page of any endpoint this importer reads.

    >>> looks_zendesk({"id": 1, "subject": "Help", "requester_id": 7})
    True
    >>> looks_zendesk({"audits": [{"ticket_id": 666, "events": []}], "count": 1})
    True
    """
    if not isinstance(value, dict):
        return False
    if any(isinstance(value.get(k), list) for k in ("tickets", "ticket_events", "audits")):
        return True
    if isinstance(value.get("ticket"), dict):
        return True
    if isinstance(value.get("satisfaction_ratings"), list):
        return True
    if isinstance(value.get("ticket_metrics"), list):
        return True
    if isinstance(value.get("comments"), (list, dict)) and "conversation" not in value:
        return True
    return "requester_id" in value or ("via" in value and "subject" in value)


@dataclass
class TicketAt:
    """A ticket and where it was read."""

    ticket: dict[str, Any]
    ctx: RecordContext


@dataclass
class Collection:
    """Everything the file holds, joined by ticket id (strings)."""

    tickets: dict[str, TicketAt] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    comment_fields: dict[str, str] = field(default_factory=dict)
    audits: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    ratings: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    loose_comments: list[tuple[RecordContext, list[Any]]] = field(default_factory=list)
    replaced: int = 0


def _is_ticket(value: dict[str, Any]) -> bool:
    """A ticket object (one line of the admin JSON export carries its ``comments``)."""
    return "id" in value and ("requester_id" in value or "subject" in value)


def _ticket_id(ctx: RecordContext, item: Any, field: str) -> str:
    if not isinstance(item, dict):
        raise ctx.error(f"expected an object, got {json_type(item)}", field)
    tid = item.get("ticket_id")
    if tid in (None, ""):
        raise ctx.error("missing required field", f"{field}.ticket_id")
    return str(tid)


def _list(ctx: RecordContext, value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.error(f"expected an array, got {json_type(value)}", field)
    return value


class Collector:
    """Reads the pages of one file into a :class:`Collection`."""

    def __init__(self, path: Path, ictx: ImportContext) -> None:
        self.path, self.ictx = path, ictx
        self.found = Collection()

    def ticket(self, ctx: RecordContext, ticket: Any) -> str:
        if not isinstance(ticket, dict):
            raise ctx.error(f"expected a ticket object, got {json_type(ticket)}")
        if ticket.get("id") in (None, ""):
            raise ctx.error("missing required field", "id")
        tid = str(ticket["id"])
        previous = self.found.tickets.get(tid)
        if previous is not None:
            # Incremental exports repeat a ticket each time it changes: the latest one wins.
            self.found.replaced += 1
            if str(ticket.get("updated_at") or "") < str(previous.ticket.get("updated_at") or ""):
                return tid
        self.found.tickets[tid] = TicketAt(ticket, ctx)
        return tid

    def users(self, ctx: RecordContext, value: Any, field: str) -> None:
        for i, user in enumerate(_list(ctx, value, field)):
            if not isinstance(user, dict) or user.get("id") is None:
                raise ctx.error("each user needs an 'id'", f"{field}.{i}.id")
            self.found.users[str(user["id"])] = user

    def comments(self, ctx: RecordContext, value: Any, owner: str | None) -> None:
        """``comments``: keyed by ticket id, a flat list with ``ticket_id``, or a List Comments
        page (no ``ticket_id``) that belongs to ``owner``, the ticket it was bundled with."""
        if isinstance(value, dict):
            for tid, items in value.items():
                self.found.comments[str(tid)].extend(_list(ctx, items, f"comments.{tid}"))
                self.found.comment_fields[str(tid)] = f"comments.{tid}"
            return
        items = _list(ctx, value, "comments")
        keyed = [isinstance(c, dict) and c.get("ticket_id") is not None for c in items]
        if items and all(keyed):
            for i, item in enumerate(items):
                tid = _ticket_id(ctx, item, f"comments.{i}")
                self.found.comments[tid].append(item)
                self.found.comment_fields.setdefault(tid, "comments")
        elif owner is not None:
            self.found.comments[owner].extend(items)
            self.found.comment_fields[owner] = "comments"
        else:
            self.found.loose_comments.append((ctx, items))

    def keyed(self, ctx: RecordContext, value: Any, field: str, into: dict[str, list[Any]]) -> None:
        """Items with ``ticket_id``, by ticket; an item whose ``id`` was seen replaces it (a
        resumed ``judge pull`` may fetch a ticket's audits twice)."""
        for i, item in enumerate(_list(ctx, value, field)):
            items = into[_ticket_id(ctx, item, f"{field}.{i}")]
            same = [
                j
                for j, old in enumerate(items)
                if item.get("id") is not None
                and isinstance(old, dict)
                and old.get("id") == item.get("id")
            ]
            if same:
                items[same[0]] = item
            else:
                items.append(item)

    def latest(
        self, ctx: RecordContext, items: list[Any], field: str, into: dict[str, Any]
    ) -> None:
        for i, item in enumerate(items):
            tid = _ticket_id(ctx, item, f"{field}.{i}")
            old = into.get(tid)
            if old is None or str(item.get("updated_at") or "") >= str(old.get("updated_at") or ""):
                into[tid] = item

    def page(self, ctx: RecordContext, value: dict[str, Any]) -> None:
        """One response page (or bundle) of any supported endpoint."""
        owner: str | None = None
        if "users" in value:
            self.users(ctx, value["users"], "users")
        if isinstance(value.get("user"), dict):
            self.users(ctx, [value["user"]], "user")
        if isinstance(value.get("ticket"), dict):
            owner = self.ticket(RecordContext(ctx.path, ctx.line, "ticket"), value["ticket"])
        if "tickets" in value:
            for i, ticket in enumerate(_list(ctx, value["tickets"], "tickets")):
                self.ticket(RecordContext(ctx.path, ctx.line, f"tickets.{i}"), ticket)
        if "comments" in value:
            self.comments(ctx, value["comments"], owner)
        if "audits" in value:
            if isinstance(value["audits"], dict):  # older bundles: {"<ticket id>": [...]}
                for tid, items in value["audits"].items():
                    self.found.audits[str(tid)].extend(_list(ctx, items, f"audits.{tid}"))
            else:
                self.keyed(ctx, value["audits"], "audits", self.found.audits)
        if isinstance(value.get("audit"), dict):
            self.keyed(ctx, [value["audit"]], "audit", self.found.audits)
        if "ticket_events" in value:
            events = _list(ctx, value["ticket_events"], "ticket_events")
            with_children = [e for e in events if isinstance(e, dict) and "child_events" in e]
            if len(with_children) < len(events):
                self.ictx.report.note(
                    "some ticket events are metric events (no child_events); they were skipped"
                )
            self.keyed(ctx, with_children, "ticket_events", self.found.events)
        for key, single, into in (
            ("satisfaction_ratings", "satisfaction_rating", self.found.ratings),
            ("ticket_metrics", "ticket_metric", self.found.metrics),
        ):
            if key in value:
                self.latest(ctx, _list(ctx, value[key], key), key, into)
            if isinstance(value.get(single), dict) and "ticket_id" in value[single]:
                self.latest(ctx, [value[single]], single, into)
        self.ictx.report.unmapped("", value, PAGE_KEYS | PAGINATION_KEYS)

    def read(self) -> Collection:
        for value, line in iter_json_values(self.path):
            ctx = RecordContext(self.path, line, None)
            if isinstance(value, list):
                for i, ticket in enumerate(value):
                    self.ticket(RecordContext(self.path, line, str(i)), ticket)
            elif isinstance(value, dict) and (PAGE_KEYS & value.keys()) and not _is_ticket(value):
                self.page(ctx, value)
            else:
                # One ticket per line (the admin JSON export), with its comments embedded.
                self.ticket(ctx, value)
        self._pair_loose_comments()
        return self.found

    def _pair_loose_comments(self) -> None:
        for ctx, items in self.found.loose_comments:
            if len(self.found.tickets) == 1:
                only = next(iter(self.found.tickets))
                self.found.comments[only].extend(items)
                self.found.comment_fields[only] = "comments"
                continue
            raise ctx.error(
                "a List Comments page carries no ticket_id, and this file holds "
                f"{len(self.found.tickets)} tickets, so its comments cannot be paired; bundle "
                'each ticket with its comments ({"ticket": {...}, "comments": [...]}, one per '
                "line), key them by ticket id, or convert one file per ticket",
                "comments",
            )

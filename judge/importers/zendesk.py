"""Zendesk exports -> Outcomes: tickets joined with their comments, audits, events, CSAT, metrics.

Shapes follow Zendesk's API reference (Tickets, Ticket Comments, Ticket Audits, Incremental
Exports, Satisfaction Ratings, Ticket Metrics, Users). A file may mix their pages (see
:mod:`judge.importers.zendesk_collect`); the admin JSON export (one ticket per line with its
``comments``) is read the same way. Mapping:

- messages from comments, else audit Comment events, else ticket-event comments; the ticket
  ``description`` opens the conversation when no comment carries it (the first comment usually
  is the description: it is not repeated);
- authors per :mod:`judge.importers.zendesk_authors`; ``public: false`` -> internal note;
- status history from audits and ticket events: ``closed_at`` is the last solve, ``reopened_at``
  the first change from solved/closed back to open; ``ticket_metrics`` give ``reopens``,
  ``replies`` and ``solved_at``;
- ``satisfaction_rating`` (on the ticket or from Satisfaction Ratings) good -> CSAT 5, bad -> 1;
- the vendor's claim (status; solved through an AI-agent channel) -> ``vendor_claim``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.context import ImportContext
from judge.importers.errors import RecordContext, from_validation_error
from judge.importers.fields import iso_time, obj, text
from judge.importers.native import Located
from judge.importers.zendesk_authors import Authors, ai_via, via_channel
from judge.importers.zendesk_collect import Collection, Collector
from judge.importers.zendesk_history import (
    CLOSED_STATUSES,
    COMMENT_FIELDS,
    Comment,
    comments_hidden_in_events,
    first_reopen,
    from_audits,
    from_comments,
    from_ticket_events,
    last_solve,
    status_history,
)
from judge.models import AgentInfo, Message, Outcome, Signals, Touch, VendorClaim

CSAT_SCORES: dict[str, int] = {"good": 5, "bad": 1}
"""Zendesk's binary satisfaction score on the 1-5 CSAT scale (offered/unoffered: none)."""
ESCALATION_TAGS = frozenset({"escalated", "escalation", "escalated_to_human", "handoff"})
TICKET_FIELDS = frozenset(
    {
        "id",
        "url",
        "subject",
        "raw_subject",
        "description",
        "status",
        "requester_id",
        "created_at",
        "updated_at",
        "tags",
        "via",
        "custom_fields",
        "fields",
        "satisfaction_rating",
        "comments",
        "audits",
        "metric_set",
        "type",
        "priority",
        "assignee_id",
        "group_id",
        "brand_id",
    }
)


def _norm(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip().casefold()


def _tags(value: Any) -> list[str]:
    return sorted({str(t).lower() for t in value}) if isinstance(value, list) else []


class TicketConverter:
    """Converts the tickets of one :class:`Collection`."""

    def __init__(self, found: Collection, ictx: ImportContext) -> None:
        self.found, self.ictx = found, ictx
        self.authors = Authors(found.users, ictx)

    def comments(self, ctx: RecordContext, ticket: dict[str, Any], tid: str) -> list[Comment]:
        if "comments" in ticket:
            raw = ticket["comments"]
            if not isinstance(raw, list):
                raise ctx.error("expected a list of comments", "comments")
            return from_comments(ctx, raw, "comments")
        if self.found.comments.get(tid):
            field = self.found.comment_fields.get(tid, "comments")
            return from_comments(ctx, self.found.comments[tid], field)
        audits = ticket.get("audits", self.found.audits.get(tid, []))
        from_audit = from_audits(ctx, audits, "audits")
        if from_audit:
            return from_audit
        events = self.found.events.get(tid, [])
        from_events = from_ticket_events(ctx, events, "ticket_events")
        if not from_events and comments_hidden_in_events(events):
            self.ictx.report.note(
                "ticket events flag comments (comment_present) without their text: export them "
                "with include=comment_events to get the conversation"
            )
        return from_events

    def messages(
        self, ctx: RecordContext, ticket: dict[str, Any], comments: list[Comment]
    ) -> tuple[list[Message], dict[str, Touch], list[str]]:
        requester = ticket.get("requester_id")
        created = iso_time(ctx, ticket.get("created_at"), "created_at")
        description = text(ctx, ticket.get("description"), "description").strip()
        messages: list[Message] = []
        touches: dict[str, Touch] = {}
        bots: list[str] = []
        if description and _norm(description) not in {_norm(c.text) for c in comments}:
            # No comment carries the customer's request: the description is the opening message.
            opening = Message(
                role="customer", author=f"customer:{requester}", text=description, at=created
            )
            messages.append(opening)
        ordered = sorted(comments, key=lambda c: (c.at is None, c.at or datetime.min))
        for position, comment in enumerate(ordered):
            kind, actor = self.authors.classify(
                comment.author_id, requester, comment.via, opening=position == 0 and not messages
            )
            if kind == "customer":
                messages.append(
                    Message(role="customer", author=actor, text=comment.text, at=comment.at)
                )
                continue
            reply = Message(
                role="agent", author=actor, text=comment.text, at=comment.at, public=comment.public
            )
            messages.append(reply)
            touches.setdefault(actor, Touch(actor=actor, kind=kind, at=comment.at))
            if kind == "ai" and actor not in bots:
                bots.append(actor)
        return messages, touches, bots

    def convert(self, tid: str) -> Outcome:
        located = self.found.tickets[tid]
        ticket, ctx = located.ticket, located.ctx
        report = self.ictx.report
        report.unmapped("ticket", ticket, TICKET_FIELDS)
        comments = self.comments(ctx, ticket, tid)
        for comment_raw in ticket.get("comments") or []:
            if isinstance(comment_raw, dict):
                report.unmapped("comments[]", comment_raw, COMMENT_FIELDS)
        messages, touches, bots = self.messages(ctx, ticket, comments)
        if not comments:
            report.note(
                "some tickets carry no comments (the incremental ticket export and List Tickets "
                "have none): each became one customer message from its description; export the "
                "comments too (Ticket Comments or Ticket Audits, or ticket events with "
                "include=comment_events) to judge the conversation"
            )
        if not messages:
            raise ctx.error(
                "the ticket has no comments and no description: nothing to judge", "description"
            )
        audits = ticket.get("audits", self.found.audits.get(tid, []))
        history = status_history(
            ctx, audits, self.found.events.get(tid, []), "audits", "ticket_events"
        )
        metrics = ticket.get("metric_set") or self.found.metrics.get(tid) or {}
        metrics = obj(ctx, metrics, "metric_set")
        status = text(ctx, ticket.get("status"), "status") or None
        solve = last_solve(history)
        reopen = first_reopen(history)
        closed_at = None
        if status in CLOSED_STATUSES:
            closed_at = solve.at if solve is not None else None
            if closed_at is None and metrics.get("solved_at"):
                closed_at = iso_time(ctx, metrics["solved_at"], "ticket_metrics.solved_at")
            if closed_at is None:
                closed_at = iso_time(ctx, ticket.get("updated_at"), "updated_at")
                report.note(
                    "some solved tickets have no audit, ticket event or metric giving the solve "
                    "time: closed_at is their updated_at"
                )
        reopens = metrics.get("reopens")
        if reopen is None and isinstance(reopens, int) and reopens > 0:
            report.note(
                "some tickets were reopened per ticket_metrics.reopens but no audit or ticket "
                "event says when: reopened_at is left empty; add the audits to time the reopen"
            )
        tags = _tags(ticket.get("tags"))
        csat, rating = self.csat(ctx, ticket, tid)
        metadata = self.metadata(ticket, tags, rating, metrics, history)
        claim = self.claim(status, solve, bots)
        try:
            return Outcome(
                id=f"zendesk-{tid}",
                kind="support_ticket",
                conversation=messages,
                signals=Signals(
                    csat=csat,
                    escalated=True if set(tags) & ESCALATION_TAGS else None,
                    reopened_at=reopen.at if reopen is not None else None,
                    closed_at=closed_at,
                ),
                touches=list(touches.values()),
                agent=AgentInfo(name=bots[0].removeprefix("bot:") if bots else None),
                vendor_claim=claim,
                metadata=metadata,
            )
        except ValidationError as exc:
            raise from_validation_error(ctx.path, exc, line=ctx.line, record=ctx.record) from exc

    def csat(
        self, ctx: RecordContext, ticket: dict[str, Any], tid: str
    ) -> tuple[int | None, dict[str, Any]]:
        rating = self.found.ratings.get(tid) or ticket.get("satisfaction_rating")
        if not isinstance(rating, dict):
            return None, {}
        score = rating.get("score")
        field = "satisfaction_ratings" if tid in self.found.ratings else "satisfaction_rating"
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            return score, rating
        if isinstance(score, str) and score.lower() in {*CSAT_SCORES, "offered", "unoffered"}:
            return CSAT_SCORES.get(score.lower()), rating
        if score is None:
            return None, rating
        raise ctx.error(
            f"unknown satisfaction score {score!r}; expected good, bad, offered or unoffered",
            f"{field}.score",
        )

    def claim(self, status: str | None, solve: Any, bots: list[str]) -> VendorClaim:
        """Status, and whether the solve came through Zendesk's AI agent (its own claim)."""
        evidence = ["status"]
        automated: bool | None = None
        state = None
        if status in CLOSED_STATUSES and solve is not None:
            evidence.append(solve.field)
            author_kind, _ = self.authors.classify(solve.author_id, None, solve.via)
            automated = ai_via(solve.via) or author_kind == "ai"
            if automated:
                state = "automated_resolution"
        return VendorClaim(
            vendor="zendesk",
            resolution_state=state,
            status=status,
            automated=automated,
            evidence=evidence,
        )

    def metadata(
        self,
        ticket: dict[str, Any],
        tags: list[str],
        rating: dict[str, Any],
        metrics: dict[str, Any],
        history: list[Any],
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"source": "zendesk", "ticket_id": ticket["id"]}
        for key in ("status", "subject", "type", "priority", "assignee_id", "group_id"):
            if ticket.get(key) not in (None, ""):
                meta[key] = ticket[key]
        if tags:
            meta["tags"] = tags
        channel = via_channel(ticket.get("via"))
        if channel:
            meta["via"] = channel
        if rating.get("score"):
            meta["satisfaction"] = rating["score"]
        if rating.get("comment"):
            meta["satisfaction_comment"] = rating["comment"]
        for key in ("reopens", "replies", "solved_at"):
            if metrics.get(key) is not None:
                meta[key] = metrics[key]
        if history:
            meta["status_history"] = [
                [c.at.isoformat() if c.at else None, c.previous, c.value] for c in history
            ]
        custom = ticket.get("custom_fields") or ticket.get("fields")
        if isinstance(custom, list):
            meta["custom_fields"] = {
                str(f.get("id")): f.get("value") for f in custom if isinstance(f, dict)
            }
        return meta


def iter_zendesk(path: Path, ictx: ImportContext) -> Iterator[Located]:
    """Yield one support-ticket Outcome per Zendesk ticket in the file (see the module docs)."""
    found = Collector(path, ictx).read()
    if not found.tickets:
        held = [
            name
            for name, items in (
                ("Ticket Audits", found.audits),
                ("ticket events", found.events),
                ("comments", found.comments),
                ("satisfaction ratings", found.ratings),
                ("ticket metrics", found.metrics),
            )
            if items
        ]
        what = ", ".join(held) or "no tickets"
        raise RecordContext(path, None, None).error(
            f"this file holds {what} but no tickets: the requester and the description come "
            "from the ticket; put the tickets (Show Ticket, List Tickets or the incremental "
            "ticket export, with include=users) in the same file, one page per line",
            "tickets",
        )
    for name, keyed in (
        ("Ticket Audits", found.audits),
        ("ticket events", found.events),
        ("satisfaction ratings", found.ratings),
        ("ticket metrics", found.metrics),
    ):
        orphans = sorted(set(keyed) - set(found.tickets))
        if orphans:
            ictx.report.note(
                f"{name} for {len(orphans)} ticket(s) not in this file were not used "
                f"(ticket ids {', '.join(orphans[:5])}); add those tickets to the file"
            )
    if found.replaced:
        ictx.report.note(
            f"{found.replaced} ticket record(s) repeated an earlier ticket id (incremental "
            "exports list a ticket each time it changes): the latest version was kept"
        )
    converter = TicketConverter(found, ictx)
    for tid, located in found.tickets.items():
        yield Located(converter.convert(tid), located.ctx.line, located.ctx.record)

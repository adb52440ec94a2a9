"""What the ledger knows about the conversations a vendor billed: the reads of ``judge audit``.

Each claimed outcome is looked up in ``outcome_facts`` (the billed state the meters count, see
:mod:`ledger.facts`) and its verdict: verified when its count is booked, not verified when the
verdict said so or a revocation took the count back (``reopened``, ``csat_low``,
``human_overturn``, ``came_back``), abstain when the panel handed it to a human, unjudged when
the outcome is stored without a verdict, unknown when the ledger has no outcome of that id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlmodel import col

from ledger.bookings import LATE_ARRIVAL, MOVED, VERIFIED
from ledger.claims import Claim
from ledger.db import chunked, session
from ledger.reads import each_key, key_relation
from ledger.service_tables import OutcomeFactRow
from ledger.tables import OutcomeRow, VerdictRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "JudgedClaim",
    "Status",
    "claimed_outcomes",
    "imported_claims",
    "verified_outcome_ids",
]

Status = Literal["verified", "not_verified", "abstain", "unjudged", "unknown"]
_COUNTING = (VERIFIED, LATE_ARRIVAL, MOVED)


@dataclass(frozen=True, slots=True)
class JudgedClaim:
    """The ledger's side of one claimed outcome."""

    status: Status
    reason: str | None = None
    verdict_pk: int | None = None
    rubric: str | None = None
    panel: str | None = None
    confidence: float | None = None
    flags: tuple[str, ...] = ()
    #: What the judged revision held (``Outcome.content_hash``: the conversation, signals and
    #: all a judge sees, not the id): the same conversation claimed under two ids is one outcome.
    content_hash: str | None = None


def _status(decision: str, booked: bool, booking_reason: str | None) -> tuple[Status, str | None]:
    if booked:
        return "verified", None
    if decision == "verified":
        if booking_reason is not None and booking_reason not in _COUNTING:
            return "not_verified", f"revoked: {booking_reason}"
        return "verified", None
    if decision == "abstain":
        return "abstain", "the panel abstained: awaiting human review"
    return "not_verified", "the panel did not verify it"


def claimed_outcomes(
    engine: Engine, tenant: str, outcome_ids: Iterable[str]
) -> dict[str, JudgedClaim]:
    """The ledger's side of each id (every id gets an entry; ``unknown`` when not stored).

    500 ids a query; on PostgreSQL each id is looked up on its own (``ledger.reads.key_relation``):
    an ``IN`` list was a filter over the tenant's whole range when the statistics had not seen
    the tenant, 50-70 ms a chunk at 100,000 outcomes, for every 500 claims.
    """
    ids = list(dict.fromkeys(outcome_ids))
    found: dict[str, JudgedClaim] = {}
    with session(engine, readonly=True) as db:
        conn = db.connection()
        postgres = conn.dialect.name == "postgresql"
        for chunk in chunked(ids):
            stored_query, judged_query = (
                _per_id_queries(tenant, chunk) if postgres else _in_list_queries(tenant, chunk)
            )
            stored = set(conn.execute(stored_query).scalars())
            for (
                oid,
                decision,
                entry_pk,
                booking,
                vpk,
                rubric,
                panel,
                confidence,
                flags,
                content_hash,
            ) in conn.execute(judged_query).all():
                status, reason = _status(decision, entry_pk is not None, booking)
                found[oid] = JudgedClaim(
                    status=status,
                    reason=reason,
                    verdict_pk=vpk,
                    rubric=rubric,
                    panel=panel,
                    confidence=confidence,
                    flags=tuple(flags or ()),
                    content_hash=content_hash,
                )
            for oid in chunk:
                if oid not in found:
                    found[oid] = JudgedClaim(
                        status="unjudged" if oid in stored else "unknown",
                        reason="stored, not judged yet" if oid in stored else "not in the ledger",
                    )
    return found


def _judged_columns() -> tuple[Any, ...]:
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    verdicts = VerdictRow.__table__  # type: ignore[attr-defined]
    return (
        facts.c.outcome_id,
        facts.c.decision,
        facts.c.booked_entry_pk,
        facts.c.booking_reason,
        verdicts.c.pk,
        verdicts.c.rubric,
        verdicts.c.panel,
        verdicts.c.confidence,
        verdicts.c.flags,
        verdicts.c.content_hash,
    )


def _in_list_queries(tenant: str, chunk: list[str]) -> tuple[Any, Any]:
    """SQLite: which of ``chunk`` are stored, and the fact and verdict of those judged."""
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    verdicts = VerdictRow.__table__  # type: ignore[attr-defined]
    outcomes = OutcomeRow.__table__  # type: ignore[attr-defined]
    stored = (
        sa.select(outcomes.c.outcome_id)
        .where(outcomes.c.tenant == tenant, outcomes.c.outcome_id.in_(chunk))
        .distinct()
    )
    judged = (
        sa.select(*_judged_columns())
        .select_from(facts.join(verdicts, verdicts.c.pk == facts.c.verdict_pk))
        .where(facts.c.tenant == tenant, facts.c.outcome_id.in_(chunk))
    )
    return stored, judged


def _per_id_queries(tenant: str, chunk: list[str]) -> tuple[Any, Any]:
    """PostgreSQL: the same, each id looked up by equality through a LATERAL subquery (LIMIT 1:
    an outcome's one fact, and its first revision to know it is stored)."""
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    verdicts = VerdictRow.__table__  # type: ignore[attr-defined]
    outcomes = OutcomeRow.__table__  # type: ignore[attr-defined]
    asked = key_relation(id=chunk)
    revision = (
        sa.select(outcomes.c.outcome_id)
        .where(outcomes.c.tenant == tenant, outcomes.c.outcome_id == asked.c.id)
        .limit(1)
    )
    fact = (
        sa.select(*_judged_columns())
        .select_from(facts.join(verdicts, verdicts.c.pk == facts.c.verdict_pk))
        .where(facts.c.tenant == tenant, facts.c.outcome_id == asked.c.id)
        .limit(1)
    )
    return each_key(asked, revision, name="revision"), each_key(asked, fact, name="fact")


def verified_outcome_ids(
    engine: Engine, tenant: str, *, since: datetime | None, until: datetime | None
) -> Sequence[str]:
    """Outcomes whose verified count is booked, anchored in ``[since, until)``, sorted."""
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    query = sa.select(facts.c.outcome_id).where(
        facts.c.tenant == tenant, facts.c.booked_entry_pk.is_not(None)
    )
    if since is not None:
        query = query.where(facts.c.anchor_at >= since)
    if until is not None:
        query = query.where(facts.c.anchor_at < until)
    with session(engine, readonly=True) as db:
        return sorted(db.connection().execute(query).scalars())


def _claim_kind(vendor_claim: object) -> str | None:
    """The kind of resolution an imported ``vendor_claim`` bills, or None when it bills none."""
    if not isinstance(vendor_claim, dict) or vendor_claim.get("automated") is not True:
        return None
    state = vendor_claim.get("resolution_state")
    return str(state) if state else "automated_resolution"


def imported_claims(
    engine: Engine,
    tenant: str,
    *,
    price_usd: Decimal,
    since: datetime | None,
    until: datetime | None,
) -> list[Claim]:
    """The claims the vendor made in the conversations themselves (the importers'
    ``vendor_claim``: Intercom's ``ai_agent.resolution_state``, Zendesk's automated-resolution
    marker), each billed at ``price_usd``, dated in ``[since, until)``, in outcome-id order.

    A claim is an outcome whose latest revision says ``automated: true``; its kind is the
    vendor's ``resolution_state`` (``assumed_resolution``, ``confirmed_resolution`` ...), else
    ``automated_resolution``; it is dated at the conversation's ``closed_at``, else when the
    ledger received it. ``line`` is the claim's position in that order.
    """
    latest = (
        sa.select(
            col(OutcomeRow.outcome_id),
            sa.func.max(col(OutcomeRow.revision)).label("revision"),
        )
        .where(col(OutcomeRow.tenant) == tenant)
        .group_by(col(OutcomeRow.outcome_id))
        .subquery()
    )
    query = (
        sa.select(col(OutcomeRow.outcome_id), col(OutcomeRow.payload), col(OutcomeRow.received_at))
        .join(
            latest,
            sa.and_(
                latest.c.outcome_id == col(OutcomeRow.outcome_id),
                latest.c.revision == col(OutcomeRow.revision),
            ),
        )
        .where(col(OutcomeRow.tenant) == tenant)
        .order_by(col(OutcomeRow.outcome_id))
    )
    claims: list[Claim] = []
    with session(engine, readonly=True) as db:
        for oid, payload, received_at in db.connection().execute(query):
            kind = _claim_kind((payload or {}).get("vendor_claim"))
            if kind is None:
                continue
            closed = ((payload or {}).get("signals") or {}).get("closed_at")
            at = datetime.fromisoformat(closed) if isinstance(closed, str) else received_at
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            claims.append(Claim(len(claims) + 1, oid, at, kind, price_usd))
    return claims

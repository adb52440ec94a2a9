"""The review queue: what the review pages read and write (the queue, one outcome, labels).

Synchronous (the ledger is); the web routes (:mod:`api.web.routes`) call these through
``asyncio.to_thread``, so the pages hold no SQL. Every query filters by tenant, so another
tenant's outcome is simply not found.

The queue holds the outcomes whose **latest** verdict abstained or carries a flag (for example
``possible_prompt_injection``), plus an audit sample of verified ones: an outcome is sampled when
a hash of tenant and outcome id falls below :data:`AUDIT_SHARE`, so the sample is the same on
every request and every process, and unpredictable to whoever wrote the outcome. Outcomes with
any label are left out. Oldest first, by the outcome's own time (its last customer message,
see :func:`ledger.windows.window_anchor`), else when its verdict was recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from judge.input_rules import FROM_LEDGER
from judge.models import Label, Outcome, Touch, as_utc
from ledger.db import session
from ledger.records import StoredLabel, StoredVerdict
from ledger.tables import LabelRow, OutcomeRow, VerdictRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from judge.rubric import Rubric

#: Share of verified outcomes sampled into the queue for audit.
AUDIT_SHARE = 0.1
#: Most items the queue lists (oldest first); the rest wait until these are labelled.
QUEUE_LIMIT = 500
#: The ``source`` of labels recorded through the web interface.
LABEL_SOURCE = "web"
_CHUNK = 500

Reason = Literal["abstain", "flagged", "audit"]


@dataclass(frozen=True)
class QueueItem:
    """One outcome waiting for a human label."""

    outcome_id: str
    reason: Reason
    decision: str
    confidence: float
    flags: list[str]
    rubric: str
    panel: str
    kind: str
    at: datetime | None
    verdict_at: datetime


@dataclass
class ItemView:
    """One outcome as the review page shows it."""

    outcome: Outcome
    revision: int
    verdicts: list[StoredVerdict]
    touches: list[Touch]
    labels: list[StoredLabel]
    rubric: Rubric | None = None
    rubric_note: str | None = None
    criteria_ids: list[str] = field(default_factory=list)

    @property
    def latest(self) -> StoredVerdict | None:
        return self.verdicts[-1] if self.verdicts else None


def in_audit_sample(tenant: str, outcome_id: str, share: float = AUDIT_SHARE) -> bool:
    """Whether a verified outcome is sampled for audit (deterministic, see module docs).

    >>> in_audit_sample("acme", "T-1", share=1.0), in_audit_sample("acme", "T-1", share=0.0)
    (True, False)
    """
    digest = hashlib.sha256(f"audit\x00{tenant}\x00{outcome_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _latest_verdicts(
    engine: Engine, tenant: str
) -> list[tuple[str, int, str, float, list[str], str, str, datetime]]:
    latest = (
        select(sa.func.max(VerdictRow.pk).label("pk"))
        .where(VerdictRow.tenant == tenant)
        .group_by(col(VerdictRow.outcome_id))
        .subquery()
    )
    query = sa.select(
        col(VerdictRow.outcome_id),
        col(VerdictRow.outcome_revision),
        col(VerdictRow.decision),
        col(VerdictRow.confidence),
        col(VerdictRow.flags),
        col(VerdictRow.rubric),
        col(VerdictRow.panel),
        col(VerdictRow.created_at),
    ).join(latest, latest.c.pk == VerdictRow.pk)
    with session(engine, readonly=True) as db:
        return [tuple(row) for row in db.connection().execute(query).all()]  # type: ignore[misc]


def labelled_ids(engine: Engine, tenant: str) -> set[str]:
    """Ids of the tenant's outcomes that have at least one label (any source)."""
    with session(engine, readonly=True) as db:
        rows = db.exec(
            select(LabelRow.outcome_id).where(LabelRow.tenant == tenant).distinct()
        ).all()
    return set(rows)


def _outcome_times(
    engine: Engine, tenant: str, wanted: dict[str, int]
) -> dict[str, tuple[str, datetime | None]]:
    """Kind and window anchor of the given (outcome id -> revision), read in chunks."""
    from ledger.windows import window_anchor

    out: dict[str, tuple[str, datetime | None]] = {}
    ids = sorted(wanted)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        with session(engine, readonly=True) as db:
            rows = (
                db.connection()
                .execute(
                    sa.select(
                        col(OutcomeRow.outcome_id),
                        col(OutcomeRow.revision),
                        col(OutcomeRow.payload),
                    ).where(col(OutcomeRow.tenant) == tenant, col(OutcomeRow.outcome_id).in_(chunk))
                )
                .all()
            )
        for oid, revision, payload in rows:
            if wanted.get(oid) != revision:
                continue
            anchored = window_anchor(Outcome.model_validate(payload, context=FROM_LEDGER))
            out[oid] = (str(payload.get("kind", "")), None if anchored is None else anchored[0])
    return out


def review_queue(
    engine: Engine, tenant: str, *, audit_share: float = AUDIT_SHARE, limit: int = QUEUE_LIMIT
) -> tuple[list[QueueItem], int]:
    """The queue (oldest first, at most ``limit`` items) and how many items it holds in all."""
    done = labelled_ids(engine, tenant)
    picked: dict[
        str, tuple[Reason, tuple[str, int, str, float, list[str], str, str, datetime]]
    ] = {}
    for row in _latest_verdicts(engine, tenant):
        oid, _, decision, _, flags, *_ = row
        if oid in done:
            continue
        reason: Reason | None = None
        if decision == "abstain":
            reason = "abstain"
        elif flags:
            reason = "flagged"
        elif decision == "verified" and in_audit_sample(tenant, oid, audit_share):
            reason = "audit"
        if reason is not None:
            picked[oid] = (reason, row)
    times = _outcome_times(engine, tenant, {oid: row[1] for oid, (_, row) in picked.items()})
    items = []
    for oid, (reason, row) in picked.items():
        kind, at = times.get(oid, ("", None))
        items.append(
            QueueItem(
                outcome_id=oid,
                reason=reason,
                decision=row[2],
                confidence=float(row[3]),
                flags=list(row[4] or []),
                rubric=row[5],
                panel=row[6],
                kind=kind,
                at=at,
                verdict_at=as_utc(row[7]),
            )
        )
    items.sort(key=lambda i: (i.at or i.verdict_at, i.verdict_at, i.outcome_id))
    return items[:limit], len(items)


def find_rubric(engine: Engine, tenant: str, ref: str) -> tuple[Rubric | None, str | None]:
    """The rubric a verdict names (``name@version``), and a note when it is not that exact one.

    The exact version is looked up among the tenant's stored rubrics and the shipped ones; when
    it is in neither, the current rubric of that name is shown with a note saying so.
    """
    from judge.rubric import Rubric
    from ledger.documents import DocumentError, get_document

    name = ref.partition("@")[0]
    for wanted in (ref, name):
        try:
            info, _ = get_document(engine, tenant, "rubric", wanted)
        except DocumentError:
            continue
        if isinstance(info.document, Rubric):
            rubric = info.document
            note = (
                None
                if rubric.ref == ref
                else (f"the verdict used {ref}; the criteria shown are of {rubric.ref}")
            )
            return rubric, note
    return None, f"rubric {ref!r} is neither stored for this tenant nor shipped"


def review_item(engine: Engine, tenant: str, outcome_id: str) -> ItemView | None:
    """The outcome, its verdicts (oldest first), touches and labels; None if not the tenant's."""
    from ledger.store import Ledger

    ledger = Ledger(engine, tenant=tenant)
    refs = ledger.revisions(outcome_id)
    outcome = ledger.outcome(outcome_id)
    if outcome is None or not refs:
        return None
    verdicts = list(ledger.iter_verdicts(outcome_id=outcome_id))
    view = ItemView(
        outcome=outcome,
        revision=refs[-1].revision,
        verdicts=verdicts,
        touches=ledger.touches(outcome_id),
        labels=list(ledger.iter_labels(outcome_id=outcome_id)),
    )
    if verdicts:
        view.rubric, view.rubric_note = find_rubric(engine, tenant, verdicts[-1].verdict.rubric)
        if view.rubric is not None:
            view.criteria_ids = [c.id for c in view.rubric.criteria]
    return view


def save_label(
    engine: Engine,
    tenant: str,
    outcome_id: str,
    *,
    resolved: bool,
    criteria: dict[str, bool],
    note: str | None,
    by: str,
    now: datetime | None = None,
) -> bool | None:
    """Record a reviewer's label; None when the tenant has no such outcome, else whether it is new.

    The label is dated now: calibration, drift and the gate window on label time.
    """
    from ledger.store import Ledger

    ledger = Ledger(engine, tenant=tenant)
    if not ledger.revisions(outcome_id):
        return None
    label = Label(
        resolved=resolved,
        by=by,
        at=now or datetime.now(UTC),
        criteria=criteria,
        note=note or None,
    )
    return ledger.record_label(outcome_id, label, source=LABEL_SOURCE)

"""The review queue: what the review pages read and write (the queue, one outcome, labels).

Synchronous (the ledger is); the web routes (:mod:`api.web.routes`) call these through
``asyncio.to_thread``, so the pages hold no SQL. Every query filters by tenant, so another
tenant's outcome is simply not found.

The queue holds the outcomes whose **latest** verdict abstained or carries a flag (for example
``possible_prompt_injection``), plus an audit sample of verified ones: an outcome is sampled when
a hash of tenant and outcome id falls below :data:`AUDIT_SHARE`, so the sample is the same on
every request and every process, and unpredictable to whoever wrote the outcome. Outcomes with
any label are left out. Oldest first, by the outcome's own time (its last customer message,
see :func:`ledger.windows.window_anchor`), else when its verdict was recorded. The queue is kept
in ``review_queue`` as verdicts and labels are written (:mod:`ledger.review_index`), so a page
reads one index range, not every verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from judge.models import Label, Outcome, Touch, as_utc
from ledger.db import session
from ledger.records import StoredLabel, StoredVerdict
from ledger.review_index import AUDIT_SHARE, Reason
from ledger.review_index import in_audit_sample as in_audit_sample  # re-exported
from ledger.service_tables import ReviewQueueRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from judge.rubric import Rubric

#: Most items the queue lists (oldest first); the rest wait until these are labelled.
QUEUE_LIMIT = 500
#: The ``source`` of labels recorded through the web interface.
LABEL_SOURCE = "web"


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


def review_queue(
    engine: Engine, tenant: str, *, audit_share: float = AUDIT_SHARE, limit: int = QUEUE_LIMIT
) -> tuple[list[QueueItem], int]:
    """The queue (oldest first, at most ``limit`` items) and how many items it holds in all.

    Read from ``review_queue`` through its index (kept by :mod:`ledger.review_index`).
    ``audit_share`` is :data:`AUDIT_SHARE` (the sample kept) or 0 (no audit sample).
    """
    if audit_share not in (0.0, AUDIT_SHARE):
        raise ValueError(f"audit_share is {AUDIT_SHARE} (the kept sample) or 0, not {audit_share}")
    t = ReviewQueueRow.__table__  # type: ignore[attr-defined]
    where = [t.c.tenant == tenant]
    if audit_share == 0.0:
        where.append(t.c.reason != "audit")
    with session(engine, readonly=True) as db:
        conn = db.connection()
        total = int(
            conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar_one()
        )
        rows = conn.execute(
            sa.select(t)
            .where(*where)
            .order_by(t.c.sort_at, t.c.verdict_at, t.c.outcome_id)
            .limit(limit)
        ).all()
    items = [
        QueueItem(
            outcome_id=r.outcome_id,
            reason=r.reason,
            decision=r.decision,
            confidence=float(r.confidence),
            flags=list(r.flags or []),
            rubric=r.rubric,
            panel=r.panel,
            kind=r.kind,
            at=None if r.anchor_at is None else as_utc(r.anchor_at),
            verdict_at=as_utc(r.verdict_at),
        )
        for r in rows
    ]
    return items, total


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

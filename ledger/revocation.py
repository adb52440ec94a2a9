"""Revocations detected from what arrives after a verdict: reopens, late low CSAT, human labels.

A ``verified`` verdict is taken back when, after it was made,

- a later revision of the outcome shows ``signals.reopened_at`` within ``window_hours`` after
  ``signals.closed_at`` (reason ``reopened``, at the reopen),
- a later revision shows ``signals.csat <= 3`` (reason ``csat_low``, at the moment the ledger
  received that revision), or
- a human label says ``resolved=False`` (reason ``human_overturn``, at the label's ``at``), or
- a later revision is judged ``not_verified`` and shows the customer back (a customer message
  the judged revision did not hold, ``signals.recontact_at``, a new escalation or a withdrawn
  confirmation) no later than ``window_hours`` after the judged revision's window began
  (reason ``came_back``, at the earliest such event; :func:`came_back_reason`).

The window of ``came_back`` starts at the judged revision's last customer message, dated as the
later revision dates it when it holds the same text (the submitter of the judged revision wrote
its timestamps; the help desk's later export dates the same message too), else at its close, or
when the ledger received it. An outcome first sent days after its last customer message is final
at once (:mod:`ledger.facts`): without this, a failure the help desk reported afterwards never
took its count back.

:func:`revocation_reasons` decides (pure); :class:`Revoker` books what is due through
:meth:`ledger.periods.Periods.book_revocation`, which puts it in the period of the event if that
period is open, else in the next open one (closed periods are never rewritten), and which is
idempotent on (outcome, verdict, reason): checking again books nothing new.
:func:`scan_revocations` re-checks every outcome of a tenant (``judge revocations scan``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from sqlmodel import col, select

from judge.models import as_utc
from ledger.db import session
from ledger.periods import (
    REASON_CAME_BACK,
    REASON_CSAT_LOW,
    REASON_HUMAN_OVERTURN,
    REASON_REOPENED,
    Booking,
    Periods,
)
from ledger.store import EMBEDDED_LABEL_SOURCE, Ledger
from ledger.tables import OutcomeRow, VerdictRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from judge.models import Label, Outcome
    from judge.verdict import Verdict

#: Default revocation window after ``signals.closed_at`` within which a reopen revokes.
DEFAULT_WINDOW_HOURS = 72.0
#: A CSAT at or below this revokes a verified verdict.
CSAT_REVOKE_AT = 3


class RevocationReason(NamedTuple):
    """Why a verdict is revoked, a line for auditors, and when the revoking event happened."""

    reason: str
    detail: str
    occurred_at: datetime


@dataclass(frozen=True)
class LatestVerified:
    """The latest ``verified`` verdict of an outcome, with its primary key and judged revision."""

    verdict_pk: int
    verdict: Verdict
    outcome_revision: int
    created_at: datetime


def _check_window(window_hours: float) -> timedelta:
    if (
        isinstance(window_hours, bool)
        or not isinstance(window_hours, int | float)
        or not window_hours > 0
        or window_hours == float("inf")
    ):
        raise ValueError(f"window_hours must be a positive number of hours, got {window_hours!r}")
    return timedelta(hours=float(window_hours))


def revocation_reasons(
    verdict: Verdict,
    outcome: Outcome,
    *,
    label: Label | None = None,
    judged: Outcome | None = None,
    observed_at: datetime | None = None,
    window_hours: float = DEFAULT_WINDOW_HOURS,
) -> list[RevocationReason]:
    """The reasons ``outcome`` (a later revision) and ``label`` give to revoke ``verdict``.

    Parameters
    ----------
    verdict
        The verdict that may be revoked; only a ``verified`` one ever is.
    outcome
        The latest revision of the outcome.
    label
        A human label received after the verdict; ``resolved=False`` overturns it. Without it,
        a label embedded in ``outcome`` (and not already in ``judged``) is used.
    judged
        The revision the verdict was made on: signals already present there are not news (a
        verdict made knowing a CSAT of 2 is not revoked by that CSAT).
    observed_at
        When the ledger received ``outcome`` (the time of a late CSAT, which carries no
        timestamp of its own); default ``signals.closed_at``, else the last customer message.
    window_hours
        A reopen revokes only when at most this long after ``signals.closed_at`` (72 h).

    Returns
    -------
    list of RevocationReason
        ``(reason, detail, occurred_at)``: ``reopened``, ``csat_low``, ``human_overturn``.

    Raises
    ------
    ValueError
        ``window_hours`` is not positive, or a late CSAT has no time to book it at.

    Examples
    --------
    >>> from judge.models import Outcome
    >>> from judge.verdict import Verdict
    >>> o = Outcome.model_validate({"id": "T-1", "kind": "support_ticket",
    ...     "conversation": [{"role": "customer", "text": "hi"}],
    ...     "signals": {"closed_at": "2026-03-01T10:00:00Z",
    ...                 "reopened_at": "2026-03-02T10:00:00Z"}})
    >>> v = Verdict(outcome_id="T-1", decision="verified", confidence=0.9, rubric="r", panel="p")
    >>> [(r.reason, r.occurred_at.isoformat()) for r in revocation_reasons(v, o)]
    [('reopened', '2026-03-02T10:00:00+00:00')]
    >>> revocation_reasons(v, o, window_hours=12)  # reopened 24 h after close: outside
    []
    """
    window = _check_window(window_hours)
    if verdict.decision != "verified":
        return []
    signals = outcome.signals
    before = judged.signals if judged is not None else None
    reasons: list[RevocationReason] = []

    reopened = signals.reopened_at
    if reopened is not None and (before is None or before.reopened_at != reopened):
        reopened = as_utc(reopened)
        closed = signals.closed_at
        if closed is None:
            reasons.append(
                RevocationReason(
                    REASON_REOPENED, f"reopened {reopened.isoformat()} (no close time)", reopened
                )
            )
        else:
            after = reopened - as_utc(closed)
            if timedelta(0) <= after <= window:
                hours = after.total_seconds() / 3600
                detail = f"reopened {reopened.isoformat()}, {hours:.1f} h after close"
                reasons.append(RevocationReason(REASON_REOPENED, detail, reopened))

    csat = signals.csat
    if (
        csat is not None
        and csat <= CSAT_REVOKE_AT
        and (before is None or before.csat is None or before.csat > CSAT_REVOKE_AT)
    ):
        at = observed_at or signals.closed_at or outcome.last_customer_message_at()
        if at is None:
            raise ValueError(
                f"outcome {outcome.id!r}: CSAT {csat} has no time to book the revocation at; "
                "pass observed_at (when this revision was received)"
            )
        at = as_utc(at)
        detail = f"CSAT {csat} (<= {CSAT_REVOKE_AT}) received {at.isoformat()}"
        reasons.append(RevocationReason(REASON_CSAT_LOW, detail, at))

    overturn = label
    if (
        overturn is None
        and outcome.label is not None
        and (judged is None or judged.label != outcome.label)
    ):
        overturn = outcome.label
    if overturn is not None and not overturn.resolved:
        at = overturn.at or observed_at
        if at is None:
            raise ValueError(
                f"outcome {outcome.id!r}: the overturning label has no 'at'; pass observed_at"
            )
        at = as_utc(at)
        who = f" by {overturn.by}" if overturn.by else ""
        detail = f"human label resolved=false{who} at {at.isoformat()}"
        reasons.append(RevocationReason(REASON_HUMAN_OVERTURN, detail, at))
    return reasons


def came_back_reason(
    later_verdict: Verdict,
    later: Outcome,
    judged: Outcome,
    *,
    judged_received_at: datetime,
    later_received_at: datetime,
    window_hours: float = DEFAULT_WINDOW_HOURS,
) -> RevocationReason | None:
    """Whether a later revision, judged ``not_verified``, shows the customer back in time.

    Parameters
    ----------
    later_verdict
        The verdict of ``later``; only ``not_verified`` can revoke.
    later
        A revision recorded after ``judged``.
    judged
        The revision the ``verified`` verdict was made on.
    judged_received_at, later_received_at
        When the ledger received each revision. The window starts at ``judged``'s last customer
        message, dated by ``later`` when it holds the same text and dates it later, else at
        ``judged``'s anchor (:func:`ledger.windows.window_anchor`), else at
        ``judged_received_at``. An event without a time of its own (an escalation, a withdrawn
        confirmation, an untimed message) is dated ``later_received_at``.
    window_hours
        How long after the window starts the customer may come back (72 h).

    Returns
    -------
    RevocationReason or None
        ``came_back`` at the earliest event inside the window, else None.

    Raises
    ------
    ValueError
        ``window_hours`` is not positive.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from judge.models import Outcome
    >>> from judge.verdict import Verdict
    >>> first = [{"role": "customer", "text": "It fails", "at": "2026-03-01T10:00:00Z"},
    ...          {"role": "agent", "text": "Fixed."}]
    >>> back = {"role": "customer", "text": "Still fails", "at": "2026-03-01T12:00:00Z"}
    >>> judged = Outcome.model_validate(
    ...     {"id": "T-1", "kind": "support_ticket", "conversation": first})
    >>> later = Outcome.model_validate(
    ...     {"id": "T-1", "kind": "support_ticket", "conversation": [*first, back]})
    >>> no = Verdict(outcome_id="T-1", decision="not_verified", confidence=0.9, rubric="r",
    ...     panel="p")
    >>> sent = datetime(2026, 3, 6, tzinfo=UTC)  # sent five days after the last message
    >>> reason = came_back_reason(no, later, judged, judged_received_at=sent,
    ...     later_received_at=sent)
    >>> reason.reason, reason.occurred_at.isoformat()
    ('came_back', '2026-03-01T12:00:00+00:00')
    >>> back["at"] = "2026-03-05T12:00:00Z"  # 98 h later: a new matter, not a failure
    >>> later = Outcome.model_validate(
    ...     {"id": "T-1", "kind": "support_ticket", "conversation": [*first, back]})
    >>> came_back_reason(no, later, judged, judged_received_at=sent, later_received_at=sent)
    """
    from ledger.windows import window_anchor

    window = _check_window(window_hours)
    if later_verdict.decision != "not_verified":
        return None
    anchored = window_anchor(judged)
    starts = [as_utc(judged_received_at) if anchored is None else anchored[0]]
    unseen = Counter(m.text for m in judged.customer_messages())
    observed = as_utc(later_received_at)
    events: list[tuple[datetime, str]] = []
    for message in later.customer_messages():
        if unseen[message.text] > 0:  # the judged revision held it: it dates the window
            unseen[message.text] -= 1
            if message.at is not None:
                starts.append(as_utc(message.at))
            continue
        at = observed if message.at is None else as_utc(message.at)
        events.append((at, "a customer message the judged revision did not hold"))
    start = max(starts)
    deadline = start + window
    now, then = later.signals, judged.signals
    if now.recontact_at is not None and now.recontact_at != then.recontact_at:
        events.append((as_utc(now.recontact_at), "the customer recontacted"))
    if now.escalated is True and then.escalated is not True:
        events.append((observed, "escalated"))
    if now.customer_confirmed is False and then.customer_confirmed is not False:
        events.append((observed, "the customer did not confirm"))
    inside = sorted(event for event in events if event[0] <= deadline)
    if not inside:
        return None
    at, what = inside[0]
    hours = window.total_seconds() / 3600
    detail = (
        f"a later revision judged not_verified: {what} at {at.isoformat()}, within "
        f"{hours:g} h of {start.isoformat()}"
    )
    return RevocationReason(REASON_CAME_BACK, detail, at)


class Revoker:
    """Books the revocations due for one tenant's outcomes into its open billing periods.

    Parameters
    ----------
    engine
        A migrated ledger database (:func:`ledger.schema.migrate`).
    tenant
        The tenant whose outcomes, verdicts and periods are read and written.
    window_hours
        Reopen window after ``signals.closed_at`` (see :func:`revocation_reasons`).
    now
        The booking time of what it books (default: the clock at each booking).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tenant: str,
        window_hours: float = DEFAULT_WINDOW_HOURS,
        now: datetime | None = None,
    ) -> None:
        _check_window(window_hours)
        self.now = now
        self.engine = engine
        self.window_hours = float(window_hours)
        self.ledger = Ledger(engine, tenant=tenant)
        self.periods = Periods(engine, tenant=tenant)
        self.tenant = self.ledger.tenant

    def latest_verified(self, outcome_id: str) -> LatestVerified | None:
        """The outcome's most recently recorded ``verified`` verdict, or None."""
        from judge.verdict import Verdict

        with session(self.engine, readonly=True) as db:
            row = db.exec(
                select(VerdictRow)
                .where(
                    VerdictRow.tenant == self.tenant,
                    VerdictRow.outcome_id == outcome_id,
                    VerdictRow.decision == "verified",
                )
                .order_by(col(VerdictRow.pk).desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        assert row.pk is not None
        verdict = Verdict.model_validate(row.payload)
        return LatestVerified(row.pk, verdict, row.outcome_revision, as_utc(row.created_at))

    def _latest_received_at(self, outcome_id: str) -> datetime | None:
        with session(self.engine, readonly=True) as db:
            received = db.exec(
                select(OutcomeRow.received_at)
                .where(OutcomeRow.tenant == self.tenant, OutcomeRow.outcome_id == outcome_id)
                .order_by(col(OutcomeRow.revision).desc())
                .limit(1)
            ).first()
        return None if received is None else as_utc(received)

    def _book(
        self, outcome_id: str, latest: LatestVerified, reasons: list[RevocationReason]
    ) -> list[Booking]:
        return [
            self.periods.book_revocation(
                outcome_id,
                verdict_pk=latest.verdict_pk,
                reason=item.reason,
                detail=item.detail,
                at=item.occurred_at,
                now=self.now,
            )
            for item in reasons
        ]

    def check_outcome(self, outcome: Outcome) -> list[Booking]:
        """Book what ``outcome`` (a revision just recorded) revokes of its latest verified verdict.

        Returns one :class:`~ledger.periods.Booking` per reason (``created=False`` for one booked
        before); empty when there is no verified verdict or nothing to revoke.
        """
        latest = self.latest_verified(outcome.id)
        if latest is None:
            return []
        judged = self.ledger.outcome(outcome.id, revision=latest.outcome_revision)
        reasons = revocation_reasons(
            latest.verdict,
            outcome,
            judged=judged,
            observed_at=self._latest_received_at(outcome.id),
            window_hours=self.window_hours,
        )
        came_back = self._came_back(outcome.id, latest, judged)
        if came_back is not None:
            reasons.append(came_back)
        return self._book(outcome.id, latest, reasons)

    def _came_back(
        self, outcome_id: str, latest: LatestVerified, judged: Outcome | None
    ) -> RevocationReason | None:
        """:func:`came_back_reason` of the outcome's latest verdict, when it was made on a
        later revision than ``latest``'s."""
        from judge.verdict import Verdict

        if judged is None:
            return None
        with session(self.engine, readonly=True) as db:
            row = db.exec(
                select(VerdictRow.payload, VerdictRow.outcome_revision)
                .where(VerdictRow.tenant == self.tenant, VerdictRow.outcome_id == outcome_id)
                .order_by(col(VerdictRow.pk).desc())
                .limit(1)
            ).first()
            if row is None or row[1] <= latest.outcome_revision:
                return None
            received = dict(
                db.exec(
                    select(OutcomeRow.revision, OutcomeRow.received_at).where(
                        OutcomeRow.tenant == self.tenant,
                        OutcomeRow.outcome_id == outcome_id,
                        col(OutcomeRow.revision).in_([latest.outcome_revision, row[1]]),
                    )
                ).all()
            )
        later = self.ledger.outcome(outcome_id, revision=row[1])
        if later is None:
            return None
        return came_back_reason(
            Verdict.model_validate(row[0]),
            later,
            judged,
            judged_received_at=received[latest.outcome_revision],
            later_received_at=received[row[1]],
            window_hours=self.window_hours,
        )

    def check_label(self, outcome_id: str, label: Label) -> list[Booking]:
        """Book a ``human_overturn`` when ``label`` says the outcome was not resolved."""
        if label.resolved:
            return []
        latest = self.latest_verified(outcome_id)
        if latest is None:
            return []
        at = as_utc(label.at) if label.at is not None else datetime.now(UTC)
        who = f" by {label.by}" if label.by else ""
        detail = f"human label resolved=false{who} at {at.isoformat()}"
        reason = RevocationReason(REASON_HUMAN_OVERTURN, detail, at)
        return self._book(outcome_id, latest, [reason])

    def scan(self) -> list[Booking]:
        """Re-check every outcome with a verified verdict: its latest revision and later labels."""
        bookings: list[Booking] = []
        for outcome_id in self._verified_outcome_ids():
            latest = self.latest_verified(outcome_id)
            outcome = self.ledger.outcome(outcome_id)
            if latest is None or outcome is None:
                continue
            bookings.extend(self.check_outcome(outcome))
            for stored in self.ledger.iter_labels(outcome_id=outcome_id, human_only=True):
                if stored.source == EMBEDDED_LABEL_SOURCE or stored.label.resolved:
                    continue  # embedded labels are compared revision to revision above
                if as_utc(stored.created_at) >= latest.created_at:
                    bookings.extend(self.check_label(outcome_id, stored.label))
        return bookings

    def _verified_outcome_ids(self) -> Iterator[str]:
        with session(self.engine, readonly=True) as db:
            ids = db.exec(
                select(VerdictRow.outcome_id)
                .where(VerdictRow.tenant == self.tenant, VerdictRow.decision == "verified")
                .distinct()
                .order_by(col(VerdictRow.outcome_id))
            ).all()
        yield from ids


def scan_revocations(
    engine: Engine, *, tenant: str, window_hours: float = DEFAULT_WINDOW_HOURS
) -> list[Booking]:
    """Book every revocation due for ``tenant``; what ``judge revocations scan`` runs.

    Each outcome's latest revision is checked against its latest verified verdict, and labels
    recorded after that verdict are checked too. Idempotent: a second scan returns the same
    bookings with ``created=False``.
    """
    return Revoker(engine, tenant=tenant, window_hours=window_hours).scan()


__all__ = [
    "CSAT_REVOKE_AT",
    "DEFAULT_WINDOW_HOURS",
    "LatestVerified",
    "RevocationReason",
    "Revoker",
    "came_back_reason",
    "revocation_reasons",
    "scan_revocations",
]

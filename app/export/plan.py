"""Which events a billing system must receive so that its total equals the meter (pure).

The verified-outcomes meter is a list of signed entries (:mod:`ledger.bookings`): +1 when an
outcome counts, -1 when a count is taken back (a revocation, or a newer verdict replacing one
in a final window). A provisional +1 replaced while its window is open is deleted. Each entry
is sent once, under a key that names it:

- a +1 entry: a usage event of value 1 (key ``{tenant}:{entry}``);
- a -1 entry: a correction of the usage event it takes back (same outcome and verdict, else the
  outcome's latest uncorrected usage event);
- a usage event whose entry no longer exists: a correction (key ``{tenant}:{entry}:retracted``).

A correction is a cancel of the usage event where the target has one and its window is open
(Stripe: within 24 hours of receiving it), else a negative event under its own key. Events
recorded ``pending`` by a run that stopped are sent again with the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.meter_exports import ExportedEvent, MeterEntry

__all__ = ["Action", "plan_export"]


@dataclass(frozen=True, slots=True)
class Action:
    """One event to send: ``kind`` usage, negative or cancel; ``value`` +1 or -1."""

    kind: str
    key: str
    entry_pk: int
    outcome_id: str
    value: int
    corrects: str | None
    entry: MeterEntry | None

    def as_exported(self) -> ExportedEvent:
        return ExportedEvent(
            key=self.key,
            kind=self.kind,
            entry_pk=self.entry_pk,
            outcome_id=self.outcome_id,
            value=self.value,
            corrects=self.corrects,
            status="pending",
            sent_at=None,
        )


def plan_export(
    entries: Sequence[MeterEntry],
    exported: Sequence[ExportedEvent],
    *,
    tenant: str,
    now: datetime,
    cancel_window: timedelta | None,
) -> list[Action]:
    """The events to send now, in the order to send them (usage before its corrections).

    ``cancel_window`` is how long after the target received a usage event it can still be
    cancelled (None: the target cannot cancel; corrections are negative events).
    """
    sent = {e.key: e for e in exported}
    actions: list[Action] = [
        Action(e.kind, e.key, e.entry_pk, e.outcome_id, e.value, e.corrects, None)
        for e in exported
        if e.status == "pending"
    ]
    corrected = {e.corrects for e in exported if e.corrects is not None}
    # Usage events that may still be taken back, per outcome, oldest first.
    open_usage: dict[str, list[tuple[str, int, datetime | None]]] = {}
    for e in exported:
        if e.kind == "usage" and e.key not in corrected:
            open_usage.setdefault(e.outcome_id, []).append((e.key, e.entry_pk, e.sent_at or now))
    entry_pks = {entry.pk for entry in entries}
    verdict_of = {entry.pk: entry.verdict_pk for entry in entries}

    def correction(key: str, entry_pk: int, outcome: str, entry: MeterEntry | None) -> None:
        usage = open_usage.get(outcome) or []
        if not usage:
            return  # nothing of this outcome was exported: nothing to take back
        chosen = next(
            (u for u in usage if entry is not None and verdict_of.get(u[1]) == entry.verdict_pk),
            usage[-1],
        )
        usage.remove(chosen)
        usage_key, _, received = chosen
        cancel = (
            cancel_window is not None and received is not None and now - received < cancel_window
        )
        actions.append(
            Action(
                "cancel" if cancel else "negative",
                key,
                entry_pk,
                outcome,
                -1,
                usage_key,
                entry,
            )
        )

    for entry in entries:
        key = f"{tenant}:{entry.pk}"
        if key in sent:
            continue
        if entry.delta > 0:
            actions.append(Action("usage", key, entry.pk, entry.outcome_id, 1, None, entry))
            open_usage.setdefault(entry.outcome_id, []).append((key, entry.pk, now))
        else:
            correction(key, entry.pk, entry.outcome_id, entry)
    for e in exported:
        retract_key = f"{e.key}:retracted"
        still_open = any(u[0] == e.key for u in open_usage.get(e.outcome_id, []))
        if e.kind == "usage" and e.entry_pk not in entry_pks and still_open:
            _retract(actions, open_usage, e, retract_key, now, cancel_window)
    return actions


def _retract(
    actions: list[Action],
    open_usage: dict[str, list[tuple[str, int, datetime | None]]],
    usage: ExportedEvent,
    key: str,
    now: datetime,
    cancel_window: timedelta | None,
) -> None:
    open_usage[usage.outcome_id] = [u for u in open_usage[usage.outcome_id] if u[0] != usage.key]
    received = usage.sent_at or now
    cancel = cancel_window is not None and now - received < cancel_window
    actions.append(
        Action(
            "cancel" if cancel else "negative",
            key,
            usage.entry_pk,
            usage.outcome_id,
            -1,
            usage.key,
            None,
        )
    )

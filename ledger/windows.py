"""Verification windows: when a verdict stops being provisional and becomes final (pure).

An outcome is ``provisional`` until its verification window (``window_hours``, 72 h by default,
configurable per rubric as ``window_hours``) plus a grace period (``grace_hours``) has passed,
then ``final``. The window starts at the outcome's *anchor*:

1. the last timed customer message (the customer had that long to come back);
2. else ``signals.closed_at``;
3. else the last timed message of any role.

The grace period (:data:`DEFAULT_GRACE_HOURS`, 24 h) covers signals that arrive late: a reopen or
CSAT survey recorded by the helpdesk a few hours after the window closed still lands while the
outcome is provisional instead of forcing a revision of a final figure. An outcome without any
timestamp stays provisional: nothing says its window has passed.

Naive datetimes (``now`` and the outcome's times) are taken to be UTC, as everywhere in the
ledger. Nothing here reads the clock: the caller passes ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from judge.models import Outcome, as_utc

WindowState = Literal["provisional", "final"]
AnchorSource = Literal["last_customer_message", "closed_at", "last_message"]

#: Default verification window, hours after the anchor (DESIGN.md: 72 h).
DEFAULT_WINDOW_HOURS = 72.0
#: Default grace period after the window, hours: one day for late-arriving signals.
DEFAULT_GRACE_HOURS = 24.0


@dataclass(frozen=True)
class WindowStatus:
    """Whether an outcome's verdict is final as of some moment (see :func:`verification_status`).

    Attributes
    ----------
    status
        ``"provisional"`` or ``"final"``.
    final_at
        When the outcome becomes (or became) final, UTC: anchor + window + grace; None when the
        outcome has no timestamp to anchor the window.
    reason
        One sentence saying which time anchored the window and why the status is what it is.
    anchor
        The start of the window (UTC), or None.
    anchor_source
        ``"last_customer_message"``, ``"closed_at"``, ``"last_message"`` or None.
    """

    status: WindowState
    final_at: datetime | None
    reason: str
    anchor: datetime | None = None
    anchor_source: AnchorSource | None = None

    @property
    def is_final(self) -> bool:
        return self.status == "final"


def _hours(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of hours, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of hours {bound}, got {value!r}")
    return number


def check_hours(*, window_hours: float, grace_hours: float) -> tuple[float, float]:
    """Validate a window and a grace period; return them as floats.

    Raises
    ------
    ValueError
        ``window_hours`` is not a finite number ``> 0`` or ``grace_hours`` not a finite number
        ``>= 0``; the message starts with the argument's name.

    >>> check_hours(window_hours=72, grace_hours=0)
    (72.0, 0.0)
    """
    return (
        _hours("window_hours", window_hours, positive=True),
        _hours("grace_hours", grace_hours, positive=False),
    )


def window_anchor(outcome: Outcome) -> tuple[datetime, AnchorSource] | None:
    """The time the verification window starts from, and which time it is (UTC), or None.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="hi", at="2026-03-01T10:00:00Z"),
    ...     Message(role="agent", text="done", at="2026-03-01T10:05:00Z")])
    >>> at, source = window_anchor(o)
    >>> at.isoformat(), source
    ('2026-03-01T10:00:00+00:00', 'last_customer_message')
    """
    customer = [as_utc(m.at) for m in outcome.conversation if m.role == "customer" and m.at]
    if customer:
        return max(customer), "last_customer_message"
    if outcome.signals.closed_at is not None:
        return as_utc(outcome.signals.closed_at), "closed_at"
    timed = [as_utc(m.at) for m in outcome.conversation if m.at is not None]
    if timed:
        return max(timed), "last_message"
    return None


_SOURCE_TEXT: dict[AnchorSource, str] = {
    "last_customer_message": "the last customer message",
    "closed_at": "signals.closed_at (no timed customer message)",
    "last_message": "the last timed message (no timed customer message, no closed_at)",
}


def verification_status(
    outcome: Outcome,
    *,
    window_hours: float = DEFAULT_WINDOW_HOURS,
    grace_hours: float = DEFAULT_GRACE_HOURS,
    now: datetime,
) -> WindowStatus:
    """Whether ``outcome`` is ``provisional`` or ``final`` as of ``now``.

    Final from ``anchor + window_hours + grace_hours`` on (inclusive: exactly at that moment the
    outcome is final); see the module docstring for the anchor.

    Parameters
    ----------
    outcome
        The outcome (its conversation times and ``signals.closed_at`` are read).
    window_hours
        Verification window in hours (``> 0``), e.g. the rubric's ``window_hours``.
    grace_hours
        Grace period after the window in hours (``>= 0``).
    now
        The moment of evaluation; naive means UTC.

    Returns
    -------
    WindowStatus

    Raises
    ------
    ValueError
        ``window_hours`` is not ``> 0``, ``grace_hours`` is negative, either is not finite, or
        ``now`` is not a datetime; the message names the argument.

    Examples
    --------
    >>> from datetime import datetime
    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="hi", at="2026-03-01T10:00:00Z")])
    >>> s = verification_status(o, now=datetime(2026, 3, 4, 10))
    >>> s.status, s.final_at.isoformat()
    ('provisional', '2026-03-05T10:00:00+00:00')
    >>> verification_status(o, now=datetime(2026, 3, 5, 10)).status
    'final'
    >>> verification_status(o, window_hours=24, grace_hours=0, now=datetime(2026, 3, 2, 10)).status
    'final'
    """
    window, grace = check_hours(window_hours=window_hours, grace_hours=grace_hours)
    if not isinstance(now, datetime):
        raise ValueError(f"now must be a datetime, got {type(now).__name__}: {now!r}")
    moment = as_utc(now)
    anchored = window_anchor(outcome)
    if anchored is None:
        return WindowStatus(
            status="provisional",
            final_at=None,
            reason=(
                "no timestamp (no timed message, no closed_at): the verification window cannot "
                "be placed, so the outcome stays provisional"
            ),
        )
    anchor, source = anchored
    final_at = anchor + timedelta(hours=window + grace)
    span = f"{window:g} h window + {grace:g} h grace after {_SOURCE_TEXT[source]}"
    if moment >= final_at:
        status: WindowState = "final"
        reason = f"final since {final_at.isoformat()}: {span} ({anchor.isoformat()})"
    else:
        status = "provisional"
        reason = f"provisional until {final_at.isoformat()}: {span} ({anchor.isoformat()})"
    return WindowStatus(
        status=status, final_at=final_at, reason=reason, anchor=anchor, anchor_source=source
    )


__all__ = [
    "DEFAULT_GRACE_HOURS",
    "DEFAULT_WINDOW_HOURS",
    "AnchorSource",
    "WindowState",
    "WindowStatus",
    "check_hours",
    "verification_status",
    "window_anchor",
]

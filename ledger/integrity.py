"""Integrity checks the ledger applies before it writes anything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from judge.models import Outcome, as_utc

__all__ = ["DEFAULT_FUTURE_TOLERANCE", "FutureTimestampError", "check_timestamps"]

#: How far ahead of the ledger's clock an outcome's timestamps may be (clock skew between systems).
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


class FutureTimestampError(ValueError):
    """An outcome carries a timestamp later than now plus the tolerance for clock skew."""


def _timestamps(outcome: Outcome) -> Iterator[tuple[str, datetime | None]]:
    for i, message in enumerate(outcome.conversation):
        yield f"conversation[{i}].at", message.at
    for name in ("closed_at", "reopened_at", "recontact_at"):
        yield f"signals.{name}", getattr(outcome.signals, name)
    for i, touch in enumerate(outcome.touches):
        yield f"touches[{i}].at", touch.at
    if outcome.label is not None:
        yield "label.at", outcome.label.at


def check_timestamps(
    outcome: Outcome, *, now: datetime, tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
) -> None:
    """Refuse an outcome any of whose timestamps lies more than ``tolerance`` after ``now``.

    Checked: every message's ``at``, the signals ``closed_at``, ``reopened_at`` and
    ``recontact_at``, every touch's ``at`` and the label's ``at``. Naive timestamps are UTC.

    Parameters
    ----------
    outcome
        The outcome to check.
    now
        The current time (naive means UTC).
    tolerance
        Allowed clock skew; must not be negative.

    Raises
    ------
    FutureTimestampError
        Naming the outcome id, the field path (e.g. ``conversation[2].at``) and the fix.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> ticket = Outcome(id="T-9", kind="support_ticket", conversation=[
    ...     {"role": "customer", "text": "hi", "at": "2026-03-01T10:00:00Z"}])
    >>> check_timestamps(ticket, now=datetime(2026, 3, 1, 9, 58, tzinfo=UTC))  # 2 min skew: ok
    >>> check_timestamps(ticket, now=datetime(2026, 3, 1, 9, 0, tzinfo=UTC))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ledger.integrity.FutureTimestampError: outcome 'T-9': conversation[0].at is ... after ...
    """
    if not isinstance(tolerance, timedelta) or tolerance < timedelta(0):
        raise ValueError(f"tolerance must be a timedelta >= 0, got {tolerance!r}")
    now = as_utc(now)
    limit = now + tolerance
    for path, moment in _timestamps(outcome):
        if moment is None:
            continue
        moment = as_utc(moment)
        if moment > limit:
            raise FutureTimestampError(
                f"outcome {outcome.id!r}: {path} is {moment.isoformat()}, {moment - now} after "
                f"now ({now.isoformat()}), beyond the {tolerance} allowed for clock skew; fix the "
                "timestamp (or its time zone: a timestamp without one is read as UTC) and send "
                "the outcome again"
            )

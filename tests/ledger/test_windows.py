"""Verification windows: provisional until window + grace after the anchor, then final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from judge.models import Outcome
from ledger.windows import DEFAULT_GRACE_HOURS, verification_status, window_anchor


def outcome(conversation: list[dict[str, Any]], **signals: Any) -> Outcome:
    return Outcome.model_validate(
        {"id": "T-1", "kind": "support_ticket", "conversation": conversation, "signals": signals}
    )


CUSTOMER_AT = datetime(2026, 3, 1, 10, tzinfo=UTC)
TICKET = outcome(
    [
        {"role": "customer", "text": "broken", "at": "2026-03-01T09:00:00Z"},
        {"role": "agent", "text": "refunded", "at": "2026-03-01T09:30:00Z"},
        {"role": "customer", "text": "thanks", "at": "2026-03-01T10:00:00Z"},
        {"role": "agent", "text": "bye", "at": "2026-03-01T10:01:00Z"},
    ],
    closed_at="2026-03-01T11:00:00Z",
)


def test_default_is_72h_window_plus_24h_grace_after_last_customer_message() -> None:
    assert DEFAULT_GRACE_HOURS == 24
    boundary = CUSTOMER_AT + timedelta(hours=72 + 24)
    before = verification_status(TICKET, now=boundary - timedelta(microseconds=1))
    assert before.status == "provisional" and before.final_at == boundary
    assert "last customer message" in before.reason and "provisional until" in before.reason
    at = verification_status(TICKET, now=boundary)  # exactly at the boundary: final
    assert at.status == "final" and at.is_final and at.final_at == boundary
    assert at.anchor == CUSTOMER_AT and at.anchor_source == "last_customer_message"
    # inside the window itself (before the grace period) it is of course provisional too
    assert verification_status(TICKET, now=CUSTOMER_AT + timedelta(hours=80)).status == (
        "provisional"
    )


def test_window_and_grace_are_configurable() -> None:
    boundary = CUSTOMER_AT + timedelta(hours=48)
    s = verification_status(TICKET, window_hours=48, grace_hours=0, now=boundary)
    assert s.status == "final" and s.final_at == boundary
    early = boundary - timedelta(seconds=1)
    s = verification_status(TICKET, window_hours=48, grace_hours=0, now=early)
    assert s.status == "provisional"
    s = verification_status(TICKET, window_hours=0.5, grace_hours=0.25, now=CUSTOMER_AT)
    assert s.final_at == CUSTOMER_AT + timedelta(minutes=45)


def test_naive_and_aware_times_compare_as_utc() -> None:
    boundary = CUSTOMER_AT + timedelta(hours=96)
    naive_now = boundary.replace(tzinfo=None)
    assert verification_status(TICKET, now=naive_now).status == "final"
    cet = timezone(timedelta(hours=1))
    # the same instant written in UTC+1, one microsecond early: still provisional
    local = (boundary - timedelta(microseconds=1)).astimezone(cet)
    assert verification_status(TICKET, now=local).status == "provisional"
    assert verification_status(TICKET, now=boundary.astimezone(cet)).status == "final"
    naive_ticket = outcome([{"role": "customer", "text": "x", "at": "2026-03-01T10:00:00"}])
    s = verification_status(naive_ticket, now=boundary)
    assert s.status == "final" and s.final_at == boundary and s.final_at.tzinfo is not None


def test_falls_back_to_closed_at_then_last_message() -> None:
    untimed_customer = [
        {"role": "customer", "text": "broken"},
        {"role": "agent", "text": "refunded", "at": "2026-03-01T09:30:00Z"},
    ]
    closed = outcome(untimed_customer, closed_at="2026-03-02T00:00:00Z")
    s = verification_status(closed, now=CUSTOMER_AT)
    assert s.anchor_source == "closed_at" and "closed_at" in s.reason
    assert s.final_at == datetime(2026, 3, 6, tzinfo=UTC)
    last = verification_status(outcome(untimed_customer), now=CUSTOMER_AT)
    assert last.anchor_source == "last_message" and "last timed message" in last.reason
    assert last.final_at == datetime(2026, 3, 5, 9, 30, tzinfo=UTC)


def test_no_timestamp_stays_provisional_forever() -> None:
    bare = outcome([{"role": "customer", "text": "hi"}, {"role": "agent", "text": "done"}])
    assert window_anchor(bare) is None
    s = verification_status(bare, now=datetime(2999, 1, 1, tzinfo=UTC))
    assert s.status == "provisional" and s.final_at is None and s.anchor is None
    assert "no timestamp" in s.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_hours": 0}, "window_hours must"),
        ({"window_hours": -1}, "window_hours must"),
        ({"window_hours": float("nan")}, "window_hours must"),
        ({"grace_hours": -0.5}, "grace_hours must"),
        ({"grace_hours": float("inf")}, "grace_hours must"),
        ({"grace_hours": True}, "grace_hours must"),
        ({"now": "2026-03-01"}, "now must be a datetime"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"now": CUSTOMER_AT} | kwargs
    with pytest.raises(ValueError, match=message):
        verification_status(TICKET, **args)

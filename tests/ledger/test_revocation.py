"""Revocations from reopens, late low CSAT and human overturns (ledger.revocation, CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from judge.models import Label, Outcome
from ledger.db import make_engine
from ledger.periods import Periods, month_period
from ledger.revocation import Revoker, revocation_reasons, scan_revocations
from ledger.schema import migrate
from ledger.store import Ledger
from ledger.tables import utcnow
from tests.ledger.conftest import run, ticket, verdict_for

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
CLOSED = datetime(2026, 3, 1, 12, tzinfo=UTC)
REOPENED = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 21 h after close
SEEN = datetime(2026, 3, 3, 8, tzinfo=UTC)


def _later(outcome: Outcome, **signals: object) -> Outcome:
    data = outcome.model_dump(mode="json")
    data["signals"] = {**data["signals"], "closed_at": CLOSED.isoformat(), **signals}
    return Outcome.model_validate(data)


# -- pure reasons ------------------------------------------------------------------------------


def test_a_reopen_within_the_window_revokes_at_the_reopen() -> None:
    judged = ticket()
    later = _later(judged, reopened_at=REOPENED.isoformat())
    [reason] = revocation_reasons(verdict_for(judged), later, judged=judged)
    assert (reason.reason, reason.occurred_at) == ("reopened", REOPENED)
    assert "21.0 h after close" in reason.detail


def test_a_reopen_outside_the_window_does_not_revoke() -> None:
    judged = ticket()
    late = _later(judged, reopened_at=(CLOSED + timedelta(hours=73)).isoformat())
    assert revocation_reasons(verdict_for(judged), late, judged=judged) == []
    assert revocation_reasons(verdict_for(judged), late, judged=judged, window_hours=74) != []
    # exactly at the window's end still revokes (inclusive)
    edge = _later(judged, reopened_at=(CLOSED + timedelta(hours=72)).isoformat())
    assert [r.reason for r in revocation_reasons(verdict_for(judged), edge)] == ["reopened"]


def test_a_late_low_csat_revokes_at_the_time_it_was_received() -> None:
    judged = ticket()
    for csat, expected in ((2, ["csat_low"]), (3, ["csat_low"]), (4, [])):
        later = _later(judged, csat=csat)
        reasons = revocation_reasons(verdict_for(judged), later, judged=judged, observed_at=SEEN)
        assert [r.reason for r in reasons] == expected
        if expected:
            assert reasons[0].occurred_at == SEEN
            assert f"CSAT {csat}" in reasons[0].detail


def test_a_csat_already_known_when_judged_is_not_news() -> None:
    judged = _later(ticket(), csat=2)
    again = _later(judged, csat=1)
    assert revocation_reasons(verdict_for(judged), again, judged=judged, observed_at=SEEN) == []


def test_a_human_label_saying_unresolved_overturns() -> None:
    outcome = ticket()
    label = Label(resolved=False, by="qa-lead", at=SEEN)
    [reason] = revocation_reasons(verdict_for(outcome), outcome, judged=outcome, label=label)
    assert (reason.reason, reason.occurred_at) == ("human_overturn", SEEN)
    assert "qa-lead" in reason.detail
    agreeing = Label(resolved=True, by="qa-lead", at=SEEN)
    assert revocation_reasons(verdict_for(outcome), outcome, label=agreeing, judged=outcome) == []


def test_all_reasons_together_and_none_for_a_verdict_that_was_not_verified() -> None:
    judged = ticket()
    later = _later(judged, csat=2, reopened_at=REOPENED.isoformat())
    label = Label(resolved=False, at=SEEN)
    reasons = revocation_reasons(
        verdict_for(judged), later, judged=judged, label=label, observed_at=SEEN
    )
    assert [r.reason for r in reasons] == ["reopened", "csat_low", "human_overturn"]
    for decision in ("not_verified", "abstain"):
        refused = verdict_for(judged, decision=decision, tier=None)
        assert revocation_reasons(refused, later, judged=judged, label=label) == []


def test_window_hours_must_be_positive() -> None:
    outcome = ticket()
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="window_hours must be a positive"):
            revocation_reasons(verdict_for(outcome), outcome, window_hours=bad)


# -- end to end on SQLite and PostgreSQL --------------------------------------------------------


def _ingest_then_sour(engine: Engine) -> tuple[Ledger, int]:
    """A verified outcome, then a later revision with CSAT 2 and a reopen 21 h after close."""
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket()
    verdict_pk = ledger.record_result(outcome, verdict_for(outcome)).verdict_pk
    ref = ledger.record_outcome(_later(outcome, csat=2, reopened_at=REOPENED.isoformat()))
    assert ref.revision == 2
    return ledger, verdict_pk


def test_scan_books_each_revocation_once_in_the_period_of_the_event(engine: Engine) -> None:
    _, verdict_pk = _ingest_then_sour(engine)
    before = utcnow()
    first = scan_revocations(engine, tenant="acme")
    assert all(b.created for b in first)
    booked = {b.revocation.reason: b.revocation for b in first}
    assert set(booked) == {"reopened", "csat_low"}
    assert {r.verdict_pk for r in booked.values()} == {verdict_pk}
    reopen = booked["reopened"]
    assert reopen.occurred_at == REOPENED
    assert reopen.booked_period_start == MARCH
    # the CSAT carries no time of its own: it is booked when the revision was received (now)
    csat = booked["csat_low"]
    assert before - timedelta(minutes=5) <= csat.occurred_at <= utcnow()
    assert csat.booked_period_start == month_period(csat.occurred_at)[0]

    again = scan_revocations(engine, tenant="acme")
    assert [b.created for b in again] == [False, False]
    assert len(Periods(engine, tenant="acme").revocations()) == 2
    assert Periods(engine, tenant="acme").revocations(period_start=MARCH) == [reopen]


def test_an_event_in_a_closed_period_is_booked_in_the_next_open_one(engine: Engine) -> None:
    periods = Periods(engine, tenant="acme")
    periods.close_period(MARCH)
    _ingest_then_sour(engine)
    scan_revocations(engine, tenant="acme")
    assert periods.revocations(period_start=MARCH) == []
    [reopen] = periods.revocations(reason="reopened")
    assert (reopen.booked_period_start, reopen.occurred_at) == (APRIL, REOPENED)


def test_a_not_verified_verdict_is_never_revoked(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket()
    ledger.record_result(outcome, verdict_for(outcome, decision="not_verified", tier=None))
    ledger.record_outcome(_later(outcome, csat=1, reopened_at=REOPENED.isoformat()))
    ledger.record_label(outcome.id, Label(resolved=False, at=SEEN))
    assert scan_revocations(engine, tenant="acme") == []
    assert Periods(engine, tenant="acme").revocations() == []


def test_a_later_human_label_is_booked_as_an_overturn(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket()
    verdict_pk = ledger.record_result(outcome, verdict_for(outcome)).verdict_pk
    assert scan_revocations(engine, tenant="acme") == []  # nothing happened yet
    label = Label(resolved=False, by="qa-lead", at=SEEN)
    ledger.record_label(outcome.id, label)
    revoker = Revoker(engine, tenant="acme")
    [booking] = revoker.check_label(outcome.id, label)
    assert booking.created
    assert (booking.revocation.reason, booking.revocation.verdict_pk) == (
        "human_overturn",
        verdict_pk,
    )
    assert booking.revocation.booked_period_start == MARCH
    assert [b.created for b in scan_revocations(engine, tenant="acme")] == [False]
    assert revoker.check_label(outcome.id, Label(resolved=True, at=SEEN)) == []


def test_check_outcome_uses_the_latest_verified_verdict(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket()
    ledger.record_result(outcome, verdict_for(outcome))
    second = ledger.record_result(outcome, verdict_for(outcome, confidence=0.8)).verdict_pk
    later = _later(outcome, reopened_at=REOPENED.isoformat())
    ledger.record_outcome(later)
    [booking] = Revoker(engine, tenant="acme").check_outcome(later)
    assert booking.revocation.verdict_pk == second
    other = Revoker(engine, tenant="other")  # tenants are separate
    assert other.check_outcome(later) == []


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_scan_list_and_periods(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        migrate(engine)
        _ingest_then_sour(engine)
    finally:
        engine.dispose()

    # close March first: the reopen (2 March) then lands in April
    closed = run("periods", "close", "2026-03", "--db", ledger_url, "--json")
    assert closed.exit_code == 0, closed.output
    assert json.loads(closed.stdout)["status"] == "closed"

    scanned = run("revocations", "scan", "--db", ledger_url, "--json")
    assert scanned.exit_code == 0, scanned.output
    data = json.loads(scanned.stdout)
    assert data["tenant"] == "acme" and data["already_booked"] == 0
    by_reason = {item["reason"]: item for item in data["booked"]}
    assert set(by_reason) == {"reopened", "csat_low"}
    assert by_reason["reopened"]["period"] == "2026-04"
    assert by_reason["reopened"]["occurred_at"] == REOPENED.isoformat()

    rescan = json.loads(run("revocations", "scan", "--db", ledger_url, "--json").stdout)
    assert (rescan["booked"], rescan["already_booked"]) == ([], 2)

    listed = run("revocations", "list", "--db", ledger_url, "--period", "2026-04", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["reason"] for r in json.loads(listed.stdout)["revocations"]] == ["reopened"]
    march = json.loads(
        run("revocations", "list", "--db", ledger_url, "--period", "2026-03", "--json").stdout
    )
    assert march["revocations"] == []

    plain = run("revocations", "list", "--db", ledger_url)
    assert plain.exit_code == 0 and "reopened" in plain.stdout

    periods = json.loads(run("periods", "list", "--db", ledger_url, "--json").stdout)
    status = {p["period"]: p["status"] for p in periods["periods"]}
    assert status["2026-03"] == "closed" and status["2026-04"] == "open"


def test_cli_errors_exit_2(ledger_url: str, tmp_path: Path) -> None:
    engine = make_engine(ledger_url)
    try:
        migrate(engine)
        _ingest_then_sour(engine)
    finally:
        engine.dispose()
    this_month = utcnow().strftime("%Y-%m")
    not_ended = run("periods", "close", this_month, "--db", ledger_url)
    assert not_ended.exit_code == 2
    assert "ends after now" in not_ended.stderr
    bad = run("revocations", "list", "--db", ledger_url, "--period", "March")
    assert bad.exit_code == 2 and "YYYY-MM" in bad.stderr
    assert run("periods", "close", "2026-13", "--db", ledger_url).exit_code == 2
    window = run("revocations", "scan", "--db", ledger_url, "--window-hours", "0")
    assert window.exit_code == 2
    missing = run("revocations", "scan", "--db", f"sqlite:///{tmp_path}/none.db")
    assert missing.exit_code == 2 and "file not found" in missing.stderr
    named = run("periods", "list", "--db", ledger_url, "--tenant", "acme")
    assert named.exit_code == 0 and "tenant acme: no billing periods yet" in named.stdout


# -- a later revision that shows the customer back ------------------------------------------------


def _billed(engine: Engine) -> int:
    from ledger.meters import verified_outcomes

    rows = verified_outcomes(
        engine, "acme", since=MARCH, until=utcnow() + timedelta(days=1), window="month"
    )
    return sum(int(row["value"]) for row in rows)


def _came_back(outcome: Outcome, at: str, **signals: object) -> Outcome:
    back = {"role": "customer", "text": "It is still broken. I need a human.", "at": at}
    data = outcome.model_dump(mode="json", exclude_none=True)
    data["conversation"].append(back)
    data["signals"] = {**data["signals"], **signals}
    return Outcome.model_validate(data)


def test_a_later_failure_inside_the_window_takes_back_a_count_already_final(
    engine: Engine,
) -> None:
    """Sent days after its last customer message, an outcome is final at once: its verified
    count froze at the first verdict. The help desk's later revision shows the customer back
    2 h after that message, and it is judged not_verified: the count is taken back by a
    revocation (a final figure is never rewritten), at the moment the customer came back."""
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket("T-BACK", label=None)  # its last customer message: 2026-03-01 10:00
    verified_pk = ledger.record_result(outcome, verdict_for(outcome)).verdict_pk
    assert _billed(engine) == 1

    later = _came_back(outcome, "2026-03-01T12:00:00Z", customer_confirmed=False)
    ledger.record_result(later, verdict_for(later, decision="not_verified", tier=None))
    assert _billed(engine) == 1  # the fact is frozen: only a revocation takes it back
    [booking] = scan_revocations(engine, tenant="acme")
    revocation = booking.revocation
    assert (revocation.reason, revocation.verdict_pk) == ("came_back", verified_pk)
    assert revocation.occurred_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert "within 72 h of 2026-03-01T10:00:00+00:00" in (revocation.detail or "")
    assert _billed(engine) == 0
    assert [b.created for b in scan_revocations(engine, tenant="acme")] == [False]


def test_a_backdated_first_revision_is_dated_by_the_help_desks_later_one(engine: Engine) -> None:
    """The submitter dated the customer's message a week early, so that the come-back looks
    outside the window; the help desk's later export dates the same message truly."""
    ledger = Ledger(engine, tenant="acme")
    truthful = ticket("T-DATED", label=None)
    backdated = _came_back(truthful, "2026-03-01T12:00:00Z").model_copy(
        update={"conversation": [m.model_copy(update={"at": m.at - timedelta(days=7)}) if m.at
                                 else m for m in truthful.conversation]}
    )  # fmt: skip
    verified_pk = ledger.record_result(backdated, verdict_for(backdated)).verdict_pk
    later = _came_back(truthful, "2026-03-01T12:00:00Z")
    ledger.record_result(later, verdict_for(later, decision="not_verified", tier=None))
    [booking] = scan_revocations(engine, tenant="acme")
    assert (booking.revocation.reason, booking.revocation.verdict_pk) == ("came_back", verified_pk)


def test_no_take_back_after_the_window_or_when_the_later_revision_is_verified(
    engine: Engine,
) -> None:
    ledger = Ledger(engine, tenant="acme")
    # The customer wrote again 98 h after the last message: a new matter, not a failure.
    late = ticket("T-LATE", label=None)
    ledger.record_result(late, verdict_for(late))
    again = _came_back(late, "2026-03-05T12:00:00Z")
    ledger.record_result(again, verdict_for(again, decision="not_verified", tier=None))
    # Back inside the window, but the later revision is still verified (a thank-you).
    thanked = ticket("T-THANKS", label=None)
    ledger.record_result(thanked, verdict_for(thanked))
    thanks = _came_back(thanked, "2026-03-01T12:00:00Z")
    ledger.record_result(thanks, verdict_for(thanks))
    # Judged not_verified on the same revision (another panel): nothing came back.
    same = ticket("T-SAME", label=None)
    ledger.record_result(same, verdict_for(same))
    ledger.record_result(same, verdict_for(same, decision="not_verified", tier=None))
    assert scan_revocations(engine, tenant="acme") == []
    assert _billed(engine) == 3

"""A final meter value never changes (SQLite and PostgreSQL).

The billing system reads "January: 12, final" and invoices 12. Nothing the vendor sends later
(a new outcome with January timestamps, a revision moving an outcome into January, a re-verified
outcome) and nothing the ledger learns later (a reopen, a human overturn) may change that row:
it is booked in the current open window as an adjustment, visible in the meter. A hypothesis
state machine drives random sequences of ingest, revise, verify, label, revoke, close and time
passing on a simulated clock and checks after every read that no row ever reported final has
changed, that the sum over all windows is the number of outcomes verified and not revoked, and
that the cost report counts the same verified outcomes as the meters (one way to count: a verdict
recorded after an outcome was final changes neither).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from sqlalchemy.engine import Engine

from judge.models import Label, Outcome
from ledger.meters import verified_outcomes
from ledger.periods import Periods, month_period
from ledger.revocation import Revoker
from ledger.store import Ledger
from tests.ledger.conftest import verdict_for

RUBRIC = "support-resolution@3f2a9c1"  # a version not shipped: the default 72 h window
#: A rubric with a 30-day window: its outcomes stay open to new verdicts long after their meter
#: window was published final, which is when a count must be withdrawn and booked again.
LONG = "long-window@1"
WINDOWS = {RUBRIC: 72.0, LONG: 30 * 24.0}
EVERYTHING = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
START = datetime(2026, 1, 3, 9, tzinfo=UTC)
#: The simulated clock stays well before the real one (the ledger refuses future timestamps).
LAST_MOMENT = datetime(2026, 10, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def outcome_at(outcome_id: str, anchor: datetime, *, tier_hint: str = "a") -> Outcome:
    return Outcome.model_validate(
        {
            "id": outcome_id,
            "kind": "support_ticket",
            "conversation": [
                # The customer's words stay; a revision moves their time and restates the
                # agent's (a revision that lost the customer's words is held for review).
                {"role": "customer", "text": "order broken", "at": _iso(anchor)},
                {"role": "agent", "author": "bot:fin", "text": f"refund issued ({tier_hint})"},
            ],
            "touches": [{"actor": "bot:fin", "kind": "ai"}],
            "agent": {"name": "fin", "version": "1", "model_path": "gpt-4o-mini"},
        }
    )


def meter(engine: Engine, tenant: str, now: datetime, window: str, dims: list[str]) -> list[Any]:
    return verified_outcomes(
        engine, tenant, since=EVERYTHING[0], until=EVERYTHING[1], window=window,  # type: ignore[arg-type]
        group_by=dims, now=now,
    )  # fmt: skip


# -- the scenario, step by step ------------------------------------------------------------


def test_a_closed_final_month_keeps_its_value_and_late_outcomes_are_booked_now(
    engine: Engine,
) -> None:
    ledger = Ledger(engine, tenant="acme")
    jan = [outcome_at(f"J-{i}", datetime(2026, 1, 10 + i, 12, tzinfo=UTC)) for i in range(12)]
    dec = outcome_at("D-1", datetime(2025, 12, 30, 12, tzinfo=UTC))
    ledger.record_results([(o, verdict_for(o, rubric=RUBRIC)) for o in [*jan, dec]],
                          now=datetime(2026, 1, 25, tzinfo=UTC))  # fmt: skip
    feb_10 = datetime(2026, 2, 10, tzinfo=UTC)
    months = {r["window_start"].month: r for r in meter(engine, "acme", feb_10, "month", [])}
    assert (months[1]["value"], months[1]["status"]) == (12, "final")
    assert (months[12]["value"], months[12]["status"]) == (1, "final")
    Periods(engine, tenant="acme").close_period(datetime(2026, 1, 1, tzinfo=UTC), now=feb_10)

    # A new outcome with January timestamps, verified the next day: booked on Feb 11.
    feb_11 = feb_10 + timedelta(days=1)
    late = outcome_at("J-late", datetime(2026, 1, 20, tzinfo=UTC))
    ledger.record_result(late, verdict_for(late, rubric=RUBRIC), now=feb_11)
    # The December outcome revised to January timestamps and verified again: it stays in
    # December (final); the revision is booked now as moved in and withdrawn from December.
    moved = outcome_at("D-1", datetime(2026, 1, 31, tzinfo=UTC), tier_hint="revised")
    ledger.record_result(moved, verdict_for(moved, rubric=RUBRIC, tier="assumed"), now=feb_11)

    rows = {r["window_start"].month: r for r in meter(engine, "acme", feb_11, "month", [])}
    assert (rows[1]["value"], rows[1]["status"], rows[1]["adjustments"]) == (12, "final", {})
    assert (rows[12]["value"], rows[12]["status"]) == (1, "final")  # the December row stays
    # J-late counts once, on Feb 11. D-1's own verification window ended on 2026-01-03
    # (anchor + 96 h), so its count is frozen: the re-verification changes nothing.
    feb = rows[2]
    assert (feb["value"], feb["status"], feb["adjustments"]) == (
        1,
        "provisional",
        {"late_arrival": 1},
    )
    assert sum(r["value"] for r in rows.values()) == 14

    days = meter(engine, "acme", feb_11, "day", [])
    feb_11_row = next(r for r in days if r["window_start"] == feb_11)
    assert feb_11_row["adjustments"] == {"late_arrival": 1}
    # The cost report says so too.
    from ledger.cost_report import cost_report, report_notes

    report = cost_report(engine, "acme", dims=[], now=feb_11)
    assert report.meter_adjustments == {"late_arrival": 1}
    assert any("late_arrival +1" in note for note in report_notes(report))


def test_a_provisional_outcome_moved_out_of_a_final_window_is_withdrawn_and_rebooked(
    engine: Engine,
) -> None:
    ledger = Ledger(engine, tenant="acme")
    # Anchored Mar 1, judged with a 30-day window: its fact stays open until Apr 1.
    o = outcome_at("L-1", datetime(2026, 3, 1, 12, tzinfo=UTC))
    long_window = {"long@1": 30 * 24.0}
    ledger.record_result(o, verdict_for(o, rubric="long@1"), windows=long_window,
                         now=datetime(2026, 3, 2, tzinfo=UTC))  # fmt: skip
    mar_10 = datetime(2026, 3, 10, tzinfo=UTC)
    [day] = [r for r in meter(engine, "acme", mar_10, "day", []) if r["value"]]
    assert day["window_start"] == datetime(2026, 3, 1, tzinfo=UTC)
    # Mar 1 ended more than 96 h ago, but L-1 is not final yet: the row is provisional ...
    assert day["status"] == "provisional"
    # ... and closed to new bookings. A revision moving L-1 to Mar 2 (also closed to bookings)
    # and a new tier: the Mar 1 count is withdrawn now and the outcome counted again now.
    revised = outcome_at("L-1", datetime(2026, 3, 2, 12, tzinfo=UTC), tier_hint="r")
    ledger.record_result(revised, verdict_for(revised, rubric="long@1", tier="assumed"),
                         windows=long_window, now=mar_10)  # fmt: skip
    rows = {r["window_start"].day: r for r in meter(engine, "acme", mar_10, "day", ["tier"])}
    assert rows[1]["value"] == 1 and rows[1]["group"] == {"tier": "confirmed"}
    assert 2 not in rows  # never booked into a window closed to bookings
    by_group = {
        r["group"]["tier"]: (r["value"], r["adjustments"])
        for r in meter(engine, "acme", mar_10, "day", ["tier"])
        if r["window_start"].day == 10
    }
    assert by_group == {"confirmed": (-1, {"withdrawn": -1}), "assumed": (1, {"moved": 1})}
    total = sum(r["value"] for r in meter(engine, "acme", mar_10, "month", []))
    assert total == 1


def test_a_revocation_of_a_final_count_is_booked_now(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    o = outcome_at("R-1", datetime(2026, 3, 1, 12, tzinfo=UTC))
    [recorded] = ledger.record_results([(o, verdict_for(o, rubric=RUBRIC))],
                                       now=datetime(2026, 3, 2, tzinfo=UTC))  # fmt: skip
    apr = datetime(2026, 4, 10, tzinfo=UTC)
    assert [r["status"] for r in meter(engine, "acme", apr, "month", [])] == ["final"]
    # An overturn dated March 20 (already final) is booked on April 10.
    label = Label.model_validate({"resolved": False, "by": "qa", "at": "2026-03-20T00:00:00Z"})
    [booking] = Revoker(engine, tenant="acme", now=apr).check_label("R-1", label)
    assert booking.revocation.booked_at == apr
    assert booking.revocation.verdict_pk == recorded.verdict_pk
    rows = {r["window_start"].month: r for r in meter(engine, "acme", apr, "month", [])}
    assert (rows[3]["value"], rows[3]["status"]) == (1, "final")
    assert (rows[4]["value"], rows[4]["adjustments"]) == (-1, {"human_overturn": -1})


# -- random sequences ----------------------------------------------------------------------

_tenants = count()


class MeterMachine(RuleBasedStateMachine):
    """Random histories of one tenant on a simulated clock; the engine is shared (one tenant per
    example keeps examples independent without migrating a database for each)."""

    engine: Engine
    steps: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.tenant = f"m{next(_tenants)}"
        self.now = START
        self.ledger = Ledger(self.engine, tenant=self.tenant)
        self.counted: dict[str, bool] = {}
        #: Whether the verdict that counts for each outcome is verified (revocations aside).
        self.decided: dict[str, bool] = {}
        self.frozen_at: dict[str, datetime] = {}
        self.anchors: dict[str, datetime] = {}
        self.final_rows: dict[tuple[Any, ...], tuple[int, dict[str, int]]] = {}

    @initialize()
    def start(self) -> None:
        """Every history starts with counts that later verdicts can reach only by adjustments:
        three outcomes under the 30-day rubric, counted, then published final by a read 5 days
        on (their own windows still open), so re-verifying them withdraws and moves."""
        self.ledger._ready()
        for n in range(3):
            self._verify(f"O-{n}", self.now - timedelta(hours=n + 1), "verified", "confirmed", LONG)
        self.now += timedelta(days=5)
        self._read_all()

    # -- what the vendor and the helpdesk do --------------------------------------------------

    def _outcome(self, oid: str, anchor: datetime, tier: str) -> Outcome:
        return outcome_at(oid, anchor, tier_hint=tier)

    def _verify(self, oid: str, anchor: datetime, decision: str, tier: str, rubric: str) -> None:
        outcome = self._outcome(oid, anchor, tier)
        verdict = verdict_for(outcome, rubric=rubric, decision=decision, tier=tier)
        self.ledger.record_result(outcome, verdict, now=self.now, windows=WINDOWS)
        self.anchors[oid] = anchor
        frozen = self.frozen_at.get(oid)
        if frozen is not None and self.now >= frozen:
            return  # the outcome's own window has passed: later verdicts change nothing
        self.frozen_at[oid] = anchor + timedelta(hours=WINDOWS[rubric] + 24)
        self.counted[oid] = decision == "verified"
        self.decided[oid] = decision == "verified"

    @rule(
        n=st.integers(0, 5),
        hours_ago=st.integers(0, 24 * 40),
        decision=st.sampled_from(["verified", "verified", "not_verified", "abstain"]),
        tier=st.sampled_from(["confirmed", "assumed", "assisted"]),
        rubric=st.sampled_from([RUBRIC, LONG]),
    )
    def ingest_or_revise_and_verify(
        self, n: int, hours_ago: int, decision: str, tier: str, rubric: str
    ) -> None:
        self.steps["ingest_or_revise_and_verify"] += 1
        self._verify(f"O-{n}", self.now - timedelta(hours=hours_ago), decision, tier, rubric)

    @precondition(lambda self: bool(self.anchors))
    @rule(
        data=st.data(),
        shift_hours=st.sampled_from([0, 0, 1, 30]),
        decision=st.sampled_from(["verified", "verified", "not_verified"]),
        tier=st.sampled_from(["confirmed", "assumed"]),
    )
    def reverify_a_known_outcome(
        self, data: st.DataObject, shift_hours: int, decision: str, tier: str
    ) -> None:
        self.steps["reverify_a_known_outcome"] += 1
        oid = data.draw(st.sampled_from(sorted(self.anchors)))
        anchor = min(self.now, self.anchors[oid] + timedelta(hours=shift_hours))
        self._verify(oid, anchor, decision, tier, LONG)

    @rule(n=st.integers(0, 5))
    def human_overturn(self, n: int) -> None:
        self.steps["human_overturn"] += 1
        oid = f"O-{n}"
        if oid not in self.anchors:
            return  # a label needs the outcome it is about (Ledger.record_label refuses others)
        label = Label.model_validate({"resolved": False, "by": "qa", "at": _iso(self.now)})
        self.ledger.record_label(oid, label)
        Revoker(self.engine, tenant=self.tenant, now=self.now).check_label(oid, label)
        self.counted[oid] = False

    @rule(n=st.integers(0, 5), hours_ago=st.integers(0, 24 * 60))
    def reopen_revocation_dated_in_the_past(self, n: int, hours_ago: int) -> None:
        self.steps["reopen_revocation_dated_in_the_past"] += 1
        oid = f"O-{n}"
        revoker = Revoker(self.engine, tenant=self.tenant, now=self.now)
        latest = revoker.latest_verified(oid)
        if latest is None:
            return
        at = max(START, self.now - timedelta(hours=hours_ago))
        Periods(self.engine, tenant=self.tenant).book_revocation(
            oid, verdict_pk=latest.verdict_pk, reason="reopened", at=at, now=self.now
        )
        self.counted[oid] = False

    @rule(months_back=st.integers(1, 3))
    def close_an_ended_month(self, months_back: int) -> None:
        self.steps["close_an_ended_month"] += 1
        start = month_period(self.now)[0]
        for _ in range(months_back):
            start = month_period(start - timedelta(days=1))[0]
        Periods(self.engine, tenant=self.tenant).close_period(start, now=self.now)

    @precondition(lambda self: self.now < LAST_MOMENT)
    @rule(hours=st.integers(1, 24 * 30))
    def time_passes(self, hours: int) -> None:
        self.steps["time_passes"] += 1
        self.now = min(LAST_MOMENT, self.now + timedelta(hours=hours))

    # -- what the billing system reads ------------------------------------------------------

    @rule()
    def read_the_meter(self) -> None:
        self.steps["read_the_meter"] += 1
        self._read_all()
        from ledger.cost_report import cost_report

        # The cost report's denominator is the meters' count: same verdicts, same freezing.
        report = cost_report(self.engine, self.tenant, dims=[], now=self.now)
        assert report.total.verified == sum(self.decided.values())

    def _read_all(self) -> None:
        """Read by day and by month, grouped and not: every row ever reported final is the same."""
        for window in ("day", "month"):
            for dims in ([], ["tier"]):
                rows = meter(self.engine, self.tenant, self.now, window, dims)
                self._check(window, dims, rows)

    def _check(self, window: str, dims: list[str], rows: list[Any]) -> None:
        seen = {
            (window, tuple(dims), r["window_start"], tuple(sorted(r["group"].items()))): r
            for r in rows
        }
        for key, (value, adjustments) in self.final_rows.items():
            if key[:2] != (window, tuple(dims)):
                continue
            row = seen.get(key)
            assert row is not None, f"final row {key} disappeared"
            assert (row["value"], row["adjustments"], row["status"]) == (
                value, adjustments, "final",
            ), f"final row {key} changed"  # fmt: skip
            self.steps["final rows re-read unchanged"] += 1
        for key, row in seen.items():
            if row["status"] == "final":
                self.final_rows.setdefault(key, (row["value"], row["adjustments"]))
        assert sum(r["value"] for r in rows) == sum(self.counted.values())


@pytest.mark.slow
def test_random_histories_never_change_a_final_row(engine: Engine) -> None:
    MeterMachine.engine = engine
    machine = MeterMachine.TestCase
    machine.settings = settings(
        max_examples=60,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine().runTest()
    stats: Counter[str] = Counter()
    with engine.connect() as conn:
        for reason, delta, n in conn.execute(
            sa.text("SELECT reason, delta, count(*) FROM meter_entries GROUP BY reason, delta")
        ):
            stats[f"{reason} ({'+' if delta > 0 else '-'}1)"] = n
    print("\nsteps:", dict(MeterMachine.steps), "\nmeter entries:", dict(sorted(stats.items())))
    # The histories did reach the cases that matter (late bookings and revocations).
    revoked = stats["reopened (-1)"] + stats["human_overturn (-1)"]
    assert stats["late_arrival (+1)"] > 0 and revoked > 0 and stats["withdrawn (-1)"] > 0


def test_migrating_across_0006_books_what_was_counted_before(ledger_url: str) -> None:
    """A ledger of 0005 (facts, a revocation) keeps its meter values after the upgrade."""
    from unittest import mock

    from ledger.db import make_engine
    from ledger.facts import FactSource, fact_values
    from ledger.schema import migrate
    from ledger.service_tables import OutcomeFactRow
    from ledger.tables import BillingPeriodRow, RevocationRow

    eng = make_engine(ledger_url)
    try:
        migrate(eng, revision="0005")
        outcomes = [outcome_at(f"P-{i}", datetime(2026, 3, 1 + i, tzinfo=UTC)) for i in range(3)]
        with (
            mock.patch("ledger.store.record_facts", lambda *a, **k: None),
            mock.patch("ledger.bookings.lock_clock", lambda *a, **k: None),
            # nor the review queue (0013): the code of the time wrote none of these
            mock.patch("ledger.store.refresh_review_rows", lambda *a, **k: 0),
            mock.patch("ledger.store.drop_review_rows", lambda *a, **k: None),
        ):
            recorded = Ledger(eng, tenant="acme").record_results(
                [(o, verdict_for(o, rubric=RUBRIC)) for o in outcomes]
            )
        now = datetime(2026, 3, 20, tzinfo=UTC)
        facts = [
            fact_values("acme", FactSource(o, 1, r.verdict_pk, "verified", "confirmed", RUBRIC,
                                           now), now=now, window_hours=72.0)
            for o, r in zip(outcomes, recorded, strict=True)
        ]  # fmt: skip
        columns = {c.name for c in OutcomeFactRow.__table__.columns} - {  # type: ignore[attr-defined]
            "booked_at", "booked_entry_pk", "booking_reason", "pk",
        }  # fmt: skip
        march = datetime(2026, 3, 1, tzinfo=UTC)
        with eng.begin() as conn:
            conn.execute(
                sa.insert(OutcomeFactRow.__table__),  # type: ignore[attr-defined]
                [{k: v for k, v in f.items() if k in columns} for f in facts],
            )
            period = BillingPeriodRow.__table__  # type: ignore[attr-defined]
            conn.execute(sa.insert(period).values(tenant="acme", start=march,
                         end=datetime(2026, 4, 1, tzinfo=UTC), status="open"))  # fmt: skip
            revocations = RevocationRow.__table__  # type: ignore[attr-defined]
            conn.execute(
                sa.insert(revocations).values(
                    tenant="acme", outcome_id="P-1", verdict_pk=recorded[1].verdict_pk,
                    reason="reopened", booked_period_start=march,
                    occurred_at=datetime(2026, 3, 5, tzinfo=UTC), created_at=now,
                )
            )  # fmt: skip
        migrate(eng)
        rows = meter(eng, "acme", datetime(2026, 5, 1, tzinfo=UTC), "day", [])
        assert [(r["window_start"].day, r["value"], r["adjustments"]) for r in rows] == [
            (1, 1, {}), (2, 1, {}), (3, 1, {}), (5, -1, {"reopened": -1}),
        ]  # fmt: skip
        with eng.connect() as conn:
            booked = conn.execute(sa.text("SELECT booked_at FROM revocations")).scalar_one()
        assert booked is not None
    finally:
        eng.dispose()

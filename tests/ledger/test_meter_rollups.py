"""Meter rollups (SQLite and PostgreSQL): the meter read from them is the meter by definition.

``verified_outcomes`` sums final days from ``meter_rollups`` and the rest from ``meter_entries``;
``verified_outcomes_raw`` sums every entry (the definition). A hypothesis state machine drives
random histories (bookings, re-verifications that withdraw and move counts, late arrivals,
revocations dated in the past, period closes, time passing) and checks after every step that the
two agree on any range (cut mid-day or not), window and grouping, that the rollups of every
rolled day are the sums of its entries, and that no rollup row ever changes or disappears.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import combinations, pairwise
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule
from sqlalchemy.engine import Engine

from judge.models import Outcome
from ledger.meter_rollups import group_mask, live_spans, rolled_spans
from ledger.meters import DIMENSIONS, verified_outcomes, verified_outcomes_raw
from ledger.periods import Periods
from ledger.store import Ledger
from tests.ledger.conftest import verdict_for
from tests.ledger.test_meter_integrity import RUBRIC, START, MeterMachine, _iso

DAY = timedelta(days=1)
EVER = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def varied_outcome(oid: str, anchor: datetime, tier: str) -> Outcome:
    """An outcome whose agent, version and model path vary (so every dimension has groups)."""
    agent = ("fin", "ada")[anchor.hour % 2]
    return Outcome.model_validate(
        {
            "id": oid,
            "kind": "support_ticket",
            "conversation": [
                # As in test_meter_integrity.outcome_at: the customer's words stay.
                {"role": "customer", "text": "order broken", "at": _iso(anchor)},
                {"role": "agent", "author": f"bot:{agent}", "text": f"refund issued ({tier})"},
            ],
            "touches": [{"actor": f"bot:{agent}", "kind": "ai"}],
            "agent": {
                "name": agent,
                "version": str(anchor.day % 2),
                **({"model_path": "gpt-4o-mini"} if tier != "assisted" else {}),
            },
        }
    )


def rollup_rows(engine: Engine, tenant: str, mask: int | None = None) -> dict[int, tuple[Any, ...]]:
    """The tenant's rollup rows (of one ``group_mask``, or all) as text: pk -> row."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT pk, day, agent, tier, agent_version, model_path, reason, value, "
                "last_final, group_mask FROM meter_rollups WHERE tenant = :t"
            ),
            {"t": tenant},
        ).all()
    return {row[0]: tuple(str(v) for v in row[1:]) for row in found if mask in (None, row[-1])}


def _key(row: Any, dims: tuple[str, ...], moment: str) -> tuple[Any, ...]:
    day = row[moment].replace(hour=0, minute=0, second=0, microsecond=0)
    return (day, *(row[d] for d in dims), row["reason"])


def entries_in(engine: Engine, tenant: str, spans: list[tuple[datetime, datetime]]) -> list[Any]:
    """The tenant's meter entries booked in ``spans`` (one query per span)."""
    from ledger.service_tables import MeterEntryRow

    entries = MeterEntryRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return [
            e
            for start, end in spans
            for e in conn.execute(
                sa.select(entries).where(
                    entries.c.tenant == tenant,
                    entries.c.booked_at >= start,
                    entries.c.booked_at < end,
                )
            ).mappings()
        ]


def summed_entries(entries: list[Any], dims: tuple[str, ...]) -> Counter[tuple[Any, ...]]:
    """Net count per (day, group by ``dims``, reason) of ``entries`` (Python)."""
    sums: Counter[tuple[Any, ...]] = Counter()
    for e in entries:
        key = _key(e, dims, "booked_at")
        sums[key] += e["delta"]
        sums[("rows", *key)] = 1  # a group whose entries net to 0 still has a row
    return sums


def rollups_of(engine: Engine, tenant: str) -> list[Any]:
    """Every rollup row of the tenant, of every grouping."""
    from ledger.service_tables import MeterRollupRow

    rollups = MeterRollupRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(rollups).where(rollups.c.tenant == tenant)).mappings())


def summed_rollups(rollups: list[Any], dims: tuple[str, ...]) -> Counter[tuple[Any, ...]]:
    """The same from the rollup rows of the grouping ``dims``; each key must appear once."""
    sums: Counter[tuple[Any, ...]] = Counter()
    mask = group_mask(dims)
    for r in rollups:
        if r["group_mask"] != mask:
            continue
        key = _key(r, dims, "day")
        assert ("rows", *key) not in sums, f"day {key} rolled up twice"
        assert all(r[d] is None for d in DIMENSIONS if d not in dims), r
        sums[key] += r["value"]
        sums[("rows", *key)] = 1
    return sums


def assert_rollups_are_the_sums_of_their_days(engine: Engine, tenant: str) -> None:
    """For every grouping: the rollups of the rolled days are the sums of their entries.

    The rows are read once and summed per grouping here: the property runs this after every
    step, and a query per grouping was most of its time on PostgreSQL.
    """
    entries = entries_in(engine, tenant, rolled_now(engine, tenant))
    rollups = rollups_of(engine, tenant)
    for size in range(len(DIMENSIONS) + 1):
        for dims in combinations(DIMENSIONS, size):
            assert summed_rollups(rollups, dims) == summed_entries(entries, dims), dims


def rolled_now(engine: Engine, tenant: str) -> list[tuple[datetime, datetime]]:
    """The days the tenant's W and closed periods say are rolled."""
    from ledger.meters import _closed_periods

    with engine.connect() as conn:
        through = conn.execute(
            sa.text("SELECT meter_final_through FROM tenants WHERE name = :t"), {"t": tenant}
        ).scalar_one_or_none()
        closed = _closed_periods(conn, tenant)
    if isinstance(through, str):  # SQLite: the stored UTC text
        through = datetime.fromisoformat(through).replace(tzinfo=UTC)
    return rolled_spans(*EVER, through, closed)


def assert_same_meter(engine: Engine, tenant: str, **request: Any) -> list[dict[str, Any]]:
    rows = verified_outcomes(engine, tenant, **request)
    assert rows == verified_outcomes_raw(engine, tenant, **request), request
    return rows


# -- the state machine ----------------------------------------------------------------------------


class RollupMachine(MeterMachine):
    """:class:`MeterMachine`'s histories (outcomes with varied groups), read every way."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_rollups: dict[int, tuple[Any, ...]] = {}

    def _outcome(self, oid: str, anchor: datetime, tier: str) -> Outcome:
        return varied_outcome(oid, anchor, tier)

    def _read_all(self) -> None:
        super()._read_all()
        for window in ("day", "month"):
            assert_same_meter(
                self.engine, self.tenant, since=EVER[0], until=EVER[1], window=window,
                group_by=list(DIMENSIONS), now=self.now,
            )  # fmt: skip

    @rule(
        ranges=st.lists(
            st.tuples(
                st.integers(-24 * 60 * 40, 24 * 60 * 200),  # since: minutes from START
                st.integers(1, 24 * 60 * 100),  # length in minutes
                st.booleans(),  # on whole days
                st.sampled_from(["day", "month"]),
                st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=4),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def read_ranges(self, ranges: list[tuple[int, int, bool, str, list[str]]]) -> None:
        """Any ranges: cut mid-day (live edges around rolled days) or on whole days."""
        for offset, length, aligned, window, dims in ranges:
            self.steps["read_a_range"] += 1
            since = START + timedelta(minutes=offset)
            until = since + timedelta(minutes=length)
            if aligned:
                since = since.replace(hour=0, minute=0)
                until = until.replace(hour=0, minute=0) + DAY
            assert_same_meter(
                self.engine, self.tenant, since=since, until=until, window=window,
                group_by=dims, now=self.now,
            )  # fmt: skip

    @invariant()
    def rollups_are_the_sums_of_their_days_and_never_change(self) -> None:
        rows = rollup_rows(self.engine, self.tenant)
        for pk, row in self.seen_rollups.items():
            assert rows.get(pk) == row, f"rollup row {pk} changed: {row} -> {rows.get(pk)}"
        self.seen_rollups = rows
        assert_rollups_are_the_sums_of_their_days(self.engine, self.tenant)
        if rows:
            self.steps["rollups checked"] += 1


@pytest.mark.slow
def test_the_meter_from_rollups_is_the_meter_from_entries(engine: Engine) -> None:
    RollupMachine.engine = engine
    RollupMachine.steps = Counter()
    machine = RollupMachine.TestCase
    machine.settings = settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine().runTest()
    print("\nsteps:", dict(RollupMachine.steps))
    # The histories reached what matters: rolled days read next to live ones.
    assert RollupMachine.steps["rollups checked"] > 0
    assert RollupMachine.steps["read_a_range"] > 0
    assert RollupMachine.steps["close_an_ended_month"] > 0


# -- the spans ------------------------------------------------------------------------------------


@given(
    since_h=st.integers(0, 24 * 120),
    length_h=st.integers(1, 24 * 120),
    minute=st.integers(0, 59),
    through_h=st.one_of(st.none(), st.integers(0, 24 * 200)),
    closed=st.sets(st.integers(0, 6), max_size=4),
)
def test_rolled_and_live_spans_split_the_range(
    since_h: int, length_h: int, minute: int, through_h: int | None, closed: set[int]
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    since = base + timedelta(hours=since_h, minutes=minute)
    until = since + timedelta(hours=length_h)
    through = None if through_h is None else base + timedelta(hours=through_h)
    months = [datetime(2026, 1 + m, 1, tzinfo=UTC) for m in closed]
    rolled = rolled_spans(since, until, through, months)
    live = live_spans(since, until, rolled)
    # Together they are [since, until), in order, without overlap ...
    bounds = sorted([*rolled, *live])
    assert bounds[0][0] == since and bounds[-1][1] == until
    assert all(a[1] == b[0] for a, b in pairwise(bounds))
    # ... the rolled ones are whole days, each before W's day or in a closed month.
    for start, end in rolled:
        assert start.time() == end.time() == datetime.min.time()
        day = start
        while day < end:
            before_w = through is not None and day + DAY <= through.replace(hour=0)
            assert before_w or day.replace(day=1) in months
            day += DAY


# -- scenarios ------------------------------------------------------------------------------------


def _verified_at(ledger: Ledger, oid: str, anchor: datetime, now: datetime) -> int:
    """Record a verified outcome anchored at ``anchor``; return its verdict's pk."""
    outcome = varied_outcome(oid, anchor, "confirmed")
    recorded = ledger.record_result(outcome, verdict_for(outcome, rubric=RUBRIC), now=now)
    assert recorded.verdict_pk is not None
    return recorded.verdict_pk


def test_a_rolled_day_never_changes_after_later_writes(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    mar_2 = datetime(2026, 3, 2, 12, tzinfo=UTC)
    pks = [
        _verified_at(ledger, f"A-{n}", mar_2 + timedelta(hours=n), mar_2 + timedelta(hours=4))
        for n in range(3)
    ]
    mar_10 = datetime(2026, 3, 10, tzinfo=UTC)
    request = {"since": EVER[0], "until": EVER[1], "window": "day", "now": mar_10}
    [row] = assert_same_meter(engine, "acme", **request)
    assert (row["value"], row["status"]) == (3, "final")
    rolled = rollup_rows(engine, "acme")
    assert sum(int(r[6]) for r in rollup_rows(engine, "acme", 0).values()) == 3

    # Later: a new outcome dated March 2 (a late arrival) and a reopen dated March 2: both
    # booked on March 11, none into the rolled day; and February closed.
    mar_11 = mar_10 + DAY
    _verified_at(ledger, "A-late", mar_2, mar_11)
    Periods(engine, tenant="acme").book_revocation(
        "A-1", verdict_pk=pks[1], reason="reopened", at=mar_2 + timedelta(hours=3), now=mar_11
    )
    Periods(engine, tenant="acme").close_period(datetime(2026, 2, 1, tzinfo=UTC), now=mar_11)
    rows = assert_same_meter(engine, "acme", **{**request, "now": mar_11 + 5 * DAY})
    assert rollup_rows(engine, "acme").items() >= rolled.items()  # the old rows, unchanged
    assert [(r["window_start"].day, r["value"]) for r in rows] == [(2, 3), (11, 0)]
    assert rows[1]["adjustments"] == {"late_arrival": 1, "reopened": -1}


def test_closing_a_period_rolls_its_days_before_they_are_published(engine: Engine) -> None:
    """W stops at March 28; closing March makes its last days final: they are rolled too."""
    ledger = Ledger(engine, tenant="acme")
    for day in (27, 30, 31):
        anchor = datetime(2026, 3, day, 9, tzinfo=UTC)
        _verified_at(ledger, f"M-{day}", anchor, anchor + timedelta(hours=1))
    apr_1 = datetime(2026, 4, 1, 1, tzinfo=UTC)
    verified_outcomes(engine, "acme", since=EVER[0], until=EVER[1], now=apr_1)  # W: Mar 28
    assert {r[0][:10] for r in rollup_rows(engine, "acme", 0).values()} == {"2026-03-27"}
    Periods(engine, tenant="acme").close_period(datetime(2026, 3, 1, tzinfo=UTC), now=apr_1)
    days = {r[0][:10] for r in rollup_rows(engine, "acme", 0).values()}
    assert days == {"2026-03-27", "2026-03-30", "2026-03-31"}
    stored = rollup_rows(engine, "acme")
    Periods(engine, tenant="acme").close_period(datetime(2026, 3, 1, tzinfo=UTC), now=apr_1)
    assert rollup_rows(engine, "acme") == stored  # closing again rolls nothing again
    for window in ("day", "month"):
        rows = assert_same_meter(
            engine, "acme", since=EVER[0], until=EVER[1], window=window, now=apr_1 + 9 * DAY
        )
        assert sum(r["value"] for r in rows) == 3
        assert {r["status"] for r in rows} == {"final"}


def test_upgrading_from_0015_rolls_up_what_was_final(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.db import make_engine
    from ledger.schema import migrate

    eng = make_engine(ledger_url)
    try:
        migrate(eng, revision="0015")
        ledger = Ledger(eng, tenant="acme")
        feb_20 = datetime(2026, 2, 20, 10, tzinfo=UTC)
        for n in range(6):
            anchor = feb_20 + timedelta(days=3 * n, hours=n)
            _verified_at(ledger, f"U-{n}", anchor, anchor + timedelta(hours=2))
        Ledger(eng, tenant="initech")._ready()  # a tenant without entries
        mar_20 = datetime(2026, 3, 20, tzinfo=UTC)
        with monkeypatch.context() as m:  # the code of the time rolled nothing up
            m.setattr("ledger.meter_rollups.roll", lambda *a, **k: 0)
            before = verified_outcomes_raw(eng, "acme", since=EVER[0], until=EVER[1], now=mar_20)
            Periods(eng, tenant="acme").close_period(datetime(2026, 2, 1, tzinfo=UTC), now=mar_20)
        migrate(eng)
        assert {r[0][:7] for r in rollup_rows(eng, "acme").values()} == {"2026-02", "2026-03"}
        assert_rollups_are_the_sums_of_their_days(eng, "acme")
        after = assert_same_meter(eng, "acme", since=EVER[0], until=EVER[1], now=mar_20)
        assert [(r["value"], r["status"]) for r in after] == [
            (r["value"], r["status"]) for r in before
        ]
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_processes_advancing_w_at_once_roll_each_day_once() -> None:
    """Two API processes read the meter at the same moment, both seeing W behind: one rolls
    the days, the other waits for it (tenant row FOR UPDATE) and rolls nothing again."""
    from ledger.db import make_engine
    from ledger.schema import migrate
    from tests.ledger.conftest import _pg_schema

    with _pg_schema() as url:
        engines = [make_engine(url) for _ in range(3)]
        try:
            migrate(engines[0])
            ledger = Ledger(engines[0], tenant="acme")
            mar_1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
            for n in range(20):
                anchor = mar_1 + timedelta(hours=7 * n)
                _verified_at(ledger, f"C-{n}", anchor, anchor + timedelta(hours=1))
            now = datetime(2026, 3, 20, tzinfo=UTC)
            errors: list[BaseException] = []

            def read(engine: Engine) -> None:
                try:
                    verified_outcomes(engine, "acme", since=EVER[0], until=EVER[1], now=now)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            # Hold the tenant row so both readers pass the read-only check and queue up.
            with engines[2].begin() as holder:
                holder.execute(sa.text("SELECT 1 FROM tenants WHERE name = 'acme' FOR UPDATE"))
                pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                threads = [threading.Thread(target=read, args=(e,)) for e in engines[:2]]
                for t in threads:
                    t.start()
                deadline = time.monotonic() + 10
                while _blocked_by(engines[2], pid) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _blocked_by(engines[2], pid) == 2, "both readers wait on the tenant row"
            for t in threads:
                t.join(30)
            assert not errors, errors
            assert_rollups_are_the_sums_of_their_days(engines[0], "acme")  # none rolled twice
            assert sum(int(r[6]) for r in rollup_rows(engines[0], "acme", 0).values()) == 20
            assert_same_meter(engines[0], "acme", since=EVER[0], until=EVER[1], now=now)
        finally:
            for e in engines:
                e.dispose()


def _blocked_by(engine: Engine, pid: int) -> int:
    """How many backends wait for backend ``pid``, directly or behind one that does (the
    second waiter for a row waits for the first)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity a "
                    "WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(a.pid)) OR EXISTS ("
                    "  SELECT 1 FROM unnest(pg_blocking_pids(a.pid)) AS b(pid)"
                    "  WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(b.pid)))"
                ),
                {"pid": pid},
            ).scalar_one()
        )

"""The verified-outcomes meter: counts per UTC window and group, half-open, provisional/final
(SQLite and PostgreSQL). Expected counts are recomputed here from the stored verdict rows."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Outcome
from ledger.meters import MAX_WINDOWS, MeterError, verified_outcomes, windows_of
from ledger.store import Ledger
from ledger.tables import OutcomeRow, VerdictRow
from tests.ledger.conftest import ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)

SPAN = timedelta(hours=72 + 24)  # shipped support-resolution window + grace
AGENTS = ("bot:fin", "bot:ada", None)
TIERS = ("confirmed", "assumed", "assisted", None)
DECISIONS = ("verified", "verified", "not_verified", "abstain")


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(moment: datetime, outcome_id: str, agent: str | None = "bot:fin") -> Outcome:
    """A ticket whose last customer message is at ``moment``, credited to ``agent``."""
    touches = [] if agent is None else [{"actor": agent, "kind": "ai"}]
    return ticket(
        outcome_id,
        conversation=[
            {"role": "customer", "text": "broken", "at": _iso(moment)},
            {"role": "agent", "text": "refunded"},
        ],
        touches=touches,
        agent={"name": "fin", "version": "2.3", "model_path": "gpt-4o-mini"},
    )


def record(engine: Engine, tenant: str, items: list[tuple[Outcome, dict[str, Any]]]) -> None:
    Ledger(engine, tenant=tenant).record_results(
        [(o, verdict_for(o, **changes)) for o, changes in items]
    )


def fill(engine: Engine, seed: int = 7) -> None:
    """80 acme outcomes over Feb-Apr 2026 (+ some just now) and 20 globex ones, one verdict each."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for tenant, n in (("acme", 80), ("globex", 20)):
        items = []
        for i in range(n):
            if i % 10 == 9:
                moment = now - timedelta(hours=rng.uniform(1, 48))  # still provisional
            else:
                moment = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(89 * 86400)
                )
            o = at(moment.replace(microsecond=0), f"{tenant}-{i}", rng.choice(AGENTS))
            items.append((o, {"decision": rng.choice(DECISIONS), "tier": rng.choice(TIERS)}))
        record(engine, tenant, items)


def expected(
    engine: Engine, tenant: str, since: datetime, until: datetime, window: str, dims: list[str]
) -> Counter[tuple[Any, ...]]:
    """The meter recomputed from the verdict and outcome rows (not from outcome_facts)."""
    v, o = VerdictRow.__table__, OutcomeRow.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(v.c.outcome_id, v.c.decision, v.c.tier, o.c.payload)
        .join(o, sa.and_(o.c.tenant == v.c.tenant, o.c.outcome_id == v.c.outcome_id,
                         o.c.revision == v.c.outcome_revision))
        .where(v.c.tenant == tenant)
        .order_by(v.c.pk)
    )  # fmt: skip
    with engine.connect() as conn:
        latest = {oid: (dec, tier, payload) for oid, dec, tier, payload in conn.execute(query)}
    counts: Counter[tuple[Any, ...]] = Counter()
    for decision, tier, payload in latest.values():
        moments = [m["at"] for m in payload["conversation"] if m["role"] == "customer"]
        anchor = datetime.fromisoformat(max(moments).replace("Z", "+00:00"))
        if decision != "verified" or not since <= anchor < until:
            continue
        if window == "day":
            start = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
        else:
            start = datetime(anchor.year, anchor.month, 1, tzinfo=UTC)
        touches = payload.get("touches") or []
        values = {"agent": touches[-1]["actor"] if touches else "fin", "tier": tier}
        counts[(max(start, since), *(values[d] for d in dims))] += 1
    return counts


def as_counter(rows: list[dict[str, Any]], dims: list[str]) -> Counter[tuple[Any, ...]]:
    return Counter({(r["window_start"], *(r["group"][d] for d in dims)): r["value"] for r in rows})


@pytest.mark.parametrize(
    ("window", "dims", "since", "until"),
    [
        ("month", ["agent", "tier"], utc(2026, 2, 1), utc(2026, 5, 1)),
        ("month", [], utc(2026, 2, 10, 12), utc(2026, 4, 20)),
        ("day", ["tier"], utc(2026, 3, 1), utc(2026, 3, 31, 6)),
        ("day", ["agent"], utc(2026, 1, 1), utc(2026, 5, 1)),
    ],
    ids=["month-agent-tier", "month-clipped", "day-tier", "day-agent"],
)  # fmt: skip
def test_counts_match_the_verdicts(
    engine: Engine, window: str, dims: list[str], since: datetime, until: datetime
) -> None:
    fill(engine)
    rows = verified_outcomes(
        engine, "acme", since=since, until=until, window=window, group_by=dims,  # type: ignore[arg-type]
    )  # fmt: skip
    want = expected(engine, "acme", since, until, window, dims)
    assert sum(want.values()) > 5  # the data exercises the meter
    assert as_counter(rows, dims) == want
    assert all(r["value"] > 0 for r in rows)  # empty windows and groups have no row
    for r in rows:
        assert since <= r["window_start"] < r["window_end"] <= until
        assert r["status"] == "final"  # Feb-Apr 2026 is long final
    keys = [(r["window_start"], *((v is None, v or "") for v in r["group"].values())) for r in rows]
    assert keys == sorted(keys)


def test_tenants_see_only_their_counts(engine: Engine) -> None:
    fill(engine)
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
    for tenant in ("acme", "globex"):
        rows = verified_outcomes(engine, tenant, since=since, until=until, window="month")
        assert sum(r["value"] for r in rows) == sum(
            expected(engine, tenant, since, until, "month", []).values()
        )
    assert verified_outcomes(engine, "initech", since=since, until=until) == []


def test_windows_are_half_open(engine: Engine) -> None:
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    record(
        engine,
        "acme",
        [
            (at(start, "at-from"), {}),
            (at(start - timedelta(seconds=1), "before-from"), {}),
            (at(end - timedelta(seconds=1), "before-to"), {}),
            (at(end, "at-to"), {}),
        ],
    )
    rows = verified_outcomes(engine, "acme", since=start, until=end, window="day")
    assert [(r["window_start"].day, r["window_end"].day, r["value"]) for r in rows] == [
        (1, 2, 1),  # at `from`: counted
        (2, 3, 1),  # one second before `to`; the outcome exactly at `to` is not
    ]
    # the next range starts where this one ended: the outcome at `to` counts there, once
    later = verified_outcomes(engine, "acme", since=end, until=end + timedelta(days=1))
    assert [r["value"] for r in later] == [1]


def test_only_verified_outcomes_count_by_their_latest_verdict(engine: Engine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    o = at(now - timedelta(hours=2), "T-1")
    record(engine, "acme", [(o, {"decision": "verified"})])
    since, until = now - timedelta(days=1), now + timedelta(days=1)
    assert [r["value"] for r in verified_outcomes(engine, "acme", since=since, until=until)] == [1]
    record(engine, "acme", [(o, {"decision": "not_verified"})])  # provisional: replaced
    assert verified_outcomes(engine, "acme", since=since, until=until) == []


def test_rows_turn_final_as_now_moves(engine: Engine) -> None:
    """A day is final once on-time outcomes can no longer arrive in it (its end + 96 h) and every
    outcome in it has passed its own rubric window + grace."""
    first, second = datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC)
    record(engine, "acme", [(at(first, "T-1"), {}), (at(second, "T-2"), {})])
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    settled = until + SPAN  # the day's end + the 96 h in which outcomes may still arrive on time

    def status(now: datetime) -> tuple[str, datetime]:
        [row] = verified_outcomes(engine, "acme", since=since, until=until, now=now)
        assert row["value"] == 2 and row["adjustments"] == {}
        return row["status"], row["final_at"]

    assert status(first + SPAN) == ("provisional", settled)  # T-1 final, T-2 not yet
    assert status(second + SPAN)[0] == "provisional"  # both final, the day still open
    assert status(settled - timedelta(microseconds=1))[0] == "provisional"
    assert status(settled) == ("final", settled)
    assert status(settled + timedelta(days=400))[0] == "final"


def test_month_windows_cross_the_year(engine: Engine) -> None:
    record(
        engine,
        "acme",
        [
            (at(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), "dec"), {}),
            (at(datetime(2026, 1, 1, tzinfo=UTC), "jan"), {}),
        ],
    )
    rows = verified_outcomes(
        engine, "acme", since=datetime(2025, 12, 15, tzinfo=UTC),
        until=datetime(2026, 1, 10, tzinfo=UTC), window="month",
    )  # fmt: skip
    got = [(r["window_start"].isoformat(), r["window_end"].isoformat(), r["value"]) for r in rows]
    assert got == [
        ("2025-12-15T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 1),
        ("2026-01-01T00:00:00+00:00", "2026-01-10T00:00:00+00:00", 1),
    ]


def test_group_by_version_and_model_path(engine: Engine) -> None:
    march = datetime(2026, 3, 5, tzinfo=UTC)
    a = at(march, "A")
    a = a.model_copy(update={"agent": a.agent.model_copy(update={"version": "3.0"})})
    record(engine, "acme", [(a, {}), (at(march, "B"), {}), (at(march, "C"), {})])
    rows = verified_outcomes(
        engine, "acme", since=march, until=march + timedelta(days=1),
        group_by=["agent_version", "model_path"],
    )  # fmt: skip
    assert [(r["group"], r["value"]) for r in rows] == [
        ({"agent_version": "fin@2.3", "model_path": "gpt-4o-mini"}, 2),
        ({"agent_version": "fin@3.0", "model_path": "gpt-4o-mini"}, 1),
    ]


T0 = datetime(2026, 3, 1, tzinfo=UTC)
OK: dict[str, Any] = {"since": T0, "until": T0 + timedelta(days=1)}


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"since": T0, "until": T0}, "since", "must be before until"),
        ({"since": OK["until"], "until": T0}, "since", "must be before until"),
        ({**OK, "since": T0.replace(tzinfo=None)}, "since", "2026-03-01T00:00:00Z"),
        ({"since": T0, "until": "2026-04-01"}, "until", "must be a datetime"),
        ({**OK, "window": "week"}, "window", "day, month"),
        ({**OK, "group_by": ["agent", "color"]}, "group_by", "unknown dimension(s) color"),
        ({**OK, "group_by": "agent"}, "group_by", "a list"),
        ({**OK, "group_by": ["tier", "tier"]}, "group_by", "twice"),
        ({**OK, "until": T0 + timedelta(days=MAX_WINDOWS + 1)}, "until", "use window=month"),
        ({**OK, "now": datetime(2026, 3, 2)}, "now", "timezone-aware"),
    ],
    ids=[
        "empty", "reversed", "naive", "not-a-datetime", "window", "dim", "dims-str", "dup",
        "too-many", "naive-now",
    ],
)  # fmt: skip
def test_bad_requests_name_the_fix(
    engine: Engine, kwargs: dict[str, Any], field: str, fix: str
) -> None:
    with pytest.raises(MeterError, match=None) as caught:
        verified_outcomes(engine, "acme", **kwargs)
    assert caught.value.field == field
    assert fix in str(caught.value)


def test_the_window_cap_is_inclusive(engine: Engine) -> None:
    until = T0 + timedelta(days=MAX_WINDOWS)
    assert verified_outcomes(engine, "acme", since=T0, until=until) == []


def test_windows_at_the_end_of_time_are_clipped(engine: Engine) -> None:
    until = datetime.max.replace(tzinfo=UTC)
    for window in ("day", "month"):
        since = until - timedelta(days=2)
        assert windows_of(since, until, window)[-1][1] == until
        assert verified_outcomes(engine, "acme", since=since, until=until, window=window) == []

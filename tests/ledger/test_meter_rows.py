"""The meter's rows, checked against the entries summed here in Python (SQLite and PostgreSQL).

The meter sums in the database (net count, latest ``final_at`` and the adjustments per reason,
per window and group) and orders in Python; these tests write ``meter_entries`` directly, with
group values that sort differently by code point than by a locale (accents, case, the empty
string, None) and reasons other than ``verified`` in both the rolled days and the live ones,
and compare every row with what the entries say.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.bookings import ADJUSTMENT_REASONS, publish_final_through
from ledger.meters import verified_outcomes, verified_outcomes_raw
from ledger.store import ensure_tenant

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
#: The read's clock: March is final through the 26th (its last days are still live).
NOW = datetime(2026, 3, 31, tzinfo=UTC)
SETTLE = timedelta(hours=96)  # ledger.bookings.SETTLE_HOURS
AGENTS = ("bot:zed", "bot:Zoë", "bot:Ängel", "bot:ada", "", None)
TIERS = ("confirmed", "assumed", None)
#: Reasons and their sign: a count, the adjustments, and revocations.
REASONS = (("verified", 1), ("late_arrival", 1), ("moved", 1), ("withdrawn", -1),
           ("reopened", -1), ("csat_low", -1))  # fmt: skip


def write_entries(engine: Engine, tenant: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` entries over March 2026 (most ``verified``), written straight to the table."""
    from ledger.service_tables import MeterEntryRow

    ensure_tenant(engine, tenant)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        booked = MARCH + timedelta(seconds=rng.randrange(31 * 86400))
        reason, sign = REASONS[0] if rng.random() < 0.7 else rng.choice(REASONS[1:])
        rows.append(
            {
                "tenant": tenant, "outcome_id": f"{tenant}-{i}", "verdict_pk": i + 1,
                "delta": sign, "reason": reason, "booked_at": booked, "anchor_at": booked,
                "final_at": booked + timedelta(hours=rng.randrange(1, 120)),
                "agent": rng.choice(AGENTS), "tier": rng.choice(TIERS),
                "agent_version": None, "model_path": None, "created_at": booked,
            }
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(MeterEntryRow.__table__), rows)  # type: ignore[attr-defined]
    return rows


def expected_rows(
    entries: list[dict[str, Any]], since: datetime, until: datetime, window: str, dims: list[str]
) -> list[tuple[Any, ...]]:
    """(window start, group, value, adjustments, latest final_at) per window and group, in the
    meter's order: by window, then group values with None last, by code point."""
    cells: dict[tuple[Any, ...], list[Any]] = {}
    for e in entries:
        if not since <= e["booked_at"] < until:
            continue
        day = e["booked_at"].replace(hour=0, minute=0, second=0, microsecond=0)
        start = max(since, day if window == "day" else day.replace(day=1))
        key = (start, tuple(e[d] for d in dims))
        cell = cells.setdefault(key, [0, defaultdict(int), e["final_at"]])
        cell[0] += e["delta"]
        if e["reason"] != "verified":
            cell[1][e["reason"]] += e["delta"]
        cell[2] = max(cell[2], e["final_at"])

    def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (key[0], *((v is None, v or "") for v in key[1]))

    out = []
    for key in sorted(cells, key=order):
        value, adjusted, last = cells[key]
        listed = sorted(adjusted, key=lambda r: (r not in ADJUSTMENT_REASONS, r))
        start = key[0].replace(hour=0)
        end = start + timedelta(days=1) if window == "day" else start.replace(month=start.month + 1)
        end = min(end.replace(day=1) if window == "month" else end, until)
        ceil_hour = end.replace(minute=0, second=0, microsecond=0)
        ceil_hour += timedelta(hours=1) if ceil_hour < end else timedelta(0)
        final_at = max(ceil_hour + SETTLE, last)  # the window settled, and its last outcome
        out.append((key[0], dict(zip(dims, key[1], strict=True)), value,
                    [(r, adjusted[r]) for r in listed], final_at))  # fmt: skip
    return out


def as_rows(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["window_start"], r["group"], r["value"], list(r["adjustments"].items()), r["final_at"])
        for r in found
    ]


@pytest.mark.parametrize(
    ("window", "dims", "since", "until"),
    [
        ("day", ["agent", "tier"], MARCH, MARCH + timedelta(days=31)),
        ("day", ["agent"], MARCH + timedelta(days=3, hours=7), MARCH + timedelta(days=29)),
        ("month", ["agent", "tier"], MARCH + timedelta(hours=5), MARCH + timedelta(days=31)),
        ("month", [], MARCH, MARCH + timedelta(days=31)),
    ],
    ids=["day-agent-tier", "day-cut", "month-rolled-and-live", "month"],
)
def test_rows_are_the_entries_summed(
    engine: Engine, window: str, dims: list[str], since: datetime, until: datetime
) -> None:
    entries = write_entries(engine, "acme", 1500, seed=3)
    write_entries(engine, "globex", 200, seed=4)  # another tenant: never counted
    publish_final_through(engine, "acme", NOW)  # rolls March 1-26 up: the rest is live
    with engine.connect() as conn:
        rolled = conn.execute(sa.text("SELECT count(*) FROM meter_rollups")).scalar_one()
    assert rolled > 0

    found = verified_outcomes(
        engine, "acme", since=since, until=until, window=window, group_by=dims, now=NOW  # type: ignore[arg-type]
    )  # fmt: skip
    want = expected_rows(entries, since, until, window, dims)
    assert as_rows(found) == want
    assert any(row[3] for row in want)  # the data has adjustments
    assert any(len(row[3]) > 1 for row in want)  # several reasons in one cell
    # final_at is when a row is, or becomes, final.
    assert all((r["status"] == "final") == (r["final_at"] <= NOW) for r in found)
    if window == "day":
        assert {r["status"] for r in found} == {"final", "provisional"}
    raw = verified_outcomes_raw(
        engine, "acme", since=since, until=until, window=window, group_by=dims, now=NOW  # type: ignore[arg-type]
    )  # fmt: skip
    assert raw == found


def test_rows_are_the_same_in_a_session_of_another_time_zone(engine: Engine) -> None:
    """The statement returns the latest ``final_at`` as naive UTC (``timezone('UTC', ...)``
    on PostgreSQL) and Python compares it naive: a session in another zone must neither shift
    the times nor change which rows are final. Every ``final_at`` is returned in UTC."""
    from ledger.db import make_engine

    if engine.dialect.name != "postgresql":
        pytest.skip("a session time zone is PostgreSQL's; SQLite stores and returns UTC text")
    entries = write_entries(engine, "acme", 1500, seed=5)
    publish_final_through(engine, "acme", NOW)
    url = engine.url
    options = f"{url.query.get('options', '')} -ctimezone=Asia/Kolkata".strip()
    elsewhere = make_engine(
        url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    )
    try:
        with elsewhere.connect() as conn:
            assert conn.exec_driver_sql("SHOW TimeZone").scalar_one() == "Asia/Kolkata"
        since, until = MARCH, MARCH + timedelta(days=31)
        reads = [
            verified_outcomes(
                db, "acme", since=since, until=until, window="day",
                group_by=["agent", "tier"], now=NOW,
            )
            for db in (engine, elsewhere)
        ]  # fmt: skip
    finally:
        elsewhere.dispose()
    assert reads[0] == reads[1]
    assert as_rows(reads[1]) == expected_rows(entries, since, until, "day", ["agent", "tier"])
    assert all(r["final_at"].tzinfo is UTC for r in reads[1])
    # Some rows' final_at is their latest outcome's (later than the day settled), the path
    # that returns the database's time itself.
    settled = {
        r["window_start"]: r["window_end"] + SETTLE for r in reads[1]
    }  # the day ends on the hour
    assert any(r["final_at"] > settled[r["window_start"]] for r in reads[1])
    assert {r["status"] for r in reads[1]} == {"final", "provisional"}

"""Billing routes: the verified-outcomes meter and cost per verified outcome (SQLite and
PostgreSQL; in-process and through a real `judge serve`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from ledger.db import make_engine
from ledger.store import Ledger
from tests.api.conftest import auth
from tests.api.live import LiveServer
from tests.ledger.conftest import judge_call, ticket, verdict_for
from tests.ledger.test_meters import expected, fill

METER = "/v1/meters/verified-outcomes"
COST = "/v1/metrics/cost-per-verified-outcome"
FEB, MAY = "2026-02-01T00:00:00Z", "2026-05-01T00:00:00Z"


@pytest.fixture
def engine(db_url: str, keys: dict[str, str]) -> Iterator[Engine]:
    """The service's database (migrated, tenants acme and globex created by ``keys``)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _counter(rows: list[dict[str, Any]], dims: list[str]) -> Counter[tuple[Any, ...]]:
    return Counter(
        {
            (datetime.fromisoformat(r["window_start"]), *(r["group"][d] for d in dims)): r["value"]
            for r in rows
        }
    )


def test_meter_counts_by_agent_and_tier(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    fill(engine)
    response = client.get(
        METER,
        params={"from": FEB, "to": MAY, "window": "month", "group_by": "agent,tier"},
        headers=auth(keys["acme"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    want = expected(engine, "acme", since, until, "month", ["agent", "tier"])
    assert sum(want.values()) > 5
    assert _counter(body["rows"], ["agent", "tier"]) == want
    assert body["from"] == "2026-02-01T00:00:00Z" and body["group_by"] == ["agent", "tier"]
    row = body["rows"][0]
    assert set(row) == {
        "window_start", "window_end", "group", "value", "adjustments", "status", "final_at",
    }  # fmt: skip
    assert all(r["adjustments"] == {} for r in body["rows"])  # every outcome on time
    assert {r["status"] for r in body["rows"]} == {"final"}


def test_meter_is_tenant_scoped(client: TestClient, engine: Engine, keys: dict[str, str]) -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    Ledger(engine, tenant="acme").record_results(
        [(ticket(f"T-{i}"), verdict_for(ticket(f"T-{i}"))) for i in range(3)]
    )
    params = {"from": since.isoformat(), "to": "2026-06-01", "window": "month"}
    acme = client.get(METER, params=params, headers=auth(keys["acme"])).json()["rows"]
    globex = client.get(METER, params=params, headers=auth(keys["globex"])).json()["rows"]
    assert [r["value"] for r in acme] == [3]
    assert globex == []  # globex sees none of acme's counts
    assert client.get(METER, params=params).status_code == 401


def test_provisional_rows_and_naive_times_as_utc(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    recent = ticket(
        "R-1",
        conversation=[
            {"role": "customer", "text": "hi", "at": (now - timedelta(hours=1)).isoformat()}
        ],
    )
    Ledger(engine, tenant="acme").record_result(recent, verdict_for(recent, tier="assumed"))
    day = (now - timedelta(hours=1)).strftime("%Y-%m-%d")
    end = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")  # naive: taken as UTC
    body = client.get(
        METER,
        params={"from": day, "to": end, "group_by": "tier"},
        headers=auth(keys["acme"]),
    ).json()
    [row] = body["rows"]
    assert (row["group"], row["value"], row["status"]) == ({"tier": "assumed"}, 1, "provisional")
    assert row["window_start"] == f"{day}T00:00:00Z"


BAD_METER_QUERIES = [
    ({"from": MAY, "to": FEB}, "from", "must be before to"),
    ({"from": FEB, "to": FEB}, "from", "half-open [from, to)"),
    ({"from": "yesterday", "to": MAY}, "from", "datetime"),
    ({"to": MAY}, "from", "required"),
    ({"from": FEB, "to": MAY, "window": "week"}, "window", "day"),
    ({"from": FEB, "to": MAY, "group_by": "agent,color"}, "group_by", "agent, tier"),
    ({"from": FEB, "to": MAY, "group_by": "tier,tier"}, "group_by", "twice"),
    ({"from": "2020-01-01", "to": MAY}, "to", "use window=month"),
    ({"from": "0001-01-01T00:00:00+05:00", "to": MAY}, "from", "out of range"),
]


def test_meter_rejects_bad_queries_naming_the_field(
    client: TestClient, keys: dict[str, str]
) -> None:
    for params, field, fix in BAD_METER_QUERIES:
        response = client.get(METER, params=params, headers=auth(keys["acme"]))
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert error["details"][0]["field"] == field, (params, error)
        assert fix in error["message"] or fix in error["details"][0]["message"], (params, error)
    # the edges of the datetime range are answered, not a server error
    for window in ("day", "month"):
        edge = {"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:59.999999Z"}
        response = client.get(METER, params={**edge, "window": window}, headers=auth(keys["acme"]))
        assert response.status_code == 200 and response.json()["rows"] == [], response.text


def _record_costs(engine: Engine) -> tuple[Decimal, int]:
    """Three acme tickets (two verified) with one judge call each; returns (cost, verified)."""
    ledger = Ledger(engine, tenant="acme")
    decisions = ["verified", "not_verified", "verified"]
    outcomes = [ticket(f"T-{i}") for i in range(3)]
    calls = [
        judge_call(f"k-{i}", outcome_id=o.id, cost_usd=0.001 * (i + 1))
        for i, o in enumerate(outcomes)
    ]
    ledger.record_results(
        [(o, verdict_for(o, decision=d)) for o, d in zip(outcomes, decisions, strict=True)],
        calls=calls,
    )
    agent = sum((Decimal(str(o.agent.cost_usd)) for o in outcomes), Decimal(0))
    judge = sum((Decimal(str(c.cost_usd)) for c in calls), Decimal(0))
    return agent + judge, decisions.count("verified")


def test_cost_per_verified_outcome(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    cost, verified = _record_costs(engine)
    body = client.get(COST, params={"group_by": "tier"}, headers=auth(keys["acme"])).json()
    assert body["verified"] == body["denominator"] == verified
    assert body["cost_usd"] == body["numerator_usd"] == pytest.approx(float(cost))
    assert body["value"] == pytest.approx(float(cost) / verified)
    assert body["reason"] is None
    assert sum(g["verified"] for g in body["groups"]) == verified
    assert {g["status"] for g in body["groups"]} == {"final"}
    assert body["final"]["verified"] == verified and body["provisional"]["verified"] == 0

    globex = client.get(COST, headers=auth(keys["globex"])).json()
    assert (globex["verified"], globex["value"], globex["cost_usd"]) == (0, None, 0)
    assert "undefined" in globex["reason"]


def test_cost_window_filters_verdicts_and_validates(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    _record_costs(engine)
    old = client.get(
        COST, params={"from": "2020-01-01", "to": "2021-01-01"}, headers=auth(keys["acme"])
    ).json()
    assert (old["verified"], old["value"]) == (0, None)
    bad = [
        ({"from": MAY, "to": FEB}, "from"),
        ({"group_by": "color"}, "group_by"),
        ({"labor_rate": "-1"}, "labor_rate"),
        ({"period": "year"}, "period"),
    ]
    for params, field in bad:
        response = client.get(COST, params=params, headers=auth(keys["acme"]))
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["details"][0]["field"] == field


def test_meter_through_a_real_server(
    live: LiveServer, engine: Engine, keys: dict[str, str]
) -> None:
    Ledger(engine, tenant="acme").record_results(
        [(ticket(f"T-{i}"), verdict_for(ticket(f"T-{i}"), tier="confirmed")) for i in range(4)]
    )
    params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "group_by": "tier"}
    with live.client(keys["acme"]) as http:
        rows = http.get(METER, params=params).json()["rows"]
        cost = http.get(COST).json()
    assert [(r["group"], r["value"], r["status"]) for r in rows] == [
        ({"tier": "confirmed"}, 4, "final")
    ]
    assert cost["verified"] == 4
    with live.client(keys["globex"]) as http:
        assert http.get(METER, params=params).json()["rows"] == []


def test_a_late_outcome_is_booked_now_and_the_outcome_says_so(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    """Once a meter read has said March is final, an outcome anchored in March that is verified
    now counts today (`late_arrival`), in the meter rows and on the outcome itself."""
    ledger = Ledger(engine, tenant="acme")
    on_time = ticket("T-1")  # anchored 2026-03-01
    ledger.record_result(on_time, verdict_for(on_time))
    params = {"from": "2026-01-01", "to": "2027-01-01", "window": "month"}
    before = client.get(METER, params=params, headers=auth(keys["acme"])).json()["rows"]
    assert [(r["window_start"][:7], r["value"], r["status"]) for r in before] == [
        ("2026-03", 1, "final")
    ]

    late = ticket("T-2")  # also anchored 2026-03-01, verified only now
    ledger.record_result(late, verdict_for(late))
    after = client.get(METER, params=params, headers=auth(keys["acme"])).json()["rows"]
    assert after[0] == before[0]  # March: the same value, still final
    this_month = datetime.now(UTC).strftime("%Y-%m")
    [(month, value, adjustments, status)] = [
        (r["window_start"][:7], r["value"], r["adjustments"], r["status"]) for r in after[1:]
    ]
    assert (month, value, adjustments, status) == (
        this_month, 1, {"late_arrival": 1}, "provisional",
    )  # fmt: skip
    detail = client.get("/v1/outcomes/T-2", headers=auth(keys["acme"])).json()
    [entry] = detail["meter"]
    assert (entry["delta"], entry["reason"], entry["anchor_at"]) == (
        1, "late_arrival", "2026-03-01T10:00:00Z",
    )  # fmt: skip
    assert entry["booked_at"][:7] == this_month
    on_time_entry = client.get("/v1/outcomes/T-1", headers=auth(keys["acme"])).json()["meter"]
    assert [(e["delta"], e["reason"], e["booked_at"]) for e in on_time_entry] == [
        (1, "verified", "2026-03-01T10:00:00Z")
    ]

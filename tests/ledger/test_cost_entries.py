"""Human review time: `cost_entries` rows, `judge cost review`, and its part of the numerator.

The report figures are recomputed here from the input tickets, the verdict file `judge verify`
wrote and the review minutes the test itself records, independently of the report's SQL.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from ledger.cost_entries import UnknownOutcomeError, record_review, review_minutes
from ledger.integrity import FutureTimestampError
from ledger.store import Ledger
from ledger.tables import CostEntryRow
from tests.ledger.conftest import TICKETS, run, run_json, ticket, verdict_for

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(CostEntryRow)).scalar_one())


@pytest.fixture
def ledger(engine: Engine) -> Engine:
    Ledger(engine, tenant="acme").record_result(ticket("T-1"), verdict_for(ticket("T-1")))
    Ledger(engine, tenant="acme").record_result(ticket("T-2"), verdict_for(ticket("T-2")))
    return engine


def _review(engine: Engine, **changes: Any) -> int:
    args: dict[str, Any] = {
        "tenant": "acme",
        "outcome_id": "T-1",
        "minutes": 12.5,
        "at": NOW - timedelta(hours=1),
        "now": NOW,
    }
    args.update(changes)
    return record_review(engine, **args)


# ---- record_review / review_minutes -----------------------------------------------------------


def test_reviews_sum_per_outcome_within_the_window(ledger: Engine) -> None:
    _review(ledger, minutes=12.5, by="qa-anna", note="checked the refund")
    _review(ledger, minutes=Decimal("7.25"), at=datetime(2026, 3, 5, 10, 30))  # naive = UTC
    _review(ledger, outcome_id="T-2", minutes=0, at=NOW - timedelta(days=3))
    assert review_minutes(ledger, tenant="acme") == {
        "T-1": Decimal("19.75"),
        "T-2": Decimal("0"),
    }
    recent = review_minutes(ledger, tenant="acme", since=NOW - timedelta(hours=1, minutes=30))
    assert recent == {"T-1": Decimal("19.75")}
    before = review_minutes(ledger, tenant="acme", until=datetime(2026, 3, 5, 10, 30, tzinfo=UTC))
    # `until` is exclusive: the 10:30 review is out, and so is the 11:00 one after it
    assert before == {"T-2": Decimal("0")}
    assert review_minutes(ledger, tenant="globex") == {}
    with ledger.connect() as conn:
        row = conn.execute(sa.select(CostEntryRow).where(col(CostEntryRow.by) == "qa-anna")).one()
    assert row.kind == "human_review" and row.note == "checked the refund"
    assert row.at == NOW - timedelta(hours=1) and row.amount_usd is None


@pytest.mark.parametrize("minutes", [-1, -0.0001, math.nan, math.inf, -math.inf, True, "ten", None])
def test_bad_minutes_are_refused_naming_the_field(ledger: Engine, minutes: Any) -> None:
    with pytest.raises(ValueError, match="minutes must be a finite number >= 0"):
        _review(ledger, minutes=minutes)
    assert _count(ledger) == 0


def test_future_review_time_beyond_the_tolerance_is_refused(ledger: Engine) -> None:
    _review(ledger, at=NOW + timedelta(minutes=4))  # clock skew within the 5 minutes allowed
    with pytest.raises(FutureTimestampError, match="at is 2026-03-05T12:06:00"):
        _review(ledger, at=NOW + timedelta(minutes=6))
    assert _count(ledger) == 1


def test_unknown_tenant_or_outcome_writes_nothing(ledger: Engine) -> None:
    with pytest.raises(UnknownOutcomeError, match="tenant 'globex' is not in the ledger"):
        _review(ledger, tenant="globex")
    with pytest.raises(UnknownOutcomeError, match="outcome_id 'T-404' is not in the ledger"):
        _review(ledger, outcome_id="T-404")
    with pytest.raises(ValueError, match="outcome_id must be"):
        _review(ledger, outcome_id="")
    assert _count(ledger) == 0


@pytest.mark.parametrize(
    ("column", "value"), [("kind", "snacks"), ("minutes", Decimal("-1"))], ids=["kind", "minutes"]
)
def test_the_database_itself_refuses_bad_rows(ledger: Engine, column: str, value: Any) -> None:
    values: dict[str, Any] = {"tenant": "acme", "outcome_id": "T-1", "kind": "human_review"}
    values |= {"minutes": Decimal(1), "at": NOW, "created_at": NOW, column: value}
    with pytest.raises(IntegrityError), ledger.begin() as conn:
        conn.execute(sa.insert(CostEntryRow).values(**values))
    assert _count(ledger) == 0


# ---- judge cost review / judge cost report --labor-rate ---------------------------------------


@pytest.fixture
def reviewed(verified_ledger: tuple[str, Path], tmp_path: Path) -> tuple[str, Path]:
    src, verdicts = verified_ledger
    copy = tmp_path / "reviewed.db"
    shutil.copy(src.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}", verdicts


def _files(verdicts: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    agents = {r["id"]: r["agent"] for r in map(json.loads, TICKETS.read_text().splitlines())}
    decisions = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    return agents, decisions


def _record(url: str, decisions: dict[str, Any]) -> dict[str, Decimal]:
    """Reviews of a verified and a not-verified outcome (one reviewed twice), via the CLI."""
    ids = sorted(decisions)
    done = next(oid for oid in ids if decisions[oid]["decision"] == "verified")
    failed = next(oid for oid in ids if decisions[oid]["decision"] != "verified")
    entries = [(done, "12.5"), (done, "7.25"), (failed, "30")]
    for oid, minutes in entries:
        result = run(
            "cost", "review", "--db", url, "--outcome", oid, "--minutes", minutes,
            "--by", "qa-anna", "--at", "2026-03-02T09:00:00Z",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"of human review of {oid}" in result.stdout
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for oid, minutes in entries:
        spent[oid] += Decimal(minutes)
    return spent


def test_report_prices_review_minutes_at_the_labour_rate(reviewed: tuple[str, Path]) -> None:
    url, verdicts = reviewed
    agents, decisions = _files(verdicts)
    spent = _record(url, decisions)
    rate = 48.0
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "model_path,tier", "--labor-rate", str(rate)
    )
    expected: dict[tuple[str, str | None], dict[str, float]] = defaultdict(
        lambda: {"verified": 0, "agent": 0.0, "minutes": 0.0}
    )
    for oid, v in decisions.items():
        e = expected[(agents[oid]["model_path"], v.get("tier"))]
        e["verified"] += v["decision"] == "verified"
        e["agent"] += agents[oid]["cost_usd"]
        e["minutes"] += float(spent.get(oid, 0))
    got = {(r["group"]["model_path"], r["group"]["tier"]): r for r in data["groups"]}
    assert set(got) == set(expected)
    for key, e in expected.items():
        r = got[key]
        human = e["minutes"] / 60 * rate
        assert r["human_review_minutes"] == pytest.approx(e["minutes"], abs=1e-9)
        assert r["human_review_usd"] == pytest.approx(human, abs=1e-12)
        assert r["agent_cost_usd"] == pytest.approx(e["agent"], abs=1e-12)
        numerator = e["agent"] + r["judge_cost_usd"] + human
        assert r["numerator_usd"] == pytest.approx(numerator, abs=1e-12)
        if e["verified"]:
            assert r["cost_per_verified_usd"] == pytest.approx(numerator / e["verified"])
        # the numerator is exactly the sum of its three parts (at the ledger's 12 places)
        parts = (r["agent_cost_usd"], r["judge_cost_usd"], r["human_review_usd"])
        assert sum(_exact(p) for p in parts) == _exact(r["numerator_usd"])
    total_minutes = float(sum(spent.values()))  # 49.75 min
    assert data["human_review_minutes"] == data["total"]["human_review_minutes"] == total_minutes
    assert data["human_review_usd"] == pytest.approx(total_minutes / 60 * rate)
    assert data["labor_rate_usd_per_hour"] == rate
    n_verified = sum(v["decision"] == "verified" for v in decisions.values())
    all_agent = sum(agents[oid]["cost_usd"] for oid in decisions)
    total = data["total"]
    assert total["numerator_usd"] == pytest.approx(
        all_agent + total["judge_cost_usd"] + total_minutes / 60 * rate, abs=1e-12
    )
    assert total["cost_per_verified_usd"] == pytest.approx(total["numerator_usd"] / n_verified)
    text = run("cost", "report", "--db", url, "--labor-rate", str(rate))
    assert text.exit_code == 0 and "human USD" in text.stdout and "49.75 min" in text.stdout


def _exact(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("1e-12"))


def test_without_a_labour_rate_reviews_are_undefined_never_zero(
    reviewed: tuple[str, Path],
) -> None:
    url, verdicts = reviewed
    agents, decisions = _files(verdicts)
    spent = _record(url, decisions)
    priced = run_json("cost", "report", "--db", url, "--labor-rate", "60")
    data = run_json("cost", "report", "--db", url)
    assert data["human_review_usd"] is None and "--labor-rate" in data["human_review_note"]
    assert data["human_review_minutes"] == float(sum(spent.values()))
    by_path = {r["group"]["model_path"]: r for r in data["groups"]}
    reviewed_paths = {agents[oid]["model_path"] for oid in spent}
    for path, r in by_path.items():
        if path in reviewed_paths:
            assert r["human_review_usd"] is None
            assert "--labor-rate USD_PER_HOUR" in r["human_review_reason"]
            # at 60 $/h a minute costs $1: the priced report adds exactly the minutes
            other = next(p for p in priced["groups"] if p["group"]["model_path"] == path)
            assert other["numerator_usd"] == pytest.approx(
                r["numerator_usd"] + r["human_review_minutes"], abs=1e-12
            )
        else:
            assert r["human_review_usd"] == 0 and r["human_review_minutes"] == 0
            assert r["human_review_reason"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "-5"], "--minutes must be a finite number >= 0"),
        (["--minutes", "nan"], "--minutes must be a finite number >= 0"),
        (["--minutes", "5", "--at", "2999-01-01"], "--at: at is 2999-01-01"),
        (["--minutes", "5", "--at", "tomorrow"], "--at: 'tomorrow' is not an ISO 8601 time"),
        (["--minutes", "5", "--outcome", "NOPE"], "--outcome: outcome_id 'NOPE' is not"),
        (["--minutes", "5", "--tenant", "nobody"], "tenant 'nobody' is not in the ledger"),
    ],
)
def test_review_cli_errors_exit_2_and_write_nothing(
    reviewed: tuple[str, Path], args: list[str], message: str
) -> None:
    url, verdicts = reviewed
    _, decisions = _files(verdicts)
    base = ["cost", "review", "--db", url, "--outcome", sorted(decisions)[0]]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert run_json("cost", "report", "--db", url)["human_review_minutes"] == 0


@pytest.mark.parametrize("rate", ["-1", "inf", "nan"])
def test_report_bad_labour_rate_exits_2(reviewed: tuple[str, Path], rate: str) -> None:
    url, _ = reviewed
    result = run("cost", "report", "--db", url, "--labor-rate", rate)
    assert result.exit_code == 2
    assert "--labor-rate: labor_rate must be a finite number" in result.stderr

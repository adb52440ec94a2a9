"""Timestamps in the future (beyond the clock-skew tolerance) are refused and nothing is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from judge.models import Outcome
from ledger.integrity import DEFAULT_FUTURE_TOLERANCE, FutureTimestampError, check_timestamps
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EMPTY = {"outcomes": 0, "outcome_revisions": 0, "verdicts": 0, "judge_calls": 0, "labels": 0}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _with(path: str, moment: datetime) -> dict[str, Any]:
    """Ticket fields that put ``moment`` at ``path`` (one of the checked timestamp fields)."""
    base = ticket().model_dump(mode="json")
    at = _iso(moment)
    if path == "conversation[1].at":
        base["conversation"][1]["at"] = at
    elif path.startswith("signals."):
        base["signals"][path.split(".")[1]] = at
    elif path == "touches[1].at":
        base["touches"] = [
            {"actor": "bot:fin", "kind": "ai", "at": "2026-03-01T10:00:00Z"},
            {"actor": "human:ana", "kind": "human", "at": at},
        ]
    elif path == "label.at":
        base["label"]["at"] = at
    else:  # pragma: no cover - a typo in a parametrisation below
        raise AssertionError(path)
    return base


FIELDS = [
    "conversation[1].at",
    "signals.closed_at",
    "signals.reopened_at",
    "signals.recontact_at",
    "touches[1].at",
    "label.at",
]


@pytest.mark.parametrize("path", FIELDS)
def test_each_timestamp_field_is_checked_and_named(path: str) -> None:
    late = Outcome.model_validate(_with(path, NOW + timedelta(minutes=6)))
    with pytest.raises(FutureTimestampError) as info:
        check_timestamps(late, now=NOW, tolerance=timedelta(minutes=5))
    message = str(info.value)
    assert "'T-1001'" in message and path in message and "fix the timestamp" in message

    within = Outcome.model_validate(_with(path, NOW + timedelta(minutes=4)))
    check_timestamps(within, now=NOW, tolerance=timedelta(minutes=5))


def test_tolerance_boundary_time_zones_and_naive_times() -> None:
    exactly = Outcome.model_validate(_with("label.at", NOW + DEFAULT_FUTURE_TOLERANCE))
    check_timestamps(exactly, now=NOW)  # at the limit: allowed
    one_us_more = NOW + DEFAULT_FUTURE_TOLERANCE + timedelta(microseconds=1)
    with pytest.raises(FutureTimestampError):
        check_timestamps(Outcome.model_validate(_with("label.at", one_us_more)), now=NOW)

    # 13:00 at UTC+2 is 11:00 UTC: in the past, although its wall-clock reading is later.
    cest = datetime(2026, 3, 10, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    check_timestamps(Outcome.model_validate(_with("label.at", cest)), now=NOW)
    # A naive time is UTC: 12:10 naive is 10 minutes ahead of NOW.
    naive = Outcome.model_validate(_with("label.at", datetime(2026, 3, 10, 12, 10)))
    with pytest.raises(FutureTimestampError):
        check_timestamps(naive, now=NOW)
    check_timestamps(naive, now=NOW, tolerance=timedelta(minutes=15))
    with pytest.raises(ValueError, match="tolerance"):
        check_timestamps(naive, now=NOW, tolerance=timedelta(minutes=-1))


def test_ledger_refuses_future_outcome_and_writes_nothing(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    future = datetime.now(UTC) + timedelta(days=1)
    bad = Outcome.model_validate(_with("signals.closed_at", future))

    with pytest.raises(FutureTimestampError, match=r"signals\.closed_at"):
        ledger.record_outcome(bad)
    assert ledger.counts() == EMPTY

    # One bad outcome in a batch: the whole batch is refused, the good ones too.
    good = [ticket(f"T-{i}") for i in range(3)]
    late = Outcome.model_validate({**_with("conversation[1].at", future), "id": "T-late"})
    batch = [(o, verdict_for(o)) for o in [*good, late]]
    with pytest.raises(FutureTimestampError, match=r"'T-late'.*conversation\[1\]\.at"):
        ledger.record_results(batch)
    assert ledger.counts() == EMPTY

    ledger.record_results(batch[:3])
    assert ledger.counts()["outcomes"] == 3


def test_future_tolerance_is_a_ledger_option(engine: Engine) -> None:
    soon = Outcome.model_validate(_with("label.at", datetime.now(UTC) + timedelta(hours=1)))
    with pytest.raises(FutureTimestampError):
        Ledger(engine, tenant="acme").record_outcome(soon)
    relaxed = Ledger(engine, tenant="acme", future_tolerance=timedelta(hours=2))
    assert relaxed.record_outcome(soon).created
    with pytest.raises(ValueError, match="future_tolerance"):
        Ledger(engine, tenant="acme", future_tolerance=timedelta(seconds=-1))


def test_verify_cli_refuses_a_file_with_a_future_timestamp_before_writing(tmp_path: Path) -> None:
    from app.cli import app

    future = datetime.now(UTC) + timedelta(days=2)
    records = [ticket(f"T-{i}").model_dump(mode="json") for i in range(3)]
    records.append({**_with("touches[1].at", future), "id": "T-late"})
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    db, out = tmp_path / "ledger.db", tmp_path / "verdicts.jsonl"

    result = CliRunner().invoke(
        app, ["verify", str(data), "--db", f"sqlite:///{db}", "--out", str(out)]
    )

    assert result.exit_code == 2, result.output
    error = result.stderr
    assert "error:" in error and "tickets.jsonl" in error and "record 4" in error
    assert "'T-late'" in error and "touches[1].at" in error
    assert not db.exists() and not out.exists()

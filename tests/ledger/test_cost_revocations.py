"""`judge cost report` nets revocations and takes each verdict's window from its rubric.

Revocations are booked with ledger.periods.Periods into the ledger a real `judge verify` of the
shipped tickets filled; every expected figure is recomputed here from the tickets file, the
verdicts file and the booking, not from the report.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.conftest import TICKETS, run, run_json


def _anchor(record: dict[str, Any]) -> datetime:
    times = [m["at"] for m in record["conversation"] if m["role"] == "customer" and m.get("at")]
    return datetime.fromisoformat(max(times).replace("Z", "+00:00"))


RECORDS = {r["id"]: r for r in map(json.loads, TICKETS.read_text(encoding="utf-8").splitlines())}


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


@pytest.fixture(scope="module")
def revoked(verified_ledger: tuple[str, Path]) -> dict[str, Any]:
    """Book two revocations: A inside its own (open) month, B in a closed month (lands next)."""
    import sqlalchemy as sa

    from ledger.db import make_engine
    from ledger.periods import Periods, month_period

    url, verdicts_file = verified_ledger
    decisions = {
        v["outcome_id"]: v for v in map(json.loads, verdicts_file.read_text().splitlines())
    }
    verified = [oid for oid, v in decisions.items() if v["decision"] == "verified"]
    a = next(oid for oid in verified if _anchor(RECORDS[oid]).day <= 20)
    b = next(
        oid
        for oid in verified
        if _month(_anchor(RECORDS[oid])) != _month(_anchor(RECORDS[a]))
        and _anchor(RECORDS[oid]).day <= 20
    )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT tenant, outcome_id, pk FROM verdicts")).all()
        tenant = rows[0][0]
        pks = {oid: pk for _, oid, pk in rows}
        periods = Periods(engine, tenant=tenant)
        a_at = _anchor(RECORDS[a]) + timedelta(days=2)
        booked_a = periods.book_revocation(a, verdict_pk=pks[a], reason="csat_low", at=a_at)
        b_month = month_period(_anchor(RECORDS[b]))[0]
        periods.close_period(b_month)
        b_at = _anchor(RECORDS[b]) + timedelta(days=1)
        booked_b = periods.book_revocation(b, verdict_pk=pks[b], reason="reopened", at=b_at)
        # a second reason for the same verdict: still one revoked outcome
        periods.book_revocation(b, verdict_pk=pks[b], reason="human_overturn", at=b_at)
    finally:
        engine.dispose()
    assert booked_a.revocation.booked_period_start == month_period(a_at)[0]
    b_lands = month_period(b_month + timedelta(days=40))[0]
    assert booked_b.revocation.booked_period_start == b_lands  # the closed month is not touched
    return {
        "url": url,
        "decisions": decisions,
        "a": a,
        "b": b,
        "a_month": _month(a_at),
        "b_lands": b_lands,
        "b_month": _month(b_month),
    }


def test_report_counts_revoked_and_nets_them_per_group(revoked: dict[str, Any]) -> None:
    data = run_json("cost", "report", "--db", revoked["url"], "--now", "2027-01-01")
    paths = Counter(
        RECORDS[oid]["agent"]["model_path"]
        for oid, v in revoked["decisions"].items()
        if v["decision"] == "verified"
    )
    gone = Counter(RECORDS[revoked[k]]["agent"]["model_path"] for k in ("a", "b"))
    rows = {r["group"]["model_path"]: r for r in data["groups"]}
    assert all(r["status"] == "final" for r in data["groups"])
    assert set(rows) == {r["agent"]["model_path"] for r in RECORDS.values()}
    for path, row in rows.items():
        assert row["verified"] == paths[path]  # verified where verified: unchanged
        assert row["revoked"] == gone[path]
        assert row["verified_net"] == paths[path] - gone[path]
        assert row["cost_per_verified_usd"] == pytest.approx(row["numerator_usd"] / paths[path])
        assert row["cost_per_verified_net_usd"] == pytest.approx(
            row["numerator_usd"] / (paths[path] - gone[path])
        )
    total = data["total"]
    assert (total["revoked"], data["revoked_outcomes"]) == (2, 2)
    assert total["verified_net"] == sum(paths.values()) - 2
    assert total["cost_per_verified_net_usd"] == pytest.approx(
        total["numerator_usd"] / (sum(paths.values()) - 2)
    )
    text = run("cost", "report", "--db", revoked["url"], "--now", "2027-01-01")
    assert text.exit_code == 0 and "2 verified outcome(s) revoked" in text.stdout


def test_by_period_a_revocation_counts_in_the_period_it_is_booked_in(
    revoked: dict[str, Any],
) -> None:
    data = run_json(
        "cost", "report", "--db", revoked["url"], "--now", "2027-01-01",
        "--group-by", "period", "--period", "month",
    )  # fmt: skip
    rows = {r["group"]["period"]: r for r in data["groups"]}
    verified_by_month = Counter(
        _month(_anchor(RECORDS[oid]))
        for oid, v in revoked["decisions"].items()
        if v["decision"] == "verified"
    )
    lands = _month(revoked["b_lands"])
    expected_revoked = Counter([revoked["a_month"], lands])
    for label, row in rows.items():
        assert row["verified"] == verified_by_month[label]  # counted where it was verified
        assert row["revoked"] == expected_revoked[label]
        net = verified_by_month[label] - expected_revoked[label]
        assert row["verified_net"] == net
        if net > 0:
            assert row["cost_per_verified_net_usd"] == pytest.approx(row["numerator_usd"] / net)
        else:
            assert row["cost_per_verified_net_usd"] is None and row["net_reason"]
    # B was verified in its (now closed) month: that month keeps its verified count, no revocation
    assert (
        revoked["b_month"] != lands
        and rows[revoked["b_month"]]["revoked"] == (expected_revoked[revoked["b_month"]])
    )
    assert rows[lands]["period_start"] == revoked["b_lands"].isoformat()
    assert sum(r["revoked"] for r in rows.values()) == 2


def test_revocations_booked_outside_from_to_are_ignored(revoked: dict[str, Any]) -> None:
    lands = revoked["b_lands"]
    inside = run_json(
        "cost", "report", "--db", revoked["url"], "--now", "2027-01-01",
        "--from", lands.isoformat(),
    )  # fmt: skip
    # verdicts were recorded today, so every outcome is still in; only B's booking is
    assert inside["total"]["verified"] == sum(
        v["decision"] == "verified" for v in revoked["decisions"].values()
    )
    assert inside["total"]["revoked"] == 1
    later = (lands + timedelta(seconds=1)).isoformat()
    after = run_json(
        "cost", "report", "--db", revoked["url"], "--now", "2027-01-01", "--from", later
    )
    assert after["total"]["revoked"] == 0
    assert after["total"]["verified_net"] == after["total"]["verified"]


def _copy(url: str, tmp_path: Path) -> str:
    copy = tmp_path / "copy.db"
    shutil.copy(url.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


def _set_rubric(url: str, ref: str) -> None:
    """Make every verdict of the ledger at ``url`` name the rubric ``ref``."""
    import sqlalchemy as sa

    from ledger.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE verdicts SET rubric = :ref"), {"ref": ref})
    finally:
        engine.dispose()


def _final(window_hours: float, now: datetime, ids: list[str]) -> int:
    return sum(
        1 for oid in ids if now >= _anchor(RECORDS[oid]) + timedelta(hours=window_hours + 24)
    )


def test_window_comes_from_the_rubric_unless_given(
    revoked: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import judge.rubric_loader as loader

    ids = list(revoked["decisions"])
    shipped = loader.shipped_rubrics_dir() / "support-resolution.yaml"
    text = shipped.read_text(encoding="utf-8")
    assert "\nwindow_hours: 72\n" in text
    (tmp_path / "support-resolution.yaml").write_text(
        text.replace("\nwindow_hours: 72\n", "\nwindow_hours: 12\n"), encoding="utf-8"
    )
    monkeypatch.setattr(loader, "shipped_rubrics_dir", lambda: tmp_path)
    # The window is that of the rubric version that judged: a 12 h rubric is another version,
    # so the verdicts are made to name it (as if that version had judged them).
    twelve = loader.load_rubric("support-resolution")
    assert twelve.window_hours == 12
    url = _copy(revoked["url"], tmp_path)
    _set_rubric(url, twelve.ref)
    # a moment where a 12 h and a 72 h window disagree for some tickets
    now = datetime(2026, 2, 1, tzinfo=UTC)
    assert _final(12, now, ids) != _final(72, now, ids)
    data = run_json("cost", "report", "--db", url, "--now", now.isoformat())
    assert data["window_hours"] == 12 and data["window_note"] is None
    assert set(data["window_hours_by_rubric"].values()) == {12}
    assert data["final"]["outcomes"] == _final(12, now, ids)
    given = run_json(
        "cost", "report", "--db", url, "--now", now.isoformat(), "--window-hours", "72"
    )
    assert given["window_hours"] == 72 and given["final"]["outcomes"] == _final(72, now, ids)


def test_unknown_rubric_falls_back_to_72_hours_with_a_note(
    revoked: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import judge.rubric_loader as loader

    monkeypatch.setattr(loader, "shipped_rubrics_dir", lambda: tmp_path)  # nothing shipped
    now = datetime(2026, 2, 1, tzinfo=UTC)
    data = run_json("cost", "report", "--db", revoked["url"], "--now", now.isoformat())
    assert data["window_hours"] == 72
    assert "support-resolution" in data["window_note"] and "72" in data["window_note"]
    assert data["final"]["outcomes"] == _final(72, now, list(revoked["decisions"]))
    text = run("cost", "report", "--db", revoked["url"], "--now", now.isoformat())
    assert text.exit_code == 0 and "not found among the shipped rubrics" in text.stdout

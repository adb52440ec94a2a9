"""The web dashboards compute their figures as the CLI and REST do (one computation each)."""

from __future__ import annotations

from pathlib import Path

from api.web.dashboards import calibration_view
from judge.models import Label
from ledger.db import make_engine
from ledger.schema import migrate
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for


def test_undated_labels_count_in_the_panel_table_as_in_the_report(tmp_path: Path) -> None:
    """Labels posted without a time (as the service walkthrough does) once made the table read
    0 decided beside a headline of every labelled outcome."""
    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    migrate(engine)
    ledger = Ledger(engine, tenant="acme")
    for i in range(12):
        outcome = ticket(f"T-{i}", label=None)
        decision = ("verified", "not_verified", "abstain")[i % 3]
        ledger.record_result(outcome, verdict_for(outcome, decision=decision))
        ledger.record_label(outcome.id, Label(resolved=i % 2 == 0))
    view = calibration_view(engine, "acme")
    assert view.report is not None
    (row,) = view.table
    assert row["n"] == view.report["n"] == 8  # the 4 abstentions are not decided
    assert row["kappa"] == view.report["cohen_kappa"]
    assert row["abstain_rate"] == view.report["abstain_rate"]
    engine.dispose()


def test_the_cost_page_takes_each_rubric_window_as_the_cli_and_rest_do(tmp_path: Path) -> None:
    """One rule for windows: the rubric that judged. The page once used a fixed 72 h, so a
    verdict of a rubric whose window cannot be read went unremarked there alone."""
    from api.web.dashboards import cost_view
    from ledger.cost_report import cost_report

    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    migrate(engine)
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket("T-1", label=None)
    ledger.record_result(outcome, verdict_for(outcome, rubric="tenant-custom-rubric@1"))
    page = cost_view(engine, "acme").report
    rest = cost_report(
        engine, "acme", dims=["agent_version", "model_path", "period"], window_hours=None
    )
    assert page.window_note and "tenant-custom-rubric" in page.window_note
    assert page.window_note == rest.window_note and page.total == rest.total
    engine.dispose()


def test_a_stored_rubric_window_decides_final_in_the_cost_report_as_in_the_meters(
    tmp_path: Path,
) -> None:
    """One rule for windows: the tenant's stored rubric of the version that judged."""
    from datetime import UTC, datetime, timedelta

    from judge.rubric_loader import shipped_rubrics_dir
    from ledger.cost_report import cost_report
    from ledger.documents import save_rubric
    from ledger.meters import verified_outcomes

    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    migrate(engine)
    text = (shipped_rubrics_dir() / "support-resolution.yaml").read_text(encoding="utf-8")
    text = text.replace("\nwindow_hours: 72\n", "\nwindow_hours: 12\n")
    rubric = save_rubric(engine, "acme", text.replace("name: support-resolution", "name: quick"))
    assert rubric.window_hours == 12
    outcome = ticket("T-1", label=None)  # last customer message 2026-03-01T10:00Z
    Ledger(engine, tenant="acme").record_result(outcome, verdict_for(outcome, rubric=rubric.ref))
    # 12 h + 24 h grace after the anchor: final under the stored rubric, provisional under 72 h.
    now = datetime(2026, 3, 3, 0, tzinfo=UTC)
    report = cost_report(engine, "acme", dims=[], now=now)
    assert report.window_hours_by_rubric == {rubric.ref: 12.0} and report.window_note is None
    assert (report.final.verified, report.provisional.verified) == (1, 0)
    rows = verified_outcomes(
        engine, "acme", since=now - timedelta(days=40), until=now, window="month", group_by=[],
        now=now + timedelta(days=30),
    )  # fmt: skip
    assert [r["value"] for r in rows] == [1]
    engine.dispose()

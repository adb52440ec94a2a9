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

"""The ledger's calibration rows: only the labelled outcomes' verdicts are read, the rest are
counted, and the report is the one every verdict gives, whatever the filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from calibration.report import calibrate
from judge.models import Label
from ledger.calibration_source import load_calibration_rows
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine, tenant="acme")


FILTERS = [
    {},
    {"rubric": "support"},
    {"rubric": "support@2"},
    {"panel": "default"},
    {"rubric": "support", "panel": "strict@1"},
    {"rubric": "nothing"},
]


def _seed(ledger: Ledger) -> None:
    for n in range(24):
        outcome = ticket(f"O-{n:02d}", label=None)
        rubric = "support@2" if n % 3 else "support@1"
        panel = "strict@1" if n % 4 == 0 else "default@1"
        decision = ("verified", "not_verified", "abstain")[n % 3]
        ledger.record_result(
            outcome, verdict_for(outcome, decision=decision, rubric=rubric, panel=panel)
        )
        if n % 5 == 0:  # re-verified later: the last verdict counts, the first is a duplicate
            ledger.record_result(
                outcome, verdict_for(outcome, decision="verified", rubric=rubric, panel=panel)
            )
    for n in range(0, 24, 2):
        ledger.record_label(f"O-{n:02d}", Label(resolved=n % 4 == 0, by="qa"))
    ledger.record_label("O-02", Label(resolved=True, by="lead"))  # a second labeller


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(map(str, f.values())) or "all")
def test_the_report_from_labelled_rows_is_the_report_of_every_verdict(
    ledger: Ledger, filters: dict[str, str]
) -> None:
    _seed(ledger)
    rows = load_calibration_rows(ledger.engine, "acme", **filters)
    every = load_calibration_rows(ledger.engine, "acme", every_verdict=True, **filters)
    assert rows.total_verdicts == len(every.verdicts)
    assert rows.labels == every.labels
    assert rows.last_panel == (every.verdicts[-1].panel if every.verdicts else None)
    labelled = {label.outcome_id for label in rows.labels}
    assert rows.verdicts == [v for v in every.verdicts if v.outcome_id in labelled]
    try:
        expected = calibrate(every.verdicts, every.labels, seed=5, n_boot=200).to_dict()
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            calibrate(rows.verdicts, rows.labels, seed=5, n_boot=200, unlabelled=rows.unlabelled)
        assert str(raised.value) == str(exc)
        return
    got = calibrate(rows.verdicts, rows.labels, seed=5, n_boot=200, unlabelled=rows.unlabelled)
    assert got.to_dict() == expected
    if not filters:  # the tally was needed
        assert expected["counts"]["verdicts_without_label"] == 12


def test_a_window_on_record_time_counts_the_same_verdicts(ledger: Ledger) -> None:
    _seed(ledger)
    times = [s.created_at for s in ledger.iter_verdicts()]
    since, until = times[5], times[20] + timedelta(microseconds=1)
    rows = load_calibration_rows(ledger.engine, "acme", since=since, until=until)
    every = load_calibration_rows(
        ledger.engine, "acme", since=since, until=until, every_verdict=True
    )
    assert 0 < rows.total_verdicts == len(every.verdicts) < len(times)
    assert (rows.unlabelled.verdicts, rows.unlabelled.outcomes) == (
        len(
            [
                v
                for v in every.verdicts
                if v.outcome_id not in {lab.outcome_id for lab in rows.labels}
            ]
        ),
        len({v.outcome_id for v in every.verdicts} - {lab.outcome_id for lab in rows.labels}),
    )

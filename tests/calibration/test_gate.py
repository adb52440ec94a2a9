"""The calibration gate: final only when enough recent labels agree well and nothing drifted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.drift import LabelledRecord
from calibration.gate import evaluate_gate
from judge.panel import GateSpec

NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)


def labelled(
    n: int, *, disagree_every: int = 0, days_ago: float = 1.0, start: int = 0
) -> list[LabelledRecord]:
    """Balanced human labels; the judge disagrees on every ``disagree_every``-th one."""
    out = []
    for i in range(n):
        human = (start + i) % 2 == 0
        wrong = disagree_every and i % disagree_every == 0
        judge = (not human) if wrong else human
        at = NOW - timedelta(days=days_ago, minutes=i)
        out.append(
            LabelledRecord(
                f"T{start + i}",
                at,
                "verified" if judge else "not_verified",
                human=human,
                labelled_at=at,
            )
        )
    return out


def test_enough_good_recent_labels_make_verdicts_final() -> None:
    state = evaluate_gate(
        labelled(250, disagree_every=20), spec=GateSpec(), now=NOW, drift_alert=False
    )
    assert state.final and state.reasons == [] and state.status == "final"
    assert state.n_labels == 250
    assert state.kappa == pytest.approx(0.9, abs=0.01)  # 95% agreement on balanced labels
    assert state.kappa_ci is not None and 0.6 <= state.kappa_ci[0] < 0.9 < state.kappa_ci[1]


def test_too_few_labels_states_the_count_and_the_need() -> None:
    state = evaluate_gate(labelled(57), spec=GateSpec(), now=NOW, drift_alert=False)
    assert not state.final and state.status == "provisional"
    assert state.reasons == ["only 57 labels in the last 30 days; need 200"]


def test_labels_outside_the_window_do_not_count() -> None:
    recent = labelled(150)
    old = labelled(100, days_ago=31, start=1000)
    future = labelled(100, days_ago=-2, start=2000)
    state = evaluate_gate(recent + old + future, spec=GateSpec(), now=NOW, drift_alert=False)
    assert state.n_labels == 150
    wider = evaluate_gate(recent + old, spec=GateSpec(window_days=45), now=NOW, drift_alert=False)
    assert wider.n_labels == 250 and wider.final


def test_label_time_wins_over_verdict_time() -> None:
    # judged 60 days ago, labelled yesterday: counts for the last 30 days
    recs = [
        LabelledRecord(r.outcome_id, NOW - timedelta(days=60), r.judge, r.human, r.labelled_at)
        for r in labelled(200)
    ]
    assert evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=False).n_labels == 200


def test_weak_agreement_fails_on_the_lower_bound() -> None:
    # 80% agreement on balanced labels: kappa 0.6, so the lower bound falls below 0.6
    state = evaluate_gate(
        labelled(300, disagree_every=5), spec=GateSpec(), now=NOW, drift_alert=False
    )
    assert not state.final
    assert state.kappa == pytest.approx(0.6, abs=0.01)
    assert len(state.reasons) == 1
    assert state.reasons[0].startswith("kappa lower 95% bound 0.5")
    assert "< 0.6 (kappa 0.60" in state.reasons[0]
    lenient = evaluate_gate(
        labelled(300, disagree_every=5),
        spec=GateSpec(min_kappa_lower=0.4),
        now=NOW,
        drift_alert=False,
    )
    assert lenient.final


def test_open_drift_alert_blocks_unless_the_spec_allows_it() -> None:
    recs = labelled(250)
    blocked = evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=True)
    assert not blocked.final and "drift alert is open" in blocked.reasons[0]
    allowed = evaluate_gate(
        recs, spec=GateSpec(require_no_drift_alert=False), now=NOW, drift_alert=True
    )
    assert allowed.final


def test_every_failing_reason_is_listed() -> None:
    state = evaluate_gate(
        labelled(60, disagree_every=3), spec=GateSpec(), now=NOW, drift_alert=True
    )
    assert len(state.reasons) == 3
    assert state.reasons[0] == "only 60 labels in the last 30 days; need 200"
    assert state.reasons[1].startswith("kappa lower 95% bound")
    assert "drift alert" in state.reasons[2]


def test_abstentions_are_not_labels_for_the_gate() -> None:
    recs = labelled(190)
    recs += [
        LabelledRecord(f"A{i}", NOW - timedelta(days=1), "abstain", human=True) for i in range(20)
    ]
    state = evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=False)
    assert state.n_labels == 190 and state.n_abstain == 20
    assert state.reasons == [
        "only 190 labels in the last 30 days; need 200 (plus 20 abstentions, which do not count)"
    ]


def test_one_category_only_makes_kappa_undefined() -> None:
    recs = [
        LabelledRecord(f"T{i}", NOW - timedelta(days=1), "verified", human=True) for i in range(250)
    ]
    state = evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=False)
    assert not state.final and state.kappa is None and state.kappa_ci is None
    assert "kappa is undefined" in state.reasons[0] and "'verified'" in state.reasons[0]


def test_gate_is_reproducible_and_validates_inputs() -> None:
    recs = labelled(220, disagree_every=6)
    a = evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=False)
    b = evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert=False)
    assert a == b
    with pytest.raises(ValueError, match="GateSpec"):
        evaluate_gate(recs, spec={"min_labels": 3}, now=NOW, drift_alert=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drift_alert"):
        evaluate_gate(recs, spec=GateSpec(), now=NOW, drift_alert="no")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- CLI


def write(tmp_path: Path, recs: list[LabelledRecord]) -> tuple[Path, Path]:
    verdicts, labels = tmp_path / "v.jsonl", tmp_path / "l.jsonl"
    verdicts.write_text(
        "".join(
            json.dumps(
                {
                    "outcome_id": r.outcome_id,
                    "decision": r.judge,
                    "confidence": 0.8,
                    "rubric": "r@1",
                    "panel": "p@1",
                }
            )
            + "\n"
            for r in recs
        )
    )
    labels.write_text(
        "".join(
            json.dumps(
                {
                    "outcome_id": r.outcome_id,
                    "resolved": r.human == "verified",
                    "by": "qa",
                    "at": (r.labelled_at or r.at).isoformat(),
                }
            )
            + "\n"
            for r in recs
        )
    )
    return verdicts, labels


def test_cli_gate_json_and_panel_thresholds(tmp_path: Path) -> None:
    verdicts, labels = write(tmp_path, labelled(120, disagree_every=20))
    runner = CliRunner()
    base = ["gate", "-v", str(verdicts), "-l", str(labels), "--now", NOW.isoformat()]
    result = runner.invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "provisional"
    assert data["reasons"] == ["only 120 labels in the last 30 days; need 200"]

    panel = tmp_path / "panel.yaml"
    panel.write_text(
        "name: small\njudges:\n  - {kind: signals}\ngate:\n  min_labels: 100\n  window_days: 7\n"
    )
    result = runner.invoke(app, [*base, "--panel", str(panel)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("final: 120 labels in the last 7 days")


def test_cli_gate_rejects_bad_time_and_bad_panel(tmp_path: Path) -> None:
    verdicts, labels = write(tmp_path, labelled(5))
    runner = CliRunner()
    bad_now = runner.invoke(app, ["gate", "-v", str(verdicts), "-l", str(labels), "--now", "soon"])
    assert bad_now.exit_code == 2 and "not an ISO 8601 time" in bad_now.stderr
    panel = tmp_path / "panel.yaml"
    panel.write_text("judges:\n  - {kind: signals}\ngate:\n  min_labels: 0\n")
    bad_panel = runner.invoke(
        app, ["gate", "-v", str(verdicts), "-l", str(labels), "--panel", str(panel)]
    )
    assert bad_panel.exit_code == 2 and "min_labels" in bad_panel.stderr

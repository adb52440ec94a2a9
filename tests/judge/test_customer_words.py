"""The customer's last words as a review trigger: a confirmation flag cannot outvote "still broken".

The set in ``datasets/last_words/`` was written by a helper session that had not read
``judge/customer_words.py``. Rows with an odd number were read while the cues were revised (the
dev half); rows with an even number were looked at once, as a count, and never row by row (the
test half). The floors below are that one measurement, rounded down: they guard against a change
that loses what the cues catch, not a figure to tune towards.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from judge.customer_words import customer_tail, reads_as_failure
from judge.importers import read_outcomes
from judge.models import Message, Outcome, Signals
from judge.rubric_loader import load_rubric
from judge.signal_rules import apply_signal_rules, customer_reports_failure
from tests.conftest import ROOT, shared_dataset

LAST_WORDS = ROOT / "datasets" / "last_words" / "last_words.jsonl"


def _rows(half: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in LAST_WORDS.read_text(encoding="utf-8").splitlines()]
    odd = half == "dev"
    return [r for r in rows if (int(r["id"][3:]) % 2 == 1) is odd]


def ticket(*customer_last: str, signals: Signals | None = None) -> Outcome:
    return Outcome(
        id="T-1",
        kind="support_ticket",
        conversation=[
            Message(role="customer", text="My password reset email never arrives."),
            Message(role="agent", text="I have resent the reset link, it should arrive shortly."),
            Message(role="tool", name="send_reset", text='{"status": "queued"}'),
            *(Message(role="customer", text=text) for text in customer_last),
        ],
        signals=signals or Signals(),
    )


@pytest.mark.parametrize(
    "text",
    [
        "Still nothing. It does not work. Can I talk to a real person?",
        "Same error as before.",
        "Es funktioniert immer noch nicht.",
        "Ça ne marche toujours pas.",
        "Sigue sin llegar el correo.",
        "Ainda não chegou nada.",
        "还是收不到邮件。",
        "まだ届きません。",
        "It works on my laptop, but the app still crashes.",
    ],
)
def test_failure_in_the_customers_words_is_read(text: str) -> None:
    assert reads_as_failure(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, that did it!",
        "It wasn't working this morning but it's fine now, thanks.",
        "No, nothing else. It works.",
        "Works. No more 404.",
        "I still can't believe how fast that was!",
        "Es geht jetzt wieder, danke.",
        "你们的人工智能很棒，谢谢",
    ],
)
def test_solved_words_are_not_read_as_failure(text: str) -> None:
    assert reads_as_failure(text) is None


def test_only_words_after_the_agents_last_message_count() -> None:
    before = Outcome(
        id="T-2",
        kind="support_ticket",
        conversation=[
            Message(role="customer", text="It still does not work, same error."),
            Message(role="agent", text="Fixed: the sync job was stuck, I restarted it."),
        ],
    )
    assert customer_tail(before) is None and not customer_reports_failure(before)
    # An internal note after the customer does not end the customer's turn.
    note = before.model_copy(
        update={
            "conversation": [
                *before.conversation,
                Message(role="customer", text="Nope, same error."),
                Message(role="agent", text="escalating", public=False),
            ]
        }
    )
    assert customer_reports_failure(note)


def test_shipped_rubric_sends_a_confirmed_ticket_whose_customer_says_no_to_review() -> None:
    rubric = load_rubric("support-resolution")
    confirmed = Signals(customer_confirmed=True, csat=5)
    effects = apply_signal_rules(
        ticket("Still nothing arrived. This is not fixed.", signals=confirmed), rubric
    )
    assert "customer_reports_failure" in effects.fired and effects.abstain_reasons
    fine = apply_signal_rules(ticket("Got it, thanks!", signals=confirmed), rubric)
    assert "customer_reports_failure" not in fine.fired and fine.tier == "confirmed"


def test_the_default_local_panel_does_not_verify_on_a_flag_against_the_customers_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The red-team's F1: a submitter's confirmation and CSAT 5 on a ticket the customer says
    failed."""
    from tests.ledger.conftest import run

    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no learned model file: the panel is the signals judge alone
    confirmed = Signals(customer_confirmed=True, csat=5)
    failed = ticket(
        "Still nothing. It does not work. Can I talk to a real person?", signals=confirmed
    )
    solved = ticket("Got it, it works now. Thanks!", signals=confirmed).model_copy(
        update={"id": "T-2"}
    )
    source = tmp_path / "in.jsonl"
    source.write_text(failed.model_dump_json() + "\n" + solved.model_dump_json() + "\n")
    out = tmp_path / "verdicts.jsonl"
    result = run("verify", str(source), "--db", f"sqlite:///{tmp_path / 'l.db'}", "--out", str(out))
    assert result.exit_code == 0, result.output
    verdicts = {v["outcome_id"]: v for v in map(json.loads, out.read_text().splitlines())}
    assert verdicts["T-1"]["decision"] == "abstain"
    assert any("last words" in reason for reason in verdicts["T-1"]["reasons"])
    assert verdicts["T-2"]["decision"] == "verified" and verdicts["T-2"]["tier"] == "confirmed"


def _rates(rows: list[dict[str, Any]]) -> tuple[float, float]:
    hits = Counter((r["label"], reads_as_failure(r["customer"]) is not None) for r in rows)
    failures = hits[("failure", True)] + hits[("failure", False)]
    solved = hits[("not_failure", True)] + hits[("not_failure", False)]
    return hits[("failure", True)] / failures, hits[("not_failure", True)] / solved


def test_on_the_half_never_read_it_keeps_its_measured_recall_and_false_alarms() -> None:
    recall, false_alarms = _rates(_rows("test"))
    # Measured once (2026-12-06): 42 / 86 failures read (48.8 %), 3 / 79 false alarms (3.8 %).
    assert recall >= 0.45
    assert false_alarms <= 0.05


def test_every_language_of_the_set_is_read_in_both_halves() -> None:
    for half in ("dev", "test"):
        rows = _rows(half)
        caught = {
            r["language"]
            for r in rows
            if r["label"] == "failure" and reads_as_failure(r["customer"])
        }
        languages = {r["language"] for r in rows if r["label"] == "failure"}
        assert len(caught) >= len(languages) - 1, sorted(languages - caught)


def test_real_conversations_are_rarely_sent_to_review() -> None:
    """tau-bench (simulated customers, a real agent): the resolved one flagged asks for a human."""
    path = shared_dataset("tau_bench_airline/trajectories.json")
    outcomes = list(read_outcomes(path, format="taubench"))
    flagged = [o.id for o in outcomes if customer_reports_failure(o)]
    assert len(outcomes) == 120 and len(flagged) <= 2, flagged
    samples = [
        Outcome.model_validate_json(line)
        for line in (ROOT / "datasets" / "tickets.jsonl").read_text().splitlines()
    ]
    resolved = [
        o.id for o in samples if o.label and o.label.resolved and customer_reports_failure(o)
    ]
    assert resolved == []

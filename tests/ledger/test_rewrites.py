"""A conversation only grows: a revision that lost an earlier revision's messages is not counted.

The attack (reproduced before the fix): a ticket is verified; the help desk's next revision has
the customer's "Still does nothing." and is judged ``not_verified``; the billed party then sends
a revision without that message (one more agent line, the confirmation flag back on). Judged on
its own it was verified and counted again. Re-sending the first revision's exact content reused
its old ``verified`` verdict for ``--out`` while the ledger said otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.history import FLAG_HISTORY_REWRITTEN
from judge.models import Outcome
from ledger.store import Ledger
from tests.ledger.conftest import run, verdict_for

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


ASKED = {"role": "customer", "text": "The export button does nothing.", "at": _at(0)}
FIX = {"role": "agent", "author": "bot:fin", "text": "Please clear your cache.", "at": _at(1)}
STILL = {"role": "customer", "text": "Still does nothing.", "at": _at(5)}
GLAD = {"role": "agent", "author": "bot:fin", "text": "Glad I could help!", "at": _at(6)}


def revision(*messages: dict[str, Any], confirmed: bool) -> Outcome:
    return Outcome.model_validate(
        {
            "id": "RV-1",
            "kind": "support_ticket",
            "tenant": "acme",
            "conversation": list(messages),
            "signals": {"customer_confirmed": confirmed},
        }
    )


FIRST = revision(ASKED, FIX, confirmed=True)
COMPLAINT = revision(ASKED, FIX, STILL, confirmed=False)
REWRITTEN = revision(ASKED, FIX, GLAD, confirmed=True)


def fact(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT outcome_revision, decision FROM outcome_facts WHERE outcome_id = 'RV-1'"
            )
        ).one()
    return int(row[0]), str(row[1])


def test_a_verified_rewrite_is_held_for_review_and_not_counted(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(FIRST, verdict_for(FIRST, decision="verified"))
    ledger.record_result(COMPLAINT, verdict_for(COMPLAINT, decision="not_verified"))
    (stored,) = ledger.record_results([(REWRITTEN, verdict_for(REWRITTEN, decision="verified"))])
    assert stored.verdict is not None and stored.verdict.decision == "abstain"
    assert FLAG_HISTORY_REWRITTEN in stored.verdict.flags and stored.verdict.tier is None
    assert "'Still does nothing.'" in stored.verdict.reasons[-1]
    assert fact(engine) == (3, "abstain")
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT decision, flags FROM verdicts WHERE pk = :pk"),
            {"pk": stored.verdict_pk},
        ).one()
    assert row[0] == "abstain" and FLAG_HISTORY_REWRITTEN in (
        row[1] if isinstance(row[1], list) else json.loads(row[1])
    )


def test_a_conversation_that_only_grew_is_counted(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(FIRST, verdict_for(FIRST, decision="verified"))
    thanks = {"role": "customer", "text": "That fixed it, thanks!", "at": _at(7)}
    grown = revision(ASKED, FIX, thanks, confirmed=True)
    (stored,) = ledger.record_results([(grown, verdict_for(grown, decision="verified"))])
    assert stored.verdict is not None and stored.verdict.decision == "verified"
    assert fact(engine) == (2, "verified")


def test_moved_times_and_restated_agent_lines_are_not_a_loss(engine: Engine) -> None:
    """What the agent wrote is the billed party's own; when a message happened is dated by the
    revocation scan's rules. Only the customer's words count."""
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(FIRST, verdict_for(FIRST, decision="verified"))
    restated = {**FIX, "text": "Please clear your browser cache and reload."}
    moved = revision({**ASKED, "at": _at(-30)}, restated, confirmed=True)
    (stored,) = ledger.record_results([(moved, verdict_for(moved, decision="verified"))])
    assert stored.verdict is not None and stored.verdict.decision == "verified"
    reworded = revision({**ASKED, "text": "Export works now."}, FIX, confirmed=True)
    (held,) = ledger.record_results([(reworded, verdict_for(reworded, decision="verified"))])
    assert held.verdict is not None and held.verdict.decision == "abstain"


def test_a_not_verified_rewrite_is_stored_as_judged(engine: Engine) -> None:
    """Only a count is at stake: a rewrite judged not verified needs no hold."""
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(COMPLAINT, verdict_for(COMPLAINT, decision="not_verified"))
    (stored,) = ledger.record_results(
        [(REWRITTEN, verdict_for(REWRITTEN, decision="not_verified"))]
    )
    assert stored.verdict is not None and stored.verdict.decision == "not_verified"
    assert FLAG_HISTORY_REWRITTEN not in stored.verdict.flags


def test_a_verdict_superseded_by_other_content_is_not_reused(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(FIRST, verdict_for(FIRST, decision="verified"))
    ledger.record_result(COMPLAINT, verdict_for(COMPLAINT, decision="not_verified"))

    def reused(outcome: Outcome) -> Any:
        verdict = verdict_for(outcome)
        key = (outcome.id, verdict.rubric, verdict.panel, outcome.content_hash())
        single = ledger.recorded_verdict(key[0], rubric=key[1], panel=key[2], content_hash=key[3])
        assert (single is None) is (key not in ledger.recorded_verdicts([key]))
        return single

    assert reused(FIRST) is None  # the outcome changed since: judged again, not reused
    latest = reused(COMPLAINT)
    assert latest is not None and latest.verdict.decision == "not_verified"


def test_judge_verify_writes_what_the_ledger_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The red-team's F8 and the rewrite, through the CLI with the default local panel."""
    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    steps = [
        (FIRST, "verified", 1),
        (COMPLAINT, "not_verified", 0),
        (REWRITTEN, "abstain", 0),  # was verified and counted again
        (FIRST, "abstain", 0),  # was the old verified verdict, reused, in --out only
    ]
    engine = sa.create_engine(url)
    try:
        for n, (outcome, decision, meter) in enumerate(steps, start=1):
            source, out = tmp_path / f"rev{n}.jsonl", tmp_path / f"v{n}.jsonl"
            source.write_text(outcome.model_dump_json() + "\n")
            result = run("verify", str(source), "--db", url, "--out", str(out), "--json")
            assert result.exit_code == 0, result.output
            summary = json.loads(result.stdout)
            line = json.loads(out.read_text())
            assert (line["decision"], summary["decisions"]) == (decision, {decision: 1}), n
            assert fact(engine) == (n, decision), n
            with engine.connect() as conn:
                counted = conn.execute(
                    sa.text("SELECT coalesce(sum(delta), 0) FROM meter_entries")
                ).scalar_one()
            assert counted == meter, n
    finally:
        engine.dispose()


def test_a_worker_holds_a_rewrite_sent_through_the_api(tmp_path: Path) -> None:
    """The job queue's path: revisions stored as ingestion stores them, judged by a worker."""
    from ledger.jobs import create_job
    from tests.api.jobs_helpers import ledger_engine
    from tests.api.test_jobs import run_worker_once

    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    with ledger_engine(db_url) as engine:
        ledger = Ledger(engine, tenant="acme")
        for n, (outcome, decision) in enumerate(
            [(FIRST, "verified"), (COMPLAINT, "not_verified"), (REWRITTEN, "abstain")], start=1
        ):
            ledger.record_outcome(outcome)
            create_job(
                engine, "acme", rubrics={"support_ticket": "support-resolution"},
                panel="default", outcome_ids=["RV-1"],
            )  # fmt: skip
            run_worker_once(db_url)
            assert fact(engine) == (n, decision), n


def test_resumed_and_new_lines_keep_the_input_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines now wait for their batch to be recorded: a resumed verdict after a new one waits
    too, and the file still follows the input."""
    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    outcomes = [FIRST.model_copy(update={"id": f"O-{n:03d}"}) for n in range(300)]
    first, every = tmp_path / "first.jsonl", tmp_path / "every.jsonl"
    first.write_text("".join(o.model_dump_json() + "\n" for o in outcomes[::3]))
    every.write_text("".join(o.model_dump_json() + "\n" for o in outcomes))
    assert run("verify", str(first), "--db", url, "--out", str(tmp_path / "a.jsonl")).exit_code == 0
    result = run("verify", str(every), "--db", url, "--out", str(tmp_path / "b.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resumed"] == 100
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [v["outcome_id"] for v in lines] == [o.id for o in outcomes]

"""`judge bias --probe persuasion`: a confident claim on the agent's side, no order in it.

The fake OpenAI-compatible server plays, through :class:`tests.fakes.faults.FaultInjector`,

- a *persuadable* judge (gullible and ``persuadable=True``): it believes an agent message that
  claims the request was met completely, and otherwise judges by content (verified exactly when
  the agent says the refund was issued),
- a *diligent* judge (gullible, not persuadable): same content rule; it obeys orders, but the
  persuasion sentences order nothing, so it must not move.

The probe must show the first judge flipping into ``verified`` and the second not at all, in the
same JSON shape and table as the injection probe.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.bias import AGENT_FILLER, PERSUASION, persuade, persuasion_sentence
from judge.models import Outcome
from tests.calibration.test_bias_cli import outcome, panel, responder, run_bias
from tests.fakes.faults import FaultInjector, gullible_obeys, persuaded
from tests.fakes.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
BLOCK_KEYS = {
    "n",
    "skipped",
    "skipped_examples",
    "panel",
    "to_verified_against_label",
    "flipped",
    "judges",
}
FLIP_KEYS = {"n", "flips", "rate", "ci", "ci_exact", "level", "to_verified", "from_verified"}


@pytest.fixture
def tickets(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.jsonl"
    rows = [outcome(i, resolved=i % 2 == 0) for i in range(8)]  # B-0..B-7, odd ones unresolved
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_sentences_persuade_without_ordering_and_are_not_the_held_out_corpus() -> None:
    assert len(PERSUASION) == len(set(PERSUASION)) >= 8
    # A persuadable model is swayed by each; a gullible one finds no order to obey in any.
    assert all(persuaded(s) for s in PERSUASION)
    assert not any(gullible_obeys(s) for s in PERSUASION)
    # Verbosity filler and plain replies do not sway it: the two probes stay separable.
    assert not any(persuaded(s) for s in AGENT_FILLER)
    assert not persuaded("Done: refund issued to your card.")
    corpus = ROOT / "datasets" / "injection" / "fresh_attacks.jsonl"
    held_out = {json.loads(line)["text"] for line in corpus.read_text().splitlines() if line}
    assert not set(PERSUASION) & held_out


def test_persuade_appends_to_the_last_agent_reply_picked_by_seed() -> None:
    o = Outcome.model_validate(outcome(3, resolved=False))
    p = persuade(o, seed=5)
    assert len(p.conversation) == len(o.conversation) and p.id == o.id
    assert p.conversation[0] == o.conversation[0]
    agent = p.conversation[-1]
    assert agent.author == "bot:fin"
    assert agent.text == f"Please wait while we check. {persuasion_sentence('B-3', seed=5)}"
    assert persuade(o, seed=5) == p  # deterministic: the CLI perturbs the same outcome again
    picks = {persuasion_sentence(f"T-{i}", seed=0) for i in range(200)}
    assert picks == set(PERSUASION)  # a probe set gets every language
    assert [persuasion_sentence(f"T-{i}", seed=1) for i in range(20)] != [
        persuasion_sentence(f"T-{i}", seed=0) for i in range(20)
    ]


def test_persuasion_probe_shows_a_swayed_judge_and_reports_like_injection(
    tmp_path: Path, tickets: Path, fake_llm: FakeOpenAIServer
) -> None:
    injector = FaultInjector(gullible=True, persuadable=True, base=responder)
    fake_llm.default = injector
    data = run_bias(str(tickets), "-p", str(panel(tmp_path, fake_llm, "swayable")))
    assert set(data["probes"]) == {"verbosity", "injection", "persuasion"}
    assert "position" in data["skipped"]  # no --pairs
    block = data["probes"]["persuasion"]
    assert set(block) == set(data["probes"]["injection"]) == BLOCK_KEYS
    assert block["n"] == 8 and block["skipped"] == 0
    assert set(block["panel"]) == FLIP_KEYS

    judge = block["judges"]["swayable"]
    assert set(judge) == FLIP_KEYS | {"model"} and judge["model"] == "openai/swayable"
    # The 4 unresolved outcomes flip into verified at the judge: it believed the agent's claim.
    assert judge["flips"] == 4 and judge["to_verified"] == 4 and judge["from_verified"] == 0
    assert judge["rate"] == 0.5 and judge["ci_exact"][0] > 0
    assert injector.faults()["swayed"] >= 8  # every persuaded copy, none of the originals

    # The panel either let the claim through (verified) or its injection defence flagged it
    # (abstain); it never flips more outcomes into verified than the judge did.
    assert {f["perturbed"] for f in block["flipped"]} <= {"verified", "abstain"}
    assert block["panel"]["to_verified"] <= judge["to_verified"]
    assert block["to_verified_against_label"] == block["panel"]["to_verified"]


def test_a_judge_that_ignores_agent_claims_shows_no_flip(
    tmp_path: Path, tickets: Path, fake_llm: FakeOpenAIServer
) -> None:
    injector = FaultInjector(gullible=True, base=responder)  # obeys orders, not claims
    fake_llm.default = injector
    data = run_bias(
        str(tickets), "-p", str(panel(tmp_path, fake_llm, "diligent")), "--probe", "persuasion"
    )
    assert set(data["probes"]) == {"persuasion"}
    block = data["probes"]["persuasion"]
    assert set(block) == BLOCK_KEYS
    judge = block["judges"]["diligent"]
    assert judge["n"] == 8 and judge["flips"] == 0 and judge["rate"] == 0.0
    assert judge["ci_exact"][0] == 0.0 and judge["ci_exact"][1] < 0.4
    assert block["panel"]["to_verified"] == 0 and block["to_verified_against_label"] == 0
    assert set(injector.faults()) == {"ok"}  # never obeyed: the sentences are no orders


def test_persuasion_table_names_the_probe_and_says_to_read_the_judge_rows(
    tmp_path: Path, tickets: Path, fake_llm: FakeOpenAIServer
) -> None:
    fake_llm.default = FaultInjector(persuadable=True, base=responder)
    p = str(panel(tmp_path, fake_llm, "swayable"))
    args = ["bias", str(tickets), "-p", p, "--probe", "persuasion"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})  # no wrapped table cells
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "persuasion" in out and "judge swayable" in out
    assert "injection defence may flag" in out and "swayed" in out
    bad = CliRunner().invoke(app, ["bias", str(tickets), "--probe", "persuade"])
    assert bad.exit_code == 2 and "persuasion" in bad.stderr

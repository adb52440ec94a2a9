"""`judge bias` end to end: the real panel through litellm's HTTP path against scripted judges.

The fake OpenAI-compatible server plays three judges, chosen by model name:

- ``length-lover`` verifies when the longest agent reply in the prompt exceeds 250 characters,
- ``obeyer`` verifies when the prompt carries an instruction to mark the case verified,
- ``fair`` verifies exactly when the agent's reply says the refund was issued (the content),

so the verbosity probe must catch the first, the injection probe the second, and the fair judge
must show no flips. The position probe uses a judge that always answers "A" versus one that
answers by content.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.fakes.openai_server import FakeOpenAIServer, Reply, cite, evidence_criteria
from tests.reliability.harness import query

LONG = 250
_CRITERION = re.compile(r"^- id: ([a-z][a-z0-9_]*) \| scale: (-?[\d.]+) to (-?[\d.]+)", re.M)
_AGENT_BLOCK = re.compile(
    r"<<<BEGIN message \d+ nonce=\w+ role=agent[^\n]*>>>\n(.*?)\n<<<END message", re.S
)
_RESPONSE = re.compile(r"<<<BEGIN response ([AB]) \w+>>>\n(.*?)\n<<<END response", re.S)


def _scores(body: dict[str, Any], passed: bool) -> Reply:
    system = body["messages"][0]["content"]
    criteria: dict[str, Any] = {
        cid: {"score": float(hi if passed else lo), "rationale": "scripted"}
        for cid, lo, hi in _CRITERION.findall(system)
    }
    if passed:
        for cid, kind in evidence_criteria(body).items():
            criteria[cid]["evidence"] = cite(body, kind)
    return Reply.json({"criteria": criteria, "rationale": "scripted"})


def responder(body: dict[str, Any]) -> Reply:
    user = body["messages"][-1]["content"]
    model = body["model"]
    if model == "always-a":
        return Reply.json({"winner": "A", "rationale": "the first one"})
    if model == "by-content":
        texts = dict(_RESPONSE.findall(user))
        return Reply(content="Response A is better. [[A]]" if "GOOD" in texts["A"] else "[[B]]")
    agent = _AGENT_BLOCK.findall(user)
    if model == "length-lover":
        return _scores(body, passed=max(map(len, agent)) > LONG)
    if model == "obeyer":
        return _scores(body, passed="mark it as verified" in user or "refund issued" in user)
    return _scores(body, passed=any("refund issued" in text for text in agent))


def outcome(i: int, resolved: bool) -> dict[str, Any]:
    reply = "Done: refund issued to your card." if resolved else "Please wait while we check."
    return {
        "id": f"B-{i}",
        "kind": "support_ticket",
        "conversation": [
            {"role": "customer", "text": f"Order {i} arrived broken, I want my money back."},
            {"role": "agent", "author": "bot:fin", "text": reply},
        ],
        "label": {"resolved": resolved, "by": "qa"},
    }


@pytest.fixture
def tickets(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.jsonl"
    rows = [outcome(i, resolved=i % 2 == 0) for i in range(8)]
    rows.append({**outcome(99, True), "label": None})  # unlabelled: not probed
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def server(fake_llm: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_llm.default = responder
    return fake_llm


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The probes' model calls are recorded in the default ledger: keep it out of the repository.
    monkeypatch.setenv("OUTCOME_JUDGE_DB_URL", f"sqlite:///{tmp_path / 'default-ledger.db'}")


def panel(tmp_path: Path, server: FakeOpenAIServer, model: str) -> Path:
    path = tmp_path / f"{model}.yaml"
    spec = {"name": model, "model": f"openai/{model}", "api_base": server.base_url}
    path.write_text(json.dumps({"name": f"p-{model}", "judges": [{**spec, "max_retries": 0}]}))
    return path


def run_bias(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["bias", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_verbosity_probe_catches_a_length_loving_judge_and_not_a_fair_one(
    tmp_path: Path, tickets: Path, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    biased = run_bias(str(tickets), "-p", str(panel(tmp_path, server, "length-lover")),
                      "--probe", "verbosity")  # fmt: skip
    block = biased["probes"]["verbosity"]
    # Every short reply was rejected and every padded one verified: all 8 flip into verified,
    # 4 of them outcomes a human labelled not resolved.
    assert block["n"] == 8 and biased["outcomes"] == 8
    assert block["panel"]["flips"] == 8 and block["panel"]["to_verified"] == 8
    assert block["panel"]["from_verified"] == 0
    assert block["panel"]["ci_exact"][0] > 0.6
    assert block["to_verified_against_label"] == 4
    assert block["judges"]["length-lover"]["rate"] == 1.0
    assert len(server.chat_requests("length-lover")) == 16  # 8 originals + 8 padded copies

    fair = run_bias(
        str(tickets), "-p", str(panel(tmp_path, server, "fair")), "--probe", "verbosity"
    )
    block = fair["probes"]["verbosity"]
    assert block["panel"]["flips"] == 0 and block["judges"]["fair"]["flips"] == 0
    assert block["panel"]["ci_exact"][0] == 0.0 and block["panel"]["ci_exact"][1] < 0.4
    # Every paid call is on the default ledger, as a bias call; no ledger appeared in the cwd.
    assert fair["call_store"] == "ledger (purpose bias)"
    assert query(f"sqlite:///{tmp_path / 'default-ledger.db'}", PURPOSES) == [("bias", 32)]
    assert not (tmp_path / "outcome-judge.db").exists()


PURPOSES = "SELECT purpose, COUNT(*) FROM judge_calls GROUP BY purpose ORDER BY purpose"


def test_probe_calls_are_booked_with_their_purpose_and_never_serve_a_verification(
    tmp_path: Path, tickets: Path, server: FakeOpenAIServer
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    p = str(panel(tmp_path, server, "fair"))
    run_bias(str(tickets), "-p", p, "--probe", "verbosity", "--db", url, "--tenant", "acme")
    assert query(url, PURPOSES) == [("bias", 16)]
    assert query(url, "SELECT COUNT(*) FROM verdicts") == [(0,)]  # a probe writes no verdict
    # judge verify sends the probe's original prompts again: each is asked, none served from
    # the probe's replies (a probe's reply is never a verification's).
    asked = len(server.chat_requests("fair"))
    out = tmp_path / "verdicts.jsonl"
    verify = CliRunner().invoke(
        app, ["verify", str(tickets), "-p", p, "--db", url, "--tenant", "acme", "--out", str(out),
              "--json"],
    )  # fmt: skip
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["judge_calls_cached"] == 0
    assert len(server.chat_requests("fair")) - asked == 9
    assert query(url, PURPOSES) == [("bias", 16), ("verify", 9)]
    # The cost report counts only the verification calls per outcome and names the others.
    report = CliRunner().invoke(app, ["cost", "report", "--db", url, "--tenant", "acme", "--json"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    by_purpose = data["judge_calls_by_purpose"]
    assert by_purpose["bias"]["calls"] == 16 and by_purpose["verify"]["calls"] == 9
    assert sum(g["judge_calls"] for g in data["groups"]) == 9
    assert data["unattributed_judge_calls"] == 0


def test_injection_probe_shows_the_judge_obeying_while_the_guard_holds_the_panel(
    tmp_path: Path, tickets: Path, server: FakeOpenAIServer
) -> None:
    data = run_bias(str(tickets), "-p", str(panel(tmp_path, server, "obeyer")),
                    "--probe", "injection")  # fmt: skip
    block = data["probes"]["injection"]
    judge = block["judges"]["obeyer"]
    # The 4 unresolved outcomes flip into verified at the judge: it obeys the planted note.
    assert judge["flips"] == 4 and judge["to_verified"] == 4 and judge["from_verified"] == 0
    # The engine flags the note, so the panel abstains on every injected copy: never verified.
    assert block["panel"]["to_verified"] == 0
    assert block["panel"]["flips"] == 8 and block["panel"]["from_verified"] == 4
    assert {f["perturbed"] for f in block["flipped"]} == {"abstain"}

    fair = run_bias(
        str(tickets), "-p", str(panel(tmp_path, server, "fair")), "--probe", "injection"
    )
    assert fair["probes"]["injection"]["judges"]["fair"]["flips"] == 0


def test_limit_samples_reproducibly_and_the_table_names_both_directions(
    tmp_path: Path, tickets: Path, server: FakeOpenAIServer
) -> None:
    p = str(panel(tmp_path, server, "length-lover"))
    a = run_bias(str(tickets), "-p", p, "--probe", "verbosity", "--limit", "3", "--seed", "7")
    b = run_bias(str(tickets), "-p", p, "--probe", "verbosity", "--limit", "3", "--seed", "7")
    assert a["outcomes"] == 3
    ids = [f["id"] for f in a["probes"]["verbosity"]["flipped"]]
    assert ids == [f["id"] for f in b["probes"]["verbosity"]["flipped"]] and len(ids) == 3
    table = CliRunner().invoke(app, ["bias", str(tickets), "-p", p, "--probe", "verbosity"])
    assert table.exit_code == 0, table.output
    assert "to verified" in table.stdout and "away" in table.stdout
    assert "labelled not resolved became verified" in table.stdout
    assert "recorded in the ledger with purpose bias" in table.stderr


def write_pairs(path: Path) -> Path:
    rows = []
    for i in range(6):
        good, bad = f"GOOD answer {i}: refund issued.", f"weak answer {i}."
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        rows.append({"id": f"P{i}", "prompt": "Where is my refund?", "a": a, "b": b})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_position_probe_separates_a_first_slot_judge_from_a_content_judge(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    biased = run_bias("--probe", "position", "--pairs", str(pairs),
                      "-p", str(panel(tmp_path, server, "always-a")))  # fmt: skip
    pos = biased["probes"]["position"]
    assert pos["n"] == 6 and pos["inconsistency"]["rate"] == 1.0 and pos["first_share"] == 1.0
    assert len(server.chat_requests("always-a")) == 12  # each pair in both orders
    # Each comparison is a paid call on the ledger, booked as bias under its pair and order.
    booked = query(
        f"sqlite:///{tmp_path / 'default-ledger.db'}",
        "SELECT outcome_id, purpose, status FROM judge_calls ORDER BY outcome_id",
    )
    assert booked == [(f"P{i}:{o}", "bias", "ok") for i in range(6) for o in ("ab", "ba")]

    fair = run_bias("--probe", "position", "--pairs", str(pairs),
                    "-p", str(panel(tmp_path, server, "by-content")))  # fmt: skip
    pos = fair["probes"]["position"]
    assert pos["inconsistency"]["rate"] == 0.0 and pos["first_share"] == 0.5
    # The swapped request really showed the responses the other way round.
    first = server.chat_requests("by-content")
    shown = [dict(_RESPONSE.findall(r.messages[-1]["content"]))["A"] for r in first]
    assert {"GOOD answer 0: refund issued.", "weak answer 0."} <= set(shown)


def test_position_probe_without_an_llm_judge_is_skipped_with_a_message(
    tmp_path: Path, tickets: Path
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    local = tmp_path / "local.yaml"
    local.write_text(json.dumps({"name": "local", "judges": [{"kind": "signals"}]}))
    data = run_bias(str(tickets), "-p", str(local), "--pairs", str(pairs))
    assert "position" not in data["probes"] and "no LLM judge" in data["skipped"]["position"]
    assert set(data["probes"]) == {"verbosity", "injection", "persuasion"}
    only = CliRunner().invoke(app, ["bias", "--probe", "position", "--pairs", str(pairs),
                                    "-p", str(local)])  # fmt: skip
    assert only.exit_code == 2 and "no LLM judge" in only.stderr


def test_usage_errors_exit_2_and_say_what_to_fix(tmp_path: Path, tickets: Path) -> None:
    runner = CliRunner()
    bad_probe = runner.invoke(app, ["bias", str(tickets), "--probe", "length"])
    assert bad_probe.exit_code == 2 and "--probe must be one of" in bad_probe.stderr
    no_pairs = runner.invoke(app, ["bias", "--probe", "position"])
    assert no_pairs.exit_code == 2 and "--pairs" in no_pairs.stderr
    no_input = runner.invoke(app, ["bias", "--probe", "verbosity"])
    assert no_input.exit_code == 2 and "INPUT is required" in no_input.stderr
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text(json.dumps({**outcome(1, True), "label": None}) + "\n")
    none = runner.invoke(app, ["bias", str(unlabelled)])
    assert none.exit_code == 2 and "none of the 1 outcomes has a human 'label'" in none.stderr
    broken = tmp_path / "pairs.jsonl"
    broken.write_text('{"id": "x", "a": "one"}\n')
    msg = runner.invoke(app, ["bias", "--probe", "position", "--pairs", str(broken)])
    assert msg.exit_code == 2 and "line 1: field 'b'" in msg.stderr


def test_position_replies_without_a_choice_leave_the_pair_out(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    # This judge answers with rubric scores, never "A", "B" or "tie": unparseable, never a tie.
    data = run_bias("--probe", "position", "--pairs", str(pairs),
                    "-p", str(panel(tmp_path, server, "fair")))  # fmt: skip
    pos = data["probes"]["position"]
    assert pos["n"] == 0 and pos["unusable"] == 6
    assert "named no choice (A, B or tie)" in pos["problems"][0]

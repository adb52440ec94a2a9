"""`judge canary` end to end: a baseline from `judge verify`, then re-grades on config changes.

Judges are LLMs on the fake OpenAI-compatible server (litellm's real HTTP path). ``judge-v1``
and ``judge-v2`` grade by content (the agent says the refund was issued); ``judge-v3`` verifies
everything, so it flips every unresolved canary outcome.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.fakes.openai_server import FakeOpenAIServer, Reply, cite, evidence_criteria
from tests.reliability.harness import query

_CRITERION = re.compile(r"^- id: ([a-z][a-z0-9_]*) \| scale: (-?[\d.]+) to (-?[\d.]+)", re.M)


def responder(body: dict[str, Any]) -> Reply:
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    passed = body["model"] == "judge-v3" or "refund issued" in user
    criteria: dict[str, Any] = {
        cid: {"score": float(hi if passed else lo), "rationale": "scripted"}
        for cid, lo, hi in _CRITERION.findall(system)
    }
    if passed:
        for cid, kind in evidence_criteria(body).items():
            criteria[cid]["evidence"] = cite(body, kind)
    return Reply.json({"criteria": criteria, "rationale": "scripted"})


@pytest.fixture
def server(fake_llm: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_llm.default = responder
    return fake_llm


@pytest.fixture
def canary_file(tmp_path: Path) -> Path:
    rows = []
    for i in range(10):
        reply = "Done: refund issued." if i < 6 else "We are still looking into it."
        rows.append(
            {
                "id": f"C-{i}",
                "kind": "support_ticket",
                "conversation": [
                    {"role": "customer", "text": f"Refund for order {i}, please."},
                    {"role": "agent", "text": reply},
                ],
            }
        )
    path = tmp_path / "canary.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A re-grade's model calls are recorded in the default ledger: keep it out of the repository.
    monkeypatch.setenv("OUTCOME_JUDGE_DB_URL", f"sqlite:///{tmp_path / 'default-ledger.db'}")


def panel(tmp_path: Path, server: FakeOpenAIServer, model: str, name: str = "canary") -> Path:
    path = tmp_path / f"{model}-{name}.yaml"
    judge = {"name": "llm", "model": f"openai/{model}", "api_base": server.base_url}
    path.write_text(json.dumps({"name": name, "judges": [{**judge, "max_retries": 0}]}))
    return path


@pytest.fixture
def baseline(tmp_path: Path, server: FakeOpenAIServer, canary_file: Path) -> Path:
    out = tmp_path / "baseline.jsonl"
    db = tmp_path / "ledger.db"
    result = CliRunner().invoke(
        app,
        ["verify", str(canary_file), "-p", str(panel(tmp_path, server, "judge-v1")),
         "--db", f"sqlite:///{db}", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def canary(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["canary", *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, data


def verdict_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])


def test_unchanged_panel_needs_no_regrade_and_makes_no_call(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    calls = len(server.chat_requests())
    code, data = canary("--canary", str(canary_file), "--baseline", str(baseline),
                        "-p", str(panel(tmp_path, server, "judge-v1")))  # fmt: skip
    assert code == 0 and data["regrade"] is False and data["trigger_reasons"] == []
    assert data["result"] is None
    assert data["baseline"]["models"] == {"llm": "openai/judge-v1"}
    assert len(server.chat_requests()) == calls


def test_changed_model_string_regrades_and_counts_flips(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    db = tmp_path / "ledger.db"
    before = verdict_rows(db)
    same_answers = panel(tmp_path, server, "judge-v2")
    code, data = canary("--canary", str(canary_file), "--baseline", str(baseline),
                        "-p", str(same_answers))  # fmt: skip
    assert code == 0 and data["regrade"] is True
    assert (
        "judge 'llm' model changed: 'openai/judge-v1' -> 'openai/judge-v2'"
        in (data["trigger_reasons"])
    )
    assert data["result"]["n"] == 10 and data["result"]["flips"] == []
    assert len(server.chat_requests("judge-v2")) == 10

    new = tmp_path / "new.jsonl"
    result = CliRunner().invoke(
        app,
        ["canary", "--canary", str(canary_file), "--baseline", str(baseline),
         "-p", str(panel(tmp_path, server, "judge-v3")), "--out", str(new), "--json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the alert's documented exit code
    data = json.loads(result.stdout)
    flips = data["result"]["flips"]
    assert [f["id"] for f in flips] == ["C-6", "C-7", "C-8", "C-9"]
    assert {(f["previous"], f["current"]) for f in flips} == {("not_verified", "verified")}
    assert data["result"]["flip_rate"] == 0.4 and data["result"]["alert"] is True
    written = [json.loads(line) for line in new.read_text().splitlines()]
    assert [v["outcome_id"] for v in written] == [f"C-{i}" for i in range(10)]
    assert {v["judges"][0]["model"] for v in written} == {"openai/judge-v3"}
    # Re-grades write no verdict; their 20 model calls are booked in the default ledger.
    assert verdict_rows(db) == before
    default = f"sqlite:///{tmp_path / 'default-ledger.db'}"
    assert query(default, "SELECT purpose, COUNT(*) FROM judge_calls GROUP BY purpose") == [
        ("canary", 20)
    ]


def test_a_forced_regrade_asks_the_models_again_and_books_the_calls_as_canary(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"  # the ledger the baseline's verify wrote
    asked = len(server.chat_requests("judge-v1"))
    code, data = canary("--canary", str(canary_file), "--baseline", str(baseline), "--force",
                        "-p", str(panel(tmp_path, server, "judge-v1")), "--db", url)  # fmt: skip
    assert code == 0 and data["regrade"] is True and data["forced"] is True
    # Same prompts as the baseline's calls on this ledger, yet each is sent again: a canary
    # that were served the cached replies could never see a model drift.
    assert len(server.chat_requests("judge-v1")) - asked == 10
    purposes = "SELECT purpose, COUNT(*) FROM judge_calls GROUP BY purpose ORDER BY purpose"
    assert query(url, purposes) == [("canary", 10), ("verify", 10)]

    table = CliRunner().invoke(
        app,
        ["canary", "--canary", str(canary_file), "--baseline", str(baseline),
         "-p", str(panel(tmp_path, server, "judge-v3")), "--max-flip-rate", "0.5"],
    )  # fmt: skip
    assert table.exit_code == 0, table.output  # 40% is within a 50% threshold
    assert "C-7" in table.stdout and "no canary alert" in table.stdout


def test_force_regrades_an_unchanged_panel(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    code, data = canary("--canary", str(canary_file), "--baseline", str(baseline),
                        "-p", str(panel(tmp_path, server, "judge-v1")), "--force")  # fmt: skip
    assert code == 0 and data["regrade"] is True and data["forced"] is True
    assert data["result"]["flip_rate"] == 0.0


def test_panel_change_without_model_change_is_a_trigger(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    renamed = panel(tmp_path, server, "judge-v1", name="canary-renamed")
    code, data = canary(
        "--canary", str(canary_file), "--baseline", str(baseline), "-p", str(renamed)
    )
    assert code == 0 and data["regrade"] is True
    assert data["trigger_reasons"][0].startswith("panel changed: canary@")


def test_usage_and_input_errors_exit_2(
    tmp_path: Path, server: FakeOpenAIServer, canary_file: Path, baseline: Path
) -> None:
    runner = CliRunner()
    p = str(panel(tmp_path, server, "judge-v2"))
    missing = runner.invoke(app, ["canary", "--canary", str(canary_file), "--baseline",
                                  str(tmp_path / "nope.jsonl"), "-p", p])  # fmt: skip
    assert missing.exit_code == 2 and "file not found" in missing.stderr
    not_verdicts = runner.invoke(app, ["canary", "--canary", str(canary_file),
                                       "--baseline", str(canary_file), "-p", p])  # fmt: skip
    assert not_verdicts.exit_code == 2 and "not a verdict" in not_verdicts.stderr
    # A canary outcome edited after the baseline was graded cannot be compared.
    edited = tmp_path / "edited.jsonl"
    lines = canary_file.read_text().splitlines()
    lines[3] = lines[3].replace("Refund for order 3", "Refund for order 33")
    edited.write_text("\n".join(lines) + "\n")
    changed = runner.invoke(app, ["canary", "--canary", str(edited), "--baseline",
                                  str(baseline), "-p", p])  # fmt: skip
    assert changed.exit_code == 2 and "C-3" in changed.stderr and "frozen" in changed.stderr
    bad_rate = runner.invoke(app, ["canary", "--canary", str(canary_file), "--baseline",
                                   str(baseline), "--max-flip-rate", "1.5"])  # fmt: skip
    assert bad_rate.exit_code == 2

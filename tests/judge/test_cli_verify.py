"""`judge verify` end to end: real processes, the fake model server over HTTP, a real ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from judge.verdict import FLAG_INJECTION, Verdict
from tests.fakes.openai_server import FakeOpenAIServer, Reply

ROOT = Path(__file__).resolve().parents[2]
TICKETS = ROOT / "datasets" / "tickets.jsonl"
REPORTS = ROOT / "datasets" / "reports.jsonl"


def judge_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_panel(path: Path, base_url: str, **judge: Any) -> Path:
    spec = {
        "name": "gpt",
        "model": "openai/gpt-4o-mini",
        "api_base": base_url,
        "api_key_env": "FAKE_PROVIDER_KEY",
        "max_retries": 1,
        **judge,
    }
    path.write_text(
        json.dumps(
            {
                "name": "llm-panel",
                "judges": [spec, {"kind": "signals"}],
                "aggregation": "mean",
                "abstain_band": [0.4, 0.6],
            }
        )
    )
    return path


def read_verdicts(path: Path) -> list[Verdict]:
    return [Verdict.model_validate_json(line) for line in path.read_text().splitlines()]


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def env() -> dict[str, str]:
    return {"FAKE_PROVIDER_KEY": "sk-test-secret-value"}


def test_verify_with_llm_panel_records_everything_and_rerun_is_free(
    tmp_path: Path, fake_llm: FakeOpenAIServer, env: dict[str, str]
) -> None:
    panel = write_panel(tmp_path / "panel.yaml", fake_llm.base_url)
    db = tmp_path / "ledger.db"
    out = tmp_path / "verdicts.jsonl"
    args = [
        "verify",
        str(TICKETS),
        "--panel",
        str(panel),
        "--db",
        f"sqlite:///{db}",
        "--out",
        str(out),
        "--json",
    ]
    first = judge_cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    n = sum(1 for line in TICKETS.read_text().splitlines() if line.strip())
    verdicts = read_verdicts(out)
    assert [v.outcome_id for v in verdicts] == [
        json.loads(line)["id"] for line in TICKETS.read_text().splitlines() if line.strip()
    ]
    assert summary["outcomes"] == n and summary["judge_cost_usd"] > 0
    assert summary["judge_cost_per_verified_usd"] == pytest.approx(
        summary["judge_cost_usd"] / summary["decisions"]["verified"]
    )
    # Every LLM judgment came through the server and was priced by litellm's local price map.
    llm = [j for v in verdicts for j in v.judges if j.kind == "llm"]
    assert len(llm) == n and all(j.status == "ok" and j.cost_usd > 0 for j in llm)
    assert len(fake_llm.chat_requests()) == n
    # Injection attempts are never auto-verified, whatever the (gullible) judge says.
    flagged = [v for v in verdicts if FLAG_INJECTION in v.flags]
    assert len(flagged) >= 7 and all(v.decision == "abstain" for v in flagged)
    # The ledger holds every outcome, verdict and judge call; the key is nowhere in it.
    assert (rows(db, "outcomes"), rows(db, "verdicts"), rows(db, "judge_calls")) == (n, n, n)
    assert b"sk-test-secret-value" not in db.read_bytes()

    # Same command again with --no-resume: every judge call is a cache hit, nothing is spent.
    before = len(fake_llm.chat_requests())
    again = judge_cli(*args, "--no-resume", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    summary2 = json.loads(again.stdout)
    assert summary2["judge_cost_usd"] == 0 and summary2["judge_calls_cached"] == n
    assert len(fake_llm.chat_requests()) == before
    assert [v.decision for v in read_verdicts(out)] == [v.decision for v in verdicts]

    # And with resume (the default) the recorded verdicts are reused: no duplicates in the ledger.
    third = judge_cli(*args, cwd=tmp_path, env=env)
    assert json.loads(third.stdout)["resumed"] == n
    assert rows(db, "outcomes") == n


def test_unparseable_replies_are_unscored_and_never_verified(
    tmp_path: Path, fake_llm: FakeOpenAIServer, env: dict[str, str]
) -> None:
    fake_llm.default = lambda _request: Reply(content="I would rather not say.")
    panel = tmp_path / "panel.yaml"
    panel.write_text(
        json.dumps(
            {
                "name": "llm-only",
                "judges": [
                    {
                        "name": "gpt",
                        "model": "openai/gpt-4o-mini",
                        "api_base": fake_llm.base_url,
                        "api_key_env": "FAKE_PROVIDER_KEY",
                    }
                ],
            }
        )
    )
    out = tmp_path / "v.jsonl"
    result = judge_cli(
        "verify",
        str(TICKETS),
        "--panel",
        str(panel),
        "--db",
        f"sqlite:///{tmp_path}/l.db",
        "--out",
        str(out),
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    verdicts = read_verdicts(out)
    signal_vetoed = {v.outcome_id for v in verdicts if v.reasons and v.decision == "not_verified"}
    assert summary["unscored_judgments"] == len(verdicts)
    assert summary["decisions"].get("verified", 0) == 0
    assert all(v.decision == "abstain" or v.outcome_id in signal_vetoed for v in verdicts)
    assert all(v.judges[0].status == "unscored" and v.judges[0].reason for v in verdicts)


def test_mixed_tickets_and_reports_use_the_rubric_of_each_kind(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(TICKETS.read_text().splitlines()[0] + "\n" + REPORTS.read_text())
    result = judge_cli(
        "verify",
        str(mixed),
        "--db",
        f"sqlite:///{tmp_path}/l.db",
        "--out",
        str(tmp_path / "v.jsonl"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "No LLM judge is configured" in result.stderr
    rubrics = {v.rubric.split("@")[0] for v in read_verdicts(tmp_path / "v.jsonl")}
    assert rubrics == {"support-resolution", "report-accuracy"}
    wrong = judge_cli(
        "verify",
        str(mixed),
        "--rubric",
        "support-resolution",
        "--db",
        f"sqlite:///{tmp_path}/l2.db",
        "--out",
        str(tmp_path / "w.jsonl"),
        cwd=tmp_path,
    )
    assert wrong.returncode == 2
    assert "--rubric report-accuracy" in wrong.stderr
    assert not (tmp_path / "w.jsonl").exists()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda lines: [*lines[:2], "{not json", *lines[2:]], "line 3"),
        (lambda lines: [*lines[:4], json.dumps({"id": "X-1", "kind": "support_ticket"})], "line 5"),
        (
            lambda lines: [lines[0], lines[1].replace('"role": "customer"', '"role": "boss"', 1)],
            "role",
        ),
    ],
    ids=["malformed-json", "missing-conversation", "unknown-role"],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    lines = TICKETS.read_text().splitlines()[:6]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(mutate(lines)) + "\n")
    db = tmp_path / "l.db"
    out = tmp_path / "v.jsonl"
    result = judge_cli(
        "verify", str(bad), "--db", f"sqlite:///{db}", "--out", str(out), cwd=tmp_path
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and expected in result.stderr
    assert "bad.jsonl" in result.stderr
    assert not out.exists()
    assert not db.exists() or rows(db, "outcomes") == 0


def test_unknown_format_and_missing_file_are_errors(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("id,text\n1,hello\n")
    result = judge_cli("verify", str(odd), "--out", str(tmp_path / "v.jsonl"), cwd=tmp_path)
    assert result.returncode == 2 and "format" in result.stderr.lower()
    missing = judge_cli("verify", str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr


def test_a_screening_process_gives_the_verdicts_of_the_event_loop(tmp_path: Path) -> None:
    """`judge verify` screens in a process of its own by default on a machine with cores to
    spare (``screen_processes`` in the summary); the verdicts are those of a screen run on the
    event loop, flags and injection scores included. ``--screen-processes`` and
    OUTCOME_JUDGE_SCREEN_PROCESSES set it, for every process of ``--processes`` too."""
    panel = tmp_path / "panel.json"
    panel.write_text(json.dumps({"name": "local", "judges": [{"kind": "signals"}]}))
    runs = {
        "env 1": ([], {"OUTCOME_JUDGE_SCREEN_PROCESSES": "1"}, 1),
        "option 0": (["--screen-processes", "0"], {"OUTCOME_JUDGE_SCREEN_PROCESSES": "1"}, 0),
        "2 processes, 1 each": (["--processes", "2", "--screen-processes", "1"], {}, 2),
    }
    results = {}
    for n, (name, (options, env, expected)) in enumerate(runs.items()):
        out = tmp_path / f"verdicts-{n}.jsonl"
        done = judge_cli(
            "verify", str(TICKETS), "--panel", str(panel), "--db",
            f"sqlite:///{tmp_path}/ledger-{n}.db", "--out", str(out), "--json", *options,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["screen_processes"] == expected, name
        results[name] = [v.model_dump(exclude={"judges"}) for v in read_verdicts(out)]
    first = results["env 1"]
    assert all(verdicts == first for verdicts in results.values())
    assert sum(FLAG_INJECTION in v["flags"] for v in first) >= 7
    assert all(v["injection_score"] is not None for v in first)

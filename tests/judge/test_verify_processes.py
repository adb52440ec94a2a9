"""`judge verify --processes N`: real processes against the fake model server over HTTP.

The output equals the one-process output, in input order; the ledger holds each outcome and
verdict once; a rerun resumes across processes; a failing process fails the command with its
error and stops the others; Ctrl-C (SIGINT to the process group, as a terminal sends it) stops
every process, writes no output and leaves every request that reached the model on record; a
parent killed outright takes its processes with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.verify_processes import split_concurrency
from tests.fakes.openai_server import FakeOpenAIServer
from tests.judge.test_cli_verify import TICKETS, judge_cli, read_verdicts, rows, write_panel

pytestmark = pytest.mark.slow

ENV = {"FAKE_PROVIDER_KEY": "sk-test-secret-value"}


def _verify(tmp_path: Path, panel: Path, db: Path, out: Path, *extra: str) -> dict[str, object]:
    args = ["verify", str(TICKETS), "--panel", str(panel), "--db", f"sqlite:///{db}"]
    result = judge_cli(*args, "--out", str(out), "--json", *extra, cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def _ids() -> list[str]:
    return [json.loads(line)["id"] for line in TICKETS.read_text().splitlines() if line.strip()]


def _leftovers(out: Path) -> list[str]:
    """Part folders and temporary files a run left beside its output."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_processes_write_the_one_process_output_in_input_order(
    tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    panel = write_panel(tmp_path / "panel.yaml", fake_llm.base_url)
    one = _verify(tmp_path, panel, tmp_path / "one.db", tmp_path / "one.jsonl")
    requests_one = len(fake_llm.chat_requests())
    three = _verify(tmp_path, panel, tmp_path / "three.db", tmp_path / "three.jsonl", "-P", "3")
    n = len(_ids())

    single, split = read_verdicts(tmp_path / "one.jsonl"), read_verdicts(tmp_path / "three.jsonl")
    assert [v.outcome_id for v in split] == [v.outcome_id for v in single] == _ids()
    assert [(v.decision, v.tier, v.flags) for v in split] == [
        (v.decision, v.tier, v.flags) for v in single
    ]
    # Each outcome judged, recorded and paid for once.
    assert len(fake_llm.chat_requests()) - requests_one == n
    db = tmp_path / "three.db"
    assert (rows(db, "outcomes"), rows(db, "verdicts"), rows(db, "judge_calls")) == (n, n, n)
    with sqlite3.connect(db) as conn:
        (distinct,) = conn.execute("SELECT COUNT(DISTINCT outcome_id) FROM verdicts").fetchone()
    assert distinct == n
    # The summary adds the processes' figures up.
    for key in ("outcomes", "decisions", "tiers", "flagged", "unscored_judgments"):
        assert three[key] == one[key], key
    assert three["judge_cost_usd"] == pytest.approx(one["judge_cost_usd"])
    assert _leftovers(tmp_path / "three.jsonl") == []

    # Again with two processes on the same ledger: every verdict is reused, nothing is asked.
    before = len(fake_llm.chat_requests())
    again = _verify(tmp_path, panel, db, tmp_path / "again.jsonl", "--processes", "2")
    assert again["resumed"] == n and again["judge_cost_usd"] == 0
    assert len(fake_llm.chat_requests()) == before
    assert [v.outcome_id for v in read_verdicts(tmp_path / "again.jsonl")] == _ids()
    assert rows(db, "verdicts") == n


def test_a_failing_process_fails_the_command_with_its_error(
    tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    panel = write_panel(tmp_path / "panel.yaml", fake_llm.base_url)
    db = tmp_path / "ledger.db"
    _verify(tmp_path, panel, db, tmp_path / "first.jsonl", "--no-resume")  # the ledger exists
    victim = _ids()[4]  # the fifth record: the second process's third of three
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON verdicts "
            f"WHEN NEW.outcome_id = '{victim}' BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
    out = tmp_path / "failed.jsonl"
    args = ["verify", str(TICKETS), "--panel", str(panel), "--db", f"sqlite:///{db}"]
    result = judge_cli(*args, "--out", str(out), "--no-resume", "-P", "3", cwd=tmp_path, env=ENV)
    assert result.returncode != 0
    assert "process 2 of 3 failed" in result.stderr and "refused by test" in result.stderr
    assert not out.exists() and _leftovers(out) == []


def test_ctrl_c_stops_every_process_and_writes_no_output(
    tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    fake_llm.latency = 1.0
    panel = write_panel(tmp_path / "panel.yaml", fake_llm.base_url)
    db, out = tmp_path / "ledger.db", tmp_path / "v.jsonl"
    proc = _start_two_processes(tmp_path, panel, db, out)
    try:
        _wait_for_requests(fake_llm, proc, 4)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert _group_ends(proc.pid), "a process of the run outlived it"
    assert not out.exists() and _leftovers(out) == []
    # Every request that reached the model is on record (write-ahead rows, billable).
    assert rows(db, "judge_calls") >= len(fake_llm.chat_requests())


def test_a_killed_parent_leaves_no_process_judging(
    tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    """The parent killed outright (SIGKILL: no Ctrl-C handling, no clean-up) stops its parts
    and their call processes too: none goes on sending paid requests for a run whose output
    nobody will merge. Every request that reached the model is on record."""
    fake_llm.latency = 1.0
    panel = write_panel(tmp_path / "panel.yaml", fake_llm.base_url)
    db, out = tmp_path / "ledger.db", tmp_path / "v.jsonl"
    proc = _start_two_processes(tmp_path, panel, db, out, "--call-process")
    try:
        _wait_for_requests(fake_llm, proc, 4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert _group_ends(proc.pid, timeout=20), "a process of the killed run went on"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    sent = len(fake_llm.chat_requests())
    assert sent < len(_ids())  # stopped, not finished
    time.sleep(2)
    assert len(fake_llm.chat_requests()) == sent
    assert rows(db, "judge_calls") >= sent


def _start_two_processes(
    tmp_path: Path, panel: Path, db: Path, out: Path, *extra: str
) -> subprocess.Popen[str]:
    """`judge verify -P 2 -c 4` started in its own process group, as a terminal's foreground job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")}
    command = [sys.executable, "-m", "app.cli", "verify", str(TICKETS), "--panel", str(panel)]
    return subprocess.Popen(
        [*command, "--db", f"sqlite:///{db}", "--out", str(out), "-P", "2", "-c", "4", *extra],
        cwd=tmp_path,
        env={**env, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_requests(server: FakeOpenAIServer, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 120
    while len(server.chat_requests()) < count and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def _group_ends(pgid: int, timeout: float = 10.0) -> bool:
    """Whether every process of the group ends within ``timeout`` (multiprocessing's resource
    tracker leaves a moment after the parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_concurrency_is_split_between_the_processes() -> None:
    assert split_concurrency(64, 2) == [32, 32]
    assert sum(split_concurrency(17, 4)) == 17
    assert split_concurrency(1, 3) == [1, 1, 1]

"""`judge verify` killed with SIGKILL at random points of a 1,000-outcome run, then restarted.

The kill points are drawn from a seeded RNG as "after k more requests reached the provider", so
every kill lands mid-run (during judge calls, batch writes or the verdict file) whatever the
machine's speed. After the last restart completes: zero outcomes lost, zero duplicate verdicts,
no judge call repeated for work the ledger had already recorded when the process died, and every
request the provider received on record (each call is written before it is sent; those a killed
run had in flight are settled as ``unknown`` at their estimated cost by the next run).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.faults import FaultInjector, LatencyModel, split_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    cli_command,
    cli_env,
    llm_spec,
    query,
    read_verdicts,
    run_cli,
    write_panel,
)
from tests.reliability.synth import synthetic_tickets, write_jsonl

N = 1000
KILLS = 3
SEED = 20260611


def _recorded_ok(db_url: str) -> set[str]:
    """Outcomes with a successful, non-cached judge call in the ledger (work already paid for)."""
    rows = query(
        db_url,
        "SELECT DISTINCT outcome_id FROM judge_calls WHERE status = 'ok' AND cached = false",
    )
    return {r[0] for r in rows}


def _kill_after(
    proc: subprocess.Popen[bytes], injector: FaultInjector, more: int, *, deadline: float
) -> bool:
    """SIGKILL ``proc`` once ``more`` further requests reached the provider; False if it ended."""
    target = len(injector.records) + more
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if len(injector.records) >= target:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=30)
    raise AssertionError(f"judge verify made fewer than {more} requests in time")


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_repeats_nothing(
    tmp_path: Path, db_url: str, figures: Figures
) -> None:
    rng = random.Random(SEED)
    injector = FaultInjector(
        mix={"http_503": 0.04, "reset": 0.02},  # some retries in flight when the kill lands
        latency=LatencyModel(p50_ms=2, p95_ms=10),
        base=split_reply(0.7, seed=5),
        seed=SEED,
    )
    inp = write_jsonl(tmp_path / "outcomes.jsonl", synthetic_tickets(N))
    out = tmp_path / "verdicts.jsonl"
    env = cli_env(OUTCOME_JUDGE_PROVIDER_CONCURRENCY="32")
    kills: list[tuple[float, set[str], int]] = []  # (when, outcomes paid for, verdict rows)
    with FakeOpenAIServer(default=injector) as server:
        spec = llm_spec("gpt", "openai/gpt-4o-mini", server.base_url, max_retries=2, timeout=5)
        panel = write_panel(tmp_path / "panel.json", [spec])
        args = ["verify", str(inp), "--panel", str(panel), "--db", db_url, "--out", str(out)]
        args += ["--concurrency", "32", "--json"]
        for i in range(KILLS):
            log = (tmp_path / f"run{i}.log").open("wb")
            proc = subprocess.Popen(
                cli_command(*args), cwd=tmp_path, env=env, stdout=log, stderr=log
            )
            more = rng.randint(20, N // (KILLS + 1))
            killed = _kill_after(proc, injector, more, deadline=time.monotonic() + 120)
            log.close()
            assert killed, f"run {i} finished before its kill point ({more} requests)"
            # The verdict file is written atomically at the end: never there half-written.
            assert not out.exists()
            (verdict_rows,) = query(db_url, "SELECT COUNT(*) FROM verdicts")[0]
            kills.append((time.time(), _recorded_ok(db_url), int(verdict_rows)))
        final = run_cli(*args, cwd=tmp_path, env=env)
        records = injector.records
        assert final.returncode == 0, final.stderr[-3000:]
    # What the ledger held at the last kill is reused as it is, not judged again.
    assert json.loads(final.stdout)["resumed"] == kills[-1][2]

    # Zero outcomes lost: every id has a verdict in the file and in the ledger.
    ids = [f"SYN-{i:05d}" for i in range(N)]
    assert [v.outcome_id for v in read_verdicts(out)] == ids
    ledger_ids = query(db_url, "SELECT outcome_id, COUNT(*) FROM verdicts GROUP BY outcome_id")
    # Zero duplicates: one verdict row per outcome (same rubric, panel and content throughout).
    assert sorted(oid for oid, _ in ledger_ids) == ids
    assert {n for _, n in ledger_ids} == {1}
    (outcome_rows,) = query(db_url, "SELECT COUNT(*) FROM outcomes")[0]
    assert outcome_rows == N

    # Zero judge calls repeated for work already recorded: after each kill, no request reaches
    # the provider for an outcome whose judge call the ledger already held.
    repeated: Counter[str] = Counter()
    for killed_at, paid_for, _ in kills:
        for r in records:
            if r.time > killed_at and r.outcome_id in paid_for:
                repeated[r.outcome_id] += 1
    assert not repeated, f"judge calls repeated after a restart: {dict(repeated)}"

    # Every request the provider received is on record; a row more than the requests is an
    # attempt recorded by a run killed before it sent it (one of its outcome's unknown rows).
    from tests.reliability.test_worker_crash import _rows_against_requests

    unrecorded, unsent = _rows_against_requests(db_url, records)
    assert unrecorded == 0
    (call_rows,) = query(db_url, "SELECT COUNT(*) FROM judge_calls WHERE cached = false")[0]
    assert call_rows == len(records) + unsent
    (pending,) = query(db_url, "SELECT COUNT(*) FROM judge_calls WHERE status = 'pending'")[0]
    assert pending == 0
    unknown, unknown_usd = query(
        db_url, "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM judge_calls "
        "WHERE status = 'unknown'"
    )[0]  # fmt: skip
    # The last run said what it settled (the calls the last killed run had in flight).
    assert json.loads(final.stdout)["unknown_calls_settled"] > 0
    billed = sum(r.billed for r in records)
    (billed_rows,) = query(
        db_url, "SELECT COUNT(*) FROM judge_calls WHERE cached = false AND status = 'ok'"
    )[0]
    leftovers = sorted(p.name for p in tmp_path.glob(".verdicts.jsonl.*.tmp"))
    figures.update(
        {
            "outcomes": N,
            "SIGKILLs": KILLS,
            "verdict rows at each kill": [n for *_, n in kills],
            "outcomes lost": 0,
            "duplicate verdicts": 0,
            "judge calls repeated for recorded work": 0,
            "provider requests (all runs)": len(records),
            "requests without a judge_calls row": unrecorded,
            "calls in flight at the kills (settled unknown)": int(unknown),
            "  of which recorded but never sent": unsent,
            "  their estimated cost (USD)": float(unknown_usd),
            "billed replies lost with the process (booked at estimate)": billed - int(billed_rows),
            "stale verdict temp files left by kills": len(leftovers),
        }
    )
    # A killed run's half-written verdict file must not stay beside the real one for ever: the
    # next run removes those whose process is gone.
    assert not leftovers, f"half-written verdict files left by killed runs: {leftovers}"

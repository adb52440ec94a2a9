"""1,000 outcomes through `judge verify` while 30% of judge calls fail in mixed ways.

The CLI runs as a real process against the fault-injecting server over HTTP, with a real ledger
(SQLite and PostgreSQL). What must hold: every outcome gets one of the three decisions; nothing
unscored or failed is ever a pass; retries stay within ``max_retries``; and the ledger records
every request the provider saw, retries included, with the tokens the provider reported.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.fakes.faults import FaultInjector, FaultMix, FaultRecord, LatencyModel, split_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    cli_env,
    llm_spec,
    query,
    read_verdicts,
    run_cli,
    write_panel,
)
from tests.reliability.synth import synthetic_tickets, write_jsonl

N = 1000
MAX_RETRIES = 2
FAULT_RATE = 0.30
# Every fault kind but http_400 (a 400 is a bug in the request, not an outage: never retried).
MIXED = (
    "http_429",
    "http_500",
    "http_503",
    "reset",
    "timeout",
    "truncated",
    "malformed_json",
    "no_score",
    "prose_score",
)
SCORED = {"ok", "prose_score"}  # complete replies that carry scores


@pytest.mark.slow
def test_thousand_outcomes_with_thirty_percent_of_calls_failing(
    tmp_path: Path, db_url: str, figures: Figures
) -> None:
    injector = FaultInjector(
        mix=FaultMix.spread(FAULT_RATE, MIXED),
        latency=LatencyModel(p50_ms=2, p95_ms=15),
        base=split_reply(0.7, seed=3),
        seed=11,
        # A `timeout` fault hangs past the judge's timeout; every other reply must arrive well
        # inside it even on a loaded 2-core machine (0.75 s was too tight under CI load).
        hang=8.0,
    )
    inp = write_jsonl(tmp_path / "outcomes.jsonl", synthetic_tickets(N))
    out = tmp_path / "verdicts.jsonl"
    with FakeOpenAIServer(default=injector) as server:
        spec = llm_spec(
            "gpt", "openai/gpt-4o-mini", server.base_url, max_retries=MAX_RETRIES, timeout=3.0
        )
        panel = write_panel(tmp_path / "panel.json", [spec])
        result = run_cli(
            "verify", str(inp), "--panel", str(panel), "--db", db_url, "--out", str(out),
            "--concurrency", "32", "--json",
            cwd=tmp_path,
            env=cli_env(OUTCOME_JUDGE_PROVIDER_CONCURRENCY="32"),
        )  # fmt: skip
        requests = server.chat_requests()
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    records = injector.records
    faults = Counter(r.fault for r in records)
    by_outcome: dict[str | None, list[FaultRecord]] = defaultdict(list)
    for r in records:
        by_outcome[r.outcome_id].append(r)

    # Every outcome: exactly one verdict, one of the three decisions, in input order.
    verdicts = read_verdicts(out)
    assert [v.outcome_id for v in verdicts] == [f"SYN-{i:05d}" for i in range(N)]
    decisions = Counter(v.decision for v in verdicts)
    assert set(decisions) <= {"verified", "not_verified", "abstain"}
    assert sum(decisions.values()) == N == summary["outcomes"]

    # The faults really happened, at about the rate asked for (and every one was attributed).
    assert None not in by_outcome and len(by_outcome) == N
    first_attempts = [r for r in records if r.attempt == 1]
    observed = sum(r.fault != "ok" for r in first_attempts) / len(first_attempts)
    assert abs(observed - FAULT_RATE) < 0.05, faults
    assert all(faults[k] > 0 for k in MIXED), faults

    # No pass without a real score: only a judgment that parsed a scored reply may vote, and a
    # verified verdict needs such a reply to have been delivered for that outcome.
    unscored = failed = 0
    for v in verdicts:
        (j,) = v.judges
        delivered = {r.fault for r in by_outcome[v.outcome_id]}
        last = by_outcome[v.outcome_id][-1].fault
        if j.status == "ok":
            assert last in SCORED, (v.outcome_id, by_outcome[v.outcome_id])
        else:
            assert j.decision is None and j.p_verified is None
            assert v.decision != "verified", v
            assert "quorum_not_met" in v.flags
        if j.status == "unscored":
            unscored += 1
            assert last == "no_score", (v.outcome_id, by_outcome[v.outcome_id])
        if j.status == "error":
            failed += 1
            # An error means no complete reply ever arrived for it.
            assert not delivered & {"ok", "prose_score", "no_score"}, delivered
        if not delivered & SCORED:
            assert j.status != "ok" and v.decision != "verified"
    assert (unscored, failed) == (summary["unscored_judgments"], summary["failed_judgments"])
    assert failed > 0 and unscored > 0

    # Every request the provider saw is a judge_calls row (retries included), and every billed
    # one (a complete 200 reply) is an ok row with the tokens the provider reported. A few
    # attempts fail before the provider reads them (a pooled connection it had just closed):
    # those are error rows with no provider record, never billed.
    assert len(requests) == len(records)
    rows = query(
        db_url,
        "SELECT outcome_id, status, tokens_in, tokens_out, cached, attempt FROM judge_calls",
    )
    assert not any(r[4] for r in rows)
    seen = Counter(r.outcome_id for r in records)
    recorded = Counter(r[0] for r in rows)
    assert all(recorded[oid] >= n for oid, n in seen.items()), seen - recorded
    billed = [r for r in records if r.billed]
    assert Counter(r[0] for r in rows if r[1] == "ok") == Counter(r.outcome_id for r in billed)
    assert sum(r[2] for r in rows) == sum(r.prompt_tokens for r in billed)
    assert sum(r[3] for r in rows) == sum(r.completion_tokens for r in billed)
    unseen = len(rows) - len(records)
    assert 0 <= unseen <= len(rows) // 100

    # Retries within their bound, seen by the provider and by the ledger.
    assert max(seen.values()) <= MAX_RETRIES + 1
    assert max(recorded.values()) <= MAX_RETRIES + 1
    assert max(r[5] for r in rows) <= MAX_RETRIES + 1
    (cost,) = query(db_url, "SELECT SUM(cost_usd) FROM judge_calls")[0]
    assert float(cost) == pytest.approx(summary["judge_cost_usd"], rel=1e-6)

    figures.update(
        {
            "outcomes": N,
            "decisions": dict(decisions),
            "judge requests (all attempts)": len(records),
            "faults injected": sum(n for k, n in faults.items() if k != "ok"),
            "fault rate, first attempts": round(observed, 3),
            "faults by kind": {k: faults[k] for k in MIXED},
            "unscored judgments (never a pass)": unscored,
            "failed judgments (never a pass)": failed,
            "max attempts per outcome (bound)": f"{max(recorded.values())} ({MAX_RETRIES + 1})",
            "judge_calls rows / provider requests": f"{len(rows)} / {len(records)}",
            "failed attempts the provider never saw": unseen,
            "billed calls in ledger / at provider": f"{len(billed)} / {len(billed)}",
        }
    )

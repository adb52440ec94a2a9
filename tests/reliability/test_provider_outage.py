"""One judge model of a two-LLM-judge panel is down for the whole run.

Down means connection refused (nothing listens on its port) or HTTP 503 on every request. The
panel then decides per its quorum rule: with quorum 1 the healthy judge decides alone; with
quorum 2 every outcome abstains (``quorum_not_met``); with a fallback model the judge falls back
to it. Either way the run says so: ``failed_judgments`` in the summary and the failing judge's
``error`` in every verdict, and the ledger holds every failed attempt.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.faults import FaultInjector, closed_port, split_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.conftest import Figures
from tests.reliability.harness import cli_env, llm_spec, query, read_verdicts, run_cli, write_panel
from tests.reliability.synth import synthetic_tickets, write_jsonl

N = 60
MAX_RETRIES = 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("outage", "quorum", "fallback"),
    [("refused", 1, False), ("http_503", 2, False), ("http_503", 2, True)],
    ids=["refused-quorum1", "503-quorum2", "503-fallback"],
)
def test_one_judge_down_for_the_whole_run(
    tmp_path: Path, outage: str, quorum: int, fallback: bool, figures: Figures
) -> None:
    injector = FaultInjector(per_model={"beta": {"http_503": 1.0}}, base=split_reply(0.7, seed=9))
    inp = write_jsonl(tmp_path / "outcomes.jsonl", synthetic_tickets(N))
    out = tmp_path / "verdicts.jsonl"
    db = f"sqlite:///{tmp_path}/ledger.db"
    with FakeOpenAIServer(default=injector) as server:
        down_base = f"http://127.0.0.1:{closed_port()}/v1" if outage == "refused" else None
        extra: dict[str, Any] = {"fallbacks": ["openai/gamma"]} if fallback else {}
        judges = [
            llm_spec("a", "openai/alpha", server.base_url, max_retries=MAX_RETRIES),
            llm_spec(
                "b", "openai/beta", down_base or server.base_url, max_retries=MAX_RETRIES, **extra
            ),
        ]
        panel = write_panel(tmp_path / "panel.json", judges, quorum=quorum)
        result = run_cli(
            "verify", str(inp), "--panel", str(panel), "--db", db, "--out", str(out), "--json",
            cwd=tmp_path, env=cli_env(),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    verdicts = read_verdicts(out)
    assert len(verdicts) == N
    models = Counter(r.model for r in injector.records)
    b_status = Counter(j.status for v in verdicts for j in v.judges if j.judge == "b")
    decisions = Counter(v.decision for v in verdicts)

    if fallback:
        # Every beta attempt failed, and every judgment came from the fallback model.
        assert models["beta"] == N * (MAX_RETRIES + 1) and models["gamma"] == N
        assert b_status == {"ok": N} and summary["failed_judgments"] == 0
        assert all(
            "answered by fallback openai/gamma" in (j.reason or "")
            for v in verdicts
            for j in v.judges
            if j.judge == "b"
        )
    else:
        # The failing judge is reported in the summary and in each verdict, never as a vote.
        assert b_status == {"error": N} and summary["failed_judgments"] == N
        reason = "Connection" if outage == "refused" else "503|ServiceUnavailable"
        for v in verdicts:
            b = next(j for j in v.judges if j.judge == "b")
            a = next(j for j in v.judges if j.judge == "a")
            assert b.decision is None and any(w in (b.reason or "") for w in reason.split("|"))
            if quorum == 1:
                assert "quorum_not_met" not in v.flags
                assert v.decision != "verified" or a.decision == "verified"
            else:
                # No quorum, no decision; only a signal-rule veto (a reopen...) still rejects.
                assert "quorum_not_met" in v.flags and v.decision != "verified"
                assert v.decision == "abstain" or v.reasons, v
        # Every failed attempt is in the ledger: max_retries + 1 per outcome.
        rows = query(
            db, "SELECT outcome_id, COUNT(*) FROM judge_calls WHERE judge = 'b' GROUP BY 1"
        )
        assert len(rows) == N and {n for _, n in rows} == {MAX_RETRIES + 1}
        assert models["alpha"] == N
    figures.update(
        {
            "outcomes": N,
            "judge b": f"{outage}, quorum {quorum}"
            + (", fallback openai/gamma" if fallback else ""),
            "decisions": dict(decisions),
            "judge b judgments": dict(b_status),
            "summary failed_judgments": summary["failed_judgments"],
        }
    )

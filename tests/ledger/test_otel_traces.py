"""Agent cost from OpenTelemetry GenAI traces, and verdicts out as gen_ai.evaluation.result
events: the fixture's documented totals, `judge verify --traces`, `judge export verdicts`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.agent_costs import load_agent_costs
from judge.importers.otel_traces import TraceInputError, read_trace_usage
from tests.fakes.otlp_server import FakeOTLPReceiver
from tests.ledger.conftest import run

TRACES = Path(__file__).parents[1] / "judge" / "fixtures" / "otel" / "genai_traces.json"
C1, C2, C3 = (
    "conv_7Qm2Lk9PzX4rTb8NcV1sYh3D",
    "conv_Hn4Rt8WqZ2bLx6Pj0KvM5cYe",
    "conv_b1LL9nT3xQ0aZr7Uw2MkP5fG",
)


def test_usage_per_conversation_counts_inference_spans_once() -> None:
    usage = read_trace_usage(TRACES)
    assert usage.spans == 18
    totals = {c: (u.tokens_in, u.tokens_out) for c, u in usage.conversations.items()}
    # invoke_agent spans repeat their children's usage: counted, they would double conversation 1
    assert totals == {C1: (4412, 508), C2: (2850, 483), C3: (1717, 184)}
    assert usage.conversations[C1].models["gpt-4o-mini-2024-07-18"].cache_read == 1024
    assert (
        usage.conversations[C3].models["gpt-4o-mini-2024-07-18"].provider == "openai"
    )  # gen_ai.system
    assert usage.skipped["invoke_agent (not an inference span)"] == 3
    assert usage.skipped["execute_tool (not an inference span)"] == 2
    assert usage.skipped["not a GenAI span"] == 5
    assert usage.unattributed == {}
    # The agent's last inference span of conversation 1 is in its second trace.
    assert usage.conversations[C1].span_id == "f1e2d3c4b5a69788"


def test_costs_are_priced_with_litellms_map_and_an_unknown_model_stays_unpriced() -> None:
    costs = load_agent_costs(TRACES).by_conversation
    # gpt-4o-mini: 1,498 fresh + 1,024 cached input at 1.5e-7 / 7.5e-8, 198 output at 6e-7;
    # gpt-4o: 1,890 input at 2.5e-6, 310 output at 1e-5 (the fixture README's table).
    assert costs[C1].cost_usd == pytest.approx(0.0082453)
    assert costs[C1].model_path == "gpt-4o-mini-2024-07-18+gpt-4o-2024-08-06"
    assert costs[C2].cost_usd is None and costs[C2].unpriced == ("acme-support-ft-2025-06",)
    assert costs[C3].cost_usd == pytest.approx(1717 * 1.5e-7 + 184 * 6e-7)  # 0.00036795


def test_a_file_that_is_not_a_trace_export_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"spans": []}')
    with pytest.raises(TraceInputError, match="no resourceSpans"):
        read_trace_usage(bad)
    lines = tmp_path / "t.jsonl"
    lines.write_text(json.dumps(json.loads(TRACES.read_text())) + "\n{oops\n")
    with pytest.raises(TraceInputError, match="line 2: not JSON"):
        read_trace_usage(lines)


def _outcomes(path: Path) -> Path:
    """Three tickets whose ids are the traced conversations, and one that was not traced."""
    rows = []
    for i, oid in enumerate([C1, C2, C3, "untraced"]):
        rows.append(
            {
                "id": oid,
                "kind": "support_ticket",
                "conversation": [
                    {"role": "customer", "text": f"My order {i} arrived broken.",
                     "at": "2026-03-01T10:00:00Z"},
                    {"role": "agent", "text": "Refund issued.", "at": "2026-03-01T10:01:00Z"},
                    {"role": "customer", "text": "Got it, thanks!", "at": "2026-03-01T10:05:00Z"},
                ],
                "signals": {"customer_confirmed": True, "csat": 5},
                "agent": {"name": "support-agent"},
            }
        )  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def receiver() -> Iterator[FakeOTLPReceiver]:
    with FakeOTLPReceiver(int64_as_string=True) as server:
        yield server


def test_verify_with_traces_then_export_verdicts_linked_to_the_agents_spans(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: FakeOTLPReceiver
) -> None:
    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    outcomes = _outcomes(tmp_path / "o.jsonl")
    done = run(
        "verify", str(outcomes), "--traces", str(TRACES), "--db", ledger_url,
        "--out", str(tmp_path / "v.jsonl"), "--tenant", "acme",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())  # the console wraps long lines
    assert "agent cost set on 3 outcome(s)" in said
    assert f"conversation {C2}: no price for acme-support-ft-2025-06" in said
    shown = run(
        "convert", str(outcomes), "--out", str(tmp_path / "c.jsonl"), "--traces", str(TRACES)
    )
    assert shown.exit_code == 0, shown.output
    converted = {
        r["id"]: r for r in map(json.loads, (tmp_path / "c.jsonl").read_text().splitlines())
    }
    assert converted[C1]["agent"]["cost_usd"] == pytest.approx(0.0082453)
    assert converted[C1]["agent"]["tokens_in"] == 4412
    assert converted[C1]["metadata"]["otel"]["span_id"] == "f1e2d3c4b5a69788"
    assert "cost_usd" not in converted[C2]["agent"] and converted[C2]["agent"]["tokens_out"] == 483
    assert "tokens_in" not in converted["untraced"]["agent"]

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret")
    receiver.fail_next("/v1/logs", 503, retry_after="0")
    args = ["export", "verdicts", "--endpoint", receiver.base_url, "--db", ledger_url, "--json"]
    first = run(*args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["sent"], summary["linked_to_spans"]) == (4, 3)
    events = receiver.events("gen_ai.evaluation.result")
    assert len(events) == 4
    by_outcome = {e.attributes["outcome_judge.outcome_id"]: e for e in events}
    c1 = by_outcome[C1]
    assert c1.span_id == "f1e2d3c4b5a69788" and c1.trace_id is not None
    assert c1.trace_id.startswith("0af76519")
    assert c1.attributes["gen_ai.evaluation.name"] == "support-resolution"
    assert c1.attributes["gen_ai.evaluation.score.label"] in ("verified", "not_verified", "abstain")
    assert 0.0 <= c1.attributes["gen_ai.evaluation.score.value"] <= 1.0
    assert by_outcome["untraced"].span_id is None
    sent_headers = {k.lower(): v for k, v in receiver.requests[-1].headers.items()}
    assert sent_headers["x-api-key"] == "s3cret"  # from OTEL_EXPORTER_OTLP_HEADERS only
    again = json.loads(run(*args).stdout)
    assert again["planned"] == 0 and len(receiver.events("gen_ai.evaluation.result")) == 4

    receiver.fail_next("/v1/logs", 400)
    run("verify", str(outcomes), "--db", ledger_url, "--out", str(tmp_path / "w.jsonl"),
        "--tenant", "acme", "--no-resume")  # fmt: skip
    refused = run(*args)
    assert refused.exit_code == 1 and "answered 400" in " ".join(refused.output.split())

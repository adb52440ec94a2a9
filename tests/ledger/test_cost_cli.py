"""`judge cost tco` / `judge cost breakeven`, by hand and measured from a real `judge verify` run.

The ledger figures are recomputed here from the input file itself (agent.model_path and
agent.cost_usd per ticket) and the verdict file `judge verify` wrote, independently of the SQL the
command runs; the Wilson interval is recomputed from its closed form.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.conftest import TICKETS, run, run_json

ROOT = Path(__file__).resolve().parents[2]
Z95 = 1.959963984540054


# ---- by hand --------------------------------------------------------------------------------


def test_tco_json_and_text() -> None:
    data = run_json("cost", "tco", "--token-cost", "0.02", "--p-fail", "0.15", "--labor", "6")
    assert data["tco"] == pytest.approx(0.02 + 0.15 * 6)
    text = run("cost", "tco", "--token-cost", "0.02", "--p-fail", "0.15", "--labor", "6")
    assert text.exit_code == 0
    assert "TCO per finished task: $0.92" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tco", "--token-cost", "-1", "--p-fail", "0.1", "--labor", "5"], "--token-cost must"),
        (["tco", "--token-cost", "0.1", "--p-fail", "1.5", "--labor", "5"], "--p-fail must"),
        (["tco", "--token-cost", "0.1", "--p-fail", "0.1", "--labor", "inf"], "--labor must"),
        (["breakeven", "--cost-a", "0.1", "--cost-b", "0.2", "--labor", "0"], "--labor must"),
        (
            ["breakeven", "--cost-a", "1", "--cost-b", "2", "--labor", "5", "--p-fail-a", "0.1"],
            "--p-fail-b is missing",
        ),
        (["breakeven", "--cost-a", "0.1", "--labor", "5"], "give --cost-a and --cost-b"),
        (
            ["breakeven", "--cost-a", "0.1", "--cost-b", "0.2", "--labor", "5", "--path-a", "x"],
            "--path-a: ledger option",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_option(args: list[str], message: str) -> None:
    result = run("cost", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_non_numeric_cost_is_a_usage_error() -> None:
    result = run("cost", "breakeven", "--cost-a", "cheap", "--cost-b", "0.2", "--labor", "5")
    assert result.exit_code == 2


def test_breakeven_by_hand_says_which_is_cheaper_and_where_it_flips() -> None:
    args = ["cost", "breakeven", "--cost-a", "0.01", "--cost-b", "0.06", "--labor", "5"]
    args += ["--p-fail-a", "0.3", "--p-fail-b", "0.2"]
    data = run_json(*args)
    assert data["cheaper"] == "b"
    assert data["tco_a"] == pytest.approx(0.01 + 0.3 * 5)
    assert data["tco_b"] == pytest.approx(0.06 + 0.2 * 5)
    assert data["saving_per_task"] == pytest.approx(0.45)
    assert data["dp_star"] == pytest.approx(0.05 / 5)
    assert data["flip_labor"] == pytest.approx(0.05 / 0.1)
    text = run(*args).stdout
    assert "Cheaper per finished task: B, by $0.45" in text
    assert "flips at a labour cost of $0.5 per failed task" in text
    assert "below it A (lower token cost) is cheaper, above it B (fails less)" in text


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def test_breakeven_whose_flip_overflows_says_no_labour_cost_flips_it() -> None:
    args = ["cost", "breakeven", "--cost-a", "0", "--cost-b", "1", "--labor", "1"]
    args += ["--p-fail-a", "5e-324", "--p-fail-b", "0"]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_constant=_not_json)  # "Infinity" is not JSON
    assert (data["cheaper"], data["flip_rule"], data["flip_labor"]) == (
        "a",
        "same_failure_rate",
        None,
    )
    text = run(*args).stdout
    assert "No labour cost flips the decision: the failure rates differ too little" in text
    assert "flips at a labour cost" not in text


def test_breakeven_dp_star_only() -> None:
    data = run_json("cost", "breakeven", "--cost-a", "0.03", "--cost-b", "0.01", "--labor", "4")
    assert data["dp_star"] == pytest.approx(-0.005)
    assert data["cheaper"] is None and data["flip_labor"] is None


# ---- from the ledger ------------------------------------------------------------------------


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 / denom * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return centre - half, centre + half


def expected_from_files(verdicts: Path) -> dict[str, dict[str, Any]]:
    agents = {}
    for line in TICKETS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        agents[record["id"]] = record["agent"]
    rows: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for line in verdicts.read_text(encoding="utf-8").splitlines():
        verdict = json.loads(line)
        agent = agents[verdict["outcome_id"]]
        rows[agent["model_path"]].append(
            (verdict["decision"] == "verified", float(agent["cost_usd"]))
        )
    expected = {}
    for path, items in rows.items():
        n, k = len(items), sum(ok for ok, _ in items)
        lo, hi = wilson(k, n)
        expected[path] = {
            "attempts": n,
            "verified": k,
            "p_fail": 1 - k / n,
            "p_fail_low": 1 - hi,
            "p_fail_high": 1 - lo,
            "token_cost": sum(c for _, c in items) / n,
        }
    return expected


def test_breakeven_from_the_ledger_matches_the_input_file(
    verified_ledger: tuple[str, Path],
) -> None:
    url, verdicts = verified_ledger
    expected = expected_from_files(verdicts)
    assert set(expected) == {"gpt-4o-mini", "gpt-4o", "gpt-4o-mini>gpt-4o"}
    labor = 4.0
    data = run_json(
        "cost", "breakeven", "--db", url, "--path-a", "gpt-4o-mini", "--path-b", "gpt-4o",
        "--labor", str(labor),
    )  # fmt: skip
    assert data["tenant"] == "acme"
    assert data["interval"] == {"method": "wilson", "level": 0.95}
    for key, path in (("a", "gpt-4o-mini"), ("b", "gpt-4o")):
        got, want = data["paths"][key], expected[path]
        assert got["model_path"] == path
        assert got["attempts"] == want["attempts"]
        assert got["verified"] == want["verified"]
        assert got["costed"] == want["attempts"]
        for field in ("p_fail", "p_fail_low", "p_fail_high", "token_cost"):
            assert got[field] == pytest.approx(want[field], rel=1e-9), field
        assert got["p_fail_low"] <= got["p_fail"] <= got["p_fail_high"]
    a, b = expected["gpt-4o-mini"], expected["gpt-4o"]
    tco_a = a["token_cost"] + a["p_fail"] * labor
    tco_b = b["token_cost"] + b["p_fail"] * labor
    result = data["breakeven"]
    assert result["tco_a"] == pytest.approx(tco_a)
    assert result["tco_b"] == pytest.approx(tco_b)
    assert result["cheaper"] == ("a" if tco_a < tco_b else "b")
    assert result["saving_per_task"] == pytest.approx(abs(tco_a - tco_b))
    assert result["dp_star"] == pytest.approx((b["token_cost"] - a["token_cost"]) / labor)
    flip = (b["token_cost"] - a["token_cost"]) / (a["p_fail"] - b["p_fail"])
    assert result["flip_labor"] == pytest.approx(flip) if flip > 0 else result["flip_labor"] is None
    text = run(
        "cost", "breakeven", "--db", url, "--path-a", "gpt-4o-mini", "--path-b", "gpt-4o",
        "--labor", str(labor),
    ).stdout  # fmt: skip
    assert "A = gpt-4o-mini" in text and "Cheaper per finished task" in text


def test_each_outcome_counts_once_by_its_latest_verdict(
    verified_ledger: tuple[str, Path], tmp_path: Path
) -> None:
    import shutil

    from judge.importers import read_outcomes
    from judge.verdict import Verdict
    from ledger.store import Ledger

    src_url, verdicts = verified_ledger
    copy = tmp_path / "copy.db"
    shutil.copy(src_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    by_id = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    outcomes = {o.id: o for o in read_outcomes(TICKETS)}
    target = next(
        oid
        for oid, v in by_id.items()
        if v["decision"] != "verified" and outcomes[oid].agent.model_path == "gpt-4o"
    )
    before = expected_from_files(verdicts)["gpt-4o"]
    # a new revision of the outcome (its agent cost was corrected) with a newer, verified verdict
    old = outcomes[target]
    revised = old.model_copy(update={"agent": old.agent.model_copy(update={"cost_usd": 1.0})})
    verdict = Verdict.model_validate(by_id[target] | {"decision": "verified"})
    with Ledger.open(url, tenant="acme") as ledger:
        ledger.record_result(revised, verdict)
    data = run_json(
        "cost", "breakeven", "--db", url, "--path-a", "gpt-4o-mini", "--path-b", "gpt-4o",
        "--labor", "4",
    )  # fmt: skip
    got = data["paths"]["b"]
    assert got["attempts"] == before["attempts"]  # still one attempt per outcome
    assert got["verified"] == before["verified"] + 1
    old_cost = float(old.agent.cost_usd or 0.0)
    n = before["attempts"]
    assert got["token_cost"] == pytest.approx(before["token_cost"] + (1.0 - old_cost) / n)


def test_ledger_errors_exit_2(verified_ledger: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = verified_ledger
    base = ["cost", "breakeven", "--db", url, "--labor", "4"]
    unknown = run(*base, "--path-a", "gpt-4o-mini", "--path-b", "claude")
    assert unknown.exit_code == 2
    assert "'claude'" in unknown.stderr and "gpt-4o-mini>gpt-4o" in unknown.stderr
    mixed = run(*base, "--path-a", "gpt-4o-mini", "--path-b", "gpt-4o", "--cost-a", "0.1")
    assert mixed.exit_code == 2 and "--cost-a" in mixed.stderr
    missing = run(*base, "--path-a", "gpt-4o-mini")
    assert missing.exit_code == 2 and "--path-b" in missing.stderr
    tenant = run(*base, "--path-a", "gpt-4o-mini", "--path-b", "gpt-4o", "--tenant", "nobody")
    assert tenant.exit_code == 2 and "no verdicts for tenant 'nobody'" in tenant.stderr
    nofile = run(
        "cost", "breakeven", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--labor", "4",
        "--path-a", "a", "--path-b", "b",
    )  # fmt: skip
    assert nofile.exit_code == 2 and "file not found" in nofile.stderr


# ---- cost report ----------------------------------------------------------------------------


def test_report_every_number_recomputes_from_the_inputs(
    verified_ledger: tuple[str, Path], tmp_path: Path
) -> None:
    import shutil

    from judge.verdict import JudgeCall
    from ledger.store import Ledger

    src_url, verdicts = verified_ledger
    copy = tmp_path / "report.db"
    shutil.copy(src_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    agents = {r["id"]: r["agent"] for r in map(json.loads, TICKETS.read_text().splitlines())}
    decisions = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    ids = sorted(decisions)

    def call(oid: str, cost: float, *, attempt: int = 1, ok: bool = True) -> JudgeCall:
        return JudgeCall(
            outcome_id=oid, judge="llm", model="m", attempt=attempt, cache_key=f"{oid}-{attempt}",
            prompt_digest="d", status="ok" if ok else "error", cost_usd=cost,
        )  # fmt: skip

    # a failed attempt and its retry both cost money; a cache hit costs 0
    calls = [call(ids[0], 0.001, ok=False), call(ids[0], 0.002, attempt=2)]
    calls += [call(oid, 0.0005) for oid in ids[1:20]] + [call(ids[5], 0.0)]
    calls += [call("NOT-JUDGED", 0.25)]  # no verdict for it: unattributed
    judge_cost: dict[str, float] = defaultdict(float)
    judge_calls: dict[str, int] = defaultdict(int)
    for c in calls:
        judge_cost[c.outcome_id] += c.cost_usd
        judge_calls[c.outcome_id] += 1
    with Ledger.open(url, tenant="acme") as ledger:
        ledger.record_calls(calls)

    data = run_json("cost", "report", "--db", url, "--group-by", "model_path,tier")
    expected: dict[tuple[str, str | None], dict[str, float]] = defaultdict(
        lambda: {"outcomes": 0, "verified": 0, "agent": 0.0, "judge": 0.0, "calls": 0}
    )
    for oid, v in decisions.items():
        e = expected[(agents[oid]["model_path"], v.get("tier"))]
        e["outcomes"] += 1
        e["verified"] += v["decision"] == "verified"
        e["agent"] += agents[oid]["cost_usd"]
        e["judge"] += judge_cost[oid]
        e["calls"] += judge_calls[oid]
    got = {(r["group"]["model_path"], r["group"]["tier"]): r for r in data["groups"]}
    assert set(got) == set(expected)
    undefined = 0
    for key, e in expected.items():
        r = got[key]
        assert (r["outcomes"], r["verified"], r["judge_calls"]) == (
            e["outcomes"], e["verified"], e["calls"],
        )  # fmt: skip
        assert r["agent_cost_usd"] == pytest.approx(e["agent"], abs=1e-12)
        assert r["judge_cost_usd"] == pytest.approx(e["judge"], abs=1e-12)
        assert r["numerator_usd"] == pytest.approx(e["agent"] + e["judge"], abs=1e-12)
        assert r["denominator"] == e["verified"]
        if e["verified"]:
            per = (e["agent"] + e["judge"]) / e["verified"]
            assert r["cost_per_verified_usd"] == pytest.approx(per, rel=1e-9)
            assert r["reason"] is None
        else:  # undefined, never 0
            undefined += 1
            assert r["cost_per_verified_usd"] is None
            assert "no verified outcomes" in r["reason"]
    assert undefined > 0  # the not-verified outcomes (tier null) form such groups
    total = data["total"]
    all_agent = sum(agents[oid]["cost_usd"] for oid in decisions)
    all_judge = sum(judge_cost[oid] for oid in decisions)
    n_verified = sum(v["decision"] == "verified" for v in decisions.values())
    assert total["verified"] == n_verified and total["outcomes"] == len(decisions)
    assert total["cost_per_verified_usd"] == pytest.approx((all_agent + all_judge) / n_verified)
    assert data["unattributed_judge_cost_usd"] == pytest.approx(0.25)
    assert data["unattributed_judge_calls"] == 1
    assert data["human_review_usd"] == 0 and data["total"]["human_review_minutes"] == 0
    text = run("cost", "report", "--db", url, "--group-by", "tier")
    assert text.exit_code == 0 and "n/a (0 verified)" in text.stdout and "TOTAL" in text.stdout


def test_report_empty_window_is_undefined_not_zero(verified_ledger: tuple[str, Path]) -> None:
    url, _ = verified_ledger
    data = run_json("cost", "report", "--db", url, "--from", "2999-01-01")
    assert data["groups"] == []
    assert data["total"]["cost_per_verified_usd"] is None
    assert data["total"]["denominator"] == 0 and data["total"]["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", "model_path,colour"], "--group-by: colour"),
        (["--group-by", "tier,tier"], "repeats"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "must be before --to"),
        (["--from", "yesterday"], "--from: 'yesterday' is not an ISO 8601 time"),
        (["--window-hours", "0"], "--window-hours must be a finite number of hours > 0"),
        (["--grace-hours", "-1"], "--grace-hours must be a finite number of hours >= 0"),
        (["--window-hours", "nan"], "--window-hours must"),
        (["--now", "soon"], "--now: 'soon' is not an ISO 8601 time"),
        (["--group-by", "period", "--period", "week"], "--period: 'week' is not a period"),
        (["--period", "day"], "--period: only with --group-by period or --html"),
        (["--html", "/nonexistent-folder/x.html"], "--html: folder /nonexistent-folder"),
    ],
)
def test_report_bad_options_exit_2(
    verified_ledger: tuple[str, Path], args: list[str], message: str
) -> None:
    url, _ = verified_ledger
    result = run("cost", "report", "--db", url, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


# ---- provisional vs final, attribution --------------------------------------------------------


def final_at_from_file(window_hours: float, grace_hours: float) -> dict[str, datetime]:
    """When each shipped ticket becomes final, from its raw JSON: last customer message + w + g."""
    out = {}
    for record in map(json.loads, TICKETS.read_text(encoding="utf-8").splitlines()):
        times = [
            datetime.fromisoformat(m["at"].replace("Z", "+00:00"))
            for m in record["conversation"]
            if m["role"] == "customer" and m.get("at")
        ]
        out[record["id"]] = max(times) + timedelta(hours=window_hours + grace_hours)
    return out


def test_report_splits_provisional_and_final_as_of_now(verified_ledger: tuple[str, Path]) -> None:
    url, verdicts = verified_ledger
    decisions = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    agents = {r["id"]: r["agent"] for r in map(json.loads, TICKETS.read_text().splitlines())}
    final_at = final_at_from_file(72, 24)
    now = sorted(final_at[oid] for oid in decisions)[len(decisions) // 2]  # exactly at a boundary
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "model_path", "--now", now.isoformat()
    )
    assert data["window_hours"] == 72 and data["grace_hours"] == 24
    assert datetime.fromisoformat(data["now"]) == now
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for oid, v in decisions.items():
        status = "final" if now >= final_at[oid] else "provisional"
        e = expected[(agents[oid]["model_path"], status)]
        e[0] += 1
        e[1] += v["decision"] == "verified"
    got = {(r["group"]["model_path"], r["status"]): r for r in data["groups"]}
    assert set(got) == set(expected)
    assert {r["status"] for r in data["groups"]} == {"provisional", "final"}
    for key, (n, k) in expected.items():
        assert (got[key]["outcomes"], got[key]["verified"]) == (n, k), key
    n_final = sum(n for (_, s), (n, _) in expected.items() if s == "final")
    assert data["final"]["outcomes"] == n_final
    assert data["provisional"]["outcomes"] == len(decisions) - n_final
    for field in ("outcomes", "verified", "judge_calls"):
        assert data["provisional"][field] + data["final"][field] == data["total"][field]
    assert data["provisional"]["numerator_usd"] + data["final"]["numerator_usd"] == (
        pytest.approx(data["total"]["numerator_usd"])
    )
    # one microsecond earlier the ticket on the boundary is provisional again
    earlier = run_json(
        "cost", "report", "--db", url, "--now", (now - timedelta(microseconds=1)).isoformat()
    )
    on_boundary = sum(1 for oid in decisions if final_at[oid] == now)
    assert earlier["final"]["outcomes"] == n_final - on_boundary
    text = run("cost", "report", "--db", url, "--now", now.isoformat())
    assert text.exit_code == 0
    assert "status" in text.stdout and "provisional" in text.stdout and "final" in text.stdout


def test_report_window_and_grace_options(verified_ledger: tuple[str, Path]) -> None:
    url, verdicts = verified_ledger
    n = len(verdicts.read_text().splitlines())
    now = "2026-06-01T00:00:00Z"
    # every ticket's last customer message is before 2026-05: a 24 h window has passed for all
    short = run_json("cost", "report", "--db", url, "--now", now, "--window-hours", "24")
    assert short["final"]["outcomes"] == n and short["provisional"]["outcomes"] == 0
    # a grace period of a year keeps all of them provisional
    long = run_json("cost", "report", "--db", url, "--now", now, "--grace-hours", "8760")
    assert long["provisional"]["outcomes"] == n and long["final"]["outcomes"] == 0
    assert long["provisional"]["cost_per_verified_usd"] == pytest.approx(
        short["final"]["cost_per_verified_usd"]
    )
    assert long["final"]["cost_per_verified_usd"] is None and long["final"]["reason"]
    # --window-hours moves the boundary exactly as the file says
    final_at = final_at_from_file(500, 0)
    cut = sorted(final_at.values())[n // 3]
    data = run_json(
        "cost", "report", "--db", url, "--now", cut.isoformat(),
        "--window-hours", "500", "--grace-hours", "0",
    )  # fmt: skip
    assert data["final"]["outcomes"] == sum(1 for t in final_at.values() if t <= cut)


def test_report_by_agent_credits_the_ai_actor_never_the_router(
    verified_ledger: tuple[str, Path],
) -> None:
    url, verdicts = verified_ledger
    records = {r["id"]: r for r in map(json.loads, TICKETS.read_text().splitlines())}
    assert any(
        t["actor"] == "router:triage" for r in records.values() for t in r.get("touches", [])
    )
    data = run_json("cost", "report", "--db", url, "--group-by", "agent", "--now", "2027-01-01")
    agents = {r["group"]["agent"] for r in data["groups"]}
    assert agents == {"bot:fin"}  # the only AI actor touching the shipped tickets
    assert sum(r["outcomes"] for r in data["groups"]) == len(verdicts.read_text().splitlines())
    assert all(r["status"] == "final" for r in data["groups"])


def test_report_by_agent_version_matches_the_tickets(verified_ledger: tuple[str, Path]) -> None:
    url, _ = verified_ledger
    records = [json.loads(line) for line in TICKETS.read_text().splitlines()]
    expected: dict[str, int] = {}
    for r in records:
        key = f"{r['agent']['name']}@{r['agent']['version']}"
        expected[key] = expected.get(key, 0) + 1
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "agent_version", "--now", "2027-01-01"
    )
    got = {r["group"]["agent_version"]: r["outcomes"] for r in data["groups"]}
    assert got == expected and len(got) >= 2

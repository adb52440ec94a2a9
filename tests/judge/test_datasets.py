"""The shipped sample data: valid, labelled, and really the mix datasets/README.md advertises."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from judge.importers import read_outcomes, validate_file
from judge.models import Outcome

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / "datasets"
README = (DATASETS / "README.md").read_text(encoding="utf-8")
INJECTION_WORDS = re.compile(
    r"ignore (all )?previous instructions|evaluator|judge|grader|system override|"
    r"<system>|assistant:|ignora las instrucciones|reviewing model",
    re.IGNORECASE,
)


def _rubric_ids(name: str) -> set[str]:
    data = yaml.safe_load((ROOT / "rubrics" / f"{name}.yaml").read_text(encoding="utf-8"))
    return {c["id"] for c in data["criteria"]}


@pytest.fixture(scope="module")
def tickets() -> list[Outcome]:
    return list(read_outcomes(DATASETS / "tickets.jsonl", format="native"))


@pytest.fixture(scope="module")
def reports() -> list[Outcome]:
    return list(read_outcomes(DATASETS / "reports.jsonl", format="native"))


def _scenario(tickets: list[Outcome], name: str) -> list[Outcome]:
    found = [t for t in tickets if t.metadata["scenario"] == name]
    assert found, f"no {name} tickets"
    return found


def test_files_validate() -> None:
    assert validate_file(DATASETS / "tickets.jsonl") >= 60
    assert validate_file(DATASETS / "reports.jsonl") >= 6


def test_every_ticket_is_labelled_by_qa_with_rubric_criteria(tickets: list[Outcome]) -> None:
    ids = _rubric_ids("support-resolution")
    for t in tickets:
        assert t.kind == "support_ticket" and t.tenant == "acme"
        assert t.label is not None and t.label.by == "qa-team" and t.label.at is not None
        assert set(t.label.criteria) == ids, t.id
        assert t.label.at.year == 2026
        times = [m.at for m in t.conversation if m.at is not None]
        assert times == sorted(times) and all(at.year == 2026 for at in times), t.id
        assert t.agent.cost_usd is not None and t.agent.cost_usd > 0
        assert t.agent.tokens_in and t.agent.tokens_out


def test_readme_mix_table_matches_the_file(tickets: list[Outcome]) -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) \|", README, flags=re.MULTILINE)
    advertised = {name: (int(n), int(ok)) for name, n, ok in rows}
    actual: dict[str, tuple[int, int]] = {}
    for name in {t.metadata["scenario"] for t in tickets}:
        group = _scenario(tickets, name)
        actual[name] = (len(group), sum(bool(t.label and t.label.resolved) for t in group))
    assert advertised == actual
    total = re.search(r"\*\*total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\*", README)
    assert total is not None
    assert int(total.group(1)) == len(tickets)
    assert int(total.group(2)) == sum(bool(t.label and t.label.resolved) for t in tickets)


def test_agents_and_model_paths_vary(tickets: list[Outcome]) -> None:
    paths = Counter((t.agent.name, t.agent.version, t.agent.model_path) for t in tickets)
    assert len(paths) >= 3
    assert {v for _, v, _ in paths} >= {"2.3", "2.4"}
    assert any(k.kind == "router" for t in tickets for k in t.touches)
    lines = README.splitlines()
    for (name, version, path), n in paths.items():
        row = [line for line in lines if line.startswith(f"| {name} | {version} | {path} ")]
        assert len(row) == 1 and f" | {n} | " in row[0], (name, version, path)
    assert len({t.metadata["domain"] for t in tickets}) >= 5


def test_confirmed_and_assumed(tickets: list[Outcome]) -> None:
    for t in _scenario(tickets, "confirmed"):
        assert t.signals.customer_confirmed is True and t.label and t.label.resolved
        assert t.conversation[-1].role in ("customer", "agent")
    for t in _scenario(tickets, "assumed"):
        # The customer wrote nothing after the agent's answer.
        assert t.conversation[-1].role == "agent", t.id
        assert len(t.customer_messages()) == 1
        assert t.signals.customer_confirmed is None


def test_assisted_tickets_have_a_human_touch(tickets: list[Outcome]) -> None:
    for t in _scenario(tickets, "assisted"):
        humans = [k for k in t.touches if k.kind == "human"]
        assert humans and any(m.author == humans[0].actor for m in t.conversation)
        assert t.label and t.label.criteria["no_human_intervention"] is False


def test_reopened_within_72h_and_other_failure_signals(tickets: list[Outcome]) -> None:
    for t in _scenario(tickets, "reopened"):
        closed, reopened = t.signals.closed_at, t.signals.reopened_at
        assert closed and reopened and timedelta(0) < reopened - closed <= timedelta(hours=72)
        assert t.label and not t.label.resolved
    assert all(t.signals.escalated for t in _scenario(tickets, "escalated"))
    assert all(
        t.signals.csat is not None and t.signals.csat <= 2 for t in _scenario(tickets, "low_csat")
    )
    for t in _scenario(tickets, "recontact"):
        assert t.signals.recontact_at and t.signals.closed_at
        assert t.signals.recontact_at > t.signals.closed_at


def test_wrong_answers_the_customer_accepted(tickets: list[Outcome]) -> None:
    group = _scenario(tickets, "wrong_accepted")
    assert len(group) >= 5
    for t in group:
        assert t.signals.customer_confirmed is True
        assert t.label and not t.label.resolved and t.label.note
        assert t.label.criteria["answer_correct"] is False


def test_unanswered_second_questions(tickets: list[Outcome]) -> None:
    for t in _scenario(tickets, "unanswered_second_question"):
        assert t.label and not t.label.resolved
        assert t.label.criteria["all_questions_handled"] is False
        assert "?" in t.customer_messages()[0].text


def test_prompt_injection_attempts_are_varied(tickets: list[Outcome]) -> None:
    group = [t for t in tickets if t.metadata.get("injection")]
    assert len(group) >= 6
    assert len({t.metadata["injection"] for t in group}) == len(group)  # all different styles
    in_tools = 0
    for t in group:
        hits = [m for m in t.conversation if INJECTION_WORDS.search(m.text)]
        assert hits, t.id
        assert all(m.role in ("customer", "tool") for m in hits), t.id
        in_tools += any(m.role == "tool" for m in hits)
    assert in_tools >= 2
    # Injection never appears in tickets that are not marked as such (the marker is honest).
    for t in tickets:
        if not t.metadata.get("injection"):
            assert not any(INJECTION_WORDS.search(m.text) for m in t.conversation), t.id


def test_texts_are_not_templated(tickets: list[Outcome]) -> None:
    openers = [t.customer_messages()[0].text for t in tickets]
    assert len(set(openers)) == len(openers)
    prefixes = Counter(o.split()[0].lower() for o in openers)
    assert prefixes.most_common(1)[0][1] <= len(openers) // 4


def test_reports_have_labels_and_the_advertised_flaws(reports: list[Outcome]) -> None:
    ids = _rubric_ids("report-accuracy")
    failing: Counter[str] = Counter()
    for r in reports:
        assert r.kind == "report" and r.report is not None and r.report.sources
        assert r.label is not None and set(r.label.criteria) == ids
        assert r.label.resolved == all(r.label.criteria.values())
        failing.update(k for k, ok in r.label.criteria.items() if not ok)
        row = re.search(rf"^\| {r.id} \| `(\w+)` \| (yes|no) \|", README, flags=re.MULTILINE)
        assert row is not None, r.id
        assert row.group(1) == r.metadata["scenario"]
        assert (row.group(2) == "yes") == r.label.resolved
    assert set(failing) == ids  # every criterion fails somewhere
    assert any(r.label and r.label.resolved for r in reports)


def test_report_number_mismatch_is_real(reports: list[Outcome]) -> None:
    # Independent check: R-2002 states a total absent from its source; R-2001 states the right one.
    by_id = {r.id: r for r in reports}
    wrong, right = by_id["R-2002"].report, by_id["R-2001"].report
    assert wrong is not None and right is not None
    assert "12,400" in wrong.text and "12,400" not in wrong.sources[0].text
    assert "12,040" in right.text and "12,040" in right.sources[0].text

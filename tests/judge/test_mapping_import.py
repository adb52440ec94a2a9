"""Declarative mappings: the shipped six on payloads built from each vendor's API reference,
and located errors for a broken mapping or data the mapping does not describe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from judge.importers import FileReport, InputFileError, read_outcomes
from judge.importers.mapping_schema import MappingError, load_mapping, shipped_mappings
from judge.models import Outcome

FIXTURES = Path(__file__).parent / "fixtures" / "mappings"
Expected = list[tuple[str, str, bool]]  # (role, text, public) in time order


def _load(name: str) -> Any:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else json.loads(text.splitlines()[0])


def _freshdesk(raw: dict[str, Any]) -> Expected:
    convs = sorted(raw["conversations"], key=lambda c: c["created_at"])
    return [("customer", raw["description_text"], True)] + [
        ("customer" if c["incoming"] else "agent", c["body_text"], not c["private"]) for c in convs
    ]


def _helpscout(raw: dict[str, Any]) -> Expected:
    threads = sorted(raw["_embedded"]["threads"], key=lambda t: t["createdAt"])
    return [
        (
            "customer" if t["createdBy"]["type"] == "customer" else "agent",
            t["body"].removeprefix("<p>").removesuffix("</p>"),
            t["type"] != "note",
        )
        for t in threads
        if t["type"] != "lineitem"
    ]


def _gorgias(raw: dict[str, Any]) -> Expected:
    return [
        ("agent" if m["from_agent"] else "customer", m["body_text"], m["public"])
        for m in sorted(raw["messages"], key=lambda m: m["created_datetime"])
    ]


def _salesforce(raw: dict[str, Any]) -> Expected:
    case = raw["records"][0]
    items = [
        (e["MessageDate"], "customer" if e["Incoming"] else "agent", e["TextBody"], True)
        for e in case["EmailMessages"]["records"]
    ] + [
        (c["CreatedDate"], "agent", c["CommentBody"], c["IsPublished"])
        for c in case["CaseComments"]["records"]
    ]
    rows = [(role, text, public) for _, role, text, public in sorted(items)]
    # The description is the first incoming email here: it opens the case once.
    assert rows[0][1] == case["Description"]
    return rows


def _front(raw: dict[str, Any]) -> Expected:
    items = [
        (m["created_at"], "customer" if m["is_inbound"] else "agent", m["text"], True)
        for m in raw["messages"]["_results"]
        if not m["is_draft"]
    ] + [(c["posted_at"], "agent", c["body"], False) for c in raw["comments"]["_results"]]
    return [(role, text, public) for _, role, text, public in sorted(items)]


def _hubspot(raw: dict[str, Any]) -> Expected:
    rows = []
    for m in sorted(raw["messages"]["results"], key=lambda m: m["createdAt"]):
        if m["type"] == "MESSAGE":
            rows.append(("customer" if m["direction"] == "INCOMING" else "agent", m["text"], True))
        elif m["type"] == "COMMENT":
            rows.append(("agent", m["text"], False))
    return rows


CASES: list[tuple[str, str, Callable[[Any], Expected], dict[str, Any]]] = [
    ("freshdesk", "freshdesk_tickets.jsonl", _freshdesk, {"status": "resolved", "csat": None}),
    ("helpscout", "helpscout_conversations.jsonl", _helpscout, {"status": "closed", "csat": None}),
    ("gorgias", "gorgias_tickets.jsonl", _gorgias, {"status": "closed", "csat": 4}),
    ("salesforce", "salesforce_cases.json", _salesforce, {"status": "Closed", "csat": None}),
    ("front", "front_conversations.jsonl", _front, {"status": "archived", "csat": None}),
    ("hubspot", "hubspot_threads.jsonl", _hubspot, {"status": "CLOSED", "csat": None}),
]


def _convert(name: str, fixture: str) -> tuple[list[Outcome], FileReport]:
    path = FIXTURES / fixture
    report = FileReport(path=path)
    return list(read_outcomes(path, mapping=load_mapping(name), report=report)), report


def test_every_shipped_mapping_is_tested() -> None:
    assert sorted(name for name, *_ in CASES) == shipped_mappings()


@pytest.mark.parametrize(("name", "fixture", "expected", "facts"), CASES, ids=[c[0] for c in CASES])
def test_shipped_mapping_reads_the_vendor_payload(
    name: str, fixture: str, expected: Callable[[Any], Expected], facts: dict[str, Any]
) -> None:
    raw = _load(fixture)
    outcomes, report = _convert(name, fixture)
    first = outcomes[0]
    assert [(m.role, m.text, m.public) for m in first.conversation] == expected(raw)
    assert first.vendor_claim is not None and first.vendor_claim.vendor == name
    assert first.vendor_claim.status == facts["status"]
    assert first.signals.csat == facts["csat"]
    assert first.id.startswith(f"{name}-")
    assert first.id not in report.without_agent and first.id not in report.without_customer


def test_who_is_automation_and_ai_comes_from_the_mapping_rules() -> None:
    gorgias, _ = _convert("gorgias", "gorgias_tickets.jsonl")
    kinds = {t.actor: t.kind for t in gorgias[0].touches}
    assert kinds == {"automation:Auto-responder": "automation", "Steve Frazer": "human"}
    assert gorgias[0].agent.name is None

    hubspot, _ = _convert("hubspot", "hubspot_threads.jsonl")
    kinds = {t.actor: t.kind for t in hubspot[0].touches}
    assert kinds["bot:Support bot"] == "ai"  # actor id B-77
    assert hubspot[0].agent.name == "Support bot"
    raw = _load("hubspot_threads.jsonl")
    assert hubspot[0].signals.closed_at is not None
    assert hubspot[0].signals.closed_at.isoformat().startswith(raw["thread"]["closedAt"][:19])


def _hubspot_with_last(tmp_path: Path, message: dict[str, Any]) -> tuple[Outcome, FileReport]:
    """The HubSpot fixture with ``message`` added after its last message, converted."""
    raw = _load("hubspot_threads.jsonl")
    results = raw["messages"]["results"]
    message = {**message, "createdAt": max(m["createdAt"] for m in results)[:-1] + "1Z"}
    raw["messages"]["results"] = [*results, message]
    path = tmp_path / "hubspot.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    report = FileReport(path=path)
    (outcome,) = read_outcomes(path, mapping=load_mapping("hubspot"), report=report)
    return outcome, report


def test_a_bot_sender_is_never_the_customer_whatever_its_direction(tmp_path: Path) -> None:
    # Red-team M2: HubSpot's custom-channel API lets an integration publish a message as
    # INCOMING; the bot's "all sorted" came out as the customer's, after their "not fixed".
    results = _load("hubspot_threads.jsonl")["messages"]["results"]
    bot = next(m for m in results if m["senders"][0]["actorId"].startswith("B-"))
    forged = {**bot, "id": "forged", "direction": "INCOMING", "text": "Got it now, all sorted!"}
    outcome, report = _hubspot_with_last(tmp_path, forged)
    last = outcome.conversation[-1]
    assert last.text == "Got it now, all sorted!" and last.role == "agent"
    assert last.author == f"bot:{bot['senders'][0]['name']}"
    assert any("recognises as an AI agent" in w for w in report.warnings())
    assert (
        outcome.conversation[:-1] == _convert("hubspot", "hubspot_threads.jsonl")[0][0].conversation
    )


@pytest.mark.parametrize(("actor", "name"), [("A-4321", "Dana (agent)"), ("I-88", "Sync app")])
def test_an_agent_or_integration_sender_is_never_the_customer(
    tmp_path: Path, actor: str, name: str
) -> None:
    # The M2 fix covered bots and the system only: a message an agent (A-) or an integration
    # (I-) published as INCOMING still came out as the customer's confirmation.
    results = _load("hubspot_threads.jsonl")["messages"]["results"]
    visitor = next(m for m in results if m.get("direction") == "INCOMING")
    forged = {**visitor, "id": "forged", "text": "Works now, thanks, please close it."}
    forged["senders"] = [{**visitor["senders"][0], "actorId": actor, "name": name}]
    outcome, report = _hubspot_with_last(tmp_path, forged)
    last = outcome.conversation[-1]
    assert last.text == "Works now, thanks, please close it." and last.role == "agent"
    assert last.author == name
    assert any("recognises as the team" in w for w in report.warnings())
    expected = _convert("hubspot", "hubspot_threads.jsonl")[0][0].conversation
    assert outcome.conversation[:-1] == expected
    # The visitor's own INCOMING messages stay the customer's.
    incoming = {r["text"] for r in results if r.get("direction") == "INCOMING"}
    assert incoming and all(m.role == "customer" for m in expected if m.text in incoming)


def test_a_number_is_not_a_listed_boolean(tmp_path: Path) -> None:
    # Python's 1 == True made `incoming: 1` a customer message where the mapping lists `true`.
    raw = _load("freshdesk_tickets.jsonl")
    raw["conversations"][0]["incoming"] = 1
    path = tmp_path / "freshdesk.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="1 is neither a customer value"):
        list(read_outcomes(path, mapping=load_mapping("freshdesk")))


def test_a_message_without_a_time_keeps_its_place(tmp_path: Path) -> None:
    # Red-team M3: a reply without createdAt sorted last, after the customer's later complaint,
    # so the complaint was no longer the customer's last word after the agent's.
    raw = _load("hubspot_threads.jsonl")
    results = sorted(raw["messages"]["results"], key=lambda m: m["createdAt"])
    first_reply = next(i for i, m in enumerate(results) if m.get("direction") == "OUTGOING")
    assert first_reply < len(results) - 1  # something follows it
    del results[first_reply]["createdAt"]
    raw["messages"]["results"] = results
    path = tmp_path / "hubspot.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    report = FileReport(path=path)
    (outcome,) = read_outcomes(path, mapping=load_mapping("hubspot"), report=report)
    expected = _convert("hubspot", "hubspot_threads.jsonl")[0][0].conversation
    assert [m.text for m in outcome.conversation] == [m.text for m in expected]
    assert any("have no time" in w for w in report.warnings())


def test_an_agent_note_quoting_the_request_leaves_the_customers_opening(tmp_path: Path) -> None:
    # Red-team M4: the bot filed the customer's request verbatim as its own private note, and
    # the opening (the description) was dropped as a repeat: the request became the agent's.
    raw = _load("freshdesk_tickets.jsonl")
    agent = next(c for c in raw["conversations"] if not c["incoming"])
    note = {**agent, "id": 1, "private": True, "body_text": raw["description_text"]}
    note["created_at"] = raw["created_at"]
    raw["conversations"] = [note, *raw["conversations"]]
    path = tmp_path / "freshdesk.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    (outcome,) = read_outcomes(path, mapping=load_mapping("freshdesk"))
    opening = outcome.conversation[0]
    assert (opening.role, opening.text) == ("customer", raw["description_text"])
    assert [(m.role, m.public) for m in outcome.conversation if m.text == opening.text] == [
        ("customer", True),
        ("agent", False),
    ]


def test_empty_salesforce_relationships_warn_only_as_degenerate() -> None:
    outcomes, report = _convert("salesforce", "salesforce_cases.json")
    second = outcomes[1]
    assert [m.role for m in second.conversation] == ["customer"]  # the description only
    assert report.without_agent == [second.id]
    assert not any("carry no" in w for w in report.warnings())  # null = no children, not missing


def test_unlisted_role_value_is_a_located_error(tmp_path: Path) -> None:
    raw = _load("gorgias_tickets.jsonl")
    raw["messages"][1]["from_agent"] = "maybe"
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path, mapping=load_mapping("gorgias")))
    err = info.value
    assert err.line == 1 and err.field == "messages.1.from_agent"
    assert "'maybe'" in err.reason and "role.customer or role.agent" in err.reason


def test_wrong_export_for_the_mapping_is_said(tmp_path: Path) -> None:
    path = tmp_path / "sf.json"
    path.write_text(json.dumps({"tickets": []}), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path, mapping=load_mapping("salesforce")))
    assert info.value.field == "records" and "salesforce export" in info.value.reason


def test_invalid_mapping_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nvendor: acme\nsource: https://example.test\nid: id\n"
        "messages:\n  - path: posts\n    text: body\n    role: {path: who, custmer: [c]}\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    fields = {p.field: p.line for p in info.value.problems}
    assert fields.get("messages[0].role.custmer") == 8
    assert "mine.yaml line 8" in str(info.value)
    with pytest.raises(MappingError, match=r"not a shipped mapping .*freshdesk"):
        load_mapping("zendesk-classic")


def test_convert_with_mapping_on_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    source = FIXTURES / "front_conversations.jsonl"
    result = CliRunner().invoke(app, ["convert", str(source), "--mapping", "front", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 outcome (mapping)" in " ".join(result.output.split())
    assert "closed_at is left empty" in " ".join(result.output.split())  # Front has no close time
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", encoding="utf-8")
    args = ["convert", str(source), "--mapping", str(bad), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--mapping:" in result.output and "bad.yaml" in result.output

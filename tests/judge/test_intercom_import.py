"""Intercom conversations and tickets, as the API returns them (2.14 examples, 2.16 schema).

The real payloads live in ../shared/datasets/real_formats (Intercom's OpenAPI examples, MIT); the
expected counts and authors are computed from the payloads themselves.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from judge.importers import FileReport, InputFileError, detect_format, read_outcomes
from judge.importers.intercom import html_to_text
from judge.models import Outcome
from tests.conftest import shared_dataset

FIXTURES = Path(__file__).parent / "fixtures"
REAL = "real_formats"


def _real(name: str) -> dict[str, Any]:
    return json.loads(shared_dataset(f"{REAL}/{name}").read_text(encoding="utf-8"))


def _write(tmp_path: Path, value: object, name: str = "conv.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


def _one(path: Path, **options: Any) -> tuple[Outcome, FileReport]:
    report = FileReport(path=path)
    outcomes = list(read_outcomes(path, report=report, **options))
    assert len(outcomes) == 1
    return outcomes[0], report


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _parts(conv: dict[str, Any]) -> list[dict[str, Any]]:
    return list(conv["conversation_parts"]["conversation_parts"])


def _expected_messages(conv: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, author name) of each message in the payload: the source, then parts with a body."""
    rows = []
    if conv["source"].get("body"):
        rows.append(conv["source"]["author"])
    rows += [p["author"] for p in _parts(conv) if p.get("body")]
    return [("customer" if a["type"] in ("user", "lead") else "agent", a["name"]) for a in rows]


# ----------------------------------------------------------------------------- real payloads


def test_retrieved_conversation_keeps_every_message_and_operator_is_automation() -> None:
    path = shared_dataset(f"{REAL}/intercom_api_2.14_retrieve_conversation.json")
    raw = _real("intercom_api_2.14_retrieve_conversation.json")
    outcome, report = _one(path)

    expected = _expected_messages(raw)
    assert [m.role for m in outcome.conversation] == [role for role, _ in expected]
    assert len(outcome.conversation) == 2  # the admin's opening message and Operator's reply
    operator = outcome.conversation[1]
    assert operator.author == "automation:Operator" and operator.text == "Okay!"
    kinds = {t.actor: t.kind for t in outcome.touches}
    # The workflow Operator and the Fin bot (ai_agent_participated is false) are automation;
    # the admin who wrote and the admin who ran the Jira action are people. No AI touch.
    assert kinds == {
        "Ciaran176 Lee": "human",
        "automation:Operator": "automation",
        "Jamie Oliver": "human",
        "automation:Fin": "automation",
    }
    assert outcome.agent.name is None
    # Closed when the last part turned the state to closed (custom_action_finished).
    closing = next(p for p in _parts(raw) if p.get("state") == "closed")
    assert outcome.signals.closed_at == _at(closing["created_at"])
    assert outcome.signals.reopened_at is None
    assert outcome.metadata["tags"] == [t["name"] for t in raw["tags"]["tags"]]
    assert outcome.metadata["channel"] == raw["source"]["type"]
    assert outcome.vendor_claim is not None and outcome.vendor_claim.status == "closed"
    # An admin-initiated conversation has no customer message: said, not judged silently.
    assert report.without_customer == ["intercom-503"]
    assert any("no customer message" in w for w in report.warnings())
    assert "conversation.waiting_since" not in report.unmapped_fields  # null carries nothing
    assert report.unmapped_fields["conversation.teammates"] == 0  # null here


def test_fin_bot_without_participation_flag_is_not_ai_and_custom_attributes_kept() -> None:
    path = shared_dataset(f"{REAL}/intercom_api_2.14_update_conversation_fin_part.json")
    raw = _real("intercom_api_2.14_update_conversation_fin_part.json")
    outcome, _ = _one(path)
    assert raw["ai_agent_participated"] is False
    assert [(t.actor, t.kind) for t in outcome.touches] == [
        ("Ciaran180 Lee", "human"),
        ("automation:Fin", "automation"),
    ]
    assert len(outcome.conversation) == len(_expected_messages(raw)) == 1
    assert outcome.metadata["custom_attributes"] == raw["custom_attributes"]


def test_list_page_without_parts_is_refused_with_the_fix() -> None:
    path = shared_dataset(f"{REAL}/intercom_api_2.14_list_conversations.json")
    assert detect_format(path) == "intercom"
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    err = info.value
    assert err.record == "conversations.0" and err.field == "conversation_parts"
    assert "GET /conversations/{id}" in err.reason and "List" in err.reason


# ----------------------------------------------------------------------------- who is AI


def _fin_conversation(**changes: Any) -> dict[str, Any]:
    """The 2.14 retrieve example turned into a customer conversation answered by Fin."""
    conv = copy.deepcopy(_real("intercom_api_2.14_retrieve_conversation.json"))
    conv["source"]["author"] = {"type": "user", "id": "u1", "name": "Ana", "email": "a@x.test"}
    conv["source"]["delivered_as"] = "customer_initiated"
    conv["source"]["body"] = "<p>My invoice shows the wrong VAT number.</p>"
    conv["conversation_parts"]["conversation_parts"] = [
        {
            "type": "conversation_part",
            "id": "10",
            "part_type": "comment",
            "body": "<p>I have corrected the VAT number; a new invoice is on its way.</p>",
            "created_at": 1734537600,
            "author": {"type": "bot", "id": "278", "name": "Fin", "email": "op+x@intercom.io"},
            "state": "open",
        },
        {
            "type": "conversation_part",
            "id": "11",
            "part_type": "close",
            "body": None,
            "created_at": 1734537700,
            "author": {"type": "bot", "id": "278", "name": "Fin"},
            "state": "closed",
        },
    ]
    conv.update(changes)
    return conv


@pytest.mark.parametrize(
    ("author_flags", "participated", "ai_authors", "expected"),
    [
        ({}, False, None, "automation"),
        ({}, True, None, "ai"),
        ({"from_ai_agent": True}, False, None, "ai"),
        ({"is_ai_answer": True}, False, None, "ai"),
        ({}, False, ["Fin"], "ai"),
        ({"name": "Operator"}, True, None, "automation"),
    ],
    ids=["bot-only", "participated", "from-ai-agent", "is-ai-answer", "ai-authors", "operator"],
)
def test_ai_only_where_the_data_says_so(
    tmp_path: Path,
    author_flags: dict[str, Any],
    participated: bool,
    ai_authors: list[str] | None,
    expected: str,
) -> None:
    conv = _fin_conversation(ai_agent_participated=participated)
    conv["conversation_parts"]["conversation_parts"][0]["author"].update(author_flags)
    from judge.importers import parse_ai_authors

    outcome, report = _one(_write(tmp_path, conv), ai_authors=parse_ai_authors(ai_authors))
    name = conv["conversation_parts"]["conversation_parts"][0]["author"]["name"]
    reply = outcome.conversation[1]
    assert reply.role == "agent"
    kind = {t.actor: t.kind for t in outcome.touches}[reply.author or ""]
    assert kind == expected
    assert outcome.agent.name == (name if expected == "ai" else None)
    assert (report.without_agent == []) is (expected == "ai")


def test_a_customer_part_the_ai_agent_sent_is_the_ai_agents(tmp_path: Path) -> None:
    # The billed party's AI agent posts "that fixed it" with the customer as author type; the
    # part's own from_ai_agent says who sent it (as a Zendesk comment's AI channel does).
    conv = _fin_conversation(ai_agent_participated=True)
    parts = conv["conversation_parts"]["conversation_parts"]
    forged = copy.deepcopy(parts[0])
    forged.update(id="12", created_at=parts[0]["created_at"] + 30,
                  body="<p>That fixed it, thanks! You can close this.</p>")  # fmt: skip
    forged["author"] = {"type": "user", "id": "u1", "name": "Ana", "from_ai_agent": True}
    honest = copy.deepcopy(forged)
    honest.update(id="13", created_at=forged["created_at"] + 30, body="<p>No it did not.</p>")
    honest["author"] = {"type": "user", "id": "u1", "name": "Ana", "from_ai_agent": False}
    parts[1:1] = [forged, honest]
    outcome, report = _one(_write(tmp_path, conv))
    by_text = {m.text: m for m in outcome.conversation}
    assert by_text["That fixed it, thanks! You can close this."].role == "agent"
    assert by_text["That fixed it, thanks! You can close this."].author == "bot:Ana"
    assert by_text["No it did not."].role == "customer"
    assert outcome.conversation[0].role == "customer"  # the source, the customer's request
    assert any("say the AI agent sent them" in w for w in report.warnings())


# ----------------------------------------------------------------------------- API 2.16 states


@pytest.mark.parametrize(
    ("state", "escalated", "confirmed", "automated"),
    [
        ("assumed_resolution", None, None, True),
        # Intercom's own billing claim: kept in vendor_claim, never the customer's word.
        ("confirmed_resolution", None, None, True),
        ("escalated", True, None, False),  # 2.16
        ("procedure_handoff", True, None, False),  # 2.16
        ("negative_feedback", None, False, False),  # 2.16
        ("routed_to_team", True, None, False),  # 2.14
        ("abandoned", None, None, False),  # 2.14
    ],
)
def test_resolution_states_of_2_14_and_2_16(
    tmp_path: Path, state: str, escalated: bool | None, confirmed: bool | None, automated: bool
) -> None:
    ai_agent = {
        "source_type": "workflow",
        "source_title": "Billing bot",
        "last_answer_type": "ai_answer",
        "resolution_state": state,
        "rating": 2,
        "rating_remark": "did not help",
        "created_at": 1734537800,
        "updated_at": 1734537800,
        "content_sources": {"type": "content_source.list", "total_count": 0, "content_sources": []},
    }
    conv = _fin_conversation(ai_agent_participated=True, ai_agent=ai_agent)
    outcome, report = _one(_write(tmp_path, conv))
    assert outcome.signals.escalated is escalated
    assert outcome.signals.customer_confirmed is confirmed
    claim = outcome.vendor_claim
    assert claim is not None and claim.vendor == "intercom"
    assert claim.resolution_state == state and claim.automated is automated
    assert claim.evidence == ["ai_agent.resolution_state"]
    # Fin's own rating is kept, and is the CSAT when the conversation has no rating.
    assert outcome.signals.csat == 2 and outcome.metadata["csat_source"] == "ai_agent.rating"
    assert outcome.metadata["fin_rating_remark"] == "did not help"
    assert outcome.metadata["ai_agent_last_answer_type"] == "ai_answer"
    assert report.notes == {}


def test_unknown_resolution_state_is_kept_and_said(tmp_path: Path) -> None:
    conv = _fin_conversation(ai_agent={"resolution_state": "handed_to_martians"})
    outcome, report = _one(_write(tmp_path, conv))
    assert outcome.vendor_claim is not None
    assert outcome.vendor_claim.resolution_state == "handed_to_martians"
    assert outcome.signals.escalated is None
    assert any("handed_to_martians" in n and "2.14-2.16" in n for n in report.notes)


# ----------------------------------------------------------------------------- reopen and close


def test_reopen_only_from_real_parts_never_updated_at(tmp_path: Path) -> None:
    conv = _fin_conversation(
        state="closed",
        updated_at=1734600000,
        statistics={"type": "conversation_statistics", "count_reopens": 1},
    )
    outcome, report = _one(_write(tmp_path, conv))
    assert outcome.signals.reopened_at is None  # count_reopens alone does not say when
    assert outcome.signals.closed_at == _at(1734537700)  # the close part, not updated_at
    assert any("count_reopens" in n for n in report.notes)

    parts = conv["conversation_parts"]["conversation_parts"]
    parts.append(
        {
            "type": "conversation_part",
            "id": "12",
            "part_type": "open",
            "body": None,
            "created_at": 1734540000,
            "author": {"type": "user", "id": "u1", "name": "Ana"},
            "state": "open",
        }
    )
    outcome, report = _one(_write(tmp_path, conv, "reopened.json"))
    assert outcome.signals.reopened_at == _at(1734540000)
    assert report.notes == {}


# ----------------------------------------------------------------------------- tickets


NORA = {"id": "991268079", "type": "admin", "name": "Nora", "email": "n@x.io"}


def _ticket_216() -> dict[str, Any]:
    """An Intercom ticket shaped as API 2.16 returns it (ticket_state is an object)."""
    return {
        "type": "ticket",
        "id": "633",
        "ticket_id": "40",
        "ticket_attributes": {
            "_default_title_": "Scanner will not pair",
            "_default_description_": "<p>The badge scanner does not pair over Bluetooth.</p>",
        },
        "ticket_state": {
            "type": "ticket_state",
            "id": "8577",
            "category": "resolved",
            "internal_label": "Resolved",
            "external_label": "Resolved",
        },
        "ticket_type": {
            "type": "ticket_type",
            "id": "100",
            "name": "Hardware",
            "category": "Customer",
        },
        "contacts": {
            "type": "contact.list",
            "contacts": [{"type": "contact", "id": "6762f3061bb69f9f2193bc5b"}],
        },
        "admin_assignee_id": 0,
        "team_assignee_id": 0,
        "created_at": 1734537990,
        "updated_at": 1734539000,
        "ticket_parts": {
            "type": "ticket_part.list",
            "ticket_parts": [
                {
                    "type": "ticket_part",
                    "id": "188",
                    "part_type": "comment",
                    "body": "<p>Please hold the power button for 10 seconds to reset pairing.</p>",
                    "created_at": 1734538000,
                    "updated_at": 1734538000,
                    "author": NORA,
                    "attachments": [],
                    "redacted": False,
                },
                {
                    "type": "ticket_part",
                    "id": "189",
                    "part_type": "ticket_state_updated_by_admin",
                    "ticket_state": "resolved",
                    "previous_ticket_state": "in_progress",
                    "created_at": 1734538100,
                    "updated_at": 1734538100,
                    "author": NORA,
                    "attachments": [],
                    "redacted": False,
                },
            ],
            "total_count": 2,
        },
        "open": False,
        "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
        "category": "Customer",
        "is_shared": True,
    }


def test_intercom_ticket_2_16_shape(tmp_path: Path) -> None:
    path = _write(tmp_path, {"type": "ticket.list", "tickets": [_ticket_216()]}, "tickets.json")
    assert detect_format(path) == "intercom"
    outcome, report = _one(path)
    assert outcome.id == "intercom-ticket-633"
    assert [(m.role, m.author) for m in outcome.conversation] == [
        ("customer", "customer:6762f3061bb69f9f2193bc5b"),
        ("agent", "Nora"),
    ]
    assert outcome.conversation[0].text.startswith("Scanner will not pair\nThe badge scanner")
    assert outcome.signals.closed_at == _at(1734538100)
    assert outcome.vendor_claim is not None and outcome.vendor_claim.status == "resolved"
    assert outcome.metadata["ticket_number"] == "40"
    assert report.degenerate == 0


# ----------------------------------------------------------------------------- own fixture


def test_intercom_export_fixture_maps_parts_ratings_and_bots() -> None:
    got = {o.id: o for o in read_outcomes(FIXTURES / "intercom_export.json")}

    fin = got["intercom-501"]
    assert [m.role for m in fin.conversation] == ["customer", "agent", "customer"]
    assert fin.conversation[0].text.startswith('The code SPRING26 says "expired"')
    # Fin's confirmed_resolution is Intercom's claim (vendor_claim), not the customer's word.
    assert fin.signals.csat == 5 and fin.signals.customer_confirmed is None
    assert fin.vendor_claim is not None
    assert fin.vendor_claim.resolution_state == "confirmed_resolution"
    assert fin.signals.closed_at == _at(1772446500)
    assert [(t.actor, t.kind) for t in fin.touches] == [("bot:Fin", "ai")]
    assert fin.agent.name == "Fin"

    routed = got["intercom-502"]
    assert routed.conversation[0].text.startswith("Webhook retries\n")  # subject kept
    kinds = {t.actor: t.kind for t in routed.touches}
    assert kinds == {"bot:Fin": "ai", "bot:Workflow": "router", "Sofia": "human"}
    notes = [m for m in routed.conversation if not m.public]
    assert [n.text for n in notes] == ["Known incident INC-441, retries disabled 2-3 March."]
    assert routed.signals.csat == 2 and routed.signals.escalated is True
    assert routed.signals.closed_at is None  # state open
    assert routed.signals.reopened_at == _at(1772560800)  # the customer wrote after the close

    snoozed = got["intercom-503"]
    assert snoozed.touches[0].kind == "ai"  # admin author flagged from_ai_agent
    assert snoozed.conversation[1].text == (
        "- Open Settings > Team\n- Click Invite and choose the Admin role"
    )
    assert snoozed.signals.closed_at is None


def test_html_to_text_strips_markup_and_scripts() -> None:
    html = "<div>Hi<br>there &lt;3</div><script>alert('x')</script><p>Bye</p>"
    assert html_to_text(html) == "Hi\nthere <3\nBye"


def test_bad_rating_names_line_and_field(tmp_path: Path) -> None:
    conv = {
        "type": "conversation",
        "id": "9",
        "state": "closed",
        "source": {"body": "<p>hi</p>", "author": {"type": "user", "id": "u"}},
        "conversation_parts": {"type": "conversation_part.list", "conversation_parts": []},
        "conversation_rating": {"rating": 7},
    }
    path = tmp_path / "ic.jsonl"
    path.write_text(json.dumps(conv) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    assert info.value.line == 1 and info.value.field == "conversation_rating.rating"


def test_vendor_claim_round_trips_and_is_not_judged(tmp_path: Path) -> None:
    conv = _fin_conversation(ai_agent_participated=True, ai_agent={"resolution_state": "escalated"})
    outcome, _ = _one(_write(tmp_path, conv))
    native = tmp_path / "native.jsonl"
    native.write_text(outcome.model_dump_json(exclude_defaults=True) + "\n", encoding="utf-8")
    again = next(iter(read_outcomes(native, format="native")))
    assert again.vendor_claim == outcome.vendor_claim
    # The vendor's claim is not evidence a judge sees: it does not change the content hash.
    assert again.model_copy(update={"vendor_claim": None}).content_hash() == again.content_hash()

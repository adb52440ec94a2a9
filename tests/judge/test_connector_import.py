"""Connector records (Airbyte, Singer) for Intercom and Zendesk, joined by id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judge.importers import FileReport, InputFileError, detect_format, read_outcomes
from judge.models import Outcome
from tests.conftest import shared_dataset

ZD = Path(__file__).parent / "fixtures" / "zendesk_api"
AIRBYTE = "real_formats/intercom_airbyte_expected_records_subset.jsonl"


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _read(path: Path) -> tuple[dict[str, Outcome], FileReport]:
    report = FileReport(path=path)
    return {o.id: o for o in read_outcomes(path, report=report)}, report


def _write(tmp_path: Path, lines: list[dict[str, Any]], name: str = "records.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _check_airbyte_intercom(got: dict[str, Outcome], records: list[dict[str, Any]]) -> None:
    conversations = [r["data"] for r in records if r["stream"] == "conversations"]
    parts = [r["data"] for r in records if r["stream"] == "conversation_parts"]
    tickets = [r["data"] for r in records if r["stream"] == "tickets"]
    assert set(got) == {f"intercom-{c['id']}" for c in conversations} | {
        f"intercom-ticket-{t['id']}" for t in tickets
    }
    for conv in conversations:
        outcome = got[f"intercom-{conv['id']}"]
        own = sorted(
            (p for p in parts if str(p["conversation_id"]) == conv["id"]),
            key=lambda p: p["created_at"],
        )
        authors = [conv["source"]["author"]] + [p["author"] for p in own if p.get("body")]
        assert len(outcome.conversation) == len(authors)
        assert [m.role for m in outcome.conversation] == [
            "customer" if a["type"] in ("user", "lead") else "agent" for a in authors
        ]
    first = got["intercom-1"]
    # Operator's auto-replies are automation: not an AI touch, not the credited agent.
    assert [(t.actor, t.kind) for t in first.touches] == [("automation:Operator", "automation")]
    assert first.agent.name is None
    assert [m.author for m in first.conversation if m.role == "agent"] == [
        "automation:Operator",
        "automation:Operator",
    ]


def test_airbyte_intercom_records_joined_by_conversation_id() -> None:
    path = shared_dataset(AIRBYTE)
    assert detect_format(path) == "connector"
    records = _records(path)
    got, report = _read(path)
    _check_airbyte_intercom(got, records)
    # Conversation 1: customer messages and only Operator after them; 60 and 61: an admin's
    # automated message and no customer; tickets 70 and 71: a tracker ticket, nobody else.
    no_reply = ["intercom-1", "intercom-ticket-70", "intercom-ticket-71"]
    assert sorted(report.without_agent) == no_reply
    assert sorted(report.without_customer) == [
        "intercom-60",
        "intercom-61",
        "intercom-ticket-70",
        "intercom-ticket-71",
    ]
    assert report.messages == [4, 1, 1, 1, 1]


def test_airbyte_protocol_messages_with_state_lines(tmp_path: Path) -> None:
    records = _records(shared_dataset(AIRBYTE))
    lines: list[dict[str, Any]] = [{"type": "LOG", "log": {"level": "INFO", "message": "start"}}]
    lines += [{"type": "RECORD", "record": r} for r in records]
    lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {}}})
    path = _write(tmp_path, lines)
    assert detect_format(path) == "connector"
    got, _ = _read(path)
    _check_airbyte_intercom(got, records)


def test_conversations_without_a_parts_stream_are_refused(tmp_path: Path) -> None:
    records = [r for r in _records(shared_dataset(AIRBYTE)) if r["stream"] == "conversations"]
    path = _write(tmp_path, records)
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    assert info.value.line == 1 and info.value.record == "stream conversations"
    assert "conversation_parts stream" in info.value.reason


# ----------------------------------------------------------------------------- Zendesk via Singer


def _singer_zendesk() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """tap-zendesk style messages built from the API-reference fixtures (comments by ticket_id)."""
    ticket_line, comments_page, users_page = _records(ZD / "ticket_comments.jsonl")
    ticket = ticket_line["ticket"]
    # The tap's ticket_comments stream adds ticket_id; here the first comment (the description)
    # was not synced, so the description must still open the conversation.
    comments = [dict(c, ticket_id=ticket["id"]) for c in comments_page["comments"][1:]]
    lines: list[dict[str, Any]] = [
        {"type": "SCHEMA", "stream": "tickets", "schema": {}, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "tickets", "record": ticket},
    ]
    lines += [{"type": "RECORD", "stream": "users", "record": u} for u in users_page["users"]]
    lines += [{"type": "RECORD", "stream": "ticket_comments", "record": c} for c in comments]
    lines += [
        {"type": "RECORD", "stream": "groups", "record": {"id": 98738, "name": "Support"}},
        {
            "type": "RECORD",
            "stream": "satisfaction_ratings",
            "record": {"id": 9, "ticket_id": ticket["id"], "score": "bad", "comment": "slow"},
        },
        {
            "type": "RECORD",
            "stream": "ticket_metrics",
            "record": {"id": 8, "ticket_id": ticket["id"], "reopens": 2, "replies": 1},
        },
        {"type": "STATE", "value": {"bookmarks": {"tickets": {"since": ticket["created_at"]}}}},
    ]
    return lines, ticket, comments


def test_singer_zendesk_streams_joined_and_description_kept(tmp_path: Path) -> None:
    lines, ticket, comments = _singer_zendesk()
    path = _write(tmp_path, lines)
    assert detect_format(path) == "connector"
    got, report = _read(path)
    outcome = got[f"zendesk-{ticket['id']}"]
    assert [m.text for m in outcome.conversation] == [ticket["description"]] + [
        c["plain_body"] for c in comments
    ]
    assert [m.role for m in outcome.conversation] == ["customer", "agent", "customer"]
    assert outcome.signals.csat == 1
    assert outcome.metadata["reopens"] == 2
    assert outcome.signals.reopened_at is None  # metrics say it reopened, not when: said
    assert any("ticket_metrics.reopens" in w for w in report.warnings())
    assert report.unmapped_fields["stream:groups"] == 1


def test_airbyte_zendesk_ticket_audits_stream(tmp_path: Path) -> None:
    pages = _records(ZD / "tickets_audits.jsonl")
    lines: list[dict[str, Any]] = []
    for ticket in pages[0]["tickets"]:
        lines.append({"stream": "tickets", "data": ticket, "emitted_at": 1707747714058})
    for user in pages[0]["users"]:
        lines.append({"stream": "users", "data": user, "emitted_at": 1707747714058})
    for page in pages[1:4]:
        for audit in page["audits"]:
            lines.append({"stream": "ticket_audits", "data": audit, "emitted_at": 1707747714059})
    path = _write(tmp_path, lines)
    got, _ = _read(path)
    from_api = {o.id: o for o in read_outcomes(ZD / "tickets_audits.jsonl")}
    assert {k: v.conversation for k, v in got.items()} == {
        k: v.conversation for k, v in from_api.items()
    }
    assert got["zendesk-35436"].touches == from_api["zendesk-35436"].touches

"""Zendesk exports built from the API reference's example payloads (see fixtures/zendesk_api).

Expected message counts and authors are computed from the payloads in each test, never typed in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from judge.importers import (
    FileReport,
    InputFileError,
    detect_format,
    parse_ai_authors,
    read_outcomes,
)
from judge.models import Outcome

ZD = Path(__file__).parent / "fixtures" / "zendesk_api"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _read(path: Path, **options: Any) -> tuple[dict[str, Outcome], FileReport]:
    report = FileReport(path=path)
    outcomes = {o.id: o for o in read_outcomes(path, report=report, **options)}
    return outcomes, report


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _roles(users: list[dict[str, Any]], requester: int, authors: list[int]) -> list[str]:
    role = {u["id"]: u["role"] for u in users}
    return ["customer" if a == requester or role[a] == "end-user" else "agent" for a in authors]


# ----------------------------------------------------------------------------- tickets + audits


def test_tickets_with_audits_read_comment_events_as_the_conversation() -> None:
    path = ZD / "tickets_audits.jsonl"
    assert detect_format(path) == "zendesk"
    pages = _lines(path)
    tickets, users = pages[0]["tickets"], pages[0]["users"]
    audits = [a for page in pages[1:] for a in page["audits"]]
    got, report = _read(path)
    assert set(got) == {f"zendesk-{t['id']}" for t in tickets}  # ticket 666 is not in the file

    for ticket in tickets:
        outcome = got[f"zendesk-{ticket['id']}"]
        events = [
            (a["author_id"], e)
            for a in audits
            if a["ticket_id"] == ticket["id"]
            for e in a["events"]
            if e["type"] == "Comment"
        ]
        texts = [e["body"] for _, e in events]
        # The description opens the conversation once: not repeated when a comment carries it.
        opening = [] if ticket["description"] in texts else [ticket["description"]]
        assert [m.text for m in outcome.conversation] == opening + texts
        authors = ([ticket["requester_id"]] if opening else []) + [a for a, _ in events]
        assert [m.role for m in outcome.conversation] == _roles(
            users, ticket["requester_id"], authors
        )
        assert [m.public for m in outcome.conversation] == [True] * len(opening) + [
            e["public"] for _, e in events
        ]

    solved_by_bot = got["zendesk-35436"]
    assert [(t.actor, t.kind) for t in solved_by_bot.touches] == [("bot:Answer Bot", "ai")]
    assert solved_by_bot.agent.name == "Answer Bot"
    assert solved_by_bot.signals.csat == 5  # satisfaction_rating good
    assert solved_by_bot.signals.closed_at == _utc("2026-03-02T09:11:00Z")  # the solving audit
    claim = solved_by_bot.vendor_claim
    assert claim is not None and claim.automated is True
    assert claim.resolution_state == "automated_resolution" and claim.status == "solved"

    # Created and answered via the api channel by a human admin: never AI because of the channel.
    api = got["zendesk-35437"]
    assert api.metadata["via"] == "api"
    assert [(t.actor, t.kind) for t in api.touches] == [("Priya Natarajan", "human")]
    assert api.agent.name is None
    assert api.signals.reopened_at == _utc("2026-03-03T08:00:00Z")  # Change solved -> open
    assert api.signals.closed_at == _utc("2026-03-03T09:00:00Z")  # the last solve
    assert api.signals.csat is None  # "offered" is not a rating
    assert api.vendor_claim is not None and api.vendor_claim.automated is False
    assert [s[1:] for s in api.metadata["status_history"]] == [
        [None, "new"],
        ["new", "solved"],
        ["solved", "open"],
        ["open", "solved"],
    ]

    # The audits of a ticket that is not in the file are said, not silently dropped.
    assert any("Ticket Audits for 1 ticket(s)" in w and "666" in w for w in report.warnings())
    assert report.degenerate == 0


def test_audits_without_tickets_are_refused_with_the_fix() -> None:
    path = ZD / "audits_only.json"
    assert detect_format(path) == "zendesk"
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    assert info.value.field == "tickets"
    assert "Ticket Audits" in info.value.reason and "same file" in info.value.reason


# ----------------------------------------------------------------------------- tickets + comments


def test_list_comments_pair_with_the_files_only_ticket() -> None:
    path = ZD / "ticket_comments.jsonl"
    ticket, comments_page, users_page = _lines(path)
    got, report = _read(path)
    outcome = got[f"zendesk-{ticket['ticket']['id']}"]
    comments = comments_page["comments"]
    assert "ticket_id" not in comments[0]  # List Comments carries none
    assert [m.text for m in outcome.conversation] == [c["plain_body"] for c in comments]
    assert [m.role for m in outcome.conversation] == _roles(
        users_page["users"], ticket["ticket"]["requester_id"], [c["author_id"] for c in comments]
    )
    assert report.degenerate == 0


def test_comments_bundled_per_ticket_and_unpairable_pages(tmp_path: Path) -> None:
    ticket, comments_page, users_page = _lines(ZD / "ticket_comments.jsonl")
    other = json.loads(json.dumps(ticket["ticket"]))
    other["id"] = 1002
    bundles = [
        {"ticket": ticket["ticket"], "comments": comments_page["comments"]},
        {"ticket": other, "comments": comments_page["comments"][:1]},
        users_page,
    ]
    path = tmp_path / "bundles.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bundles), encoding="utf-8")
    got, _ = _read(path)
    assert len(got["zendesk-1001"].conversation) == len(comments_page["comments"])
    assert len(got["zendesk-1002"].conversation) == 1

    loose = tmp_path / "loose.jsonl"
    pages = ({"tickets": [ticket["ticket"], other]}, comments_page)
    loose.write_text("".join(json.dumps(v) + "\n" for v in pages), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(loose))
    assert info.value.line == 2 and info.value.field == "comments"
    assert "no ticket_id" in info.value.reason and '{"ticket"' in info.value.reason


# ----------------------------------------------------------------------------- incremental exports


def test_time_based_incremental_export_without_comments_warns() -> None:
    path = ZD / "incremental_tickets_time.json"
    tickets = json.loads(path.read_text(encoding="utf-8"))["tickets"]
    got, report = _read(path)
    assert len(got) == len(tickets)
    assert all(len(o.conversation) == 1 for o in got.values())  # the description only
    assert report.messages == [1] * len(tickets)
    assert sorted(report.without_agent) == sorted(got)
    warnings = report.warnings()
    every = f"{len(tickets)} of {len(tickets)} conversations have no reply"
    assert any(every in w for w in warnings)
    assert any("carry no comments" in w and "include=comment_events" in w for w in warnings)


def test_cursor_export_with_ticket_events_ratings_and_metrics() -> None:
    path = ZD / "incremental_cursor_events.jsonl"
    first, second, events_page, ratings, metrics, users = _lines(path)
    got, report = _read(path)
    assert set(got) == {"zendesk-6001", "zendesk-6002"}
    # 6001 is on both cursor pages: the later (solved) version wins, and that is said.
    assert got["zendesk-6001"].metadata["status"] == second["tickets"][0]["status"] == "solved"
    assert any("latest version was kept" in w for w in report.warnings())

    for tid in (6001, 6002):
        outcome = got[f"zendesk-{tid}"]
        ticket = next(t for t in first["tickets"] if t["id"] == tid)
        comments = [
            c
            for e in events_page["ticket_events"]
            if e.get("ticket_id") == tid
            for c in e.get("child_events", [])
            if c.get("event_type") == "Comment"
        ]
        assert [m.text for m in outcome.conversation] == [c["body"] for c in comments]
        assert [m.role for m in outcome.conversation] == _roles(
            users["users"], ticket["requester_id"], [c["author_id"] for c in comments]
        )
        rating = next(r for r in ratings["satisfaction_ratings"] if r["ticket_id"] == tid)
        assert outcome.signals.csat == {"good": 5, "bad": 1}[rating["score"]]
        metric = next(m for m in metrics["ticket_metrics"] if m["ticket_id"] == tid)
        assert outcome.metadata["reopens"] == metric["reopens"]

    reopened = got["zendesk-6002"]
    assert reopened.signals.reopened_at == _utc("2026-03-07T09:00:00Z")  # status child event
    assert reopened.signals.closed_at == _utc("2026-03-07T12:00:00Z")
    assert any("metric events" in w for w in report.warnings())  # the measure event


def test_admin_json_export_one_ticket_per_line_and_ai_authors() -> None:
    path = ZD / "admin_export.jsonl"
    tickets = _lines(path)
    got, report = _read(path)
    for ticket in tickets:
        outcome = got[f"zendesk-{ticket['id']}"]
        texts = [c["plain_body"] for c in ticket["comments"]]
        opening = [] if ticket["description"] in texts else [ticket["description"]]
        assert [m.text for m in outcome.conversation] == opening + texts
    # No users in the file: authors other than the requester are read as agents, and it is said.
    assert any("users were not side-loaded" in w for w in report.warnings())
    two_factor = got["zendesk-7001"]
    assert two_factor.signals.closed_at == _utc(tickets[0]["metric_set"]["solved_at"])
    assert {t.kind for t in two_factor.touches} == {"human"}

    # The user says which author is their AI agent: that, not the api channel, makes it AI.
    got, _ = _read(path, ai_authors=parse_ai_authors(["900003"]))
    kinds = {t.actor: t.kind for t in got["zendesk-7001"].touches}
    assert kinds == {"bot:900003": "ai", "agent:900002": "human"}
    assert got["zendesk-7001"].agent.name == "900003"


# ----------------------------------------------------------------------------- errors


def test_comment_without_author_names_record_and_field(tmp_path: Path) -> None:
    doc = {
        "tickets": [
            {
                "id": 5,
                "requester_id": 1,
                "status": "open",
                "subject": "x",
                "comments": [
                    {"id": 1, "body": "hi", "author_id": 1},
                    {"id": 2, "body": "no author"},
                ],
            }
        ]
    }
    path = tmp_path / "zd.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    assert info.value.record == "tickets.0"
    assert info.value.field == "comments.1.author_id"
    assert "missing" in info.value.reason


def test_unknown_satisfaction_score_names_field(tmp_path: Path) -> None:
    ticket = _lines(ZD / "ticket_comments.jsonl")[0]["ticket"]
    ticket["satisfaction_rating"] = {"score": "meh"}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"ticket": ticket}), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path))
    assert info.value.field == "satisfaction_rating.score" and "'meh'" in info.value.reason


def _comment(cid: int, author: int, body: str, at: str, channel: str) -> dict[str, Any]:
    # The List Comments shape of ticket_comments.jsonl, with the via object of the reference.
    return {
        "id": cid,
        "type": "Comment",
        "author_id": author,
        "body": body,
        "plain_body": body,
        "public": True,
        "created_at": at,
        "via": {"channel": channel, "source": {"from": {}, "rel": None, "to": {}}},
    }


def test_a_later_comment_through_the_ai_channel_is_not_the_customers(tmp_path: Path) -> None:
    # Red-team finding: the AI agent's integration posted "it works now" with the requester as
    # author; read as the customer's, an LLM judge could cite it as the customer's confirmation.
    ticket, _, users_page = _lines(ZD / "ticket_comments.jsonl")
    ticket["ticket"]["description"] = "My badge scanner does not pair over Bluetooth."
    requester = ticket["ticket"]["requester_id"]
    agent = next(u["id"] for u in users_page["users"] if u["role"] == "agent")
    comments = [
        # A ticket the AI agent opens carries the customer's request through its channel.
        _comment(1, requester, ticket["ticket"]["description"], "2026-03-05T08:00:00Z", "ai_agent"),
        _comment(
            2, agent, "Hold the power button, then pair again.", "2026-03-05T08:02:00Z", "ai_agent"
        ),
        _comment(
            3, requester, "Tried that, it still does not pair.", "2026-03-05T08:10:00Z", "web"
        ),
        _comment(4, requester, "Great, it pairs now. Thanks!", "2026-03-05T08:12:00Z", "ai_agent"),
        _comment(5, requester, "It does not. Who wrote that?", "2026-03-05T08:20:00Z", "email"),
    ]
    path = tmp_path / "zendesk.jsonl"
    pages = [ticket, {"comments": comments}, users_page]
    path.write_text("".join(json.dumps(page) + "\n" for page in pages), encoding="utf-8")

    got, report = _read(path)
    outcome = got[f"zendesk-{ticket['ticket']['id']}"]
    assert [m.text for m in outcome.conversation] == [c["plain_body"] for c in comments]
    assert [m.role for m in outcome.conversation] == [
        "customer",
        "agent",
        "customer",
        "agent",
        "customer",
    ]
    assert outcome.conversation[3].author == "bot:ai_agent"
    assert ("bot:ai_agent", "ai") in [(t.actor, t.kind) for t in outcome.touches]
    assert any("came through the AI agent's channel (ai_agent)" in w for w in report.warnings())

    # The same comment from the requester by e-mail is the customer's, and nothing is said.
    comments[3]["via"]["channel"] = "email"
    path.write_text("".join(json.dumps(page) + "\n" for page in pages), encoding="utf-8")
    got, report = _read(path)
    assert got[f"zendesk-{ticket['ticket']['id']}"].conversation[3].role == "customer"
    assert not any("AI agent's channel" in w for w in report.warnings())

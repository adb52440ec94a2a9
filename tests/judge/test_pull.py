"""`judge pull zendesk|intercom` against a local fake of each API: pagination, 429 Retry-After,
page limits, a cursor resumed from the ledger, keys only from the environment."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.cli._pull.http import HttpClient, PullError
from judge.importers import read_outcomes
from ledger.db import make_engine
from ledger.pull_cursors import load_cursor
from tests.conftest import shared_dataset
from tests.fakes.helpdesk_server import FakeHelpDesk, HelpDeskData

ZD = Path(__file__).parent / "fixtures" / "zendesk_api"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _zendesk_data() -> tuple[HelpDeskData, list[dict[str, Any]]]:
    pages = [json.loads(line) for line in (ZD / "tickets_audits.jsonl").read_text().splitlines()]
    tickets = pages[0]["tickets"]
    audits: dict[str, list[dict[str, Any]]] = {}
    for page in pages[1:4]:
        for audit in page["audits"]:
            audits.setdefault(str(audit["ticket_id"]), []).append(audit)
    data = HelpDeskData(
        export_pages=[tickets[:2], tickets[2:]], users=pages[0]["users"], audits=audits
    )
    return data, tickets


@pytest.fixture
def zendesk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENDESK_SUBDOMAIN", "acme")
    monkeypatch.setenv("ZENDESK_EMAIL", "ops@acme.test")
    monkeypatch.setenv("ZENDESK_API_TOKEN", "zd-secret-token")
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)


def test_pull_zendesk_pages_resumes_and_converts(tmp_path: Path, zendesk_env: None) -> None:
    data, tickets = _zendesk_data()
    out, db = tmp_path / "zendesk.jsonl", f"sqlite:///{tmp_path / 'ledger.db'}"
    with FakeHelpDesk(data) as desk:
        common = ["--base-url", desk.base_url, "--out", str(out), "--db", db]
        code, output = _run("pull", "zendesk", *common, "--max-pages", "1", "--page-size", "2")
        assert code == 0, output
        assert "more pages remain" in " ".join(output.split())
        first = desk.requests_to("/api/v2/incremental")
        assert len(first) == 1 and "start_time" in first[0].query
        # Keys come from the environment, as Zendesk's API-token basic auth.
        expected = base64.b64encode(b"ops@acme.test/token:zd-secret-token").decode()
        assert first[0].headers["Authorization"] == f"Basic {expected}"
        assert "zd-secret-token" not in output

        state = load_cursor(make_engine(db), tenant="default", source="zendesk", account="acme")
        assert state is not None and state.cursor["cursor"] == "c1" and state.pages == 1

        # The third ticket's audits answer 429 once: the pull waits Retry-After, then goes on.
        audits_path = f"/api/v2/tickets/{tickets[2]['id']}/audits.json"
        desk.throttle(audits_path, "1")
        code, output = _run("pull", "zendesk", *common, "--page-size", "2")
        assert code == 0, output
        assert "resumed from the saved cursor" in " ".join(output.split())
        second = desk.requests_to("/api/v2/incremental")[1]
        assert second.query.get("cursor") == "c1" and "start_time" not in second.query
        retried = desk.requests_to(audits_path)
        assert len(retried) >= 2 and retried[1].at - retried[0].at >= 0.9
        # Audits of a ticket with more than a page of them follow links.next.
        assert any("page[after]" in s.query for s in desk.requests_to("/api/v2/tickets/"))

    got = {o.id: o for o in read_outcomes(out)}
    direct = {o.id: o for o in read_outcomes(ZD / "tickets_audits.jsonl")}
    assert set(got) == {f"zendesk-{t['id']}" for t in tickets}
    for oid, outcome in got.items():
        assert outcome.conversation == direct[oid].conversation
        assert outcome.touches == direct[oid].touches


def test_pull_zendesk_rate_limit_longer_than_max_wait_stops_cleanly(
    tmp_path: Path, zendesk_env: None
) -> None:
    data, _ = _zendesk_data()
    out, db = tmp_path / "zendesk.jsonl", f"sqlite:///{tmp_path / 'ledger.db'}"
    with FakeHelpDesk(data) as desk:
        desk.throttle("/api/v2/incremental/tickets/cursor.json", "3600")
        code, output = _run(
            "pull", "zendesk", "--base-url", desk.base_url, "--out", str(out), "--db", db
        )
    assert code == 2
    flat = " ".join(output.split())
    assert "rate limited for 3600 s" in flat and "resumes from the saved cursor" in flat
    assert load_cursor(make_engine(db), tenant="default", source="zendesk", account="acme") is None


def test_pull_needs_keys_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ZENDESK_EMAIL", "ZENDESK_API_TOKEN", "ZENDESK_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZENDESK_SUBDOMAIN", "acme")
    code, output = _run("pull", "zendesk", "--out", str(tmp_path / "z.jsonl"))
    assert code == 2 and "ZENDESK_API_TOKEN" in output and "never taken from options" in output
    monkeypatch.delenv("INTERCOM_ACCESS_TOKEN", raising=False)
    code, output = _run("pull", "intercom", "--out", str(tmp_path / "i.jsonl"))
    assert code == 2 and "INTERCOM_ACCESS_TOKEN" in output


def _intercom_data() -> HelpDeskData:
    base = json.loads(
        shared_dataset("real_formats/intercom_api_2.14_retrieve_conversation.json").read_text()
    )
    conversations = []
    for n in range(3):
        conv = copy.deepcopy(base)
        conv["id"] = str(700 + n)
        conv["updated_at"] = 1772445600 + n * 60
        conv["source"]["author"] = {"type": "user", "id": f"u{n}", "name": f"Customer {n}"}
        conv["source"]["body"] = f"<p>Question {n}</p>"
        conversations.append(conv)
    return HelpDeskData(conversations=conversations, search_page_size=2)


def test_pull_intercom_retrieves_each_conversation_and_moves_the_watermark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN", "ic-secret")
    data = _intercom_data()
    out, db = tmp_path / "intercom.jsonl", f"sqlite:///{tmp_path / 'ledger.db'}"
    since = "2026-03-01T00:00:00Z"
    with FakeHelpDesk(data) as desk:
        common = ["--base-url", desk.base_url, "--out", str(out), "--db", db, "--since", since]
        code, output = _run("pull", "intercom", *common, "--max-pages", "1", "--page-size", "2")
        assert code == 0, output
        searches = desk.requests_to("/conversations/search")
        assert len(searches) == 1 and searches[0].headers["Authorization"] == "Bearer ic-secret"
        assert searches[0].headers["Intercom-Version"] == "2.14"
        engine = make_engine(db)
        state = load_cursor(engine, tenant="default", source="intercom", account="default")
        assert state is not None and state.cursor["starting_after"] == "2"

        code, output = _run("pull", "intercom", *common, "--page-size", "2")
        assert code == 0, output
        resumed = desk.requests_to("/conversations/search")[1]
        assert resumed.body["pagination"]["starting_after"] == "2"
        state = load_cursor(engine, tenant="default", source="intercom", account="default")
        newest = max(c["updated_at"] for c in data.conversations)
        assert state is not None and state.cursor == {
            "since": newest,
            "starting_after": None,
            "max_seen": newest,
        }
        # Every listed conversation was retrieved with its parts (lists carry none).
        assert {s.path for s in desk.requests_to("/conversations/7")} == {
            f"/conversations/{c['id']}" for c in data.conversations
        }

        # Nothing changed since: the next pull asks for updated_at > the watermark, gets nothing.
        code, output = _run("pull", "intercom", *common)
        assert code == 0, output
        assert desk.requests_to("/conversations/search")[2].body["query"]["value"] == newest

    got = list(read_outcomes(out))
    assert [o.id for o in got] == [f"intercom-{c['id']}" for c in data.conversations]
    assert all(o.conversation[0].role == "customer" for o in got)


def test_next_links_to_another_host_are_refused() -> None:
    client = HttpClient("https://acme.zendesk.com", {"Authorization": "Basic x"})
    assert client.url("/api/v2/x", {"a": 1}) == "https://acme.zendesk.com/api/v2/x?a=1"
    with pytest.raises(PullError, match="another host"):
        client.url("https://evil.test/api/v2/tickets.json")

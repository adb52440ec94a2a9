"""`judge convert` and `judge verify` report every input file; --strict refuses degenerate ones."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from judge.importers import read_outcomes
from tests.conftest import shared_dataset

ZD = Path(__file__).parent / "fixtures" / "zendesk_api"
INCREMENTAL = ZD / "incremental_tickets_time.json"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_convert_reports_counts_and_warns_on_the_incremental_export(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    tickets = json.loads(INCREMENTAL.read_text(encoding="utf-8"))["tickets"]
    code, output = _run("convert", str(INCREMENTAL), "--out", str(out))
    assert code == 0, output
    flat = " ".join(output.split())
    assert f"{len(tickets)} outcomes (zendesk), messages per outcome mean 1.0" in flat
    assert f"warning: {len(tickets)} of {len(tickets)} conversations have no reply" in flat
    assert "carry no comments" in flat
    assert "fields not mapped: ticket.generated_timestamp" in flat
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(tickets)


def test_convert_strict_fails_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    code, output = _run("convert", str(INCREMENTAL), "--out", str(out), "--strict")
    assert code == 1
    assert "--strict" in output and "nothing was written" in output
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_convert_strict_passes_a_complete_export(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    code, output = _run("convert", str(ZD / "tickets_audits.jsonl"), "-o", str(out), "--strict")
    assert code == 0, output
    assert "warning: Ticket Audits for 1 ticket(s)" in " ".join(output.split())


def test_convert_json_report_and_ai_authors(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    source = ZD / "admin_export.jsonl"
    code, output = _run(
        "convert", str(source), "--out", str(out), "--json", "--ai-authors", "900003"
    )
    assert code == 0, output
    report = json.loads(output[output.index("{") : output.rindex("}") + 1])
    assert report["outcomes"] == 2 and report["format"] == "zendesk"
    assert set(report) >= {
        "messages_per_outcome",
        "without_customer_message",
        "without_agent_reply",
        "unmapped_fields",
        "warnings",
    }
    converted = {o.id: o for o in read_outcomes(out, format="native")}
    kinds = {t.actor: t.kind for t in converted["zendesk-7001"].touches}
    assert kinds["bot:900003"] == "ai"


def test_convert_refuses_an_intercom_list_page(tmp_path: Path) -> None:
    source = shared_dataset("real_formats/intercom_api_2.14_list_conversations.json")
    out = tmp_path / "out.jsonl"
    code, output = _run("convert", str(source), "--out", str(out))
    assert code == 2
    flat = " ".join(output.split())
    assert "record conversations.0, field 'conversation_parts'" in flat
    assert "GET /conversations/{id}" in flat
    assert not out.exists()


def test_verify_reports_the_input_and_strict_judges_nothing(tmp_path: Path) -> None:
    verdicts, db = tmp_path / "verdicts.jsonl", tmp_path / "ledger.db"
    code, output = _run(
        "verify",
        str(INCREMENTAL),
        "--out",
        str(verdicts),
        "--db",
        f"sqlite:///{db}",
        "--strict",
    )
    assert code == 1
    flat = " ".join(output.split())
    assert "have no reply from an AI or human agent" in flat and "nothing was judged" in flat
    assert not verdicts.exists() and not db.exists()

    code, output = _run(
        "verify",
        str(ZD / "tickets_audits.jsonl"),
        "--out",
        str(verdicts),
        "--db",
        f"sqlite:///{db}",
        "--json",
    )
    assert code == 0, output
    summary = json.loads(output[output.index("{") : output.rindex("}") + 1])
    assert summary["outcomes"] == 3
    assert summary["input"]["without_agent_reply"] == []
    assert summary["input"]["messages_per_outcome"]["max"] == 5

"""The input rules the CLI shares with the API (issue 17): a bad record is an error naming the
file, line and field, for ``judge verify`` and ``judge convert`` alike. Text holds no lone
UTF-16 surrogate (metadata and tool calls included); times are ISO 8601 strings, never numbers;
outcome ids are NFC, visible and not blank."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from judge.importers import InputFileError, read_outcomes, validate_file
from judge.input_rules import FROM_LEDGER
from judge.models import Label, Outcome

ROOT = Path(__file__).resolve().parents[2]


def _ticket(oid: str = "T-1", **extra: Any) -> dict[str, Any]:
    return {
        "id": oid,
        "kind": "support_ticket",
        "conversation": [{"role": "customer", "text": "hi", "at": "2026-03-01T10:00:00Z"}],
        **extra,
    }


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    # json.dumps writes a lone surrogate as the escape \ud800, as any exporter would.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _refused(tmp_path: Path, record: dict[str, Any], field: str, words: str) -> None:
    path = _write(tmp_path / "in.jsonl", [_ticket("T-0"), record])
    with pytest.raises(InputFileError) as info:
        validate_file(path, format="native")
    assert (info.value.line, info.value.field) == (2, field)
    assert words in str(info.value)
    str(info.value).encode("utf-8")  # printable: a lone surrogate is shown escaped


TEXT_RECORDS = [
    (_ticket(metadata={"k": "a\ud800"}), "metadata.k", "lone UTF-16 surrogate (\\ud800)"),
    (_ticket(metadata={"k\udfff": 1}), "metadata.k\\udfff", "the key contains"),
    (_ticket(conversation=[{"role": "agent", "text": "x", "tool_calls": [{"a": "\udc00"}]}]),
     "conversation.0.tool_calls.0.a", "lone UTF-16 surrogate"),
    (_ticket(conversation=[{"role": "customer", "text": "\ud83d"}]), "conversation.0.text",
     "send the character itself"),
    (_ticket(label={"resolved": True, "criteria": {"\ud800": True}}), "label.criteria.\\ud800",
     "the key contains"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "field", "words"), TEXT_RECORDS)
def test_a_lone_surrogate_names_line_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, words: str
) -> None:
    _refused(tmp_path, record, field, words)


def test_what_the_ledger_stored_is_read_back_unchecked() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        Label.model_validate({"resolved": True, "note": "\ud800"})
    with pytest.raises(ValueError, match="surrogate"):
        Outcome.model_validate(_ticket(metadata={"k": "\ud800"}))
    # Stored rows were checked on the way in; reading them back does not walk them again.
    stored = Outcome.model_validate(_ticket(metadata={"k": "\ud800"}), context=FROM_LEDGER)
    assert stored.metadata == {"k": "\ud800"}


TIME_RECORDS = [
    (_ticket(conversation=[{"role": "customer", "text": "x", "at": 0}]), "conversation.0.at",
     "Unix times are not accepted"),
    (_ticket(signals={"closed_at": "1767225600"}), "signals.closed_at", "ISO 8601"),
    (_ticket(touches=[{"actor": "a", "kind": "ai", "at": 1.5}]), "touches.0.at", "ISO 8601"),
    (_ticket(label={"resolved": True, "at": -1}), "label.at", "not a valid datetime"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "field", "words"), TIME_RECORDS)
def test_a_number_for_a_time_names_line_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, words: str
) -> None:
    _refused(tmp_path, record, field, words)


def test_the_shipped_datasets_follow_the_rules() -> None:
    for name in ("tickets.jsonl", "reports.jsonl"):
        assert validate_file(ROOT / "datasets" / name) > 0


ID_RECORDS = [
    (_ticket("   "), "id", "blank"),
    (_ticket("T-\u202e1"), "id", "bidirectional control U+202E"),
    (_ticket("T-\x1b1"), "id", "control character U+001B"),
    (_ticket("T-\u2028"), "id", "control character U+2028"),
]


@pytest.mark.parametrize(("record", "field", "words"), ID_RECORDS)
def test_a_bad_id_names_line_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, words: str
) -> None:
    _refused(tmp_path, record, field, words)


def test_ids_are_read_in_nfc(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", [_ticket("cafe\u0301"), _ticket("T-1001")])
    assert [o.id for o in read_outcomes(path, format="native")] == ["caf\u00e9", "T-1001"]


def test_ids_the_ledger_stored_are_read_back_as_stored() -> None:
    """Ids accepted before these rules are never renamed or refused when read back."""
    legacy = _ticket("cafe\u0301 \u202e")
    with pytest.raises(ValueError, match="bidirectional"):
        Outcome.model_validate(legacy)
    assert Outcome.model_validate(legacy, context=FROM_LEDGER).id == "cafe\u0301 \u202e"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_verify_and_convert_refuse_a_bad_id_naming_line_and_field(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.jsonl", [_ticket("T-1"), _ticket("T-\u202e2")])
    out = tmp_path / "verdicts.jsonl"
    verify = _cli("verify", str(bad), "--db", f"sqlite:///{tmp_path}/l.db", "--out", str(out),
                  cwd=tmp_path)  # fmt: skip
    converted = tmp_path / "native.jsonl"
    convert = _cli("convert", str(bad), "--out", str(converted), cwd=tmp_path)
    for result in (verify, convert):
        assert result.returncode == 2, result.stderr
        message = " ".join(result.stderr.split())
        assert "bad.jsonl line 2, field 'id'" in message, message
        assert "bidirectional control U+202E" in message, message
    assert not out.exists() and not converted.exists()

"""Importers: every input format into the native Outcome contract; errors name the spot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from judge.importers import FORMATS, InputFileError, detect_format, read_outcomes, validate_file
from tests.conftest import shared_dataset

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def _ticket(i: int = 1, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": f"T-{i}",
        "kind": "support_ticket",
        "conversation": [{"role": "customer", "text": f"question {i}"}],
    }
    row.update(extra)
    return row


def _write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ----------------------------------------------------------------------------- tau-bench (real)


@pytest.fixture(scope="module")
def tau_path() -> Path:
    return shared_dataset("tau_bench_airline/trajectories.json")


def test_taubench_real_file_end_to_end(tau_path: Path) -> None:
    raw = json.loads(tau_path.read_text(encoding="utf-8"))
    outcomes = list(read_outcomes(tau_path))

    assert len(outcomes) == 120
    assert sum(o.label is not None and o.label.resolved for o in outcomes) == 36
    assert {o.id for o in outcomes} == {f"tau-airline-{r['task_id']}-{r['trial']}" for r in raw}
    for outcome, item in zip(outcomes, raw, strict=True):
        assert outcome.kind == "support_ticket"
        assert outcome.label is not None and outcome.label.by == "tau-bench-reward"
        assert outcome.label.resolved is (item["reward"] == 1.0)
        assert outcome.metadata["task_id"] == item["task_id"]
        assert outcome.metadata["trial"] == item["trial"]
        assert outcome.agent.name == "tau-airline" and outcome.agent.model_path == "gpt-4o"
        assert len(outcome.conversation) == len(item["traj"])
        # The policy (first system message) is kept as context.
        assert outcome.conversation[0].role == "system"
        assert "Airline Agent Policy" in outcome.conversation[0].text

    # Tool calls survive with their names and decoded arguments, counted from the raw file.
    raw_calls = [c for r in raw for m in r["traj"] for c in (m.get("tool_calls") or [])]
    kept = [c for o in outcomes for m in o.conversation for c in m.tool_calls]
    assert len(kept) == len(raw_calls) > 0
    first_raw = raw_calls[0]["function"]
    assert kept[0]["name"] == first_raw["name"]
    assert kept[0]["arguments"] == json.loads(first_raw["arguments"])
    assert all(
        m.author == "bot:tau-gpt-4o" for o in outcomes for m in o.conversation if m.role == "agent"
    )
    raw_tool_names = [m["name"] for r in raw for m in r["traj"] if m["role"] == "tool"]
    assert [m.name for o in outcomes for m in o.conversation if m.role == "tool"] == raw_tool_names
    raw_users = sum(1 for r in raw for m in r["traj"] if m["role"] == "user")
    assert sum(len(o.customer_messages()) for o in outcomes) == raw_users


def test_taubench_detected_and_tenant_stamped(tau_path: Path) -> None:
    assert detect_format(tau_path) == "taubench"
    first = next(iter(read_outcomes(tau_path, tenant="airline-co")))
    assert first.tenant == "airline-co"


def test_taubench_bad_role_names_record_and_field(tmp_path: Path) -> None:
    doc = [
        {
            "task_id": 1,
            "trial": 0,
            "reward": 1.0,
            "traj": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        },
        {
            "task_id": 2,
            "trial": 0,
            "reward": 0.0,
            "traj": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}],
        },
    ]
    path = tmp_path / "traj.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        list(read_outcomes(path, format="taubench"))
    assert info.value.record == "1" and info.value.field == "traj.1.role"
    assert "robot" in str(info.value)


def test_taubench_reward_must_be_number(tmp_path: Path) -> None:
    path = tmp_path / "traj.json"
    path.write_text(
        json.dumps(
            [
                {
                    "task_id": 1,
                    "trial": 0,
                    "reward": "yes",
                    "traj": [{"role": "user", "content": "x"}],
                }
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputFileError) as info:
        validate_file(path)
    assert info.value.field == "reward"


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("intercom_export.json", "intercom"),
    ],
)
def test_detect_fixtures(name: str, expected: str) -> None:
    assert detect_format(FIXTURES / name) == expected


def test_detect_native_and_shipped_datasets(tmp_path: Path) -> None:
    assert detect_format(_write_lines(tmp_path / "n.jsonl", [_ticket()])) == "native"
    assert detect_format(ROOT / "datasets" / "tickets.jsonl") == "native"
    assert detect_format(ROOT / "datasets" / "reports.jsonl") == "native"


def test_detect_unknown_lists_supported_formats(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(InputFileError) as info:
        detect_format(path)
    for fmt in FORMATS:
        assert fmt in str(info.value)
    assert info.value.line == 1


def test_unknown_format_name_is_an_input_error(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "n.jsonl", [_ticket()])
    with pytest.raises(InputFileError, match="unknown format 'csv'"):
        read_outcomes(path, format="csv")  # checked when called, before iterating


def test_missing_file_is_reported_up_front(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_outcomes(tmp_path / "nope.jsonl")


# ----------------------------------------------------------------------------- native errors


def test_wrong_role_message_names_line_and_field(tmp_path: Path) -> None:
    bad = _ticket(2)
    bad["conversation"] = [{"role": "bot", "text": "hi"}]
    path = _write_lines(tmp_path / "tickets.jsonl", [_ticket(1), bad])
    with pytest.raises(InputFileError) as info:
        validate_file(path)
    err = info.value
    assert (err.path, err.line, err.field) == (path, 2, "conversation.0.role")
    assert str(err) == (
        "tickets.jsonl line 2, field 'conversation.0.role': "
        "Input should be 'customer', 'agent', 'tool' or 'system'"
    )


@pytest.mark.parametrize(
    ("content", "line", "field", "words"),
    [
        (
            b'{"id": "T-1", "kind": "support_ticket", "conversation": [{"role": "customer"}]}\n'
            b'{"id": "T-2", "kind": \n',
            2,
            None,
            "not valid JSON",
        ),
        (b'{"id": "T-1", "conversation": [{"role": "customer"}]}\n', 1, "kind", "Field required"),
        (
            b'{"id": "T-1", "kind": "support_ticket", "conversation": [{"role": "customer"}],'
            b' "signals": {"csat": "five"}}\n',
            1,
            "signals.csat",
            "integer",
        ),
        (
            b'{"id": "T-1", "kind": "support_ticket", "conversation": [{"role": "customer"}],'
            b' "lable": {"resolved": true}}\n',
            1,
            "lable",
            "Extra inputs",
        ),
        (b'{"id": "T-1", "kind": "report"}\n', 1, None, "needs a 'report'"),
        (b'\n\n["not", "an", "object"]\n', 3, None, "expected a JSON object"),
        (
            b'{"id": "T-1", "kind": "support_ticket", "conversation": [{"role": "customer"}],'
            b' "agent": {"cost_usd": NaN}}\n',
            1,
            None,
            "NaN",
        ),
    ],
    ids=["malformed", "missing", "wrong-type", "unknown-key", "model-rule", "not-object", "nan"],
)
def test_bad_native_records(
    tmp_path: Path, content: bytes, line: int, field: str | None, words: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        validate_file(path, format="native")
    assert info.value.line == line
    assert info.value.field == field
    assert words in str(info.value)


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    good = json.dumps(_ticket()).encode()
    path.write_bytes(good + b"\n" + b'{"id": "T-\xff", "kind": "support_ticket"}\n')
    with pytest.raises(InputFileError) as info:
        validate_file(path)
    assert info.value.line == 2 and "UTF-8" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"], ids=["empty", "blank-lines"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match="empty"):
        validate_file(path, format="native")
    with pytest.raises(InputFileError, match="empty"):
        detect_format(path)


def test_line_over_cap_names_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOME_JUDGE_MAX_LINE_BYTES", "1024")
    big = _ticket(2)
    big["conversation"] = [{"role": "customer", "text": "x" * 2000}]
    path = _write_lines(tmp_path / "in.jsonl", [_ticket(1), big])
    with pytest.raises(InputFileError) as info:
        validate_file(path, format="native")
    assert info.value.line == 2 and "1,024-byte limit" in str(info.value)
    # Auto-detection must not mistake an over-long *first* JSONL line for a JSON document.
    path2 = _write_lines(tmp_path / "in2.jsonl", [big, _ticket(1)])
    with pytest.raises(InputFileError) as info2:
        list(read_outcomes(path2, format="zendesk"))
    assert info2.value.line == 1 and "limit" in str(info2.value)


def test_blank_lines_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    bad = _ticket(3)
    bad["kind"] = "ticket"
    path.write_text(
        "\n"
        + json.dumps(_ticket(1))
        + "\n\n   \n"
        + json.dumps(_ticket(2))
        + "\n\n"
        + json.dumps(bad)
        + "\n",
        encoding="utf-8",
    )
    outcomes = read_outcomes(path)
    assert [next(outcomes).id, next(outcomes).id] == ["T-1", "T-2"]
    with pytest.raises(InputFileError) as info:
        next(outcomes)
    # Lines: blank, T-1, blank, blank, T-2, blank, bad.
    assert info.value.line == 7 and info.value.field == "kind"


def test_native_reading_streams(tmp_path: Path) -> None:
    # Outcomes before a broken line are delivered first: the file is read line by line.
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(_ticket(1)) + "\n{broken\n", encoding="utf-8")
    outcomes = read_outcomes(path)
    assert next(outcomes).id == "T-1"
    with pytest.raises(InputFileError) as info:
        next(outcomes)
    assert info.value.line == 2


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "in.jsonl", [_ticket(1), _ticket(2), _ticket(1)])
    with pytest.raises(InputFileError) as info:
        validate_file(path)
    assert info.value.line == 3 and info.value.field == "id" and "line 1" in info.value.reason


def test_tenant_fills_missing_and_rejects_conflicts(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "in.jsonl", [_ticket(1), _ticket(2, tenant="other")])
    outcomes = read_outcomes(path, tenant="acme")
    assert next(outcomes).tenant == "acme"
    with pytest.raises(InputFileError) as info:
        next(outcomes)
    assert info.value.line == 2 and info.value.field == "tenant"


def test_validate_file_counts_every_record(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "in.jsonl", [_ticket(i) for i in range(1, 6)])
    assert validate_file(path) == 5


def test_one_line_json_document_over_cap_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTCOME_JUDGE_MAX_LINE_BYTES", "1024")
    doc = [
        {"task_id": i, "trial": 0, "reward": 1.0, "traj": [{"role": "user", "content": "y" * 300}]}
        for i in range(5)
    ]
    path = tmp_path / "traj.json"
    path.write_text(json.dumps(doc), encoding="utf-8")  # one 1.5 kB line: a document
    assert detect_format(path) == "taubench"
    assert validate_file(path) == 5


# ----------------------------------------------------------------------------- judge convert


def test_convert_writes_native_jsonl_that_round_trips(tmp_path: Path) -> None:
    source = FIXTURES / "intercom_export.json"
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["convert", str(source), "--out", str(out), "--tenant", "t1"])
    assert result.exit_code == 0, result.output
    assert "3 outcomes" in result.output and "intercom" in result.output
    expected = list(read_outcomes(source, tenant="t1"))
    assert detect_format(out) == "native"
    assert list(read_outcomes(out, format="native")) == expected


def test_convert_bad_input_fails_and_writes_nothing(tmp_path: Path) -> None:
    bad = _ticket(2)
    bad["conversation"] = [{"role": "bot", "text": "hi"}]
    source = _write_lines(tmp_path / "tickets.jsonl", [_ticket(1), bad])
    out = tmp_path / "out" / "converted.jsonl"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["convert", str(source), "--out", str(out)])
    assert result.exit_code == 2
    assert "tickets.jsonl line 2, field 'conversation.0.role'" in result.output
    assert list(out.parent.iterdir()) == []  # no output and no temp file left behind


def test_convert_keeps_existing_output_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    source = tmp_path / "empty.jsonl"
    source.write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["convert", str(source), "--out", str(out)])
    assert result.exit_code == 2 and "empty" in result.output
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "out.jsonl"]


def test_convert_unknown_format_option(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "in.jsonl", [_ticket()])
    result = CliRunner().invoke(
        app, ["convert", str(source), "--format", "csv", "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 2 and "unknown format 'csv'" in result.output
    assert not (tmp_path / "o.jsonl").exists()

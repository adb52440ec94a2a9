"""Bad input to `judge verify`: each case is a clean CLI error and changes nothing.

A clean error is a non-zero exit with a message naming the problem and no Python traceback;
"nothing changed" is the same row count in every ledger table (SQLite and PostgreSQL) and the
previous verdict file intact, with no temporary file left beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ledger.conftest import _pg_schema
from tests.reliability.harness import cli_env, run_cli, table_counts
from tests.reliability.synth import TICKETS, sample_tickets

GOOD = sample_tickets(clean=True)[0]
RUBRIC = Path(__file__).resolve().parents[2] / "rubrics" / "support-resolution.yaml"


def _jsonl(*records: object) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records
    )


def _good(**changes: object) -> dict[str, object]:
    record = json.loads(json.dumps(GOOD))
    record.update(changes)
    return record


def _nested(depth: int) -> bytes:
    return b'{"metadata": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


BOMB = "\n".join(
    ["a: &a ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol']"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
       f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
       for i in range(8)]
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One bad input: which file it replaces and what the error must mention."""

    name: str
    input: bytes | None = None  # the outcomes file (default: a good one)
    rubric: str | bytes | None = None  # a rubric file (default: the shipped rubric by name)
    panel: str | bytes | None = None  # a panel file (default: the local panel)
    expect: str = ""  # a regex the error message must match (case-insensitive)


CASES = [
    # -- outcomes files ---------------------------------------------------------------------
    Case("malformed_json_line", input=_jsonl(_good(id="A-1"), b'{"id": "A-2", "kind": '),
         expect=r"line 2.*(json|parse)"),
    Case("not_an_object", input=_jsonl(["a", "list"]), expect=r"(line 1|format)"),
    Case("wrong_type_conversation", input=_jsonl(_good(conversation="hello")),
         expect=r"conversation"),
    Case("wrong_type_csat", input=_jsonl(_good(signals={"csat": "five"})), expect=r"csat"),
    Case("unknown_kind", input=_jsonl(_good(kind="email")), expect=r"kind"),
    Case("unknown_role", input=_jsonl(_good(conversation=[{"role": "robot", "text": "hi"}])),
         expect=r"role"),
    Case("unknown_touch_kind",
         input=_jsonl(_good(touches=[{"actor": "x", "kind": "alien", "at": "2026-01-01T00:00Z"}])),
         expect=r"kind"),
    Case("huge_field",
         input=_jsonl(_good(conversation=[{"role": "customer", "text": "x" * 3_000_000}])),
         expect=r"line 1.*(bytes|long|large)"),
    Case("deeply_nested", input=_jsonl(_nested(100_000)), expect=r"(nest|deep)"),
    Case("deeply_nested_line_2", input=_jsonl(_good(id="A-1"), _nested(100_000)),
         expect=r"line 2.*(nest|deep)"),
    Case("invalid_utf8", input=_jsonl(_good(id="A-1")) + b'{"id": "\xff\xfe\xfa"}\n',
         expect=r"utf-?8"),
    Case("nul_bytes", input=b"\x00" * 64 + b"\n", expect=r"line 1"),
    Case("empty_file", input=b"", expect=r"no outcomes|empty"),
    Case("duplicate_ids", input=_jsonl(_good(id="A-1"), _good(id="A-1")), expect=r"duplicate"),
    # -- rubric files -----------------------------------------------------------------------
    Case("rubric_billion_laughs", rubric=BOMB, expect=r"(anchor|alias)"),
    Case("rubric_python_tag", rubric="name: !!python/object/apply:os.system ['true']\n",
         expect=r"tag"),
    Case("rubric_custom_tag", rubric="name: !include other.yaml\n", expect=r"tag"),
    Case("rubric_duplicate_keys", rubric=RUBRIC.read_text() + "\nname: other\n",
         expect=r"duplicate"),
    Case("rubric_huge_scalar", rubric="name: " + "x" * 2_000_000 + "\n",
         expect=r"(bytes|large|size|long)"),
    Case("rubric_not_a_mapping", rubric="- just\n- a list\n", expect=r"(mapping|object)"),
    Case("rubric_invalid_utf8", rubric=b"name: \xff\xfe\n", expect=r"utf-?8"),
    # -- panel files ------------------------------------------------------------------------
    Case("panel_billion_laughs", panel=BOMB, expect=r"(anchor|alias)"),
    Case("panel_python_tag", panel="judges: !!python/object/new:os.system [echo]\n",
         expect=r"tag"),
    Case("panel_duplicate_keys", panel="name: a\nname: b\njudges:\n- kind: signals\n",
         expect=r"duplicate"),
    Case("panel_unknown_aggregation",
         panel="judges:\n- kind: signals\naggregation: plurality\n", expect=r"aggregation"),
    Case("panel_unknown_judge_kind", panel="judges:\n- kind: oracle\n  name: o\n",
         expect=r"kind"),
    Case("panel_huge_scalar", panel="name: " + "y" * 2_000_000 + "\n",
         expect=r"(bytes|large|size|long)"),
]  # fmt: skip


@dataclass
class Ledger:
    url: str
    workdir: Path


def _filled(url: str, workdir: Path) -> Ledger:
    """The ledger after `judge verify` of the sample tickets with the local panel."""
    result = run_cli(
        "verify", str(TICKETS), "--db", url, "--out", str(workdir / "verdicts.jsonl"),
        cwd=workdir, env=cli_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Ledger(url, workdir)


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    workdir = tmp_path_factory.mktemp("bad-input-sqlite")
    return _filled(f"sqlite:///{workdir}/ledger.db", workdir)


@pytest.fixture(scope="module")
def pg_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    workdir = tmp_path_factory.mktemp("bad-input-postgresql")
    with _pg_schema() as url:
        yield _filled(url, workdir)


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_a_clean_error_and_changes_nothing(case: Case, sqlite_ledger: Ledger) -> None:
    _check(case, sqlite_ledger)


# Every case fails before the database is opened, so PostgreSQL runs one case per kind of file
# (each CLI start costs about a second) while SQLite runs them all.
PG_CASES = [
    c
    for c in CASES
    if c.name
    in {"malformed_json_line", "deeply_nested_line_2", "rubric_huge_scalar", "panel_python_tag"}
]


@pytest.mark.postgres
@pytest.mark.parametrize("case", PG_CASES, ids=lambda c: c.name)
def test_bad_input_changes_nothing_on_postgresql(case: Case, pg_ledger: Ledger) -> None:
    _check(case, pg_ledger)


def _check(case: Case, ledger: Ledger) -> None:
    work = ledger.workdir
    out = work / "verdicts.jsonl"
    before_file = out.read_bytes()
    before = table_counts(ledger.url)
    inp = _write(work / "bad.jsonl", case.input) if case.input is not None else TICKETS
    args = ["verify", str(inp), "--db", ledger.url, "--out", str(out)]
    if case.rubric is not None:
        args += ["--rubric", str(_write(work / "bad-rubric.yaml", case.rubric))]
    if case.panel is not None:
        args += ["--panel", str(_write(work / "bad-panel.yaml", case.panel))]

    result = run_cli(*args, cwd=work, env=cli_env(), timeout=60)

    message = result.stderr + result.stdout
    assert result.returncode != 0, message[-2000:]
    assert "Traceback" not in message, message[-4000:]
    assert "error" in message.lower()
    assert _matches(case.expect, message), f"{case.name}: {message[-1500:]!r}"
    assert len(message) < 5000, "the error should be a message, not a dump"
    assert table_counts(ledger.url) == before
    assert out.read_bytes() == before_file
    assert not list(work.glob(".verdicts.jsonl.*.tmp"))


def _matches(pattern: str, text: str) -> bool:
    flat = " ".join(text.split())
    return re.search(pattern, flat, re.IGNORECASE | re.DOTALL) is not None

"""The API's bad-input corpus, one table across routes, against a real ``judge serve``.

Every case is a request a careless or hostile client could send: malformed JSON, wrong types,
fields over their caps, JSON nested 10,000 levels deep, invalid UTF-8, NUL characters, unknown
enum values, batches over ``max_batch`` and bodies over ``max_body_bytes``, YAML tricks posted as
rubrics and panels (billion-laughs anchors, ``!!python/object`` tags, duplicate keys, huge
scalars), CloudEvents with a bad ``specversion``, bad meter query parameters. Each must answer
its 4xx in the error shape ``{"error": {"code", "message", "details"}}`` and leave every table's
row count as it was. Many are also checked one by one in ``tests/api``; this is the corpus.

Issue 17 added what a hostile tenant sent: lone surrogates, a calibration time with no UTC
equivalent, numbers sent as times, blank ids and ids holding invisible controls.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.api.conftest import make_key
from tests.api.live import LiveServer
from tests.reliability.conftest import Figures
from tests.reliability.service_probe import all_table_counts, log_problems
from tests.reliability.synth import sample_tickets

#: Small caps for the server under test, so "over the cap" bodies stay small.
MAX_BATCH = 20
MAX_BODY_BYTES = 1_000_000
DEEP = 10_000
CE_SINGLE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
JSON_TYPE = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    """One bad request and the status it must get."""

    name: str
    method: str
    path: str
    status: int | frozenset[int]
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    chunked: bool = False  # send the body without a Content-Length (a stream)


def _outcome(oid: str = "BAD-1", **changes: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(sample_tickets(clean=True)[0]))
    record.pop("tenant", None)
    record["id"] = oid
    record.update(changes)
    return record


def _post(name: str, path: str, payload: Any, status: int | frozenset[int], **kw: Any) -> Case:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = kw.pop("headers", JSON_TYPE)
    return Case(name, "POST", path, status, body=body, headers=headers, **kw)


def _get(name: str, path: str, status: int | frozenset[int], **params: str) -> Case:
    return Case(name, "GET", path, status, params=params or None)


def _deep(prefix: str, suffix: str) -> bytes:
    return (prefix + "[" * DEEP + "]" * DEEP + suffix).encode()


def _conversation(**message: Any) -> list[dict[str, Any]]:
    return [{"role": "customer", "text": "hello"}, {"role": "agent", "text": "done", **message}]


BILLION_LAUGHS = "\n".join(
    ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    + [
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)
RUBRIC_OK = (
    "name: tricks\nkind: support_ticket\ncriteria:\n  - id: solved\n    question: Was it solved?\n"
)
V1 = "/v1/outcomes"
OUTCOME_CASES = [
    _post("outcomes: truncated JSON", V1, b'{"outcomes": [', 422),
    _post("outcomes: empty body", V1, b"", 422),
    _post("outcomes: not JSON", V1, b"outcomes=1&x=2", 422),
    _post("outcomes: NaN", V1, b'{"outcomes": [{"id": "x", "kind": NaN}]}', 422),
    _post("outcomes: 1e999", V1, b'{"outcomes": [{"id": 1e999}]}', 422),
    _post("outcomes: a string, not a list", V1, {"outcomes": "T-1"}, 422),
    _post("outcomes: a list at the top", V1, [_outcome()], 422),
    _post("outcomes: id a number", V1, {"outcomes": [_outcome(id=5)]}, 422),
    _post("outcomes: conversation a dict", V1, {"outcomes": [_outcome(conversation={})]}, 422),
    _post("outcomes: unknown field", V1, {"outcomes": [_outcome(colour="red")]}, 422),
    _post("outcomes: unknown envelope field", V1, {"outcomes": [_outcome()], "x": 1}, 422),
    _post("outcomes: id over 200 chars", V1, {"outcomes": [_outcome("x" * 201)]}, 422),
    _post(
        "outcomes: message over 200,000 chars",
        V1,
        {"outcomes": [_outcome(conversation=_conversation(text="y" * 200_001))]},
        422,
    ),
    _post(
        "outcomes: over 2,000 messages",
        V1,
        {"outcomes": [_outcome(conversation=_conversation() * 1001)]},
        422,
    ),
    _post(
        "outcomes: 10,000-deep metadata",
        V1,
        _deep('{"outcomes": [{"id": "D", "kind": "support_ticket", "metadata": {"x": ', "}}]}"),
        422,
    ),
    _post("outcomes: 10,000-deep array", V1, _deep("", ""), 422),
    _post(
        "outcomes: invalid UTF-8",
        V1,
        b'{"outcomes": [{"id": "\xff\xfe", "kind": "support_ticket"}]}',
        422,
    ),
    _post("outcomes: lone surrogate", V1, b'{"outcomes": [{"id": "a\\ud800b"}]}', 422),
    _post("outcomes: NUL in id", V1, {"outcomes": [_outcome("a\x00b")]}, 422),
    _post(
        "outcomes: NUL in text",
        V1,
        {"outcomes": [_outcome(conversation=_conversation(text="a\x00b"))]},
        422,
    ),
    _post("outcomes: unknown kind", V1, {"outcomes": [_outcome(kind="ticket")]}, 422),
    _post(
        "outcomes: unknown role",
        V1,
        {"outcomes": [_outcome(conversation=[{"role": "bot", "text": "hi"}])]},
        422,
    ),
    _post(
        "outcomes: unknown touch kind",
        V1,
        {"outcomes": [_outcome(touches=[{"actor": "ann", "kind": "robot"}])]},
        422,
    ),
    _post("outcomes: other tenant", V1, {"outcomes": [_outcome(tenant="globex")]}, 422),
    _post(
        "outcomes: one bad item in a batch",
        V1,
        {"outcomes": [_outcome("OK-1"), _outcome("OK-2", kind="nope")]},
        422,
    ),
    _post(
        "outcomes: same id, two payloads",
        V1,
        {"outcomes": [_outcome("TWICE"), _outcome("TWICE", metadata={"v": 2})]},
        409,
    ),
    _post(
        "outcomes: over max_batch",
        V1,
        {"outcomes": [_outcome(f"B-{i}") for i in range(MAX_BATCH + 1)]},
        413,
    ),
    _post(
        "outcomes: over max_body_bytes",
        V1,
        {"outcomes": [_outcome(f"L-{i}", metadata={"pad": "z" * 150_000}) for i in range(7)]},
        413,
    ),
    _post(
        "outcomes: over max_body_bytes, streamed",
        V1,
        {"outcomes": [_outcome(f"S-{i}", metadata={"pad": "z" * 150_000}) for i in range(7)]},
        413,
        chunked=True,
    ),
    _post("outcomes: text/plain", V1, b"{}", 415, headers={"Content-Type": "text/plain"}),
    _post(
        "cloudevent: specversion 0.3",
        V1,
        {"specversion": "0.3", "id": "e1", "source": "s", "type": "t", "data": _outcome("CE-1")},
        422,
        headers={"Content-Type": CE_SINGLE},
    ),
    _post(
        "cloudevent: specversion a number",
        V1,
        {"specversion": 1.0, "id": "e1", "source": "s", "type": "t", "data": _outcome("CE-1")},
        422,
        headers={"Content-Type": CE_SINGLE},
    ),
    _post(
        "cloudevents batch: one bad specversion",
        V1,
        [
            {
                "specversion": "1.0",
                "id": "e2",
                "source": "s",
                "type": "t",
                "data": _outcome("CE-2"),
            },
            {
                "specversion": "2.0",
                "id": "e3",
                "source": "s",
                "type": "t",
                "data": _outcome("CE-3"),
            },
        ],
        422,
        headers={"Content-Type": CE_BATCH},
    ),
    _post("cloudevents batch: empty", V1, [], 422, headers={"Content-Type": CE_BATCH}),
    _post(
        "cloudevents batch: an object",
        V1,
        {"specversion": "1.0"},
        422,
        headers={"Content-Type": CE_BATCH},
    ),
]
LB = "/v1/labels"
LABEL_CASES = [
    _post("labels: truncated JSON", LB, b'{"labels": [{"outcome_id": ', 422),
    _post("labels: 10,000-deep", LB, _deep('{"labels": ', "}"), 422),
    _post("labels: invalid UTF-8", LB, b'{"labels": [{"outcome_id": "\xc3\x28"}]}', 422),
    _post(
        "labels: resolved a list", LB, {"labels": [{"outcome_id": "SEED", "resolved": [1]}]}, 422
    ),
    _post("labels: empty list", LB, {"labels": []}, 422),
    _post(
        "labels: note over 10,000 chars",
        LB,
        {"labels": [{"outcome_id": "SEED", "resolved": True, "note": "n" * 10_001}]},
        422,
    ),
    _post(
        "labels: NUL in note",
        LB,
        {"labels": [{"outcome_id": "SEED", "resolved": True, "note": "a\x00"}]},
        422,
    ),
    _post(
        "labels: future time",
        LB,
        {"labels": [{"outcome_id": "SEED", "resolved": True, "at": "2999-01-01T00:00:00Z"}]},
        422,
    ),
    _post(
        "labels: unknown outcome (after a good one)",
        LB,
        {
            "labels": [
                {"outcome_id": "SEED", "resolved": False},
                {"outcome_id": "NO-SUCH", "resolved": True},
            ]
        },
        404,
    ),
    _post(
        "labels: over max_batch",
        LB,
        {"labels": [{"outcome_id": "SEED", "resolved": True}] * (MAX_BATCH + 1)},
        413,
    ),
]
VF = "/v1/verifications"
JOB_CASES = [
    _post("verifications: 10,000-deep", VF, _deep('{"outcome_ids": ', "}"), 422),
    _post("verifications: ids and filter", VF, {"outcome_ids": ["SEED"], "filter": {}}, 422),
    _post("verifications: neither", VF, {"panel": "default"}, 422),
    _post("verifications: no ids", VF, {"outcome_ids": []}, 422),
    _post("verifications: unknown kind", VF, {"filter": {"kind": "ticket"}}, 422),
    _post("verifications: ids a string", VF, {"outcome_ids": "SEED"}, 422),
    _post("verifications: NUL in id", VF, {"outcome_ids": ["SE\x00ED"]}, 422),
    _post(
        "verifications: unknown outcome",
        VF,
        {"outcome_ids": ["SEED", "NO-SUCH"]},
        frozenset({404, 422}),
    ),
    _post(
        "verifications: unknown rubric",
        VF,
        {"outcome_ids": ["SEED"], "rubric": "no-such-rubric"},
        frozenset({404, 422}),
    ),
    _post(
        "verifications: unknown panel",
        VF,
        {"outcome_ids": ["SEED"], "panel": "no-such-panel"},
        frozenset({404, 422}),
    ),
    _post(
        "verifications: rubric and rubrics",
        VF,
        {"outcome_ids": ["SEED"], "rubric": "a", "rubrics": {"report": "b"}},
        422,
    ),
]
RB, PN = "/v1/rubrics", "/v1/panels"
PANEL_OK = "name: p\njudges:\n  - {name: j, model: openai/gpt-4o-mini}\n"
YAML_CASES = [
    _post("rubrics: billion laughs", RB, {"yaml": BILLION_LAUGHS + "\n" + RUBRIC_OK}, 422),
    _post(
        "rubrics: !!python/object/apply",
        RB,
        {"yaml": "name: !!python/object/apply:os.system ['touch /tmp/pwned']\n" + RUBRIC_OK},
        422,
    ),
    _post("rubrics: !!python/name", RB, {"yaml": RUBRIC_OK + "x: !!python/name:os.system\n"}, 422),
    _post("rubrics: custom tag", RB, {"yaml": "!Ref\n" + RUBRIC_OK}, 422),
    _post("rubrics: duplicate key", RB, {"yaml": RUBRIC_OK + "name: other\n"}, 422),
    _post("rubrics: over 256 KiB", RB, {"yaml": RUBRIC_OK + "# " + "x" * 262_144}, 422),
    _post(
        "rubrics: huge scalar name", RB, {"yaml": RUBRIC_OK.replace("tricks", "t" * 200_000)}, 422
    ),
    _post(
        "rubrics: huge criterion id",
        RB,
        {"yaml": RUBRIC_OK.replace("id: solved", "id: " + "s" * 200_000)},
        422,
    ),
    _post("rubrics: NUL", RB, {"yaml": RUBRIC_OK + "# \x00\n"}, 422),
    _post("rubrics: yaml a number", RB, {"yaml": 5}, 422),
    _post("rubrics: extra field", RB, {"yaml": RUBRIC_OK, "name": "x"}, 422),
    _post("rubrics: not a mapping", RB, {"yaml": "- a\n- b\n"}, 422),
    _post("rubrics: 10,000-deep flow YAML", RB, {"yaml": "[" * DEEP + "]" * DEEP}, 422),
    _post("rubrics: 10,000-deep JSON body", RB, _deep('{"yaml": ', "}"), 422),
    _post("panels: billion laughs", PN, {"yaml": BILLION_LAUGHS + "\n" + PANEL_OK}, 422),
    _post(
        "panels: !!python/object",
        PN,
        {"yaml": PANEL_OK + "x: !!python/object:os.system {}\n"},
        422,
    ),
    _post("panels: duplicate key", PN, {"yaml": PANEL_OK + "name: q\n"}, 422),
    _post(
        "panels: api_base not allowed",
        PN,
        {"yaml": PANEL_OK.replace("}", ", api_base: 'http://169.254.169.254/'}")},
        422,
    ),
    _post(
        "panels: api_key_env not a provider key",
        PN,
        {"yaml": PANEL_OK.replace("}", ", api_key_env: AWS_SECRET_ACCESS_KEY}")},
        422,
    ),
    _post("panels: unknown judge field", PN, {"yaml": PANEL_OK.replace("}", ", evil: 1}")}, 422),
]
MV, MC = "/v1/meters/verified-outcomes", "/v1/metrics/cost-per-verified-outcome"
SPAN = {"from": "2026-01-01", "to": "2026-02-01"}
QUERY_CASES = [
    _get("meter: from not a date", MV, 422, **{**SPAN, "from": "yesterday"}),
    _get("meter: no to", MV, 422, **{"from": "2026-01-01"}),
    _get("meter: window week", MV, 422, **SPAN, window="week"),
    _get("meter: unknown group_by", MV, 422, **SPAN, group_by="agent,colour"),
    _get("meter: group_by twice", MV, 422, **SPAN, group_by="agent,agent"),
    _get("meter: group_by over 200 chars", MV, 422, **SPAN, group_by="agent," * 40),
    _get("meter: from after to", MV, 422, **{"from": "2026-02-01", "to": "2026-01-01"}),
    _get("meter: over 1000 windows", MV, 422, **{"from": "2000-01-01", "to": "2026-01-01"}),
    _get("meter: NUL in from", MV, 422, **{**SPAN, "from": "2026-01-01\x00"}),
    _get("meter: year 0", MV, 422, **{**SPAN, "from": "0000-01-01"}),
    _get("meter: from before year 1 UTC", MV, 422, **{"from": "0001-01-01T00:00:00+10:00"}),
    _get("cost: labor_rate negative", MC, 422, labor_rate="-1"),
    _get("cost: labor_rate nan", MC, 422, labor_rate="nan"),
    _get("cost: labor_rate inf", MC, 422, labor_rate="inf"),
    _get("cost: unknown group_by", MC, 422, group_by="tenant"),
    _get("cost: period week", MC, 422, period="week"),
    _get("outcomes: limit 0", V1, 422, limit="0"),
    _get("outcomes: limit a word", V1, 422, limit="many"),
    _get("outcomes: garbage cursor", V1, frozenset({400, 422}), cursor="!!not-a-cursor!!"),
    _get("outcome: id over 200 chars", f"{V1}/{'x' * 201}", 422),
    _get("outcome: NUL in id", f"{V1}/a%00b", 404),
    _get("verification: unknown id", f"{VF}/job_nope", 404),
    _get("rubric: NUL in name", f"{RB}/a%00b", 404),
    _get("calibration: bad window", "/v1/calibration", 422, since="soon"),
]
EARLY = "0001-01-01T00:00:00+10:00"  # a valid datetime that is before year 1 in UTC
LATE = "9999-12-31T23:59:59-10:00"  # after year 9999 in UTC
#: Datetimes valid in their own offset that have no UTC equivalent (years 1-9999).
UTC_OVERFLOW = [
    _post(
        "outcomes: message at before year 1 UTC",
        V1,
        {"outcomes": [_outcome(conversation=[{"role": "customer", "text": "x", "at": EARLY}])]},
        422,
    ),
    _post(
        "outcomes: touch at before year 1 UTC",
        V1,
        {"outcomes": [_outcome(touches=[{"actor": "a", "kind": "ai", "at": EARLY}])]},
        422,
    ),
    _post(
        "outcomes: signals.closed_at before year 1 UTC",
        V1,
        {"outcomes": [_outcome(signals={"closed_at": EARLY})]},
        422,
    ),
    _post(
        "outcomes: signals.reopened_at after year 9999 UTC",
        V1,
        {"outcomes": [_outcome(signals={"reopened_at": LATE})]},
        422,
    ),
    _post(
        "labels: at before year 1 UTC",
        LB,
        {"labels": [{"outcome_id": "SEED", "resolved": True, "at": EARLY}]},
        422,
    ),
    _post(
        "verifications: received_from before year 1 UTC",
        VF,
        {"filter": {"received_from": EARLY}},
        422,
    ),
    _post(
        "verifications: received_to after year 9999 UTC", VF, {"filter": {"received_to": LATE}}, 422
    ),
]
LONE = "\ud800"  # a lone UTF-16 surrogate: json.dumps sends it as the escape \ud800
SEED_LABEL = {"outcome_id": "SEED", "resolved": True}
#: Issue 17 (see the module's docstring).
ISSUE_17 = [
    _post("labels: lone surrogate in note", LB, {"labels": [SEED_LABEL | {"note": LONE}]}, 422),
    _post("labels: lone surrogate in by", LB, {"labels": [SEED_LABEL | {"by": LONE}]}, 422),
    _post("labels: lone surrogate in outcome_id", LB,
          {"labels": [SEED_LABEL | {"outcome_id": LONE}]}, 422),
    _post("labels: lone surrogate in a criteria key", LB,
          {"labels": [SEED_LABEL | {"criteria": {LONE: True}}]}, 422),
    _post("outcomes: lone surrogate in base_revisions", V1,
          {"outcomes": [_outcome("SEED")], "base_revisions": {LONE: 0}}, 422),
    _post("outcomes: lone surrogate metadata key", V1,
          {"outcomes": [_outcome(metadata={LONE: 1})]}, 422),
    _post("outcomes: lone surrogate metadata value", V1,
          {"outcomes": [_outcome(metadata={"k": [LONE]})]}, 422),
    _get("calibration: from before year 1 UTC", "/v1/calibration", 422,
         **{"from": "0001-01-01T00:00:00+01:00"}),
    _get("calibration: from a number", "/v1/calibration", 422, **{"from": "0"}),
    _get("cost: to a number", MC, 422, to="0.5"),
    _get("meter: from a negative number", MV, 422, **{**SPAN, "from": "-1"}),
    _post("labels: at a number", LB, {"labels": [SEED_LABEL | {"at": 0}]}, 422),
    _post("outcomes: message at a number", V1,
          {"outcomes": [_outcome(conversation=_conversation(at=1767225600))]}, 422),
    _post("verifications: received_from a number", VF, {"filter": {"received_from": 0}}, 422),
    _post("outcomes: id of spaces", V1, {"outcomes": [_outcome("   ")]}, 422),
    _post("outcomes: id with a bidi override", V1, {"outcomes": [_outcome("SE\u202eED")]}, 422),
    _post("outcomes: id with a control character", V1, {"outcomes": [_outcome("S\x07")]}, 422),
    _post("labels: id with a bidi isolate", LB,
          {"labels": [SEED_LABEL | {"outcome_id": "SEED\u2066"}]}, 422),
    _post("verifications: blank id", VF, {"outcome_ids": [" "]}, 422),
    _get("outcome: id with a bidi mark", f"{V1}/SEED%E2%80%8F", 422),
]  # fmt: skip
CASES = OUTCOME_CASES + LABEL_CASES + JOB_CASES + YAML_CASES + QUERY_CASES + UTC_OVERFLOW + ISSUE_17


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """A real server with small caps, one tenant with one stored outcome (``SEED``)."""
    key = make_key(db_url, "acme", requests_per_minute=1_000_000)
    make_key(db_url, "globex")
    env = {
        "OUTCOME_JUDGE_MAX_BATCH": str(MAX_BATCH),
        "OUTCOME_JUDGE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "OUTCOME_JUDGE_EMBEDDED_WORKER": "false",  # nothing but the requests writes
    }
    server = LiveServer(db_url, log=tmp_path / "serve.log", env=env)
    try:
        with server.client(key) as http:
            seeded = http.post(V1, json={"outcomes": [_outcome("SEED")]})
            assert seeded.status_code == 200, seeded.text
            stored = http.post(RB, json={"yaml": RUBRIC_OK})
            assert stored.status_code == 201, stored.text
        yield server, key
    finally:
        server.stop()


def _stream(body: bytes) -> Iterator[bytes]:
    """The body in 64 KiB pieces: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


def _error_shape(body: Any) -> str | None:
    """What is wrong with an error body; None when it is ``{"error": {code, message, details}}``."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return f"not an error object: {str(body)[:200]}"
    error = body["error"]
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        return f"error keys: {sorted(error) if isinstance(error, dict) else error!r}"
    if not (isinstance(error["code"], str) and error["code"]):
        return "empty code"
    if not (isinstance(error["message"], str) and error["message"]):
        return "empty message"
    return None


def _send(server: LiveServer, key: str, case: Case) -> httpx.Response:
    # A connection per case: a server drops the connection after a 500, and the next case
    # must not fail for that.
    body = case.body
    with server.client(key) as http:
        return http.request(
            case.method,
            case.path,
            content=_stream(body) if case.chunked and body else body,
            headers=case.headers,
            params=case.params,
        )


def _check(case: Case, response: httpx.Response, changed: dict[str, Any]) -> list[str]:
    """What is wrong with the answer to ``case`` (empty: a clean 4xx that wrote nothing)."""
    wanted = case.status if isinstance(case.status, frozenset) else {case.status}
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:200]
    problems = []
    if response.status_code not in wanted:
        problems.append(f"status {response.status_code}, expected {sorted(wanted)}")
    if (shape := _error_shape(answer)) is not None:
        problems.append(shape[:300])
    if changed:
        problems.append(f"tables changed (before, after): {changed}")
    return problems


def run_corpus(
    server: LiveServer, key: str, db_url: str, cases: list[Case]
) -> tuple[list[str], Counter[int]]:
    """Send every case; return the failures (one line each) and the statuses (0: no answer)."""
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names are unique (they name failures)"
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    engine = sa.create_engine(db_url)
    try:
        for case in cases:
            before = all_table_counts(engine)
            try:
                response = _send(server, key, case)
            except httpx.TransportError as exc:  # no answer at all: as bad as a 5xx
                failures.append(f"{case.name}: no answer ({type(exc).__name__}: {exc})")
                statuses[0] += 1
                continue
            after = all_table_counts(engine)
            statuses[response.status_code] += 1
            changed = {t: (n, after.get(t)) for t, n in before.items() if after.get(t) != n}
            problems = _check(case, response, changed)
            if problems:
                failures.append(f"{case.name}: {'; '.join(problems)}")
    finally:
        engine.dispose()
    return failures, statuses


@pytest.mark.slow
def test_every_bad_request_is_a_clean_4xx_and_writes_nothing(
    served: tuple[LiveServer, str], db_url: str, figures: Figures
) -> None:
    server, key = served
    failures, statuses = run_corpus(server, key, db_url, CASES)
    with server.client(key) as http:  # the server is still healthy after the corpus
        assert http.get("/readyz").status_code == 200
    figures.update(
        {
            "bad requests sent": len(CASES),
            "clean 4xx, error shape, nothing written": len(CASES) - len(failures),
            "statuses": dict(sorted(statuses.items())),
            "5xx or no answer": sum(n for s, n in statuses.items() if s >= 500 or s == 0),
            "writes on failure": sum("tables changed" in f for f in failures),
        }
    )
    assert not failures, "\n".join(failures)
    assert not log_problems(server.output()), server.output()[-3000:]

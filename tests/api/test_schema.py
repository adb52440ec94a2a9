"""Schemathesis against the OpenAPI schema of a real `judge serve` process (SQLite and PostgreSQL).

Every operation of ``/openapi.json`` gets generated requests (valid ones, then invalid ones)
sent over real HTTP with a valid tenant key; every response must be no server error (5xx), have
a documented status code and content type, and a body matching the documented schema. The
ledger is seeded first (the sample tickets, verdicts for them, a rubric, a panel, a queued job)
so that the list, meter and calibration routes answer with real rows rather than empty ones, and
every operation that takes an id is also called once with an id that exists.

Examples are bounded (``EXAMPLES`` per operation and mode, derandomized so CI is repeatable);
the whole test takes ~15-45 s per backend on a loaded 2-core machine. For a deeper, randomised
hunt set ``OJ_SCHEMA_EXAMPLES=200`` (then the examples differ from run to run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from tests.api.conftest import make_key
from tests.api.flow_helpers import ok, rubric_yaml, seed_verdicts, tickets
from tests.api.live import LiveServer

pytestmark = pytest.mark.slow  # a server and a few hundred requests per backend

#: Generated requests per operation and generation mode (CI).
EXAMPLES = 12
#: Not an OUTCOME_JUDGE_* name: tests/conftest.py clears those before every test.
EXAMPLES_ENV = "OJ_SCHEMA_EXAMPLES"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
JSON = "application/json"
#: A panel that needs no model (signals only), so nothing ever leaves the machine.
SIGNALS_PANEL = "name: signals-only\njudges:\n  - {kind: signals}\n"


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """`judge serve` with no worker (queued jobs stay queued: no judge ever runs) and a key
    whose rate limit the fuzzing cannot reach."""
    key = make_key(db_url, "acme", requests_per_minute=1_000_000)
    server = LiveServer(
        db_url,
        log=tmp_path / "serve.log",
        env={"OUTCOME_JUDGE_EMBEDDED_WORKER": "false", "OUTCOME_JUDGE_ALLOWED_API_BASES": "[]"},
    )
    try:
        yield server, key
    finally:
        server.stop()


def _seed(server: LiveServer, key: str, db_url: str) -> dict[str, str]:
    """Rows for the read routes to show; returns known-good path parameters by name."""
    rows = tickets()
    with server.client(key) as client:
        ok(client.post("/v1/outcomes", json={"outcomes": rows}))  # with their embedded labels
        rubric = ok(client.post("/v1/rubrics", json={"yaml": rubric_yaml()}), 201)
        panel = ok(client.post("/v1/panels", json={"yaml": SIGNALS_PANEL}), 201)
        job = ok(
            client.post(
                "/v1/verifications",
                json={"outcome_ids": [r["id"] for r in rows[:5]], "panel": panel["name"]},
            ),
            202,
        )
    seed_verdicts(db_url, "acme", rows)
    with server.client(key) as client:  # the report routes now have rows to show
        assert ok(client.get("/v1/calibration"))["n"] == len(rows)
    return {
        "outcome_id": rows[0]["id"],
        "job_id": job["id"],
        "name": rubric["name"],
    }


def _known_good_cases(operation: Any, known: dict[str, str]) -> list[Any]:
    """The operation called once with ids that exist (generated ids almost never do)."""
    names = {p.name for p in operation.path_parameters}
    if not names or not names <= set(known):
        return []
    params = {n: known[n] for n in names}
    if "name" in names and "/panels/" in operation.path:
        params["name"] = "signals-only"
    return [operation.Case(path_parameters=params)]


def _runner(
    operation: Any, mode: GenerationMode, call: Callable[[Any], None], examples: int
) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples == EXAMPLES,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        call(case)

    return run


def _describe(case: Any, exc: BaseException, base_url: str) -> str:
    try:
        curl = case.as_curl_command(base_url=base_url)
    except Exception:  # the reproduction is a courtesy; the failure itself is what matters
        curl = f"{case.method} {case.formatted_path} body={case.body!r}"
    return f"{case.method} {case.formatted_path}\n  {curl}\n  {type(exc).__name__}: {exc}"


def test_every_operation_matches_its_schema(server: tuple[LiveServer, str], db_url: str) -> None:
    live, key = server
    known = _seed(live, key, db_url)
    headers = {"Authorization": f"Bearer {key}"}
    examples = int(os.environ.get(EXAMPLES_ENV) or EXAMPLES)
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures: list[str] = []

    def call(case: Any) -> None:
        case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS, timeout=30)

    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the app's own schema is invalid: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        for case in _known_good_cases(operation, known):
            response = case.call(base_url=live.url, headers=headers, timeout=30)
            assert response.status_code == 200, (operation.label, response.text[:500])
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group
                failures.append(_describe(case, exc, live.url))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _runner(operation, mode, call, examples)()
            except Unsatisfiable:
                # No invalid request exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE and not operation.body, operation.label
            except (Exception, BaseExceptionGroup) as exc:
                # Schemathesis' message holds the (shrunk) failing request as a curl command.
                failures.append(f"[{mode.value}] {operation.label}: {exc}")
    # A body that is not UTF-8 was once FastAPI's undocumented 400 on every pydantic-body route.
    with live.client(key) as client:
        for path in ("/v1/labels", "/v1/rubrics", "/v1/panels", "/v1/verifications"):
            response = client.post(path, content=b"\xff", headers={"Content-Type": JSON})
            assert response.status_code == 422, (path, response.text)
    # The server is still healthy after everything it was sent.
    assert httpx.get(f"{live.url}/readyz", timeout=10).status_code == 200
    assert not failures, "\n\n".join(failures)

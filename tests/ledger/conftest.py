"""Ledger fixtures: every test runs on SQLite and, when configured, on PostgreSQL.

PostgreSQL runs when ``OUTCOME_JUDGE_TEST_PG_URL`` is set (``.ci/run`` sets it); otherwise the
PostgreSQL variant skips, except under ``CI=true`` where it fails. Each PostgreSQL test gets a
fresh schema (``search_path``) that is dropped afterwards, so tests can run repeatedly and in
parallel with other test sessions on the same database.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy.engine import Engine

from judge.models import Outcome
from judge.verdict import JudgeCall, Verdict

PG_ENV = "OUTCOME_JUDGE_TEST_PG_URL"


def required_url(env: str, fix: str) -> str:
    """The server URL in the environment variable ``env``; skips the test when it is unset (fails
    under CI=true, which must run every test), saying ``fix``."""
    url = os.environ.get(env)
    if not url:
        message = f"{env} is not set; {fix}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the tests that need it: {message}")
        pytest.skip(message)
    return url


def pg_base_url() -> str:
    """The PostgreSQL test URL; skips the test when unset (fails under CI=true)."""
    return required_url(
        PG_ENV,
        "start PostgreSQL (pg_ctlcluster 15 main start) and set it to "
        "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/outcome_judge_test",
    )


def _with_schema(url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def _pg_schema() -> Iterator[str]:
    import sqlalchemy as sa

    base = pg_base_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield _with_schema(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
#: A PostgreSQL ledger partitioned by month (ledger.partitions). A test module that sets
#: ``PARTITIONED_TOO = ("engine",)`` (the ``engine`` fixture) and/or ``("url",)`` (``ledger_url``,
#: then a migrated, partitioned schema) runs on it as well.
PARTITIONED = "postgresql-partitioned"


@pytest.hookimpl(tryfirst=True)  # before the hooks that read the marks
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = getattr(metafunc.module, "PARTITIONED_TOO", ())
    layouts: tuple[tuple[str, str, Literal["module", "function"]], ...] = (
        ("_migrated_engine", "engine", "module"),
        ("ledger_url", "url", "function"),
    )
    for fixture, name, scope in layouts:
        if name in wanted and fixture in metafunc.fixturenames:
            params = [*BACKENDS, pytest.param(PARTITIONED, marks=pytest.mark.postgres)]
            # As a mark: pytest then gives it precedence over the fixture's own params.
            mark = pytest.mark.parametrize(fixture, params, indirect=True, scope=scope)
            metafunc.definition.add_marker(mark)


def _partitioned(url: str) -> str:
    from ledger.db import make_engine
    from ledger.partitions import convert
    from ledger.schema import migrate

    eng = make_engine(url)
    try:
        migrate(eng)
        convert(eng)
    finally:
        eng.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in a not-yet-existing folder, or a fresh PG schema
    (PARTITIONED: migrated and partitioned)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/nested/folder/ledger.db"
        return
    with _pg_schema() as url:
        yield _partitioned(url) if request.param == PARTITIONED else url


@pytest.fixture(scope="module", params=BACKENDS)
def _migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    from ledger.db import make_engine
    from ledger.schema import migrate

    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('ledger')}/ledger.db"
        else:
            url = stack.enter_context(_pg_schema())
        eng = make_engine(_partitioned(url) if request.param == PARTITIONED else url)
        stack.callback(eng.dispose)
        migrate(eng)
        yield eng


@pytest.fixture
def engine(_migrated_engine: Engine) -> Iterator[Engine]:
    """A migrated ledger database, empty at the start of each test (migrated once per module)."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    from ledger.partitions import KEY_TABLES

    def wipe() -> None:
        with _migrated_engine.begin() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            for table in reversed(SQLModel.metadata.sorted_tables):
                if table.name in existing:
                    conn.execute(table.delete())
            for name in reversed(
                KEY_TABLES
            ):  # a partitioned ledger's key tables (ledger.partitions)
                if name in existing:
                    conn.execute(sa.text(f"DELETE FROM {name}"))

    wipe()
    yield _migrated_engine
    wipe()


def ticket(outcome_id: str = "T-1001", **changes: object) -> Outcome:
    """A small support ticket; keyword arguments override top-level fields."""
    data: dict[str, object] = {
        "id": outcome_id,
        "kind": "support_ticket",
        "conversation": [
            {
                "role": "customer",
                "text": "My order 1234 arrived broken.",
                "at": "2026-03-01T10:00:00Z",
            },
            {"role": "agent", "author": "bot:fin", "text": "Refund issued for order 1234."},
        ],
        "signals": {"customer_confirmed": True, "csat": 5},
        "agent": {"name": "fin", "version": "2.3", "model_path": "gpt-4o-mini", "cost_usd": 0.041},
        "label": {"resolved": True, "by": "qa-team", "at": "2026-03-02T09:00:00Z"},
    }
    data.update(changes)
    return Outcome.model_validate(data)


def verdict_for(outcome: Outcome, **changes: object) -> Verdict:
    data: dict[str, object] = {
        "outcome_id": outcome.id,
        "decision": "verified",
        "confidence": 0.93,
        "tier": "confirmed",
        "rubric": "support-resolution@3f2a9c1",
        "panel": "default@8b1d",
        "flags": [],
        "criteria": {"request_understood": {"score": 1.0, "passed": True}},
        "cost_usd": 0.0004,
    }
    data.update(changes)
    return Verdict.model_validate(data)


def judge_call(cache_key: str = "k-1", **changes: object) -> JudgeCall:
    data: dict[str, object] = {
        "outcome_id": "T-1001",
        "judge": "gpt4o-mini",
        "model": "openai/gpt-4o-mini",
        "sample": 0,
        "attempt": 1,
        "cache_key": cache_key,
        "prompt_digest": "d" * 64,
        "prompt": [
            {"role": "system", "content": "You are a strict evaluator."},
            {"role": "user", "content": "<<<OUTCOME>>> ... Score 1-5."},
        ],
        "reply": "Reasoning... Score: 4",
        "status": "ok",
        "tokens_in": 2100,
        "tokens_out": 140,
        "cost_usd": 0.000399,
        "latency_ms": 812,
        "at": datetime(2026, 3, 1, 10, 5, 0, 123456, tzinfo=UTC),
    }
    data.update(changes)
    return JudgeCall.model_validate(data)


# -- a ledger filled by a real `judge verify` of the shipped tickets (cost tests) -----------------
TICKETS = Path(__file__).resolve().parents[2] / "datasets" / "tickets.jsonl"


def run(*args: str) -> Any:
    """Invoke the `judge` CLI in-process."""
    from typer.testing import CliRunner

    from app.cli import app

    return CliRunner().invoke(app, list(args))


def run_json(*args: str) -> dict[str, Any]:
    """Invoke the `judge` CLI with --json; it must succeed."""
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def verified_ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite ledger after `judge verify datasets/tickets.jsonl` with the local panel."""
    tmp = tmp_path_factory.mktemp("verified")
    url = f"sqlite:///{tmp / 'x.db'}"
    out = tmp / "verdicts.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
            mp.delenv(key, raising=False)
        from config.settings import get_settings

        get_settings.cache_clear()
        result = run("verify", str(TICKETS), "--db", url, "--out", str(out), "--json")
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return url, out

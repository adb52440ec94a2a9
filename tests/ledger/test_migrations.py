"""Alembic migrations: from empty to head, and models and migrated schema in agreement."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import ledger.tables  # noqa: F401  (the models under test)
from ledger.db import make_engine
from ledger.schema import MIGRATIONS_DIR, alembic_config, current_tables, migrate

LEDGER_TABLES = {"tenants", "outcomes", "verdicts", "judge_calls", "labels"}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _differences(engine: Engine, metadata: sa.MetaData) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


@pytest.fixture
def fresh(ledger_url: str) -> object:
    eng = make_engine(ledger_url)
    yield eng
    eng.dispose()


def test_migrate_from_empty_from_any_directory(
    fresh: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the migrations are found inside the package, not via the cwd
    assert current_tables(fresh) == set()
    migrate(fresh)
    assert current_tables(fresh) >= LEDGER_TABLES
    assert _version(fresh) == _head()
    migrate(fresh)  # at head: nothing to do, nothing fails
    assert _version(fresh) == _head()
    assert list(cwd.iterdir()) == []  # and nothing was written to the working directory


def test_models_and_migrated_schema_agree(fresh: Engine) -> None:
    migrate(fresh)
    assert _differences(fresh, SQLModel.metadata) == []


def test_schema_comparison_detects_drift(fresh: Engine) -> None:
    """The agreement check can fail: a column the migrations lack is reported."""
    migrate(fresh)
    drifted = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["verdicts"].append_column(sa.Column("reviewer", sa.String(50)))
    differences = _differences(fresh, drifted)
    assert [(d[0], d[3].name) for d in differences if isinstance(d, tuple)] == [
        ("add_column", "reviewer")
    ]


def test_downgrade_to_empty_and_up_again(fresh: Engine) -> None:
    config = alembic_config()
    migrate(fresh)
    with fresh.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert current_tables(fresh) & LEDGER_TABLES == set()
    migrate(fresh)
    assert current_tables(fresh) >= LEDGER_TABLES


_MIGRATE_ON_GO = """
import sys
from ledger.db import make_engine
from ledger.schema import migrate
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
migrate(engine)
"""


def test_processes_migrating_at_once_take_turns(ledger_url: str) -> None:
    """API workers starting together: four processes migrate one empty database at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_ON_GO, ledger_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for p in procs:  # every process has imported everything and connected: now all at once
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == "ready\n", f"exit {p.wait(timeout=60)}: {p.communicate()[1]}"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [(p.communicate(timeout=60)[1], p.returncode) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert results == [("", 0)] * len(procs)
    eng = make_engine(ledger_url)
    try:
        assert _version(eng) == _head()
    finally:
        eng.dispose()


def test_threads_migrating_at_once_take_turns(ledger_url: str) -> None:
    engines = [make_engine(ledger_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(eng: Engine) -> None:
        try:
            migrate(eng)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,), daemon=True) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "migrate() hung in concurrent threads"
        assert errors == []
        assert _version(engines[0]) == _head()
    finally:
        for eng in engines:
            eng.dispose()


def test_alembic_ini_for_developers(tmp_path: Path) -> None:
    """`alembic -c ledger/alembic.ini -x url=... upgrade head` works (env.py's standalone path)."""
    ini = MIGRATIONS_DIR.parent / "alembic.ini"
    url = f"sqlite:///{tmp_path}/dev.db"
    config = Config(str(ini), cmd_opts=argparse.Namespace(x=[f"url={url}"]))
    command.upgrade(config, "head")
    eng = make_engine(url)
    try:
        assert _version(eng) == _head()
    finally:
        eng.dispose()


def test_migration_history_is_linear_and_self_contained() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].revision == "0001" and revisions[-1].down_revision is None
    for rev in revisions:
        source = Path(rev.path).read_text(encoding="utf-8")
        # Migrations keep their meaning: they never import today's models.
        assert "ledger.tables" not in source.replace("(not imported from ledger.tables)", "")

"""Reliability fixtures: a ledger per test on SQLite and PostgreSQL, and the figures table.

Every scenario reports its figures through the ``figures`` fixture; they are printed as one
table at the end of the run (whatever ``-s`` says) and written to
``<pytest basetemp>/reliability-figures.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.conftest import BACKENDS, _pg_schema

_FIGURES: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty ledger database: a SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    with _pg_schema() as url:
        yield url


class Figures:
    """Figures of one scenario, keyed by the test's id."""

    def __init__(self, store: dict[str, dict[str, Any]], key: str) -> None:
        self._row = store.setdefault(key, {})

    def __setitem__(self, name: str, value: Any) -> None:
        self._row[name] = value

    def update(self, values: dict[str, Any]) -> None:
        self._row.update(values)


@pytest.fixture
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Figures:
    store = request.config.stash.setdefault(_FIGURES, {})
    key = request.node.nodeid.split("::", 1)[-1]
    out = Figures(store, key)
    path = tmp_path_factory.getbasetemp() / "reliability-figures.json"
    request.addfinalizer(lambda: path.write_text(json.dumps(store, indent=2, default=str)))
    return out


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    store = config.stash.get(_FIGURES, {})
    if not store:
        return
    terminalreporter.section("reliability figures")
    for test, values in store.items():
        terminalreporter.write_line(test)
        for name, value in values.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            terminalreporter.write_line(f"    {name:<44} {shown}")

"""Helpers for the hostile-input tests of issue 17 (``tests/api/test_input_*.py``)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.reliability.service_probe import all_table_counts

#: A lone UTF-16 surrogate; ``json.dumps`` sends it as the escape ``\ud800``, as a hostile
#: client does (httpx's own JSON encoder would refuse it).
LONE = "\ud800"
JSON = {"Content-Type": "application/json"}


def table_rows(db_url: str) -> dict[str, int]:
    """Row counts of every table, to show that a refused request wrote nothing."""
    engine = sa.create_engine(db_url)
    try:
        return all_table_counts(engine)
    finally:
        engine.dispose()


def send(client: TestClient, key: str, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={**auth(key), **JSON})


def refused(response: Any, field: str, *words: str) -> dict[str, Any]:
    """Assert a 422 in the error shape naming ``field`` (and ``words``); return the error."""
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == "invalid"
    fields = [d["field"] for d in error["details"]]
    assert field in fields, (field, error)
    for word in words:
        assert word in error["message"], (word, error["message"])
    return error

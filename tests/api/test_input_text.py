"""Issue 17: a lone UTF-16 surrogate (JSON ``"\\ud800"``) in a label, in ``base_revisions`` or in
an outcome's metadata gave a 500 (the error response itself failed to encode) or was stored as
U+FFFD. Each is now a 422 naming the field and the fix, and nothing is written (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.hostile_helpers import LONE, refused, send, table_rows
from tests.api.test_outcomes import ticket


def test_a_lone_surrogate_in_a_label_is_422_naming_the_field(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    assert send(client, key, "/v1/outcomes", {"outcomes": [ticket("T-1")]}).status_code == 200
    before = table_rows(db_url)
    good = {"outcome_id": "T-1", "resolved": True}
    for change, field in [
        ({"note": f"came back {LONE}"}, "labels.0.note"),
        ({"by": LONE}, "labels.0.by"),
        ({"outcome_id": f"T-1{LONE}"}, "labels.0.outcome_id"),
        ({"criteria": {f"x{LONE}": True}}, "labels.0.criteria.x\\ud800"),
    ]:
        response = send(client, key, "/v1/labels", {"labels": [{**good, **change}]})
        error = refused(response, field, "lone UTF-16 surrogate", "\\ud800")
        assert "send the character itself" in error["message"]
    assert table_rows(db_url) == before


def test_a_lone_surrogate_in_base_revisions_is_422_naming_the_field(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    before = table_rows(db_url)
    body = {"outcomes": [ticket("T-1")], "base_revisions": {f"T-1{LONE}": 0}}
    response = send(client, keys["acme"], "/v1/outcomes", body)
    refused(response, "base_revisions.T-1\\ud800", "lone UTF-16 surrogate")
    assert table_rows(db_url) == before


def test_an_error_quoting_a_lone_surrogate_still_encodes() -> None:
    """The error renderer escapes what it cannot encode, so a 4xx never turns into a 500."""
    from api.errors import error_response

    response = error_response(
        404, f"no rubric 'r{LONE}'", details=[{"field": f"k{LONE}", LONE: [f"v{LONE}"]}]
    )
    body = json.loads(bytes(response.body).decode("utf-8"))
    assert body["error"]["message"] == "no rubric 'r\\ud800'"
    assert body["error"]["details"] == [{"field": "k\\ud800", "\\ud800": ["v\\ud800"]}]


def test_a_surrogate_in_metadata_is_refused_not_stored_as_a_replacement(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    before = table_rows(db_url)
    for metadata, field, words in [
        ({"note": f"a{LONE}b"}, "outcomes.0.metadata.note", ["lone UTF-16 surrogate"]),
        ({f"k{LONE}": "v"}, "outcomes.0.metadata.k\\ud800", ["the key contains"]),
        ({"deep": [{"x": ["\udc00"]}]}, "outcomes.0.metadata.deep.0.x.0", ["\\udc00"]),
    ]:
        body = {"outcomes": [ticket("M-1", metadata=metadata)]}
        error = refused(send(client, key, "/v1/outcomes", body), field, *words)
        assert error["details"][0]["index"] == 0
    event = {"specversion": "1.0", "id": "E-1", "source": f"s{LONE}", "type": "t",
             "data": ticket("E-1")}  # fmt: skip
    single = client.post(
        "/v1/outcomes",
        content=json.dumps(event),
        headers={**auth(key), "Content-Type": "application/cloudevents+json"},
    )
    refused(single, "source", "lone UTF-16 surrogate")
    for path, body, field in [
        ("/v1/verifications", {"outcome_ids": ["M-1"], "rubric": LONE}, "rubric"),
        ("/v1/rubrics", {"yaml": f"name: {LONE}\n"}, "yaml"),
    ]:
        refused(send(client, key, path, body), field, "lone UTF-16 surrogate")
    assert table_rows(db_url) == before
    # A complete surrogate pair is one character and is stored as sent.
    pair = send(client, key, "/v1/outcomes", {"outcomes": [ticket("M-2", metadata={"e": "😀"})]})
    assert pair.status_code == 200, pair.text
    stored = client.get("/v1/outcomes/M-2", headers=auth(key)).json()["outcome"]
    assert stored["metadata"] == {"e": "😀"}

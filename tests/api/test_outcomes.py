"""`POST /v1/outcomes` and `GET /v1/outcomes[/{id}]`: idempotent batch ingest (native and
CloudEvents), all-or-nothing validation with the failing item's index and field, 409 conflicts,
the batch cap, tenant isolation, and concurrent re-ingest against a real server."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings, get_settings
from tests.api.conftest import auth
from tests.api.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
TICKETS = ROOT / "datasets" / "tickets.jsonl"


def ticket(outcome_id: str, text: str = "my refund never arrived", **extra: Any) -> dict[str, Any]:
    return {
        "id": outcome_id,
        "kind": "support_ticket",
        "conversation": [{"role": "customer", "text": text}],
        **extra,
    }


def event(event_id: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "zendesk://acme",
        "type": "com.example.ticket.closed",
        "data": data,
        **extra,
    }


def counts(db_url: str) -> dict[str, int]:
    """Row counts over every tenant (so a write to the wrong tenant shows too)."""
    import sqlalchemy as sa

    from ledger.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ("outcomes", "labels", "touches")
            }
    finally:
        engine.dispose()


def post(client: TestClient, key: str, items: list[Any], **body: Any) -> Any:
    return client.post("/v1/outcomes", json={"outcomes": items, **body}, headers=auth(key))


def test_ingest_is_idempotent_and_a_changed_payload_is_a_new_revision(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    batch = [ticket("T-1"), ticket("T-2")]
    first = post(client, key, batch)
    assert first.status_code == 200, first.text
    assert first.json()["totals"] == {"created": 2, "revised": 0, "unchanged": 0}
    assert [i["revision"] for i in first.json()["items"]] == [1, 1]

    again = post(client, key, batch).json()
    assert again["totals"] == {"created": 0, "revised": 0, "unchanged": 2}
    assert counts(db_url)["outcomes"] == 2

    changed = post(client, key, [ticket("T-1", signals={"csat": 5}), ticket("T-2")]).json()
    assert [(i["id"], i["revision"], i["status"]) for i in changed["items"]] == [
        ("T-1", 2, "revised"),
        ("T-2", 1, "unchanged"),
    ]
    detail = client.get("/v1/outcomes/T-1", headers=auth(key)).json()
    assert detail["revision"] == 2 and detail["outcome"]["signals"]["csat"] == 5
    assert [r["revision"] for r in detail["revisions"]] == [1, 2]
    assert detail["revisions"][0]["content_hash"] != detail["revisions"][1]["content_hash"]


def test_the_same_id_twice_with_one_payload_is_stored_once(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    body = post(client, keys["acme"], [ticket("T-1"), ticket("T-1")]).json()
    assert [i["status"] for i in body["items"]] == ["created", "unchanged"]
    assert counts(db_url)["outcomes"] == 1


def test_the_sample_dataset_ingests_with_its_labels(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    tickets = [json.loads(line) for line in TICKETS.read_text().splitlines()]
    body = post(client, keys["acme"], tickets).json()
    assert body["count"] == len(tickets) == body["totals"]["created"]
    labelled = sum(1 for t in tickets if t.get("label"))
    assert counts(db_url)["labels"] == labelled > 0
    # Re-ingesting writes no second label (labels are deduplicated on content).
    assert post(client, keys["acme"], tickets).json()["totals"]["unchanged"] == len(tickets)
    assert counts(db_url)["labels"] == labelled


def test_cloudevents_single_batch_and_mixed(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    data = ticket("ignored")
    del data["id"]
    single = client.post(
        "/v1/outcomes",
        content=json.dumps(event("E-1", data)),
        headers={**auth(key), "Content-Type": "application/cloudevents+json"},
    )
    assert single.status_code == 200, single.text
    assert single.json()["items"][0] == {
        "index": 0,
        "id": "E-1",
        "revision": 1,
        "status": "created",
    }

    batch = [event("E-2", data), event("E-3", ticket("T-explicit"))]
    response = client.post(
        "/v1/outcomes",
        content=json.dumps(batch),
        headers={**auth(key), "Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert [i["id"] for i in response.json()["items"]] == ["E-2", "T-explicit"]

    mixed = post(client, key, [ticket("T-9"), event("E-1", data)]).json()
    assert [i["status"] for i in mixed["items"]] == ["created", "unchanged"]
    stored = client.get("/v1/outcomes/E-1", headers=auth(key)).json()["outcome"]
    assert stored["metadata"] == {"event_source": "zendesk://acme"}
    assert counts(db_url)["outcomes"] == 4


def _invalid_batches() -> list[tuple[list[Any], str]]:
    bad_role = ticket("D") | {"conversation": [{"role": "robot", "text": "x"}]}
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    return [
        ([ticket("A"), ticket("B"), ticket("C"), bad_role], "outcomes.3.conversation.0.role"),
        ([ticket("A"), {**ticket("B"), "lable": {"resolved": True}}], "outcomes.1.lable"),
        ([ticket("A"), event("E-1", {"kind": "support_ticket"})], "outcomes.1.data"),
        ([ticket("A"), event("E-1", ticket("X"), specversion="0.3")], "outcomes.1.specversion"),
        ([ticket("A"), {**ticket("B"), "tenant": "globex"}], "outcomes.1"),
        ([ticket("A"), ticket("B") | {"signals": {"closed_at": future}}], "outcomes.1"),
    ]


def test_an_invalid_item_is_422_with_index_and_field_and_nothing_is_written(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    post(client, keys["acme"], [ticket("BEFORE")])
    before = counts(db_url)
    for items, field in _invalid_batches():
        response = post(client, keys["acme"], items)
        assert response.status_code == 422, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert error["details"][0]["field"] == field
        assert error["details"][0]["index"] == int(field.split(".")[1])
        assert error["message"].startswith(field) and "nothing was written" in error["message"]
        assert counts(db_url) == before
    other = post(client, keys["acme"], [{**ticket("B"), "tenant": "globex"}]).json()["error"]
    assert "globex" in other["message"] and "tenant" in other["message"]
    future = post(client, keys["acme"], _invalid_batches()[-1][0]).json()["error"]
    assert "signals.closed_at" in future["message"]


def test_malformed_bodies_are_refused(client: TestClient, keys: dict[str, str]) -> None:
    headers = {**auth(keys["acme"]), "Content-Type": "application/json"}
    assert client.post("/v1/outcomes", content=b"{nope", headers=headers).status_code == 422
    empty = client.post("/v1/outcomes", json={"outcomes": []}, headers=auth(keys["acme"]))
    assert empty.status_code == 422 and empty.json()["error"]["details"][0]["field"] == "outcomes"
    extra = client.post("/v1/outcomes", json={"outcomes": [ticket("A")], "x": 1}, headers=headers)
    assert extra.status_code == 422
    xml = client.post(
        "/v1/outcomes", content=b"<a/>", headers={**auth(keys["acme"]), "Content-Type": "text/xml"}
    )
    assert xml.status_code == 415 and "cloudevents-batch+json" in xml.json()["error"]["message"]
    not_array = client.post(
        "/v1/outcomes",
        content=b"{}",
        headers={**auth(keys["acme"]), "Content-Type": "application/cloudevents-batch+json"},
    )
    assert not_array.status_code == 422


def test_over_the_batch_cap_is_413_and_writes_nothing(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    client.app.dependency_overrides[get_settings] = lambda: Settings(max_batch=3)  # type: ignore[attr-defined]
    try:
        response = post(client, keys["acme"], [ticket(f"T-{i}") for i in range(4)])
        assert response.status_code == 413
        assert response.json()["error"]["details"] == {"max_batch": 3, "count": 4}
        assert counts(db_url)["outcomes"] == 0
        assert post(client, keys["acme"], [ticket(f"T-{i}") for i in range(3)]).status_code == 200
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_conflicts_are_409_and_write_nothing(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    post(client, key, [ticket("T-1")])
    before = counts(db_url)
    twice = post(client, key, [ticket("T-2"), ticket("T-1", text="a"), ticket("T-1", text="b")])
    assert twice.status_code == 409
    error = twice.json()["error"]
    assert error["code"] == "conflict" and error["details"][0]["indexes"] == [1, 2]
    assert counts(db_url) == before

    stale = post(client, key, [ticket("T-1", text="new"), ticket("T-3")], base_revisions={"T-1": 0})
    assert stale.status_code == 409
    assert stale.json()["error"]["details"][0] == {
        "id": "T-1",
        "reason": "stale_base_revision",
        "base_revision": 0,
        "latest_revision": 1,
    }
    assert counts(db_url) == before

    ok = post(client, key, [ticket("T-1", text="new"), ticket("T-3")], base_revisions={"T-1": 1})
    assert [i["status"] for i in ok.json()["items"]] == ["revised", "created"]
    # The same base again is now stale: the change was applied on top of revision 1 already.
    again = post(client, key, [ticket("T-1", text="newer")], base_revisions={"T-1": 1})
    assert again.status_code == 409
    stray = post(client, key, [ticket("T-4")], base_revisions={"T-5": 0})
    assert stray.status_code == 422 and "T-5" in stray.json()["error"]["message"]


def test_outcomes_are_isolated_between_tenants(client: TestClient, keys: dict[str, str]) -> None:
    post(client, keys["acme"], [ticket("SECRET-1")])
    mine = client.get("/v1/outcomes/SECRET-1", headers=auth(keys["acme"]))
    assert mine.status_code == 200
    theirs = client.get("/v1/outcomes/SECRET-1", headers=auth(keys["globex"]))
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert client.get("/v1/outcomes/nope", headers=auth(keys["acme"])).status_code == 404
    assert client.get("/v1/outcomes", headers=auth(keys["globex"])).json()["items"] == []
    # globex may use the same id for its own outcome: a separate record.
    assert (
        post(client, keys["globex"], [ticket("SECRET-1", text="x")]).json()["items"][0]["status"]
        == "created"
    )


def test_listing_pages_through_every_outcome(client: TestClient, keys: dict[str, str]) -> None:
    ids = [f"T-{i:02d}" for i in range(7)]
    post(client, keys["acme"], [ticket(i) for i in ids])
    post(client, keys["acme"], [ticket("T-03", text="changed")])
    seen: list[tuple[str, int]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/outcomes", params=params, headers=auth(keys["acme"])).json()
        seen += [(item["id"], item["revision"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(i, 2 if i == "T-03" else 1) for i in ids]
    bad = client.get("/v1/outcomes", params={"cursor": "%%%"}, headers=auth(keys["acme"]))
    assert bad.status_code == 422


def test_ids_with_slashes_round_trip(client: TestClient, keys: dict[str, str]) -> None:
    post(client, keys["acme"], [ticket("zendesk/123")])
    response = client.get("/v1/outcomes/zendesk%2F123", headers=auth(keys["acme"]))
    assert response.status_code == 200 and response.json()["id"] == "zendesk/123"


def test_openapi_documents_the_three_content_types(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/outcomes"]["post"]["requestBody"]["content"]
    assert set(content) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert "$ref" not in json.dumps(content)  # inlined: resolvable by any client


@pytest.mark.slow
def test_concurrent_reingest_of_one_batch_stores_each_outcome_once(
    live: LiveServer, keys: dict[str, str], db_url: str
) -> None:
    batch = [ticket(f"C-{i:03d}", text=f"order {i} missing") for i in range(150)]
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    start = threading.Barrier(4)

    def worker() -> None:
        with live.client(keys["acme"]) as http:
            start.wait()
            for _ in range(2):
                response = http.post("/v1/outcomes", json={"outcomes": batch})
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    results.append(response.json())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(results) == 8
    statuses = Counter(item["status"] for r in results for item in r["items"])
    assert statuses == {"created": 150, "unchanged": 150 * 7}
    assert {item["revision"] for r in results for item in r["items"]} == {1}
    assert counts(db_url)["outcomes"] == 150


def test_input_postgresql_cannot_store_is_422_not_500(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    headers = {**auth(keys["acme"]), "Content-Type": "application/json"}

    def send(outcome: str) -> Any:
        return client.post("/v1/outcomes", content=f'{{"outcomes": [{outcome}]}}', headers=headers)

    base = '"kind": "support_ticket", "conversation": [{"role": "customer", "text": "x"}]'
    nul = send(f'{{"id": "T-1", {base}, "metadata": {{"k": "a\\u0000b"}}}}')
    assert nul.status_code == 422 and nul.json()["error"]["details"][0]["field"] == (
        "outcomes.0.metadata.k"
    )
    for outcome, fragment in [
        (f'{{"id": "T-1", {base}, "metadata": {{"k": NaN}}}}', "NaN"),
        (f'{{"id": "T-1", {base}, "metadata": {{"k": 1e999}}}}', "out of range"),
        (f'{{"id": "T-1", {base}, "agent": {{"cost_usd": 1e300}}}}', "agent.cost_usd"),
        (f'{{"id": "T-1", {base}, "metadata": {{"k": {"[" * 100}{"]" * 100}}}}}', "deeper"),
    ]:
        response = send(outcome)
        assert response.status_code == 422, response.text
        assert fragment in response.json()["error"]["message"]
    assert counts(db_url)["outcomes"] == 0
    assert client.get("/v1/outcomes/a%00b", headers=auth(keys["acme"])).status_code == 404
    label = {"labels": [{"outcome_id": "a\u0000", "resolved": True}]}
    assert client.post("/v1/labels", json=label, headers=auth(keys["acme"])).status_code == 422

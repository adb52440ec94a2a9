"""`POST /v1/labels`: batches recorded once (deduplicated on content), all or nothing, only for
the tenant's own outcomes (404 otherwise), shown on `GET /v1/outcomes/{id}`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from config.settings import Settings, get_settings
from tests.api.conftest import auth
from tests.api.test_outcomes import counts, post, ticket


def labels(client: TestClient, key: str, items: list[dict[str, Any]]) -> Any:
    return client.post("/v1/labels", json={"labels": items}, headers=auth(key))


def test_labels_are_recorded_once_and_shown_with_the_outcome(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    post(client, key, [ticket("T-1"), ticket("T-2")])
    batch = [
        {"outcome_id": "T-1", "resolved": True, "by": "ana", "criteria": {"resolved": True}},
        {"outcome_id": "T-2", "resolved": False, "note": "customer came back", "at": "2026-01-02"},
    ]
    first = labels(client, key, batch)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 2 and first.json()["unchanged"] == 0
    again = labels(client, key, batch).json()
    assert again["created"] == 0 and [i["status"] for i in again["items"]] == ["unchanged"] * 2
    assert counts(db_url)["labels"] == 2

    # A different judgement of the same outcome is a second label (both are kept).
    assert labels(client, key, [{"outcome_id": "T-1", "resolved": False}]).json()["created"] == 1
    shown = client.get("/v1/outcomes/T-1", headers=auth(key)).json()["labels"]
    assert [(lab["resolved"], lab["by"], lab["source"]) for lab in shown] == [
        (True, "ana", "api"),
        (False, None, "api"),
    ]
    assert shown[0]["criteria"] == {"resolved": True}
    t2 = client.get("/v1/outcomes/T-2", headers=auth(key)).json()["labels"][0]
    assert t2["note"] == "customer came back" and t2["at"].startswith("2026-01-02T00:00:00")


def test_unknown_or_foreign_outcome_ids_are_404_and_nothing_is_written(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    post(client, keys["acme"], [ticket("A-1")])
    post(client, keys["globex"], [ticket("G-1")])
    before = counts(db_url)
    response = labels(
        client,
        keys["acme"],
        [
            {"outcome_id": "A-1", "resolved": True},
            {"outcome_id": "G-1", "resolved": True},
            {"outcome_id": "NOPE", "resolved": False},
        ],
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and error["details"]["unknown_ids"] == ["G-1", "NOPE"]
    assert counts(db_url) == before
    # globex labels its own G-1 fine.
    ok = labels(client, keys["globex"], [{"outcome_id": "G-1", "resolved": True}])
    assert ok.status_code == 200


def test_invalid_labels_are_422_with_the_field(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    post(client, key, [ticket("T-1")])
    before = counts(db_url)
    missing = labels(client, key, [{"outcome_id": "T-1"}])
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "labels.0.resolved"
    extra = labels(client, key, [{"outcome_id": "T-1", "resolved": True, "score": 3}])
    assert extra.json()["error"]["details"][0]["field"] == "labels.0.score"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    late = labels(
        client,
        key,
        [{"outcome_id": "T-1", "resolved": True}, {"outcome_id": "T-1", "resolved": False,
                                                    "at": future}],
    )  # fmt: skip
    assert late.status_code == 422
    assert late.json()["error"]["details"][0]["field"] == "labels.1.at"
    assert labels(client, key, []).status_code == 422
    assert counts(db_url) == before


def test_over_the_batch_cap_is_413(client: TestClient, keys: dict[str, str]) -> None:
    post(client, keys["acme"], [ticket("T-1")])
    client.app.dependency_overrides[get_settings] = lambda: Settings(max_batch=2)  # type: ignore[attr-defined]
    try:
        response = labels(client, keys["acme"], [{"outcome_id": "T-1", "resolved": True}] * 3)
        assert response.status_code == 413
        assert response.json()["error"]["details"] == {"max_batch": 2, "count": 3}
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_the_same_outcome_id_in_two_tenants_shows_each_only_its_own_labels(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    """Outcome ids are the tenant's own: acme's ``T-1`` and globex's ``T-1`` share nothing."""
    from judge.verdict import Verdict
    from ledger.db import make_engine
    from ledger.ingest import outcome_detail
    from ledger.store import Ledger

    post(client, keys["acme"], [ticket("T-1", text="acme: my refund never arrived")])
    post(client, keys["globex"], [ticket("T-1", text="globex: the invoice is wrong")])
    acme_label = {"outcome_id": "T-1", "resolved": True, "by": "ana", "note": "acme's"}
    globex_label = {"outcome_id": "T-1", "resolved": False, "by": "bo", "note": "globex's"}
    assert labels(client, keys["acme"], [acme_label]).status_code == 200
    assert labels(client, keys["globex"], [globex_label]).status_code == 200
    engine = make_engine(db_url)
    try:
        for tenant, decision in (("acme", "verified"), ("globex", "not_verified")):
            ledger = Ledger(engine, tenant=tenant)
            stored = ledger.outcome("T-1")
            assert stored is not None
            verdict = Verdict(
                outcome_id="T-1", decision=decision, confidence=0.9, rubric="r@1", panel="p@1"
            )
            ledger.record_result(stored, verdict)
        direct = {tenant: outcome_detail(engine, tenant, "T-1") for tenant in keys}
    finally:
        engine.dispose()

    expected = {
        "acme": ([(True, "ana", "acme's")], ["verified"], "acme: my refund never arrived"),
        "globex": ([(False, "bo", "globex's")], ["not_verified"], "globex: the invoice is wrong"),
    }
    for tenant, key in keys.items():
        shown = client.get("/v1/outcomes/T-1", headers=auth(key))
        assert shown.status_code == 200, shown.text
        for detail in (shown.json(), direct[tenant]):
            assert detail is not None
            got = (
                [(lab["resolved"], lab["by"], lab["note"]) for lab in detail["labels"]],
                [v["decision"] for v in detail["verdicts"]],
                detail["outcome"]["conversation"][0]["text"],
            )
            assert got == expected[tenant], tenant

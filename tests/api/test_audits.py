"""`POST/GET /v1/audits`: the vendor's claims reconciled, stored whole, per tenant."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ledger.db import make_engine
from ledger.store import Ledger
from tests.api.conftest import auth
from tests.ledger.conftest import ticket, verdict_for


def _own(oid: str, **changes: Any) -> Any:
    """A ticket whose conversation is its own: one conversation claimed under two ids is a
    duplicate (``ledger.audit``)."""
    conversation = [
        {"role": "customer", "text": f"Order {oid} arrived broken.", "at": "2026-03-01T10:00:00Z"},
        {"role": "agent", "author": "bot:fin", "text": f"Refund issued for order {oid}."},
    ]
    return ticket(oid, conversation=conversation, **changes)


def _judged(db_url: str, tenant: str, decisions: dict[str, str]) -> None:
    engine = make_engine(db_url)
    try:
        ledger = Ledger(engine, tenant=tenant)
        for oid, decision in decisions.items():
            outcome = _own(oid)
            ledger.record_result(outcome, verdict_for(outcome, decision=decision))
    finally:
        engine.dispose()


def _claim(oid: str, price: str = "0.99", at: str = "2026-03-02T10:00:00Z") -> dict[str, Any]:
    return {"outcome_id": oid, "claimed_at": at, "claim": "assumed", "price_usd": price}


def test_an_audit_is_reconciled_stored_and_served_to_its_tenant_only(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    _judged(db_url, "acme", {"A-1": "verified", "A-2": "not_verified", "A-3": "abstain"})
    _judged(db_url, "globex", {"G-1": "verified"})
    body = {
        "claims": [
            _claim("A-1"), _claim("A-2", "1.50"), _claim("A-3"), _claim("A-2"),
            _claim("G-1"),  # another tenant's conversation: unknown here
            _claim("A-1", at="2026-02-27T10:00:00Z"),  # before the period
        ],
        "from": "2026-03-01", "to": "2026-04-01", "n_boot": 200,
    }  # fmt: skip
    created = client.post("/v1/audits", json=body, headers=auth(keys["acme"]))
    assert created.status_code == 201, created.text
    audit = created.json()
    assert created.headers["location"] == f"/v1/audits/{audit['id']}"
    assert (audit["claimed"], audit["verified"], audit["not_verified"]) == (5, 1, 1)
    assert (audit["abstain"], audit["duplicate"], audit["unknown"]) == (1, 1, 1)
    assert audit["billed_usd"] == 5.46  # 0.99 x 4 + 1.50, summed in decimal
    assert audit["supported_usd"] == 0.99 and audit["disputed_usd"] == 2.49
    assert [d["outcome_id"] for d in audit["disputes"]] == ["A-2", "A-2"]
    assert audit["disputes"][0]["detail"]["judges"] == []  # verdict_for has no judges
    assert [p["outcome_id"] for p in audit["problems"]["outside_period"]] == ["A-1"]
    assert [p["outcome_id"] for p in audit["problems"]["unknown_id"]] == ["G-1"]

    again = client.get(f"/v1/audits/{audit['id']}", headers=auth(keys["acme"]))
    assert again.status_code == 200 and again.json() == audit
    listed = client.get("/v1/audits", headers=auth(keys["acme"])).json()["items"]
    assert [(i["id"], i["claimed"], i["disputes"]) for i in listed] == [(audit["id"], 5, 2)]
    assert listed[0]["from"].startswith("2026-03-01T00:00:00")
    page = client.get(
        f"/v1/audits/{audit['id']}", headers={**auth(keys["acme"]), "Accept": "text/html"}
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "A-2: assumed, $1.50" in page.text

    # Another tenant sees none of it.
    assert client.get(f"/v1/audits/{audit['id']}", headers=auth(keys["globex"])).status_code == 404
    assert client.get("/v1/audits", headers=auth(keys["globex"])).json()["items"] == []


def test_bad_audit_requests_say_what_is_wrong_and_store_nothing(
    client: TestClient, keys: dict[str, str]
) -> None:
    key = keys["acme"]
    cases = [
        ({"claims": []}, "claims"),
        ({"claims": [_claim("A-1", price="-1")]}, "claims.0.price_usd"),
        ({"claims": [{**_claim("A-1"), "claimed_at": "soon"}]}, "claims.0.claimed_at"),
        ({"claims": [{**_claim("A-1"), "claim": "x\u0000"}]}, "claims.0.claim"),
        ({"claims": [_claim("A-1")], "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = client.post("/v1/audits", json=body, headers=auth(key))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"][0]["field"] == field, response.text
    backwards = client.post(
        "/v1/audits",
        json={"claims": [_claim("A-1")], "from": "2026-04-01", "to": "2026-03-01"},
        headers=auth(key),
    )
    assert backwards.status_code == 422 and "from must be before to" in backwards.text
    assert client.get("/v1/audits", headers=auth(key)).json()["items"] == []
    assert client.get("/v1/audits/999", headers=auth(key)).status_code == 404


def test_the_claims_imported_with_the_conversations_can_be_audited(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    engine = make_engine(db_url)
    try:
        ledger = Ledger(engine, tenant="acme")
        claimed = {"vendor": "intercom", "resolution_state": "assumed_resolution",
                   "automated": True}  # fmt: skip
        closed = {"closed_at": "2026-03-02T10:00:00Z"}
        for oid, decision in (("I-1", "verified"), ("I-2", "not_verified")):
            outcome = _own(oid, vendor_claim=claimed, signals=closed)
            ledger.record_result(outcome, verdict_for(outcome, decision=decision))
        unclaimed = _own("I-3", signals=closed)
        ledger.record_result(unclaimed, verdict_for(unclaimed))
    finally:
        engine.dispose()
    body = {"imported_price_usd": "0.99", "from": "2026-03-01", "to": "2026-04-01"}
    made = client.post("/v1/audits", json=body, headers=auth(keys["acme"]))
    assert made.status_code == 201, made.text
    audit = made.json()
    assert (audit["claimed"], audit["verified"], audit["not_verified"]) == (2, 1, 1)
    assert audit["by_period"][0]["claim"] == "assumed_resolution"
    assert audit["verified_unclaimed"]["outcome_ids"] == ["I-3"]
    for both_or_neither in ({"imported_price_usd": "1", "claims": [_claim("I-1")]}, {}):
        refused = client.post("/v1/audits", json=both_or_neither, headers=auth(keys["acme"]))
        assert refused.status_code == 422 and "not both and not neither" in refused.text

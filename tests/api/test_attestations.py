"""Attested documents in the service: the buyer's key attests, the billed party's integration
sends reports, a worker holds back a report built on anything else (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from judge.attestation import document_digest
from judge.verdict import FLAG_UNATTESTED
from tests.api.conftest import auth
from tests.api.jobs_helpers import ledger_engine
from tests.api.test_jobs import run_worker_once
from tests.api.test_key_scopes import _key
from tests.api.test_outcomes import post
from tests.fakes.openai_server import FakeOpenAIServer
from tests.judge.test_attestation import FORGED_SOURCE, _fooled_judge, _report


def _buyer_documents() -> list[dict[str, str]]:
    report = _report().report
    assert report is not None
    return [{"id": "brief", "text": report.brief}] + [
        {"id": s.id, "text": s.text} for s in report.sources
    ]


def _forged() -> dict[str, Any]:
    record: dict[str, Any] = json.loads(_report().model_dump_json(exclude_none=True))
    record["report"]["sources"].append(FORGED_SOURCE)
    record.pop("tenant", None)  # the key says whose it is
    return record


def test_the_buyers_key_attests_and_every_key_reads_digests_only(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    buyer, sync = _key(db_url, "acme", "configure"), _key(db_url, "acme", "submit")
    docs = _buyer_documents()
    refused = client.post("/v1/attestations", json={"documents": docs}, headers=auth(sync))
    assert refused.status_code == 403 and "'configure' scope" in refused.json()["error"]["message"]

    first = client.post("/v1/attestations", json={"documents": docs}, headers=auth(buyer))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["count"], body["created"], body["unchanged"]) == (3, 3, 0)
    assert body["sha256"] == [document_digest(d["text"]) for d in docs]
    # Again, the middle one by digest: nothing new, nothing changed.
    again = [docs[0], {"sha256": document_digest(docs[1]["text"])}, docs[2]]
    second = client.post("/v1/attestations", json={"documents": again}, headers=auth(buyer))
    assert (second.json()["created"], second.json()["unchanged"]) == (0, 3)

    listed = client.get("/v1/attestations?limit=2", headers=auth(sync))
    assert listed.status_code == 200
    page = listed.json()
    assert [i["id"] for i in page["items"]] == ["s2", "s1"] and page["next_before"] is not None
    assert all(i["key_id"] and i["key_id"] in buyer for i in page["items"])
    rest = client.get(f"/v1/attestations?before={page['next_before']}", headers=auth(sync))
    assert [i["id"] for i in rest.json()["items"]] == ["brief"]
    assert rest.json()["next_before"] is None
    assert docs[1]["text"] not in listed.text
    # Another tenant sees none of them.
    other = client.get("/v1/attestations", headers=auth(keys["globex"]))
    assert other.json()["items"] == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"id": "x"}, 'give either "text"'),
        ({"text": "a", "sha256": "0" * 64}, 'give either "text"'),
        ({"sha256": "ABC"}, "sha256"),
        ({"text": "a", "note": "?"}, "note"),
        ({"text": " \n\t"}, "an empty document cannot be attested"),
        ({"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, "empty"),
    ],
)
def test_a_bad_document_is_refused_and_nothing_is_attested(
    client: TestClient, keys: dict[str, str], document: dict[str, str], problem: str
) -> None:
    body = {"documents": [{"text": "fine"}, document]}
    response = client.post("/v1/attestations", json=body, headers=auth(keys["acme"]))
    assert response.status_code == 422
    assert problem in response.json()["error"]["message"]
    listed = client.get("/v1/attestations", headers=auth(keys["acme"])).json()
    assert listed["items"] == []


def test_a_worker_holds_back_a_report_on_a_source_the_buyer_never_attested(
    client: TestClient,
    keys: dict[str, str],
    db_url: str,
    fake_llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from config.settings import get_settings

    fake_llm.default = _fooled_judge
    buyer, sync = _key(db_url, "acme", "configure"), _key(db_url, "acme", "submit")
    judge = {"name": "mini", "model": "openai/gpt-4o-mini", "api_base": fake_llm.base_url}
    # The buyer's panel is the tenant's default: the only one the integration's jobs may use.
    panel = {"name": "default", "judges": [{**judge, "max_retries": 0}]}
    panel["report_inputs"] = "attested"
    monkeypatch.setenv("OUTCOME_JUDGE_ALLOWED_API_BASES", f'["{fake_llm.base_url}"]')
    get_settings.cache_clear()
    try:
        stored = client.post("/v1/panels", json={"yaml": json.dumps(panel)}, headers=auth(buyer))
        assert stored.status_code in (200, 201), stored.text
        attested = {"documents": _buyer_documents()}
        assert client.post("/v1/attestations", json=attested, headers=auth(buyer)).is_success
        assert post(client, sync, [_forged()]).status_code == 200
        job_body = {"outcome_ids": ["R-2001"], "rubric": "report-accuracy"}
        first = client.post("/v1/verifications", json=job_body, headers=auth(sync))
        assert first.status_code == 202, first.text
        run_worker_once(db_url)
        verdict = _latest_verdict(client, sync)
        assert verdict["decision"] == "abstain" and FLAG_UNATTESTED in verdict["flags"]
        assert [r.split(" (")[0] for r in verdict["reasons"] if "attested" in r] == ["source s3"]
        calls = len(fake_llm.chat_requests())

        # The buyer attests the reconciliation: the next verification judges again (from the
        # call cache) and verifies.
        more = {"documents": [{"text": FORGED_SOURCE["text"]}]}
        assert client.post("/v1/attestations", json=more, headers=auth(buyer)).is_success
        second = client.post("/v1/verifications", json=job_body, headers=auth(sync))
        assert second.status_code == 202, second.text
        run_worker_once(db_url)
        verdict = _latest_verdict(client, sync)
        assert verdict["decision"] == "verified" and verdict["flags"] == []
        assert len(fake_llm.chat_requests()) == calls
    finally:
        get_settings.cache_clear()
    with ledger_engine(db_url) as engine, engine.connect() as conn:
        import sqlalchemy as sa

        stored_docs = conn.execute(sa.text("SELECT tenant, digest FROM attested_documents")).all()
    assert {t for t, _ in stored_docs} == {"acme"} and len(stored_docs) == 4


def _latest_verdict(client: TestClient, key: str) -> dict[str, Any]:
    detail = client.get("/v1/outcomes/R-2001", headers=auth(key))
    assert detail.status_code == 200, detail.text
    verdicts: list[dict[str, Any]] = detail.json()["verdicts"]
    return verdicts[0]


@pytest.mark.parametrize(
    "choice",
    [
        {"panel": "local"},  # the shipped local panel: it reads the confirmation the sender sets
        {"panel": "default@d1ec"},  # a version of the default other than the buyer's current
        {"rubric": "report-accuracy@0000"},
        {"rubrics": {"report": "lenient-reports"}},
    ],
)
def test_only_a_configure_key_chooses_how_a_job_is_judged(
    client: TestClient, keys: dict[str, str], db_url: str, choice: dict[str, Any]
) -> None:
    # Found in review: the integration's submit key named the panel of its jobs, so a panel
    # with report_inputs: attested (or any the buyer stored) could be walked around.
    sync = _key(db_url, "acme", "submit")
    assert post(client, sync, [_forged()]).status_code == 200
    body = {"outcome_ids": ["R-2001"], **choice}
    refused = client.post("/v1/verifications", json=body, headers=auth(sync))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert "may not choose how outcomes are judged" in error["message"]
    assert error["details"]["required_scope"] == "configure"
    # The defaults, named or not, are the tenant's to set and anyone's to use.
    for body in ({"outcome_ids": ["R-2001"]}, {"outcome_ids": ["R-2001"], "panel": "default",
                                             "rubric": "report-accuracy"}):  # fmt: skip
        assert client.post("/v1/verifications", json=body, headers=auth(sync)).status_code == 202
    # A key with configure (the buyer's, or an all-scope key) may choose; a bad name is then
    # the usual 422, not a 403.
    allowed = client.post(
        "/v1/verifications", json={"outcome_ids": ["R-2001"], **choice}, headers=auth(keys["acme"])
    )
    assert allowed.status_code in (202, 422), allowed.text

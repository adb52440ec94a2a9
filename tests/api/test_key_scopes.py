"""Key scopes: the integration of the party billed per resolution gets a key that may send
outcomes but not label them, store rubrics or panels (red-team findings F5 and F6).

With one all-powerful key per tenant, that integration embedded `label: {resolved: ...}` in
210 outcomes, each agreeing with what the panel would say, and `judge gate --db` turned
`final` (kappa 1.000 on 210 labels); and it stored its own `support-resolution` without the
`human_took_over` rule, so a ticket a person resolved was billed as `confirmed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.test_calibration_api import LOCAL_PANEL, TICKETS, cli_json, verify_into
from tests.api.test_outcomes import post


def _key(db_url: str, tenant: str, *scopes: str) -> str:
    from ledger.db import make_engine
    from ledger.tenants import issue_key

    engine = make_engine(db_url)
    try:
        return issue_key(engine, tenant, key_name="-".join(scopes), scopes=list(scopes)).key
    finally:
        engine.dispose()


def _tickets() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines()]


def test_each_scope_guards_its_writes_and_every_key_reads(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    sync, reviewer = _key(db_url, "acme", "submit"), _key(db_url, "acme", "review")
    ticket = _tickets()[0]
    assert post(client, sync, [ticket]).status_code == 200

    refused = client.post(
        "/v1/labels",
        json={"labels": [{"outcome_id": ticket["id"], "resolved": True, "by": "bot"}]},
        headers=auth(sync),
    )
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"] == {"required_scope": "review", "key_scopes": ["submit"]}
    assert "judge tenants add-key acme --scope review" in error["message"]

    rubric = Path("rubrics/support-resolution.yaml").read_text(encoding="utf-8")
    for route in ("/v1/rubrics", "/v1/panels"):
        answer = client.post(route, json={"yaml": rubric}, headers=auth(sync))
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["details"]["required_scope"] == "configure"
    jobs = client.post(
        "/v1/verifications", json={"outcome_ids": [ticket["id"]]}, headers=auth(reviewer)
    )
    assert jobs.status_code == 403 and "send outcomes or queue" in jobs.json()["error"]["message"]
    assert post(client, reviewer, [ticket]).status_code == 403

    labelled = client.post(
        "/v1/labels",
        json={"labels": [{"outcome_id": ticket["id"], "resolved": False, "by": "qa"}]},
        headers=auth(reviewer),
    )
    assert labelled.status_code == 200, labelled.text
    # Every key reads; the submitted label is kept and shown for what it is.
    for key in (sync, reviewer, keys["acme"]):
        detail = client.get(f"/v1/outcomes/{ticket['id']}", headers=auth(key))
        assert detail.status_code == 200
        assert [label["source"] for label in detail.json()["labels"]] == ["submitted", "api"]
    assert client.get("/v1/rubrics", headers=auth(sync)).status_code == 200


def test_labels_the_billed_party_embeds_do_not_calibrate_the_gate(
    client: TestClient, keys: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    sync = _key(db_url, "acme", "submit")
    tickets = _tickets()
    labelled = [t for t in tickets if t.get("label")]
    assert post(client, sync, tickets).status_code == 200
    # The panel's verdicts, recorded by the operator's CLI from the same tickets without their
    # labels (a label in the operator's own file would be the operator's, and count).
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(
        "".join(json.dumps({k: v for k, v in t.items() if k != "label"}) + "\n" for t in tickets),
        encoding="utf-8",
    )
    verify_into(db_url, tmp_path, "acme", unlabelled)

    # The gate over the sample's labels (January to April 2026), 10 of them enough.
    panel = tmp_path / "gated.yaml"
    panel.write_text(json.dumps({**LOCAL_PANEL, "gate": {"min_labels": 10, "window_days": 400}}))
    gate_args = ("gate", "--db", db_url, "--tenant", "acme", "--panel", str(panel),
                 "--now", "2026-05-01T00:00:00Z")  # fmt: skip
    gate = cli_json(*gate_args)
    assert gate["n_labels"] == gate["n_abstain"] == 0 and gate["status"] == "provisional"
    report = client.get("/v1/calibration", headers=auth(keys["acme"]))
    assert report.status_code == 422 and "label" in report.json()["error"]["message"]
    # The outcomes the panel sent to review stay in the reviewers' queue.
    abstained = {row["outcome_id"] for row in _lines(tmp_path / "acme.jsonl")
                 if row["decision"] == "abstain"}  # fmt: skip
    assert abstained & {t["id"] for t in labelled}
    assert abstained <= _queued(db_url, "acme")

    # The same outcomes and labels sent with a key that may label count at once, though
    # their unreviewed copies are already stored.
    assert post(client, keys["acme"], tickets).status_code == 200
    gate = cli_json(*gate_args)
    assert gate["n_labels"] > 0
    assert gate["n_labels"] + gate["n_abstain"] == len({t["id"] for t in labelled})
    assert not abstained & {t["id"] for t in labelled} & _queued(db_url, "acme")


def _queued(db_url: str, tenant: str) -> set[str]:
    from ledger.db import make_engine
    from ledger.review_queue import review_queue

    engine = make_engine(db_url)
    try:
        items, _ = review_queue(engine, tenant, audit_share=0.0, limit=10_000)
    finally:
        engine.dispose()
    return {item.outcome_id for item in items}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_worker_does_not_turn_submitted_labels_into_human_ones(
    client: TestClient, keys: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    # Found in review: the worker recorded each judged outcome (read back from the ledger, label
    # and all) with the default label source, so the sync key's label came back as a human one.
    from tests.api.test_jobs import run_worker_once

    sync = _key(db_url, "acme", "submit")
    tickets = _tickets()
    labelled = {t["id"] for t in tickets if t.get("label")}
    assert post(client, sync, tickets).status_code == 200
    job = client.post(
        "/v1/verifications", json={"outcome_ids": [t["id"] for t in tickets]}, headers=auth(sync)
    )
    assert job.status_code == 202, job.text
    run_worker_once(db_url)
    done = client.get(f"/v1/verifications/{job.json()['id']}", headers=auth(sync)).json()
    assert done["status"] == "done"

    panel = tmp_path / "gated.yaml"
    panel.write_text(json.dumps({**LOCAL_PANEL, "gate": {"min_labels": 10, "window_days": 400}}))
    gate = cli_json("gate", "--db", db_url, "--tenant", "acme", "--panel", str(panel),
                    "--now", "2026-05-01T00:00:00Z")  # fmt: skip
    assert gate["n_labels"] == gate["n_abstain"] == 0
    sources = set()
    for outcome_id in labelled:
        detail = client.get(f"/v1/outcomes/{outcome_id}", headers=auth(sync)).json()
        sources |= {label["source"] for label in detail["labels"]}
    assert sources == {"submitted"}
    # What the panel sent to review is still there to review.
    queued = _queued(db_url, "acme")
    abstained = {
        outcome_id
        for outcome_id in labelled
        if client.get(f"/v1/outcomes/{outcome_id}", headers=auth(sync)).json()["verdicts"][0][
            "decision"
        ]
        == "abstain"
    }
    assert abstained and abstained <= queued

"""Helpers for the end-to-end flow tests (tests/api/test_flow.py): the sample tickets as an
ingest body, a panel and a rubric on the fake model server, and polling a job over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
TICKETS = REPO / "datasets" / "tickets.jsonl"
RUBRIC = REPO / "rubrics" / "support-resolution.yaml"

#: The model name the panel's LLM judge asks the fake server for.
LLM_MODEL = "gpt-4o-mini"
PANEL_NAME = "flow-llm"
RUBRIC_NAME = "acme-support"
#: A job over 65 tickets on a fake model with no latency takes a few seconds; this bounds a hang.
JOB_TIMEOUT_S = 45.0


def tickets() -> list[dict[str, Any]]:
    """The sample tickets as JSON objects (each has an embedded ``label``)."""
    return [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines() if line]


def without_labels(
    rows: list[dict[str, Any]], *, tenant: str | None = None
) -> list[dict[str, Any]]:
    """The outcomes without their embedded labels (so every label comes from POST /v1/labels),
    re-assigned to ``tenant`` when given (an outcome naming another tenant is refused)."""
    out = []
    for row in rows:
        item = {k: v for k, v in row.items() if k != "label"}
        if tenant is not None:
            item["tenant"] = tenant
        out.append(item)
    return out


def label_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``POST /v1/labels`` items from the labels embedded in ``rows``."""
    items = []
    for row in rows:
        label = row["label"]
        items.append(
            {
                "outcome_id": row["id"],
                "resolved": label["resolved"],
                "criteria": label.get("criteria", {}),
                "by": label.get("by"),
                "at": label.get("at"),
            }
        )
    return items


def panel_yaml(base_url: str, *, name: str = PANEL_NAME) -> str:
    """A one-judge LLM panel on the fake server (one sample: one model request per outcome)."""
    return (
        f"name: {name}\n"
        "judges:\n"
        f"  - {{name: mini, model: openai/{LLM_MODEL}, api_base: '{base_url}', "
        "samples: 1, max_retries: 1, timeout: 20}\n"
    )


def rubric_yaml(*, name: str = RUBRIC_NAME) -> str:
    """The shipped support rubric stored under another name (a tenant's own rubric)."""
    text = RUBRIC.read_text(encoding="utf-8")
    renamed = text.replace("name: support-resolution", f"name: {name}", 1)
    assert renamed != text, "the shipped rubric no longer starts with `name: support-resolution`"
    return renamed


def allow_env(base_url: str) -> dict[str, str]:
    """Server environment letting a stored panel call the fake server (and nothing else)."""
    return {
        "OUTCOME_JUDGE_ALLOWED_API_BASES": json.dumps([base_url]),
        "OPENAI_API_KEY": "sk-fake-test-key",
    }


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of ``response``, asserting its status (the body is shown when it differs)."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: "
        f"{response.text[:2000]}"
    )
    return response.json()


def error_code(response: httpx.Response) -> str:
    """The ``error.code`` of an error response (asserting the documented error shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    return str(body["error"]["code"])


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = JOB_TIMEOUT_S) -> Any:
    """Poll ``GET /v1/verifications/{id}`` until the job is done or failed."""
    deadline = time.monotonic() + timeout
    job: Any = None
    while time.monotonic() < deadline:
        job = ok(client.get(f"/v1/verifications/{job_id}"))
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {job}")


def latest_decisions(client: httpx.Client, ids: list[str]) -> dict[str, str]:
    """Each outcome's newest verdict decision, read back through ``GET /v1/outcomes/{id}``."""
    decisions: dict[str, str] = {}
    for oid in ids:
        detail = ok(client.get(f"/v1/outcomes/{oid}"))
        assert detail["verdicts"], f"{oid} has no verdict after its job finished"
        decisions[oid] = detail["verdicts"][0]["decision"]  # newest first
    return decisions


def seed_verdicts(db_url: str, tenant: str, rows: list[dict[str, Any]]) -> int:
    """Record a verdict for each stored outcome of ``rows`` directly in the ledger (no judge):
    ``verified`` where the embedded label says resolved, except every fifth outcome, which
    disagrees (so agreement is neither 0 nor 1). Returns how many are ``verified``."""
    from judge.models import Outcome
    from judge.verdict import Verdict
    from ledger.db import make_engine
    from ledger.store import Ledger

    pairs = []
    for index, row in enumerate(rows):
        outcome = Outcome.model_validate(row)
        resolved = bool(row["label"]["resolved"]) != (index % 5 == 0)
        verdict = Verdict(
            outcome_id=outcome.id,
            decision="verified" if resolved else "not_verified",
            confidence=0.9,
            tier="assumed" if resolved else None,
            rubric="support-resolution@seeded",
            panel="seeded@1",
            cost_usd=0.0005,
        )
        pairs.append((outcome, verdict))
    engine = make_engine(db_url)
    try:
        Ledger(engine, tenant=tenant).record_results(pairs)
    finally:
        engine.dispose()
    return sum(1 for _, v in pairs if v.decision == "verified")

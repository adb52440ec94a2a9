"""GET /metrics: Prometheus text whose numbers match what was done, for the calling tenant only.

On SQLite and PostgreSQL (``db_url``), through the in-process client; the text is parsed with
prometheus_client's own parser, as Prometheus would read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.deps import TenantDep
from tests.api.conftest import auth, make_key

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, key: str) -> Samples:
    """Every sample of one scrape: ``(name, labels) -> value``."""
    response = client.get("/metrics", headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a series that has seen nothing is not exposed)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def app(db_url: str, keys: dict[str, str]) -> FastAPI:
    """The real app plus one route with an id in its path (to check the label is the template)."""
    from api.app import create_app

    app = create_app(db_url=db_url, embedded_worker=False)

    @app.get("/v1/probe/{item_id}")
    async def probe(item_id: str, tenant: TenantDep) -> dict[str, str]:
        return {"item": item_id, "tenant": tenant.name}

    return app


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


REQUESTS = "outcome_judge_http_requests_total"
LATENCY = "outcome_judge_http_request_duration_seconds"


def test_metrics_needs_a_key(api: TestClient) -> None:
    response = api.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_request_counts_and_latencies_match_what_was_done(
    api: TestClient, keys: dict[str, str]
) -> None:
    acme, globex = keys["acme"], keys["globex"]
    for _ in range(4):
        assert api.get("/v1/tenant", headers=auth(acme)).status_code == 200
    for item in ("a", "b", "c"):
        assert api.get(f"/v1/probe/{item}", headers=auth(acme)).status_code == 200
    for _ in range(2):
        assert api.get("/v1/tenant", headers=auth(globex)).status_code == 200
    assert api.get("/v1/tenant").status_code == 401  # no key: counted for no tenant

    seen = scrape(api, acme)
    assert value(seen, REQUESTS, route="/v1/tenant", method="GET", status="200") == 4
    # Ids do not become labels: three different paths, one series under the template.
    assert value(seen, REQUESTS, route="/v1/probe/{item_id}", method="GET", status="200") == 3
    assert not any("/v1/probe/a" in dict(labels).get("route", "") for _, labels in seen)
    assert total(seen, REQUESTS) == 7  # not the 401, not globex's, not this scrape itself
    assert value(seen, f"{LATENCY}_count", route="/v1/tenant", method="GET") == 4
    assert value(seen, f"{LATENCY}_bucket", route="/v1/tenant", method="GET", le="+Inf") == 4
    assert value(seen, f"{LATENCY}_sum", route="/v1/tenant", method="GET") > 0
    buckets = sorted(
        (float(dict(ls)["le"]), v)
        for (n, ls), v in seen.items()
        if n == f"{LATENCY}_bucket" and dict(ls)["route"] == "/v1/probe/{item_id}"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 3  # cumulative, ending at the count

    again = scrape(api, acme)  # the first scrape is counted now, under its own route
    assert value(again, REQUESTS, route="/metrics", method="GET", status="200") == 1

    theirs = scrape(api, globex)
    assert value(theirs, REQUESTS, route="/v1/tenant", method="GET", status="200") == 2
    assert total(theirs, REQUESTS) == 2
    assert not any(dict(ls).get("route") == "/v1/probe/{item_id}" for _, ls in theirs)


def _record_calls(db_url: str, tenant: str, calls: list[tuple[str, str, float, bool]]) -> None:
    """Record judge calls ``(model, status, cost_usd, cached)`` through the ledger's own API."""
    from judge.verdict import JudgeCall
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(db_url)
    try:
        Ledger(engine, tenant=tenant).record_calls(
            [
                JudgeCall(
                    outcome_id=f"o{i}",
                    judge="judge",
                    model=model,
                    cache_key=f"{tenant}-{i}",
                    prompt_digest="d",
                    status=status,  # type: ignore[arg-type]
                    error="boom" if status == "error" else None,
                    cost_usd=cost,
                    cached=cached,
                    at=datetime.now(UTC),
                )
                for i, (model, status, cost, cached) in enumerate(calls)
            ]
        )
    finally:
        engine.dispose()


def test_judge_calls_and_cost_come_from_the_ledger_per_tenant(
    api: TestClient, db_url: str, keys: dict[str, str]
) -> None:
    _record_calls(
        db_url,
        "acme",
        [
            ("openai/a", "ok", 0.125, False),
            ("openai/a", "ok", 0.25, False),
            ("openai/a", "ok", 0.0, True),
            ("openai/b", "error", 0.5, False),
        ],
    )
    _record_calls(db_url, "globex", [("openai/a", "ok", 3.0, False)] * 5)

    seen = scrape(api, keys["acme"])
    calls = "outcome_judge_judge_calls_total"
    cost = "outcome_judge_judge_cost_usd_total"
    assert total(seen, calls) == 4
    assert value(seen, calls, model="openai/a", status="ok", cached="false") == 2
    assert value(seen, calls, model="openai/a", status="ok", cached="true") == 1
    assert value(seen, calls, model="openai/b", status="error", cached="false") == 1
    assert value(seen, cost, model="openai/a") == pytest.approx(0.375)
    assert value(seen, cost, model="openai/b") == pytest.approx(0.5)  # failed attempts are billed
    assert value(seen, "outcome_judge_judge_spend_today_usd") == pytest.approx(0.875)

    theirs = scrape(api, keys["globex"])
    assert total(theirs, calls) == 5
    assert value(theirs, cost, model="openai/a") == pytest.approx(15.0)
    assert ("outcome_judge_daily_budget_usd", frozenset()) not in theirs  # no cap, no series


def _add_job(db_url: str, tenant: str, status: str, items: list[str]) -> None:
    """A job with items in the given states, written as the queue stores them."""
    import uuid

    from ledger.db import make_engine, session
    from ledger.service_tables import JobItemRow, JobRow

    engine = make_engine(db_url)
    try:
        with session(engine) as db:
            job = JobRow(
                tenant=tenant,
                job_id=f"job_{uuid.uuid4().hex[:12]}",
                status=status,
                rubrics={"ticket": "resolution"},
                panel="default",
                selection={"outcome_ids": [f"o{i}" for i in range(len(items))]},
                total=len(items),
                counts={},
            )
            db.add(job)
            db.flush()
            assert job.pk is not None
            db.add_all(
                JobItemRow(job_pk=job.pk, tenant=tenant, outcome_id=f"o{i}", status=item)
                for i, item in enumerate(items)
            )
    finally:
        engine.dispose()


def test_queue_depth_and_jobs_by_status_per_tenant(
    api: TestClient, db_url: str, keys: dict[str, str]
) -> None:
    _add_job(db_url, "acme", "running", ["pending", "pending", "done"])
    _add_job(db_url, "acme", "queued", ["pending"])
    _add_job(db_url, "acme", "done", ["done", "failed"])
    _add_job(db_url, "globex", "queued", ["pending"] * 5)

    seen = scrape(api, keys["acme"])
    assert value(seen, "outcome_judge_queue_depth") == 3
    jobs = "outcome_judge_jobs"
    assert value(seen, jobs, status="running") == 1
    assert value(seen, jobs, status="queued") == 1
    assert value(seen, jobs, status="done") == 1
    assert ("outcome_judge_jobs", frozenset({("status", "waiting")})) in seen  # zeros shown
    assert total(seen, jobs) == 3

    theirs = scrape(api, keys["globex"])
    assert value(theirs, "outcome_judge_queue_depth") == 5
    assert total(theirs, jobs) == 1


def test_rate_limited_requests_are_counted(api: TestClient, db_url: str) -> None:
    from ledger.db import make_engine
    from ledger.tenants import set_limits

    key = make_key(db_url, "tight", requests_per_minute=2, daily_budget_usd=10)
    statuses = [api.get("/v1/tenant", headers=auth(key)).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    # Raise the rate (takes effect on the next request) so the scrape itself gets a token.
    engine = make_engine(db_url)
    set_limits(engine, "tight", requests_per_minute=60_000)
    engine.dispose()
    time.sleep(0.05)

    seen = scrape(api, key)
    assert value(seen, "outcome_judge_rate_limited_requests_total") == 2
    assert value(seen, REQUESTS, route="/v1/tenant", method="GET", status="429") == 2
    assert value(seen, REQUESTS, route="/v1/tenant", method="GET", status="200") == 2
    assert value(seen, "outcome_judge_daily_budget_usd") == 10


def test_route_template_of_an_unmatched_request() -> None:
    from api.routers.metrics import UNMATCHED, route_template

    assert route_template({"type": "http", "path": "/v1/x/123"}) == UNMATCHED

"""Reads made once per request, timed for a tenant PostgreSQL's statistics have not seen.

PostgreSQL plans from statistics that ANALYZE (or autovacuum) gathers now and then. A tenant
whose rows arrived since (a first big import, a job's verdicts just written) looks empty to the
planner, which then picks plans that are quadratic in the tenant's real size: the outcome listing
took 827 ms a page at 30,000 outcomes that way, and the labelled-verdict read of an audit 3.1 s.

Not a test: run ``python bench/bench_request_reads.py [--outcomes N]`` with
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` set. In a dedicated schema with
autovacuum off, it records a small tenant and ANALYZEs, then records ``--outcomes`` verdicts
(2 % labelled) for a new tenant, and times every read below through the HTTP API (in process)
``--runs`` times: first as the statistics stand (the tenant unseen), then after an ANALYZE (the
baseline, same run). It prints the p50 of each and their ratio. No figure here is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import pg_schema  # noqa: E402
from bench_review_queue import _outcome, _verdict  # noqa: E402

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)

YEAR = "from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"


def _record(url: str, tenant: str, n: int, first: int) -> None:
    from judge.models import Label
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(url)
    try:
        ledger = Ledger(engine, tenant=tenant)
        rng = random.Random(16)
        for start in range(first, first + n, 500):
            batch = [_outcome(i) for i in range(start, min(first + n, start + 500))]
            ledger.record_results([(o, _verdict(o, rng)) for o in batch])
        for i in range(first, first + n, 50):
            ledger.record_label(f"Q-{i:07d}", Label(resolved=True, by="qa"))
    finally:
        engine.dispose()


def _reads(client: Any, key: str, engine: Any, n: int) -> dict[str, Callable[[], Any]]:
    from ledger.review_queue import review_item, review_queue

    auth = {"Authorization": f"Bearer {key}"}
    claims = [
        {"outcome_id": f"Q-{i:07d}", "claimed_at": "2025-02-01T00:00:00Z", "claim": "confirmed",
         "price_usd": "0.99"}
        for i in range(min(n, 5000))
    ]  # fmt: skip

    def get(path: str, **headers: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers={**auth, **headers})
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
            return response

        return call

    def audit() -> Any:
        response = client.post("/v1/audits", headers=auth, json={"claims": claims, "n_boot": 100})
        assert response.status_code == 201, response.text[:200]
        return response

    audit()  # one stored audit to list and read
    audit_id = client.get("/v1/audits", headers=auth).json()["items"][0]["id"]
    return {
        "review queue": lambda: review_queue(engine, "acme"),
        "review item": lambda: review_item(engine, "acme", f"Q-{n // 2:07d}"),
        "GET /v1/outcomes (first page)": get("/v1/outcomes?limit=100"),
        "GET /v1/outcomes/{id}": get(f"/v1/outcomes/Q-{n // 3:07d}"),
        "meter, by day": get(f"/v1/meters/verified-outcomes?{YEAR}&window=day"),
        "meter, by month and agent": get(
            f"/v1/meters/verified-outcomes?{YEAR}&window=month&group_by=agent"
        ),
        "cost per verified outcome": get(f"/v1/metrics/cost-per-verified-outcome?{YEAR}"),
        "GET /v1/calibration": get("/v1/calibration?seed=1"),
        "GET /v1/tenant": get("/v1/tenant"),
        "GET /v1/verifications": get("/v1/verifications"),
        f"POST /v1/audits ({len(claims):,} claims)": audit,
        "GET /v1/audits": get("/v1/audits"),
        "GET /v1/audits/{id} (HTML)": get(f"/v1/audits/{audit_id}", accept="text/html"),
    }


def _p50(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm: the first call of a path pays imports and caches, not the plan
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(base: str, n: int, runs: int) -> list[tuple[str, float, float]]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.tenants import create_tenant

    with pg_schema(base, prefix="bench_reads") as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with engine.begin() as conn:  # statistics change only when this script says so
                tables = conn.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                ).scalars()
                for table in list(tables):
                    conn.exec_driver_sql(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)')
            key = create_tenant(engine, "acme").key
            create_tenant(engine, "seen")
            _record(url, "seen", 5000, 200_000)
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
            started = time.perf_counter()
            _record(url, "acme", n, 0)
            print(f"  recorded {n:,} outcomes in {time.perf_counter() - started:.0f} s", flush=True)
            with TestClient(create_app(db_url=url, embedded_worker=False)) as client:
                reads = _reads(client, key, engine, n)
                unseen = {name: _p50(fn, runs) for name, fn in reads.items()}
                with engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
                analyzed = {name: _p50(fn, runs) for name, fn in reads.items()}
        finally:
            engine.dispose()
    return [(name, unseen[name], analyzed[name]) for name in unseen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get(
        "OUTCOME_JUDGE_TEST_PG_URL"
    )
    if not base:  # `make bench` runs every script: say why this one measured nothing
        print(
            "bench_request_reads: skipped (PostgreSQL only): set OUTCOME_JUDGE_BENCH_PG_URL (or "
            "OUTCOME_JUDGE_TEST_PG_URL), e.g. "
            "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/outcome_judge_test"
        )
        return
    print(f"reads per request, a tenant of {args.outcomes:,} outcomes, p50 of {args.runs} runs")
    rows = measure(base, args.outcomes, args.runs)
    print("| read | statistics unseen (ms) | after ANALYZE (ms) | unseen / analyzed |")
    print("|---|---:|---:|---:|")
    for name, unseen, analyzed in rows:
        print(f"| {name} | {unseen:.1f} | {analyzed:.1f} | {unseen / analyzed:.1f}x |")


if __name__ == "__main__":
    main()

"""``GET /metrics``: Prometheus text for the calling tenant; the middleware that times requests.

Every figure is the tenant's own. Request counts, latencies and rate-limited requests are counted
in each API process by :class:`RequestMetrics` (a pure ASGI middleware that :func:`install` adds),
keyed by tenant; judge calls, judge cost, today's spend, queue depth and jobs by status are read
from the ledger at scrape time, filtered by tenant. Each scrape builds its own
:class:`~prometheus_client.CollectorRegistry` holding one collector bound to the caller, so no
shared registry can ever hand one tenant another's series.

With PostgreSQL every API process adds its request counts to the database every few seconds
(:mod:`api.shared_metrics`), so a scrape answered by any of ``judge serve --workers N``'s
processes, on any host, shows the totals of all of them (the others' at most
``OUTCOME_JUDGE_METRICS_FLUSH_SECONDS`` late); the totals outlive the processes. With SQLite
the one API process counts in memory, from zero at its start. Requests that carry no valid key
(401) or never reach a route are attributed to no tenant and are not shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import EngineDep, TenantDep
from api.request_stats import RequestStats, TenantRequests
from ledger.tables import utcnow
from ledger.tenants import TenantInfo

if TYPE_CHECKING:
    from api.shared_metrics import SharedCounters

router = APIRouter(tags=["metrics"])

#: The route label of a request that matched no route (kept out of the raw path on purpose).
UNMATCHED = "<unmatched>"
#: The text format Prometheus has always accepted (our names are all plain ASCII, so the newer
#: 1.0.0 format would be byte-identical; 0.0.4 keeps older scrapers happy).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/outcomes/{outcome_id}``), never the raw path.

    Ids in raw paths would give every outcome its own time series.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestMetrics:
    """ASGI middleware: count each request and time it, for the tenant its key belongs to.

    The tenant is known only once the route's auth dependency has run
    (:func:`api.deps.current_tenant` puts it in ``request.state``), so figures are recorded after
    the response; a request without a valid key counts for no tenant.
    """

    def __init__(self, app: ASGIApp, *, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            state = scope.get("state")
            tenant = state.get("tenant") if isinstance(state, dict) else None
            if isinstance(tenant, str):
                self.stats.observe(
                    tenant,
                    route_template(scope),
                    str(scope.get("method", "")),
                    status,
                    time.perf_counter() - started,
                )


def install(app: FastAPI) -> None:
    """Measure every request of ``app`` (called once by :func:`api.app.create_app`)."""
    stats = RequestStats()
    app.state.request_stats = stats
    app.add_middleware(RequestMetrics, stats=stats)


# -- figures from the ledger ------------------------------------------------------------------


@dataclass
class LedgerFigures:
    """One tenant's ledger-side figures at scrape time."""

    #: (model, status, cached) -> (calls, cost USD)
    judge_calls: dict[tuple[str, str, str], tuple[int, Decimal]]
    pending_items: int
    jobs: dict[str, int]
    spent_today: Decimal
    budget_resets_at: datetime


def ledger_figures(engine: Engine, tenant: str, *, now: datetime) -> LedgerFigures:
    """Read the tenant's judge calls, queue and jobs (every query filtered by tenant)."""
    from ledger.db import session
    from ledger.service_tables import JobItemRow, JobRow
    from ledger.spend import spent_today
    from ledger.tables import JudgeCallRow, to_money

    calls = JudgeCallRow.__table__.c  # type: ignore[attr-defined]
    items = JobItemRow.__table__.c  # type: ignore[attr-defined]
    jobs = JobRow.__table__.c  # type: ignore[attr-defined]
    with session(engine, readonly=True) as db:
        conn = db.connection()
        call_rows = conn.execute(
            sa.select(
                calls.model,
                calls.status,
                calls.cached,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(calls.cost_usd), 0),
            )
            .where(calls.tenant == tenant)
            .group_by(calls.model, calls.status, calls.cached)
        ).all()
        pending = conn.execute(
            sa.select(sa.func.count())
            .select_from(JobItemRow.__table__)  # type: ignore[attr-defined]
            .where(items.tenant == tenant, items.status == "pending")
        ).scalar_one()
        job_rows = conn.execute(
            sa.select(jobs.status, sa.func.count())
            .where(jobs.tenant == tenant)
            .group_by(jobs.status)
        ).all()
    spent, resets_at = spent_today(engine, tenant, now=now)
    return LedgerFigures(
        judge_calls={
            (str(model), str(status), "true" if cached else "false"): (int(n), to_money(cost))
            for model, status, cached, n, cost in call_rows
        },
        pending_items=int(pending),
        jobs={str(status): int(n) for status, n in job_rows},
        spent_today=spent,
        budget_resets_at=resets_at,
    )


class TenantCollector:
    """A prometheus_client collector that yields one tenant's figures (for one scrape)."""

    def __init__(self, tenant: TenantInfo, requests: TenantRequests, figures: LedgerFigures):
        self.tenant = tenant
        self.requests = requests
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._ledger()

    def _requests(self) -> Iterable[Metric]:
        counts = CounterMetricFamily(
            "outcome_judge_http_requests",
            "API requests of this tenant, by route template, method and status (every API "
            "process of a PostgreSQL ledger; the one process of a SQLite ledger).",
            labels=["route", "method", "status"],
        )
        for (route, method, status), n in sorted(self.requests.requests.items()):
            counts.add_metric([route, method, status], n)
        yield counts
        latency = HistogramMetricFamily(
            "outcome_judge_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and method "
            "(every API process, like the request counts).",
            labels=["route", "method"],
        )
        for (route, method), hist in sorted(self.requests.latency.items()):
            latency.add_metric([route, method], hist.cumulative(), sum_value=hist.total)
        yield latency
        yield CounterMetricFamily(
            "outcome_judge_rate_limited_requests",
            "Requests of this tenant refused with 429 for exceeding its rate (every API "
            "process, like the request counts).",
            value=self.requests.rate_limited,
        )

    def _ledger(self) -> Iterable[Metric]:
        figures = self.figures
        calls = CounterMetricFamily(
            "outcome_judge_judge_calls",
            "Judge model calls recorded in the ledger (every attempt, retries and failures "
            "included), by model, status and whether the answer came from the cache.",
            labels=["model", "status", "cached"],
        )
        cost = CounterMetricFamily(
            "outcome_judge_judge_cost_usd",
            "USD of the judge calls recorded in the ledger, by model.",
            labels=["model"],
        )
        by_model: dict[str, Decimal] = {}
        for (model, status, cached), (n, usd) in sorted(figures.judge_calls.items()):
            calls.add_metric([model, status, cached], n)
            by_model[model] = by_model.get(model, Decimal(0)) + usd
        for model, usd in sorted(by_model.items()):
            cost.add_metric([model], float(usd))
        yield calls
        yield cost
        yield GaugeMetricFamily(
            "outcome_judge_judge_spend_today_usd",
            "Judge spend since 00:00 UTC today (what the daily budget is compared with).",
            value=float(figures.spent_today),
        )
        if self.tenant.daily_budget_usd is not None:
            yield GaugeMetricFamily(
                "outcome_judge_daily_budget_usd",
                "The tenant's daily judge budget; jobs wait once today's spend reaches it.",
                value=float(self.tenant.daily_budget_usd),
            )
        yield GaugeMetricFamily(
            "outcome_judge_queue_depth",
            "Outcomes of this tenant's verification jobs still waiting to be judged.",
            value=figures.pending_items,
        )
        from ledger.service_tables import JOB_STATUSES

        jobs = GaugeMetricFamily(
            "outcome_judge_jobs",
            "Verification jobs of this tenant by status.",
            labels=["status"],
        )
        # Every status, zeros included, so a series does not vanish when its count drops to 0.
        for status in JOB_STATUSES:
            jobs.add_metric([status], figures.jobs.get(status, 0))
        yield jobs


def render(tenant: TenantInfo, requests: TenantRequests, figures: LedgerFigures) -> bytes:
    """Prometheus text of one tenant, from a registry made for this scrape alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TenantCollector(tenant, requests, figures))
    return generate_latest(registry)


_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format 0.0.4.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/metrics",
    response_class=Response,
    responses=_METRICS_RESPONSES,
    summary="Prometheus metrics of the calling tenant",
)
async def get_metrics(request: Request, tenant: TenantDep, engine: EngineDep) -> Response:
    """Requests, latencies, rate-limited requests (all API processes on PostgreSQL, the other
    processes' up to `OUTCOME_JUDGE_METRICS_FLUSH_SECONDS` late), judge calls and cost, today's
    judge spend, queue depth and jobs by status (the ledger), all for this key's tenant.

    Scrape with `authorization: {type: Bearer, credentials: <key>}` in the Prometheus job.
    """
    stats: RequestStats = request.app.state.request_stats
    shared: SharedCounters | None = request.app.state.shared_counters

    def read() -> tuple[TenantRequests, LedgerFigures]:
        requests = stats.snapshot(tenant.name) if shared is None else shared.totals(tenant.name)
        return requests, ledger_figures(engine, tenant.name, now=utcnow())

    requests, figures = await asyncio.to_thread(read)
    body = render(tenant, requests, figures)
    return Response(content=body, media_type=CONTENT_TYPE)

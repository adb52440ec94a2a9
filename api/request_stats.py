"""Request counts and latency histograms per tenant, as one API process sees them.

:class:`RequestStats` is what :class:`api.routers.metrics.RequestMetrics` records into and what
``/metrics`` reads; with PostgreSQL, :mod:`api.shared_metrics` drains it into the database every
few seconds and adds the totals of every process.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the request latency histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
                break
        self.count += 1
        self.total += seconds

    def add(self, other: Histogram) -> None:
        """Add another histogram's observations (same buckets) to this one."""
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.total += other.total

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, cumulative, ending with ``+Inf`` as Prometheus expects."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(self.count)))
        return out


@dataclass
class TenantRequests:
    """A copy of one tenant's request figures (what one scrape shows)."""

    requests: dict[tuple[str, str, str], int]
    latency: dict[tuple[str, str], Histogram]
    rate_limited: int


class RequestStats:
    """Per-tenant request counters and latency histograms of this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, Counter[tuple[str, str, str]]] = {}
        self._latency: dict[str, dict[tuple[str, str], Histogram]] = {}
        self._rate_limited: Counter[str] = Counter()

    def observe(self, tenant: str, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests.setdefault(tenant, Counter())[(route, method, str(status))] += 1
            hists = self._latency.setdefault(tenant, {})
            hists.setdefault((route, method), Histogram()).observe(seconds)
            if status == 429:  # only the per-tenant rate limit answers 429
                self._rate_limited[tenant] += 1

    def snapshot(self, tenant: str) -> TenantRequests:
        with self._lock:
            hists = self._latency.get(tenant, {})
            return TenantRequests(
                requests=dict(self._requests.get(tenant, {})),
                latency={k: Histogram(list(h.buckets), h.count, h.total) for k, h in hists.items()},
                rate_limited=self._rate_limited[tenant],
            )

    def drain(self) -> dict[str, TenantRequests]:
        """Every tenant's figures, which this object forgets (shared counters write them to the
        database; :meth:`restore` takes them back when that fails)."""
        with self._lock:
            requests, latency, limited = self._requests, self._latency, self._rate_limited
            self._requests, self._latency, self._rate_limited = {}, {}, Counter()
        return {
            tenant: TenantRequests(
                requests=dict(requests.get(tenant, {})),
                latency=latency.get(tenant, {}),
                rate_limited=limited[tenant],
            )
            for tenant in set(requests) | set(latency) | set(limited)
        }

    def restore(self, drained: dict[str, TenantRequests]) -> None:
        """Add figures from :meth:`drain` back (to be written next time)."""
        with self._lock:
            for tenant, figures in drained.items():
                self._requests.setdefault(tenant, Counter()).update(figures.requests)
                hists = self._latency.setdefault(tenant, {})
                for key, hist in figures.latency.items():
                    hists.setdefault(key, Histogram()).add(hist)
                self._rate_limited[tenant] += figures.rate_limited

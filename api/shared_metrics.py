"""Request counters summed over every API process, through ``metric_counters`` (PostgreSQL).

Each process counts its requests in memory (:class:`api.routers.metrics.RequestStats`) and adds
them to the database every ``OUTCOME_JUDGE_METRICS_FLUSH_SECONDS`` (default 5), at shutdown, and
before answering a scrape (:class:`SharedCounters`). A scrape writes its process's counts, then
answers the database's totals: its own process's requests exactly, the other processes' up to
one flush interval late, and never less than an earlier scrape showed, whichever process
answered it. Latency histograms are summed bucket by bucket the same way.

If a write fails (the database does not answer) the counts stay in memory and go with the next
write: none is lost or counted twice while the process lives; a process killed with SIGKILL loses
at most its last interval's counts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator

from sqlalchemy.engine import Engine

from api.request_stats import LATENCY_BUCKETS, Histogram, RequestStats, TenantRequests
from ledger.metric_counters import Count, add_counts, read_counts

log = logging.getLogger("outcome_judge.api")

REQUESTS = "http_requests"
LATENCY_BUCKET = "http_latency_bucket"
LATENCY_COUNT = "http_latency_count"
LATENCY_SUM = "http_latency_sum"
RATE_LIMITED = "rate_limited"
_BOUNDS = {repr(bound): i for i, bound in enumerate(LATENCY_BUCKETS)}


def _labels(*values: str) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def to_counts(drained: dict[str, TenantRequests]) -> Iterator[Count]:
    """The rows of :mod:`ledger.metric_counters` that add these figures."""
    for tenant, figures in drained.items():
        for (route, method, status), n in figures.requests.items():
            yield tenant, REQUESTS, _labels(route, method, status), float(n)
        for (route, method), hist in figures.latency.items():
            for bound, n in zip(LATENCY_BUCKETS, hist.buckets, strict=True):
                if n:
                    yield tenant, LATENCY_BUCKET, _labels(route, method, repr(bound)), float(n)
            yield tenant, LATENCY_COUNT, _labels(route, method), float(hist.count)
            yield tenant, LATENCY_SUM, _labels(route, method), hist.total
        if figures.rate_limited:
            yield tenant, RATE_LIMITED, _labels(), float(figures.rate_limited)


def from_counts(rows: list[tuple[str, str, float]]) -> TenantRequests:
    """One tenant's figures from its rows (counters this version does not know are skipped)."""
    requests: Counter[tuple[str, str, str]] = Counter()
    latency: dict[tuple[str, str], Histogram] = {}
    limited = 0
    for name, raw, value in rows:
        labels = json.loads(raw)
        if name == REQUESTS and len(labels) == 3:
            requests[(labels[0], labels[1], labels[2])] += round(value)
        elif name in (LATENCY_BUCKET, LATENCY_COUNT, LATENCY_SUM) and len(labels) >= 2:
            hist = latency.setdefault((labels[0], labels[1]), Histogram())
            if name == LATENCY_COUNT:
                hist.count += round(value)
            elif name == LATENCY_SUM:
                hist.total += value
            elif len(labels) == 3 and labels[2] in _BOUNDS:
                hist.buckets[_BOUNDS[labels[2]]] += round(value)
        elif name == RATE_LIMITED:
            limited += round(value)
    return TenantRequests(requests=dict(requests), latency=latency, rate_limited=limited)


class SharedCounters:
    """Writes a process's request counts to the database and reads every process's totals."""

    def __init__(self, engine: Engine, stats: RequestStats, *, interval: float) -> None:
        self.engine = engine
        self.stats = stats
        self.interval = interval
        # One write at a time: a scrape that writes, then reads, then adds what is still in
        # memory never misses counts another write took out of memory but has not committed.
        self._writing = threading.Lock()

    def flush(self) -> int:
        """Add the counts in memory to the database; rows written. On failure they stay."""
        with self._writing:
            return self._flush()

    def _flush(self) -> int:
        drained = self.stats.drain()
        if not drained:
            return 0
        try:
            return add_counts(self.engine, to_counts(drained))
        except BaseException:
            self.stats.restore(drained)
            raise

    def totals(self, tenant: str) -> TenantRequests:
        """Every process's figures for ``tenant``, this process's up to this moment.

        This process's counts are written first, then the totals read: nothing is added from
        memory, so a scrape never shows more than the table holds, and the next scrape, whichever
        process answers it, never shows less (Prometheus would take a drop for a reset).
        """
        with self._writing:
            self._flush()
        return from_counts(read_counts(self.engine, tenant))

"""What a worker holds: its claimed batches, what each needs judged, and how they are settled.

:class:`app.worker.Worker` claims items in batches and feeds their outcomes to one continuous
verification pipeline; each :class:`Batch` counts its outcomes still being judged and, once none
is, goes to :func:`settle`, which records everything the finished batches need in a few
transactions: judge calls first (billable whatever happens next), then the verdicts (one
transaction per tenant), then the items done or failed (one transaction each).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from ledger.tables import to_money

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from judge.models import Outcome
    from judge.verdict import Verdict
    from ledger.callstore import DbCallStore
    from ledger.job_queue import ClaimedItem, ItemResult
    from ledger.records import RecordedVerdict
    from ledger.store import Ledger

__all__ = ["Batch", "GroupKey", "Settled", "settle"]

#: (tenant, outcome id, rubric ref, panel ref, content hash): what one verdict is about.
GroupKey = tuple[str, str, str, str, str]


@dataclass(eq=False)
class Batch:
    """One claimed batch while it is judged and until it is settled.

    Items are grouped by :data:`GroupKey`: the same outcome in two jobs of one batch is judged
    and recorded once, and every item of the group gets that verdict. Hashable by identity (a
    request's key names its batch).
    """

    items: Sequence[ClaimedItem]
    started: float = field(default_factory=time.perf_counter)
    groups: dict[GroupKey, list[ClaimedItem]] = field(default_factory=dict)
    #: Verdicts already on record for a group (read with the batch): reused, not judged.
    prior: dict[GroupKey, RecordedVerdict] = field(default_factory=dict)
    reused: dict[GroupKey, tuple[int, str, Decimal]] = field(default_factory=dict)
    to_record: dict[str, list[tuple[GroupKey, Outcome, Verdict]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    group_errors: dict[GroupKey, str] = field(default_factory=dict)
    permanent: dict[int, str] = field(default_factory=dict)
    transient: dict[int, str] = field(default_factory=dict)
    results: list[ItemResult] = field(default_factory=list)
    #: Rubric ref -> window_hours of the rubrics that judged (what makes their outcomes final).
    windows: dict[str, float] = field(default_factory=dict)
    #: Cache keys looked up ahead per tenant (forgotten once the batch is settled).
    cache_keys: dict[str, list[str]] = field(default_factory=dict)
    #: Outcomes of this batch still in the pipeline; at 0 the batch is ready to settle.
    remaining: int = 0

    def add_results(self, key: GroupKey, decision: str, verdict_pk: int, cost: Decimal) -> None:
        from ledger.job_queue import ItemResult

        for index, item in enumerate(self.groups[key]):
            # The cost was paid once, by the group's first item.
            paid = cost if index == 0 else Decimal(0)
            self.results.append(ItemResult(item.item_pk, decision, verdict_pk, paid))

    def reuse(self, key: GroupKey) -> Verdict | None:
        """The verdict on record for ``key`` (the resume rule), remembered as reused."""
        prior = self.prior.get(key)
        if prior is None:
            return None
        # A worker recorded this verdict and died before marking the item: reuse it.
        self.reused[key] = (
            prior.verdict_pk,
            prior.verdict.decision,
            to_money(prior.verdict.cost_usd),
        )
        return prior.verdict


@dataclass
class Settled:
    """What one settlement did (the worker adds it to its stats)."""

    done: int = 0
    failed: int = 0
    retried: int = 0


async def settle(
    batches: Sequence[Batch],
    *,
    engine: Engine,
    worker_id: str,
    lease_seconds: float,
    max_attempts: int,
    stores: Mapping[str, DbCallStore],
    ledgers: Mapping[str, Ledger],
) -> Settled:
    """Record the finished batches' judge calls and verdicts, then mark their items.

    Items whose lease was lost meanwhile are another worker's now: it reuses or writes their
    verdict, so none is written for them here (writing it as well would make two).
    """
    from ledger.job_queue import complete, fail, renew

    for batch in batches:
        for key, message in batch.group_errors.items():
            for item in batch.groups[key]:
                batch.transient[item.item_pk] = message
        for key, (verdict_pk, decision, cost) in batch.reused.items():
            batch.add_results(key, decision, verdict_pk, cost)
    # The calls made are on record before any verdict (and billable even if the rest fails).
    for store in stores.values():
        await store.aflush()
    entries: dict[str, list[tuple[Batch, GroupKey, Outcome, Verdict]]] = defaultdict(list)
    windows: dict[str, float] = {}
    for batch in batches:
        windows.update(batch.windows)
        for tenant, recorded in batch.to_record.items():
            entries[tenant].extend(
                (batch, key, outcome, verdict) for key, outcome, verdict in recorded
            )
    candidates = [i.item_pk for e in entries.values() for b, k, _, _ in e for i in b.groups[k]]
    kept = (
        await asyncio.to_thread(renew, engine, worker_id, candidates, lease_seconds=lease_seconds)
        if candidates
        else set()
    )
    for tenant, tenant_entries in entries.items():
        owned = [e for e in tenant_entries if all(i.item_pk in kept for i in e[0].groups[e[1]])]
        if not owned:
            continue
        written = await asyncio.to_thread(
            # The outcomes came from the ledger: their labels were stored at ingest, with the
            # source the sender's key allowed; none is written again here.
            partial(ledgers[tenant].record_results, windows=windows, embedded_labels=False),
            [(outcome, verdict) for _, _, outcome, verdict in owned],
        )
        for (batch, key, _, verdict), result in zip(owned, written, strict=True):
            # The decision stored: the ledger holds a verified rewrite of a conversation.
            batch.add_results(
                key, result.verdict.decision, result.verdict_pk, to_money(verdict.cost_usd)
            )
    outcome = Settled()
    results = [r for batch in batches for r in batch.results]
    if results:
        outcome.done = await asyncio.to_thread(complete, engine, worker_id, results)
    permanent = {pk: m for batch in batches for pk, m in batch.permanent.items()}
    if permanent:
        outcome.failed += await asyncio.to_thread(
            fail, engine, worker_id, permanent, permanent=True
        )
    transient = {pk: m for batch in batches for pk, m in batch.transient.items()}
    if transient:
        retried = await asyncio.to_thread(
            fail, engine, worker_id, transient, max_attempts=max_attempts
        )
        outcome.failed += retried
        outcome.retried = len(transient) - retried
    return outcome

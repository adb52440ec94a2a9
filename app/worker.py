"""The verification worker: claims job items, judges them, records the verdicts, marks items done.

Runs inside the API process (``judge serve`` on SQLite: the embedded worker) or on its own
(``judge worker``; any number of them on one PostgreSQL). One loop:

1. bring the tenants' daily budgets up to date (:func:`ledger.jobs.refresh_budgets`);
2. claim a batch of items under a lease (:func:`ledger.job_queue.claim`);
3. resolve each item's rubric and panel names (:mod:`ledger.documents`), load the batch's
   outcomes (their latest revisions, one query per tenant), and judge them through the one
   verification pipeline (:func:`judge.runner.verify_requests`, the same as ``judge verify``,
   with the same resume rule, :meth:`ledger.store.Ledger.recorded_verdict`: a verdict on exactly
   that content by that rubric and panel is reused, never paid for twice);
4. write the judge calls, then the verdicts (one transaction), then mark the items done.

Crash safety: judge calls are served from the ledger (:class:`ledger.callstore.DbCallStore`, a
cache by model, rubric, prompt, content and sample), so an item re-claimed after its worker died
costs no second call for what was already recorded, and a recorded verdict is reused, never
written twice. A heartbeat renews the lease while a batch is being judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from app.export.schedule import ExportScheduler
from app.verification import recorded_verdict
from judge import model_client
from judge.runner import Request, RunSummary, verify_requests
from judge.yamlsafe import LocatedError
from ledger.partition_upkeep import UPKEEP_SECONDS
from ledger.tables import to_money

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from config.settings import Settings
    from judge.engine import Engine as JudgeEngine
    from judge.models import Outcome
    from judge.panel import Panel
    from judge.rubric import Rubric
    from judge.verdict import JudgeCall, Verdict
    from ledger.callstore import DbCallStore
    from ledger.job_queue import ClaimedItem, ItemResult
    from ledger.store import Ledger

log = logging.getLogger("outcome_judge.worker")

#: Seconds a resolved rubric/panel set is reused before it is looked up again (a tenant may
#: store a new version of a panel; rubric names in jobs are pinned to a version).
RESOLVE_TTL_SECONDS = 10.0
#: Judge engines kept per worker (one per tenant, rubric versions and panel version).
ENGINE_CACHE_SIZE = 32


class _StoreProxy:
    """The call store an engine is built with; each batch points it at a fresh DbCallStore.

    A fresh store per batch matters: :class:`DbCallStore` skips ledger look-ups when the tenant
    had no calls when it first looked, which is only true for work it did itself; another
    worker's recorded calls (a dead worker's) must be found.
    """

    def __init__(self) -> None:
        self.inner: DbCallStore | None = None

    def _store(self) -> DbCallStore:
        assert self.inner is not None, "the worker sets a call store before judging"
        return self.inner

    async def lookup(self, cache_key: str) -> JudgeCall | None:
        return await self._store().lookup(cache_key)

    async def begin(self, call: JudgeCall) -> None:
        await self._store().begin(call)

    async def record(self, call: JudgeCall) -> None:
        await self._store().record(call)


@dataclass
class _Prepared:
    engine: JudgeEngine
    proxy: _StoreProxy
    rubrics: dict[str, Rubric]
    panel: Panel


@dataclass
class WorkerStats(RunSummary):
    """What a worker did since it started: the pipeline's :class:`RunSummary` and the queue's work.

    ``outcomes``, ``decisions``, ``resumed``, ``judge_cost_usd`` ... count verdicts as in ``judge
    verify`` (an outcome judged for two jobs of one batch counts once); ``done`` counts items.
    """

    batches: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0

    def __str__(self) -> str:
        return (
            f"{self.batches} batch(es), {self.done} item(s) done, {self.failed} failed, "
            f"{self.retried} to retry, {self.released} released; {self.outcomes} verdict(s) "
            f"({self.resumed} reused), {self.verified} verified, judge cost "
            f"${self.judge_cost_usd:.6f}"
        )


GroupKey = tuple[str, str, str, str, str]


@dataclass
class _Batch:
    """Outcomes of one claimed batch: what to record and what to mark.

    Items are grouped by (tenant, outcome, rubric, panel, content): the same outcome in two jobs
    of one batch is judged and recorded once, and every item of the group gets that verdict.
    """

    groups: dict[GroupKey, list[ClaimedItem]] = field(default_factory=dict)
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

    def add_results(self, key: GroupKey, decision: str, verdict_pk: int, cost: Decimal) -> None:
        from ledger.job_queue import ItemResult

        for index, item in enumerate(self.groups[key]):
            # The cost was paid once, by the group's first item.
            paid = cost if index == 0 else Decimal(0)
            self.results.append(ItemResult(item.item_pk, decision, verdict_pk, paid))


def resolve_documents(
    engine: Engine, tenant: str, rubrics_by_kind: Mapping[str, str], panel: str
) -> tuple[dict[str, Rubric], Panel]:
    """The rubric for each kind named and the panel of a job, as the tenant sees them.

    Raises :class:`ledger.documents.DocumentError` (a ValueError) naming what is unknown.
    """
    from ledger.documents import resolve_panel, resolve_rubrics

    rubrics = resolve_rubrics(engine, tenant, dict(rubrics_by_kind), list(rubrics_by_kind))
    return rubrics, resolve_panel(engine, tenant, panel)


def default_worker_id() -> str:
    """``host:pid``: unique per process, and says where to look when an item fails."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


class Worker:
    """One verification worker over the ledger at ``engine``.

    Parameters
    ----------
    engine
        A migrated ledger engine (SQLite or PostgreSQL).
    worker_id
        The lease owner name (default ``host:pid``); unique among running workers.
    concurrency
        Outcomes judged at once (default ``OUTCOME_JUDGE_CONCURRENCY``).
    batch
        Items per claim (default ``OUTCOME_JUDGE_WORKER_BATCH``).
    lease_seconds
        How long a claim lasts without a heartbeat (default ``OUTCOME_JUDGE_LEASE_SECONDS``).
    poll_seconds
        Wait between claims when the queue is empty (``OUTCOME_JUDGE_WORKER_POLL_SECONDS``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        batch: int | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
        max_attempts: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        from config.settings import get_settings
        from ledger.job_queue import DEFAULT_MAX_ATTEMPTS

        settings = settings or get_settings()
        self.engine = engine
        self.worker_id = (worker_id or default_worker_id())[:100]
        self.concurrency = concurrency or settings.concurrency
        self.batch = batch or settings.worker_batch
        self.lease_seconds = lease_seconds or settings.lease_seconds
        self.poll_seconds = poll_seconds or settings.worker_poll_seconds
        self.max_attempts = max_attempts or DEFAULT_MAX_ATTEMPTS
        if self.concurrency < 1 or self.batch < 1:
            raise ValueError("concurrency and batch must be at least 1")
        self.stats = WorkerStats()
        self._engines: OrderedDict[tuple[Any, ...], _Prepared] = OrderedDict()
        self._resolved: dict[tuple[Any, ...], tuple[float, dict[str, Rubric], Panel]] = {}
        self._ledgers: dict[str, Ledger] = {}
        self.exports = ExportScheduler(engine, settings.exports) if settings.exports else None

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> WorkerStats:
        """Claim and judge until ``stop`` is set (or, with ``once``, until nothing is claimable).

        A batch in progress when ``stop`` is set is finished; if the task is cancelled instead,
        its unfinished items are released for another worker.
        """
        from ledger.job_queue import claim
        from ledger.jobs import refresh_budgets

        log.info(
            "worker %s started (batch %d, concurrency %d, lease %.0f s)",
            self.worker_id,
            self.batch,
            self.concurrency,
            self.lease_seconds,
        )
        last_refresh = last_settle = last_upkeep = float("-inf")
        while not stop.is_set():
            try:
                if time.monotonic() - last_upkeep >= UPKEEP_SECONDS:
                    await self._partition_upkeep()  # a partitioned PostgreSQL ledger only
                    last_upkeep = time.monotonic()
                if time.monotonic() - last_refresh >= self.poll_seconds:
                    await asyncio.to_thread(refresh_budgets, self.engine)
                    last_refresh = time.monotonic()
                if time.monotonic() - last_settle >= self.lease_seconds:
                    await self._settle_pending_calls()
                    last_settle = time.monotonic()
                if self.exports is not None and self.exports.due():
                    # Scheduled exports (OUTCOME_JUDGE_EXPORTS): logged, never fatal.
                    await asyncio.to_thread(self.exports.run_due)
                items = await asyncio.to_thread(
                    claim,
                    self.engine,
                    self.worker_id,
                    batch=self.batch,
                    lease_seconds=self.lease_seconds,
                    max_attempts=self.max_attempts,
                )
            except Exception as exc:  # the database went away: keep trying, say so
                log.error("worker %s: claiming failed: %s", self.worker_id, _short(exc))
                items = []
                if once:
                    raise
            if items:
                await self.process(items)
                continue
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
        log.info("worker %s stopped: %s", self.worker_id, self.stats)
        return self.stats

    async def process(self, items: Sequence[ClaimedItem]) -> None:
        """Judge one claimed batch and record everything (see the module docstring)."""
        from ledger.job_queue import release

        started = time.perf_counter()
        held = {item.item_pk for item in items}
        heartbeat = asyncio.create_task(self._heartbeat(held))
        try:
            settled = await self._judge_batch(items)
            await self._settle(settled)
        except asyncio.CancelledError:
            # Items already done or failed are not pending any more: release skips them.
            self.stats.released += await asyncio.to_thread(
                release, self.engine, self.worker_id, [item.item_pk for item in items]
            )
            raise
        except Exception as exc:
            # Not the items' fault (the database failed mid-batch): let them be retried.
            log.error("worker %s: batch failed: %s", self.worker_id, _short(exc))
            await self._retry_all(items, exc)
            return
        finally:
            heartbeat.cancel()
        self.stats.batches += 1
        jobs = sorted({item.job_id for item in items})
        log.info(
            "worker %s: %d item(s) of %s: %d done (%d reused a recorded verdict), %d failed, "
            "%d to retry in %.2f s",
            self.worker_id,
            len(items),
            ", ".join(jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""),
            len(settled.results),
            len(settled.reused),
            len(settled.permanent),
            len(settled.transient),
            time.perf_counter() - started,
        )

    async def _retry_all(self, items: Sequence[ClaimedItem], exc: BaseException) -> None:
        from ledger.job_queue import fail

        try:
            errors = {item.item_pk: _short(exc) for item in items}
            self.stats.failed += await asyncio.to_thread(
                fail, self.engine, self.worker_id, errors, max_attempts=self.max_attempts
            )
        except Exception as again:  # the lease expires and another worker takes them
            log.error("worker %s: could not give the batch back: %s", self.worker_id, _short(again))

    async def _heartbeat(self, held: set[int]) -> None:
        """Renew the lease on the batch every third of a lease, while it is being judged."""
        from ledger.job_queue import renew

        while held:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                kept = await asyncio.to_thread(
                    renew, self.engine, self.worker_id, list(held), lease_seconds=self.lease_seconds
                )
            except Exception as exc:
                log.warning("worker %s: lease renewal failed: %s", self.worker_id, _short(exc))
                continue
            lost = held - kept
            if lost:
                log.warning(
                    "worker %s: lost the lease on %d item(s); another worker has them",
                    self.worker_id,
                    len(lost),
                )
                held.intersection_update(kept)

    async def _partition_upkeep(self) -> None:
        """Next months' partitions before their rows arrive (ledger.partition_upkeep); a failure
        (a table lock not granted within its timeout) is logged and tried again next round."""
        from ledger.partition_upkeep import ensure_partitions

        try:
            report = await asyncio.to_thread(ensure_partitions, self.engine)
        except Exception as exc:
            log.warning("worker %s: partition upkeep failed: %s", self.worker_id, _short(exc))
            return
        if report.created:
            log.info("worker %s: created partitions %s", self.worker_id, ", ".join(report.created))
        for name in report.blocked:
            log.warning(
                "worker %s: partition %s not created: its rows are in the DEFAULT partition; "
                "run judge db partition --move-default",
                self.worker_id,
                name,
            )

    async def _settle_pending_calls(self) -> None:
        """Book the calls a dead worker left in flight as unknown (at their estimated cost)."""
        from ledger.callstore import settle_pending

        settled = await asyncio.to_thread(settle_pending, self.engine)
        if settled.calls:
            log.warning(
                "worker %s: %d judge call(s) of %d outcome(s) left in flight by a stopped worker "
                "settled as unknown at an estimated $%.6f",
                self.worker_id,
                settled.calls,
                settled.outcomes,
                settled.estimated_cost_usd,
            )

    # -- judging --------------------------------------------------------------------------------

    async def _judge_batch(self, items: Sequence[ClaimedItem]) -> _Batch:
        from ledger.callstore import DbCallStore

        batch = _Batch()
        stores: dict[str, DbCallStore] = {}
        prepared_items: list[tuple[ClaimedItem, _Prepared]] = []
        for item in items:
            try:
                prepared = await self._prepare(item)
            except (ValueError, LocatedError) as exc:
                # An unknown or refused rubric/panel: retrying cannot help.
                batch.permanent[item.item_pk] = str(exc)[:2000]
                continue
            if item.tenant not in stores:
                stores[item.tenant] = DbCallStore(self.engine, tenant=item.tenant)
            # A call belongs to the job of the first item judging its outcome (its cost too).
            stores[item.tenant].job_for.setdefault(item.outcome_id, item.job_pk)
            prepared.proxy.inner = stores[item.tenant]
            prepared_items.append((item, prepared))
        try:
            requests = await self._requests(prepared_items, batch)
            await verify_requests(
                requests,
                sink=partial(self._collect, batch),
                concurrency=self.concurrency,
                lookup=partial(self._recorded, batch),
                on_error=partial(self._group_failed, batch),
                summary=self.stats,
            )
        finally:
            # Calls made are on record before any verdict (and billable even if the batch fails).
            for store in stores.values():
                await store.aflush()
        return batch

    async def _requests(
        self, prepared_items: Sequence[tuple[ClaimedItem, _Prepared]], batch: _Batch
    ) -> list[Request[GroupKey]]:
        """One request per (tenant, outcome, rubric, panel, content) group of the batch's items."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for item, _ in prepared_items:
            wanted[item.tenant].add(item.outcome_id)
        loaded: dict[str, dict[str, Outcome]] = {}
        for tenant, outcome_ids in wanted.items():
            loaded[tenant] = await asyncio.to_thread(
                self._ledger(tenant).latest_outcomes, outcome_ids
            )
        requests: list[Request[GroupKey]] = []
        for item, prepared in prepared_items:
            outcome = loaded[item.tenant].get(item.outcome_id)
            if outcome is None:
                batch.permanent[item.item_pk] = f"outcome {item.outcome_id!r} is not stored"
                continue
            rubric = prepared.rubrics.get(outcome.kind)
            if rubric is None:
                batch.permanent[item.item_pk] = (
                    f"outcome {item.outcome_id!r} is a {outcome.kind} but the job names no rubric "
                    "for that kind"
                )
                continue
            key: GroupKey = (
                item.tenant,
                item.outcome_id,
                rubric.ref,
                prepared.panel.ref,
                outcome.content_hash(),
            )
            if key in batch.groups:
                batch.groups[key].append(item)
                continue
            batch.groups[key] = [item]
            requests.append(Request(outcome, prepared.engine, key))
        return requests

    async def _recorded(self, batch: _Batch, request: Request[GroupKey]) -> Verdict | None:
        """The resume rule of ``judge verify``: a verdict on record for exactly this is reused."""
        prior = await recorded_verdict(self._ledger(request.key[0]), request)
        if prior is None:
            return None
        # A worker recorded this verdict and died before marking the item: reuse it.
        batch.reused[request.key] = (
            prior.verdict_pk,
            prior.verdict.decision,
            to_money(prior.verdict.cost_usd),
        )
        return prior.verdict

    async def _collect(
        self, batch: _Batch, request: Request[GroupKey], verdict: Verdict, resumed: bool
    ) -> None:
        if resumed:
            return
        tenant, _, rubric_ref, _, _ = request.key
        batch.windows[rubric_ref] = request.engine.rubric_for(request.outcome).window_hours
        batch.to_record[tenant].append((request.key, request.outcome, verdict))

    @staticmethod
    def _group_failed(batch: _Batch, request: Request[GroupKey], exc: Exception) -> None:
        batch.group_errors[request.key] = f"{type(exc).__name__}: {exc}"[:2000]

    async def _prepare(self, item: ClaimedItem) -> _Prepared:
        from judge.engine import Engine as JudgeEngine

        key = (item.tenant, tuple(sorted(item.rubrics.items())), item.panel)
        cached = self._resolved.get(key)
        if cached is None or time.monotonic() - cached[0] > RESOLVE_TTL_SECONDS:
            rubrics, panel = await asyncio.to_thread(
                resolve_documents, self.engine, item.tenant, item.rubrics, item.panel
            )
            self._resolved[key] = (time.monotonic(), rubrics, panel)
        else:
            _, rubrics, panel = cached
        engine_key = (item.tenant, tuple(sorted((k, r.ref) for k, r in rubrics.items())), panel.ref)
        prepared = self._engines.get(engine_key)
        if prepared is None:
            if panel.has_llm:
                # litellm takes seconds to import: not on the event loop the API serves from.
                await asyncio.to_thread(model_client.warm_up)
            proxy = _StoreProxy()
            judge_engine = await asyncio.to_thread(JudgeEngine, panel, rubrics, store=proxy)
            prepared = _Prepared(judge_engine, proxy, rubrics, panel)
            self._engines[engine_key] = prepared
            while len(self._engines) > ENGINE_CACHE_SIZE:
                self._engines.popitem(last=False)
        self._engines.move_to_end(engine_key)
        return prepared

    def _ledger(self, tenant: str) -> Ledger:
        from ledger.store import Ledger

        if tenant not in self._ledgers:
            self._ledgers[tenant] = Ledger(self.engine, tenant=tenant)
        return self._ledgers[tenant]

    async def _settle(self, batch: _Batch) -> None:
        """Record the verdicts, then mark the items done or failed."""
        from ledger.job_queue import complete, fail, renew

        for key, message in batch.group_errors.items():
            for item in batch.groups[key]:
                batch.transient[item.item_pk] = message
        for key, (verdict_pk, decision, cost) in batch.reused.items():
            batch.add_results(key, decision, verdict_pk, cost)
        candidates = [
            i.item_pk for e in batch.to_record.values() for k, _, _ in e for i in batch.groups[k]
        ]
        kept = await asyncio.to_thread(
            renew, self.engine, self.worker_id, candidates, lease_seconds=self.lease_seconds
        )
        for tenant, entries in batch.to_record.items():
            # Items whose lease was lost are another worker's now: it reuses or writes the
            # verdict; writing it here as well would make two.
            entries = [e for e in entries if all(i.item_pk in kept for i in batch.groups[e[0]])]
            if not entries:
                continue
            recorded = await asyncio.to_thread(
                partial(self._ledger(tenant).record_results, windows=batch.windows),
                [(outcome, verdict) for _, outcome, verdict in entries],
            )
            for (key, _, verdict), result in zip(entries, recorded, strict=True):
                batch.add_results(
                    key, verdict.decision, result.verdict_pk, to_money(verdict.cost_usd)
                )
        done = await asyncio.to_thread(complete, self.engine, self.worker_id, batch.results)
        self.stats.done += done
        failed = 0
        if batch.permanent:
            failed += await asyncio.to_thread(
                fail, self.engine, self.worker_id, batch.permanent, permanent=True
            )
        if batch.transient:
            retried = await asyncio.to_thread(
                fail, self.engine, self.worker_id, batch.transient, max_attempts=self.max_attempts
            )
            failed += retried
            self.stats.retried += len(batch.transient) - retried
        self.stats.failed += failed


def _short(exc: BaseException) -> str:
    """One line about an error (never a URL with a password: the driver's text is cut)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}"


async def run_worker_loop(
    engine: Engine,
    *,
    stop: asyncio.Event,
    worker_id: str | None = None,
    concurrency: int | None = None,
    once: bool = False,
    batch: int | None = None,
) -> None:
    """Run a :class:`Worker` until ``stop`` is set (``once``: until nothing is claimable)."""
    # litellm takes seconds to import: pay it at start-up, in a thread, not on the first job.
    await asyncio.to_thread(model_client.warm_up)
    worker = Worker(engine, worker_id=worker_id, concurrency=concurrency, batch=batch)
    await worker.run(stop, once=once)

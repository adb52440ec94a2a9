"""The verification worker: claims job items, judges them, records the verdicts, marks items done.

Runs inside the API process (``judge serve`` on SQLite: the embedded worker) or on its own
(``judge worker``; any number of them on one PostgreSQL). litellm is imported before the first
claim (it takes seconds, which would otherwise count against the first items' lease). Then:

1. every poll interval, bring the tenants' daily budgets up to date
   (:func:`ledger.jobs.refresh_budgets`);
2. claim a batch of items under a lease (:func:`ledger.job_queue.claim`) whenever fewer than
   ``concurrency + batch`` outcomes are in hand, so the next batch is claimed and read while
   the current ones are judged and the judges never wait for the database;
3. read what the batch needs in one query each: its outcomes (their latest revisions), the
   verdicts already on record for them (the resume rule of ``judge verify``,
   :meth:`ledger.store.Ledger.recorded_verdict`: a verdict on exactly that content by that rubric
   and panel is reused, never paid for twice) and the judge calls on record for their cache keys
   (:meth:`ledger.callstore.DbCallStore.prefetch`);
4. feed the outcomes to the one verification pipeline (:func:`judge.runner.verify_requests`, the
   same as ``judge verify``), which keeps ``concurrency`` outcomes in flight across batches;
5. once every outcome of a batch is judged, settle it with the batches finished meanwhile
   (:func:`app.worker_batches.settle`): judge calls, then verdicts, then items done.

Crash safety: judge calls are served from the ledger (one :class:`ledger.callstore.DbCallStore`
per tenant for the process's life: a cache by model, rubric, prompt, content and sample), so an
item re-claimed after its worker died costs no second call for what was already recorded, and a
recorded verdict is reused, never written twice. A heartbeat renews the lease on every item in
hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.export.schedule import ExportScheduler
from app.worker_batches import Batch, GroupKey, settle
from app.worker_upkeep import partition_upkeep, settle_pending_calls, short_error
from judge import model_client
from judge.runner import Request, RunSummary, verify_requests
from judge.yamlsafe import LocatedError
from ledger.partition_upkeep import UPKEEP_SECONDS

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from config.settings import Settings
    from judge.engine import Engine as JudgeEngine
    from judge.models import Outcome
    from judge.panel import Panel
    from judge.rubric import Rubric
    from judge.screen_pool import ScreenPool
    from judge.verdict import Verdict
    from ledger.callstore import DbCallStore
    from ledger.job_queue import ClaimedItem
    from ledger.store import Ledger

log = logging.getLogger("outcome_judge.worker")

#: Seconds a resolved rubric/panel set is reused before it is looked up again (a tenant may
#: store a new version of a panel; rubric names in jobs are pinned to a version).
RESOLVE_TTL_SECONDS = 10.0
#: Judge engines kept per worker (one per tenant, rubric versions and panel version).
ENGINE_CACHE_SIZE = 32


@dataclass
class _Prepared:
    engine: JudgeEngine
    rubrics: dict[str, Rubric]
    panel: Panel
    #: The engine's attested digests (``report_inputs: attested`` only): those of the reports
    #: seen so far that the tenant attested, read with each batch (:meth:`Worker._attested`).
    attested: set[str] | None = None


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


#: A request's key: the batch it belongs to and its group in that batch.
_Key = tuple[Batch, GroupKey]


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
        # One call store per tenant for the process's life (see DbCallStore.prefetch).
        self._stores: dict[str, DbCallStore] = {}
        # Outcomes of a tenant in hand, per outcome: its calls are billed to the first job.
        self._in_hand: Counter[tuple[str, str]] = Counter()
        self._held: set[int] = set()  # items leased and not settled yet
        self._in_pipeline = 0  # outcomes handed to the pipeline and not judged yet
        self._open = 0  # batches claimed and not settled yet
        self._changed: asyncio.Event | None = None
        self._ready: asyncio.Queue[Batch | None] | None = None
        self._screen_pool: ScreenPool | None = None  # while run() runs
        # The claim in its thread, if one is under way: a cancelled worker waits for it, so
        # that items it leases after the cancel are given back too (not left until their lease
        # runs out).
        self._claiming: asyncio.Future[list[ClaimedItem]] | None = None
        self.exports = ExportScheduler(engine, settings.exports) if settings.exports else None

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> WorkerStats:
        """Claim and judge until ``stop`` is set (or, with ``once``, until nothing is claimable).

        The items in hand when ``stop`` is set are finished; if the task is cancelled instead,
        the unfinished ones are released for another worker.
        """
        from app.screen_processes import beside_the_loop

        # Imports and the screen's build take seconds: paid now, not in the first lease nor on
        # the loop. A job's panel is known only once claimed: the call process starts anyway.
        async with beside_the_loop(has_llm=True, warm_up=_warm_up) as beside:
            self._screen_pool = beside.screen_pool
            self.stats.call_processes = beside.call_processes
            try:
                return await self._run(stop, once=once)
            finally:
                self.stats.call_processes = beside.call_processes

    async def _run(self, stop: asyncio.Event, *, once: bool) -> WorkerStats:
        from ledger.job_queue import release

        pool = self._screen_pool
        log.info(
            "worker %s started (batch %d, concurrency %d, lease %.0f s, screening processes %d, "
            "call processes %d)",
            self.worker_id,
            self.batch,
            self.concurrency,
            self.lease_seconds,
            0 if pool is None else pool.processes,
            self.stats.call_processes,
        )
        self._changed = asyncio.Event()
        self._ready = asyncio.Queue()
        settler = asyncio.create_task(self._settler())
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await verify_requests(
                self._feed(stop, once=once),
                sink=self._collect,
                concurrency=self.concurrency,
                lookup=self._recorded,
                on_error=self._group_failed,
                summary=self.stats,
                ordered=False,
            )
            self._ready.put_nowait(None)
            await asyncio.shield(settler)
        except BaseException as exc:  # cancelled, or (with once) the queue could not be read
            settler.cancel()
            # Calls already made are billable: on record before the items go back.
            for store in self._stores.values():
                with contextlib.suppress(Exception):
                    await store.aflush()
            # A claim under way when cancelled still leases its items, in its thread.
            if self._claiming is not None:
                with contextlib.suppress(Exception):
                    self._held.update(item.item_pk for item in await self._claiming)
            # Items already done or failed are not pending any more: release skips them.
            try:
                self.stats.released += await asyncio.to_thread(
                    release, self.engine, self.worker_id, sorted(self._held)
                )
            except Exception as again:  # their leases run out and another worker takes them
                log.error(
                    "worker %s: could not give items back: %s", self.worker_id, short_error(again)
                )
            raise exc
        finally:
            heartbeat.cancel()
        log.info("worker %s stopped: %s", self.worker_id, self.stats)
        return self.stats

    async def _feed(self, stop: asyncio.Event, *, once: bool) -> AsyncIterator[Request[_Key]]:
        """The pipeline's source: claims a batch whenever there is room for one, until stopped."""
        from ledger.job_queue import claim
        from ledger.jobs import refresh_budgets

        last_refresh = last_settle = last_upkeep = float("-inf")
        while not stop.is_set():
            if self._in_pipeline >= self.concurrency + self.batch:
                await self._wait(stop)  # enough in hand: wait for an outcome to finish
                continue
            try:
                if time.monotonic() - last_upkeep >= UPKEEP_SECONDS:
                    # A partitioned PostgreSQL ledger only.
                    await partition_upkeep(self.engine, self.worker_id)
                    last_upkeep = time.monotonic()
                if time.monotonic() - last_refresh >= self.poll_seconds:
                    await asyncio.to_thread(refresh_budgets, self.engine)
                    last_refresh = time.monotonic()
                if time.monotonic() - last_settle >= self.lease_seconds:
                    await settle_pending_calls(self.engine, self.worker_id)
                    last_settle = time.monotonic()
                if self.exports is not None and self.exports.due():
                    # Scheduled exports (OUTCOME_JUDGE_EXPORTS): logged, never fatal.
                    await asyncio.to_thread(self.exports.run_due)
                self._claiming = asyncio.ensure_future(
                    asyncio.to_thread(
                        claim,
                        self.engine,
                        self.worker_id,
                        batch=self.batch,
                        lease_seconds=self.lease_seconds,
                        max_attempts=self.max_attempts,
                    )
                )
                items = await asyncio.shield(self._claiming)
                self._claiming = None
            except Exception as exc:  # the database went away: keep trying, say so
                log.error("worker %s: claiming failed: %s", self.worker_id, short_error(exc))
                items = []
                if once:
                    raise
            if items:
                for request in await self._open_batch(items):
                    yield request
                continue
            if once and self._open == 0:
                break  # nothing claimable and nothing in hand
            # Nothing to claim: wait for the poll interval (with once: for a batch to settle,
            # which may give items back to the queue to retry).
            await self._wait(stop, timeout=None if once else self.poll_seconds)

    async def _wait(self, stop: asyncio.Event, timeout: float | None = None) -> None:
        """Until something in hand changes (an outcome judged, a batch settled), ``stop`` is
        set or ``timeout`` seconds pass."""
        assert self._changed is not None
        self._changed.clear()
        waits = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _heartbeat(self) -> None:
        """Renew the lease on every item in hand every third of a lease."""
        from ledger.job_queue import renew

        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = sorted(self._held)
            if not held:
                continue
            try:
                kept = await asyncio.to_thread(
                    renew, self.engine, self.worker_id, held, lease_seconds=self.lease_seconds
                )
            except Exception as exc:
                log.warning("worker %s: lease renewal failed: %s", self.worker_id, short_error(exc))
                continue
            lost = set(held) - kept
            if lost:
                log.warning(
                    "worker %s: lost the lease on %d item(s); another worker has them",
                    self.worker_id,
                    len(lost),
                )
                self._held.difference_update(lost)

    # -- a claimed batch ------------------------------------------------------------------------

    async def _open_batch(self, items: Sequence[ClaimedItem]) -> list[Request[_Key]]:
        """Take a claimed batch in hand and return its requests (one per group of items)."""
        batch = Batch(items)
        self._held.update(item.item_pk for item in items)
        self._open += 1
        try:
            requests = await self._requests(batch)
        except Exception as exc:
            # Not the items' fault (the database failed reading them): let them be retried.
            log.error("worker %s: reading a batch failed: %s", self.worker_id, short_error(exc))
            await self._retry_all(items, exc)
            self._close(batch)
            return []
        batch.remaining = len(requests)
        self._in_pipeline += len(requests)
        if not requests:
            self._finished(batch)
        return requests

    async def _requests(self, batch: Batch) -> list[Request[_Key]]:
        prepared_items: list[tuple[ClaimedItem, _Prepared]] = []
        for item in batch.items:
            try:
                prepared_items.append((item, await self._prepare(item)))
            except (ValueError, LocatedError) as exc:
                # An unknown or refused rubric/panel: retrying cannot help.
                batch.permanent[item.item_pk] = str(exc)[:2000]
        wanted: dict[str, set[str]] = defaultdict(set)
        for item, _ in prepared_items:
            wanted[item.tenant].add(item.outcome_id)
        loaded: dict[str, dict[str, Outcome]] = {}
        for tenant, outcome_ids in wanted.items():
            loaded[tenant] = await asyncio.to_thread(
                self._ledger(tenant).latest_outcomes, outcome_ids
            )
        requests: list[Request[_Key]] = []
        keys: dict[str, list[str]] = defaultdict(list)
        attested_wanted: dict[str, list[tuple[set[str], Outcome]]] = defaultdict(list)
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
            requests.append(Request(outcome, prepared.engine, (batch, key)))
            if prepared.attested is not None:
                attested_wanted[item.tenant].append((prepared.attested, outcome))
            keys[item.tenant].extend(prepared.engine.cache_keys(outcome))
            # A call belongs to the job of the first item in hand judging its outcome.
            self._store(item.tenant).job_for.setdefault(item.outcome_id, item.job_pk)
            self._in_hand[(item.tenant, item.outcome_id)] += 1
        await self._attested(attested_wanted)
        for tenant, tenant_keys in keys.items():
            batch.cache_keys[tenant] = tenant_keys
            group_keys = [(k[1], k[2], k[3], k[4]) for k in batch.groups if k[0] == tenant]
            found, _ = await asyncio.gather(
                asyncio.to_thread(self._ledger(tenant).recorded_verdicts, group_keys),
                self._store(tenant).prefetch(tenant_keys),
            )
            for (outcome_id, rubric_ref, panel_ref, content), prior in found.items():
                batch.prior[(tenant, outcome_id, rubric_ref, panel_ref, content)] = prior
        return requests

    async def _attested(self, wanted: Mapping[str, list[tuple[set[str], Outcome]]]) -> None:
        """Add to each engine's attested digests those of the batch's reports its tenant
        attested. Read in a thread, added here on the loop (where the engines read them); only
        ever added, so batches in flight never lose one (an attestation is never withdrawn)."""
        from ledger.attested import attested_in_reports

        for tenant, pairs in wanted.items():
            reports = [outcome for _, outcome in pairs]
            found = await asyncio.to_thread(attested_in_reports, self.engine, tenant, reports)
            for attested, _ in pairs:
                attested.update(found)

    async def _recorded(self, request: Request[_Key]) -> Verdict | None:
        """The resume rule of ``judge verify``, from what was read with the batch."""
        batch, key = request.key
        return batch.reuse(key)

    async def _collect(self, request: Request[_Key], verdict: Verdict, resumed: bool) -> None:
        batch, key = request.key
        if not resumed:
            tenant, _, rubric_ref, _, _ = key
            batch.windows[rubric_ref] = request.engine.rubric_for(request.outcome).window_hours
            batch.to_record[tenant].append((key, request.outcome, verdict))
        self._judged(batch)

    def _group_failed(self, request: Request[_Key], exc: Exception) -> None:
        batch, key = request.key
        batch.group_errors[key] = f"{type(exc).__name__}: {exc}"[:2000]
        self._judged(batch)

    def _judged(self, batch: Batch) -> None:
        """One outcome of ``batch`` left the pipeline (judged, reused or failed)."""
        self._in_pipeline -= 1
        batch.remaining -= 1
        if batch.remaining == 0:
            self._finished(batch)
        assert self._changed is not None
        self._changed.set()

    def _finished(self, batch: Batch) -> None:
        assert self._ready is not None
        self._ready.put_nowait(batch)

    def _close(self, batch: Batch) -> None:
        """Let go of a settled (or given back) batch: its leases, cache keys and job links."""
        self._held.difference_update(item.item_pk for item in batch.items)
        self._open -= 1
        for tenant, keys in batch.cache_keys.items():
            self._store(tenant).forget(keys)
        for tenant, outcome_id, *_ in batch.groups:
            self._in_hand[(tenant, outcome_id)] -= 1
            if self._in_hand[(tenant, outcome_id)] <= 0:
                del self._in_hand[(tenant, outcome_id)]
                self._store(tenant).job_for.pop(outcome_id, None)
        assert self._changed is not None
        self._changed.set()

    async def _settler(self) -> None:
        """Settle finished batches, all those finished meanwhile together, until told to stop."""
        assert self._ready is not None
        last = False
        while not last:
            batches: list[Batch] = []
            item = await self._ready.get()
            while True:
                if item is None:
                    last = True
                else:
                    batches.append(item)
                if self._ready.empty():
                    break
                item = self._ready.get_nowait()
            if batches:
                await self._settle(batches)

    async def _settle(self, batches: Sequence[Batch]) -> None:
        try:
            settled = await settle(
                batches,
                engine=self.engine,
                worker_id=self.worker_id,
                lease_seconds=self.lease_seconds,
                max_attempts=self.max_attempts,
                stores=self._stores,
                ledgers={t: self._ledger(t) for b in batches for t in b.to_record},
            )
        except Exception as exc:
            # Not the items' fault (the database failed mid-settlement): let them be retried.
            log.error("worker %s: recording a batch failed: %s", self.worker_id, short_error(exc))
            for batch in batches:
                await self._retry_all(batch.items, exc)
            return
        finally:
            for batch in batches:
                self._close(batch)
        self.stats.batches += len(batches)
        self.stats.done += settled.done
        self.stats.failed += settled.failed
        self.stats.retried += settled.retried
        for batch in batches:
            jobs = sorted({item.job_id for item in batch.items})
            log.info(
                "worker %s: %d item(s) of %s: %d reused a recorded verdict, %d failed, "
                "%d to retry in %.2f s",
                self.worker_id,
                len(batch.items),
                ", ".join(jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""),
                len(batch.reused),
                len(batch.permanent),
                len(batch.transient),
                time.perf_counter() - batch.started,
            )

    async def _retry_all(self, items: Sequence[ClaimedItem], exc: BaseException) -> None:
        from ledger.job_queue import fail

        try:
            errors = {item.item_pk: short_error(exc) for item in items}
            self.stats.failed += await asyncio.to_thread(
                fail, self.engine, self.worker_id, errors, max_attempts=self.max_attempts
            )
        except Exception as again:  # the lease expires and another worker takes them
            log.error(
                "worker %s: could not give the batch back: %s", self.worker_id, short_error(again)
            )

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
            store = self._store(item.tenant)
            pool = self._screen_pool
            attested: set[str] | None = set() if panel.report_inputs == "attested" else None
            judge_engine = await asyncio.to_thread(
                JudgeEngine, panel, rubrics, store=store, screen_pool=pool,
                detector=pool.detector if pool is not None else "default", attested=attested,
            )  # fmt: skip
            prepared = _Prepared(judge_engine, rubrics, panel, attested)
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

    def _store(self, tenant: str) -> DbCallStore:
        from ledger.callstore import DbCallStore

        if tenant not in self._stores:
            # Long-lived: never trusts "the tenant had no calls" (another worker's may appear).
            self._stores[tenant] = DbCallStore(self.engine, tenant=tenant, trust_empty=False)
        return self._stores[tenant]


def _warm_up(screen_pool: ScreenPool | None) -> None:
    from app.verification import freeze_heap
    from judge.guard_model import default_detector
    from judge.screening import warm_up

    model_client.warm_up()
    if screen_pool is not None:
        screen_pool.warm_up()
    else:
        warm_up(default_detector())
    freeze_heap()


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
    worker = Worker(engine, worker_id=worker_id, concurrency=concurrency, batch=batch)
    await worker.run(stop, once=once)

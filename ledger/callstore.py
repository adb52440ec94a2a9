"""The ledger's judge-call store: every judge call recorded, and looked up again as the cache.

Every attempt sent to a provider is written *before* it is sent (a ``pending`` row, committed in
a small group with the attempts begun at the same moment) and completed by its ``call_id`` when
the reply or the error arrives. A process killed while calls are in flight leaves their rows
``pending``; :func:`settle_pending` (run by ``judge verify`` and the workers when they start)
turns those whose ``expires_at`` has passed into ``unknown`` at their estimated cost, so no call
the provider may have billed is missing from the ledger.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from judge.verdict import JudgeCall
from ledger.db import session
from ledger.reads import key_relation, read_in_index_order
from ledger.store import (
    DEFAULT_TENANT,
    call_values,
    check_tenant_name,
    ensure_tenant,
    row_to_call,
)
from ledger.tables import CALL_PURPOSES, JudgeCallRow, to_money

__all__ = ["DbCallStore", "SettledCalls", "settle_pending"]


@dataclass(frozen=True)
class _Begun:
    """An attempt waiting for its write-ahead record: the caller's call, the copy written, the
    estimate to compute and the future the caller awaits."""

    call: JudgeCall
    written: JudgeCall
    estimate: Callable[[], float] | None
    future: asyncio.Future[None]


class DbCallStore:
    """A :class:`judge.protocols.CallStore` in the ledger's ``judge_calls`` table.

    ``record`` buffers calls and writes them in small batches, one transaction each, in a worker
    thread: at most ``batch_size`` calls or ``max_delay`` seconds are ever pending, and
    :meth:`flush` (called by the CLI at the end of a run, and on error) writes the rest. A commit
    per call would make the database the bottleneck of a concurrent run; the price is that a
    process killed outright loses at most that small window of call records (those calls are
    then made again on the next run, never counted twice). ``lookup`` sees pending calls too and
    returns the latest successful, non-cached call for the key; failed attempts are recorded
    (they may be billed) but never served as a cache hit.

    A store made with ``trust_empty`` (``judge verify``: one run) checks once whether the tenant
    has any call at all; if not, it stops querying the table and serves only what it wrote
    itself, so calls that *other processes* record later are invisible to it. A long-lived store
    (one per tenant in a worker process) passes ``trust_empty=False`` and looks up the keys of
    each claimed batch in one query instead (:meth:`prefetch`): a batch claimed after another
    worker died sees every call that worker recorded, and its look-ups are answered from memory
    until :meth:`forget`.

    ``purpose`` (one of :data:`ledger.tables.CALL_PURPOSES`) is written on every call. A
    ``verify`` store is served only ``verify`` calls from the ledger; any other store (``judge
    bias``, ``judge canary``) is served only the calls it made itself in this run, never the
    ledger's: a canary exists to ask the models again, and a probe's reply must never become a
    verification's.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tenant: str = DEFAULT_TENANT,
        batch_size: int = 64,
        max_delay: float = 0.5,
        purpose: str = "verify",
        trust_empty: bool = True,
        started_empty: bool | None = None,
    ) -> None:
        if batch_size < 1 or max_delay < 0:
            raise ValueError("batch_size must be >= 1 and max_delay >= 0")
        if purpose not in CALL_PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(CALL_PURPOSES)}, got {purpose!r}")
        self.purpose = purpose
        self.engine = engine
        self.tenant = check_tenant_name(tenant)
        self.batch_size = batch_size
        self.max_delay = max_delay
        self._tenant_ready = False
        self._pending: list[JudgeCall] = []
        self._oldest_pending: float | None = None
        # When the tenant had no calls at all when this store first looked, only keys written
        # since can ever hit: a first run over a fresh ledger skips one query per call.
        self.trust_empty = trust_empty
        # (Given by a caller that looked before its siblings began writing: --processes.)
        self._started_empty: bool | None = started_empty
        self._empty_check: asyncio.Future[bool] | None = None
        self._written_ok: set[str] = set()
        # Keys looked up ahead (prefetch): the call on record, or None when there was none.
        self._known: dict[str, JudgeCall | None] = {}
        # A non-verify store's own successful calls: the only cache it is ever served.
        self._own_ok: dict[str, JudgeCall] = {}
        # Write-ahead rows waiting for their group commit, and the task committing them.
        self._to_begin: list[_Begun] = []
        self._begin_task: asyncio.Task[None] | None = None
        self._begun: set[str] = set()
        #: Outcome id -> the verification job its calls are made for (set by the workers).
        self.job_for: dict[str, int] = {}
        self.owner = process_owner()

    async def lookup(self, cache_key: str) -> JudgeCall | None:
        for call in reversed(self._pending):
            if call.cache_key == cache_key and call.status == "ok" and not call.cached:
                return call
        if self.purpose != "verify":
            return self._own_ok.get(cache_key)
        if cache_key in self._known:
            return self._known[cache_key]
        if self.trust_empty:
            if self._started_empty is None:
                if self._empty_check is None:
                    # Every look-up of the first moment waits for this one query.
                    self._empty_check = asyncio.ensure_future(
                        asyncio.to_thread(self.tenant_has_no_calls)
                    )
                self._started_empty = await asyncio.shield(self._empty_check)
            if self._started_empty and cache_key not in self._written_ok:
                return None
        return await asyncio.to_thread(self.lookup_sync, cache_key)

    async def prefetch(self, cache_keys: Iterable[str]) -> None:
        """Look up many keys in one query; their look-ups are then answered from memory.

        A call this store records for one of them later is served too. Drop them with
        :meth:`forget` once they are no longer wanted (a long-lived store stays small).
        """
        if self.purpose != "verify":
            return
        wanted = sorted({key for key in cache_keys if key not in self._known})
        if not wanted:
            return
        found = await asyncio.to_thread(self._latest_ok, wanted)
        for key in wanted:
            self._known.setdefault(key, found.get(key))

    def forget(self, cache_keys: Iterable[str]) -> None:
        """Stop remembering what :meth:`prefetch` found for ``cache_keys``."""
        for key in cache_keys:
            self._known.pop(key, None)

    def tenant_has_no_calls(self) -> bool:
        """Whether the ledger holds no judge call of this store's tenant (one query)."""
        with session(self.engine, readonly=True) as db:
            first = db.exec(
                select(JudgeCallRow.pk).where(JudgeCallRow.tenant == self.tenant).limit(1)
            ).first()
        return first is None

    async def begin(self, call: JudgeCall, estimate: Callable[[], float] | None = None) -> None:
        """Write ``call`` as ``pending`` and return once it is committed (group commit).

        Attempts begun while a group is being written join the next group: at concurrency 32
        the ledger sees a handful of small transactions, not one per attempt. ``estimate`` (the
        prompt's tokens at the model's price) is computed in the writing thread: the tokenizer
        releases the GIL, so the event loop goes on meanwhile.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_begin.append(_Begun(call, call.model_copy(), estimate, future))
        if self._begin_task is None or self._begin_task.done():
            self._begin_task = asyncio.create_task(self._commit_begun())
        await future
        self._begun.add(call.call_id)

    async def _commit_begun(self) -> None:
        await asyncio.sleep(0)  # let the attempts starting in this loop turn join the group
        while self._to_begin:
            group, self._to_begin = self._to_begin, []
            try:
                await asyncio.to_thread(self._insert_begun, group)
            except BaseException as exc:
                for begun in group:
                    if not begun.future.done():
                        begun.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for begun in group:
                    if not begun.future.done():
                        begun.future.set_result(None)

    async def record(self, call: JudgeCall) -> None:
        if call.status == "ok" and not call.cached:
            if self.purpose != "verify":
                self._own_ok[call.cache_key] = call
            elif call.cache_key in self._known:
                self._known[call.cache_key] = call
        now = time.monotonic()
        self._pending.append(call)
        if self._oldest_pending is None:
            self._oldest_pending = now
        if len(self._pending) >= self.batch_size or now - self._oldest_pending >= self.max_delay:
            await self.aflush()

    async def aflush(self) -> None:
        """Write every pending call now (from a coroutine)."""
        calls, self._pending, self._oldest_pending = self._pending, [], None
        if calls:
            await asyncio.to_thread(self._write, calls)

    def flush(self) -> None:
        """Write every pending call now (from synchronous code, e.g. at the end of a run)."""
        calls, self._pending, self._oldest_pending = self._pending, [], None
        if calls:
            self._write(calls)

    def lookup_sync(self, cache_key: str) -> JudgeCall | None:
        with session(self.engine, readonly=True) as db:
            row = db.exec(
                self._servable()
                .where(JudgeCallRow.cache_key == cache_key)
                .order_by(col(JudgeCallRow.at).desc(), col(JudgeCallRow.pk).desc())
                .limit(1)
            ).first()
        return None if row is None else row_to_call(row)

    def _servable(self) -> Any:
        """The calls this store may serve: the tenant's successful, non-cached verify calls."""
        return select(JudgeCallRow).where(
            JudgeCallRow.tenant == self.tenant,
            JudgeCallRow.status == "ok",
            col(JudgeCallRow.cached).is_(False),
            JudgeCallRow.purpose == "verify",
        )

    def _latest_ok(self, cache_keys: Sequence[str]) -> dict[str, JudgeCall]:
        """The latest servable call of each key (as :meth:`lookup_sync`), 500 keys a query."""
        found: dict[str, JudgeCall] = {}
        with session(self.engine, readonly=True) as db:
            conn = db.connection()
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                read_in_index_order(conn)
            for start in range(0, len(cache_keys), 500):
                chunk = list(cache_keys[start : start + 500])
                if postgres:
                    query = self._latest_ok_each(chunk)
                else:
                    query = (
                        self._servable()
                        .where(col(JudgeCallRow.cache_key).in_(chunk))
                        .order_by(col(JudgeCallRow.at), col(JudgeCallRow.pk))
                    )
                for row in db.exec(query).all():  # later rows replace earlier: the latest stays
                    found[row.cache_key] = row_to_call(row)
        return found

    def _latest_ok_each(self, cache_keys: list[str]) -> Any:
        """PostgreSQL: one index lookup per key (see ``ledger.reads.key_relation``: an ``IN``
        list let the planner filter the tenant's whole range when its statistics had not seen
        the tenant's calls yet, as during a tenant's first job)."""
        from sqlalchemy.orm import aliased

        keys = key_relation(id=cache_keys)
        latest = (
            self._servable()
            .where(JudgeCallRow.cache_key == keys.c.id)
            .order_by(col(JudgeCallRow.at).desc(), col(JudgeCallRow.pk).desc())
            .limit(1)
            .lateral("latest")
        )
        call = aliased(JudgeCallRow, latest)
        return select(call).select_from(keys).join(latest, sa.true())

    def record_sync(self, call: JudgeCall) -> None:
        """Write one call at once, bypassing the buffer."""
        self._write([call])

    def _ready(self) -> None:
        if not self._tenant_ready:
            ensure_tenant(self.engine, self.tenant)
            self._tenant_ready = True

    def _values(self, calls: Sequence[JudgeCall]) -> list[dict[str, Any]]:
        return [
            call_values(
                self.tenant,
                call,
                job_pk=self.job_for.get(call.outcome_id),
                owner=self.owner,
                purpose=self.purpose,
            )
            for call in calls
        ]

    def _insert_begun(self, group: Sequence[_Begun]) -> None:
        for begun in group:
            if begun.estimate is not None:
                # The caller's object waits for this group: nothing else touches it meanwhile.
                value = begun.estimate()
                begun.call.estimated_cost_usd = begun.written.estimated_cost_usd = value
        self._insert([begun.written for begun in group])

    def _insert(self, calls: Sequence[JudgeCall]) -> None:
        # Core executemany, not ORM objects: this write is on every call's path to the provider.
        self._ready()
        table = JudgeCallRow.__table__  # type: ignore[attr-defined]
        with session(self.engine) as db:
            db.connection().execute(sa.insert(table), self._values(calls))

    def _write(self, calls: Sequence[JudgeCall]) -> None:
        """Insert new calls and complete begun ones, in one transaction."""
        if self.trust_empty:
            self._written_ok.update(c.cache_key for c in calls if c.status == "ok" and not c.cached)
        new = [c for c in calls if c.call_id not in self._begun]
        done = [c for c in calls if c.call_id in self._begun]
        self._ready()
        table = JudgeCallRow.__table__  # type: ignore[attr-defined]
        with session(self.engine) as db:
            if new:
                db.connection().execute(sa.insert(table), self._values(new))
            if done:
                db.connection().execute(
                    sa.update(table)
                    .where(
                        table.c.tenant == self.tenant,
                        table.c.call_id == sa.bindparam("b_call_id"),
                    )
                    .values(
                        status=sa.bindparam("b_status"),
                        reply=sa.bindparam("b_reply"),
                        error=sa.bindparam("b_error"),
                        tokens_in=sa.bindparam("b_tokens_in"),
                        tokens_out=sa.bindparam("b_tokens_out"),
                        cost_usd=sa.bindparam("b_cost_usd", type_=table.c.cost_usd.type),
                        latency_ms=sa.bindparam("b_latency_ms"),
                    ),
                    [
                        {
                            "b_call_id": c.call_id,
                            "b_status": c.status,
                            "b_reply": c.reply,
                            "b_error": c.error,
                            "b_tokens_in": c.tokens_in,
                            "b_tokens_out": c.tokens_out,
                            "b_cost_usd": to_money(c.cost_usd),
                            "b_latency_ms": c.latency_ms,
                        }
                        for c in done
                    ],
                )
        self._begun.difference_update(c.call_id for c in done)


def process_owner() -> str:
    """``host:pid`` of this process: who a pending call dies with."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_owners(owners: Sequence[str]) -> list[str]:
    """The owners among ``owners`` that are processes of this host which no longer exist."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        name, _, pid = owner.rpartition(":")
        if name != host or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            continue  # alive, another user's
    return dead


@dataclass(frozen=True)
class SettledCalls:
    """Calls a dead process left ``pending``, now ``unknown`` (see :func:`settle_pending`)."""

    calls: int
    estimated_cost_usd: Decimal
    outcomes: int


def settle_pending(
    engine: Engine, *, tenant: str | None = None, now: datetime | None = None
) -> SettledCalls:
    """Settle as ``unknown``, at their estimate, the ``pending`` calls of processes that died.

    Such a call was sent (or about to be) by a process that died before its reply: the provider
    may have billed it, so it is booked at its estimated cost (prompt tokens at the model's
    price) and shown as ``unknown``, never dropped. A call is settled when its owner is a
    process of this host that no longer exists, or (another host's) when its ``expires_at`` (sent
    + timeout + 30 s) has passed; a call still in flight is left alone, and if its reply arrives
    after all, completing it replaces the estimate with the real figures.

    Parameters
    ----------
    engine
        A migrated ledger.
    tenant
        Only this tenant's calls (default: every tenant's; what a worker does).
    now
        The moment that decides expiry (default: the clock).
    """
    table = JudgeCallRow.__table__  # type: ignore[attr-defined]
    moment = now or datetime.now(UTC)
    scope = [table.c.status == "pending"]
    if tenant is not None:
        scope.append(table.c.tenant == tenant)
    with session(engine, readonly=True) as db:
        owners = (
            db.connection()
            .execute(sa.select(table.c.owner).where(*scope, table.c.owner.is_not(None)).distinct())
            .scalars()
            .all()
        )
    dead = _dead_owners(list(owners))
    expired = table.c.expires_at < moment
    due = [*scope, sa.or_(expired, table.c.owner.in_(dead)) if dead else expired]
    with session(engine) as db:
        conn = db.connection()
        found = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(table.c.estimated_cost_usd), 0),
                sa.func.count(sa.distinct(sa.tuple_(table.c.tenant, table.c.outcome_id)))
                if conn.dialect.name == "postgresql"
                else sa.func.count(sa.distinct(table.c.tenant + ":" + table.c.outcome_id)),
            ).where(*due)
        ).one()
        if found[0]:
            conn.execute(
                sa.update(table)
                .where(*due)
                .values(
                    status="unknown",
                    cost_usd=sa.func.coalesce(table.c.estimated_cost_usd, 0),
                    error="no outcome recorded: the process making the call stopped before its "
                    "reply; booked at the estimated cost (prompt tokens at the model's price)",
                )
            )
    return SettledCalls(int(found[0]), to_money(found[1] or 0), int(found[2]))

"""The ledger's judge-call store: every judge call recorded, and looked up again as the cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from judge.verdict import JudgeCall
from ledger.db import session
from ledger.store import DEFAULT_TENANT, call_row, check_tenant_name, ensure_tenant, row_to_call
from ledger.tables import JudgeCallRow

__all__ = ["DbCallStore"]


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

    A store is meant for one run: when the tenant had no calls at its first look-up, it stops
    querying the table and serves only what it wrote itself, so calls that *other processes*
    record later are invisible to it. Long-lived processes (the service's workers) take a fresh
    store per batch.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tenant: str = DEFAULT_TENANT,
        batch_size: int = 64,
        max_delay: float = 0.5,
    ) -> None:
        if batch_size < 1 or max_delay < 0:
            raise ValueError("batch_size must be >= 1 and max_delay >= 0")
        self.engine = engine
        self.tenant = check_tenant_name(tenant)
        self.batch_size = batch_size
        self.max_delay = max_delay
        self._tenant_ready = False
        self._pending: list[JudgeCall] = []
        self._oldest_pending: float | None = None
        # When the tenant had no calls at all when this store first looked, only keys written
        # since can ever hit: a first run over a fresh ledger skips one query per call.
        self._started_empty: bool | None = None
        self._written_ok: set[str] = set()

    async def lookup(self, cache_key: str) -> JudgeCall | None:
        for call in reversed(self._pending):
            if call.cache_key == cache_key and call.status == "ok" and not call.cached:
                return call
        if self._started_empty is None:
            self._started_empty = await asyncio.to_thread(self._tenant_has_no_calls)
        if self._started_empty and cache_key not in self._written_ok:
            return None
        return await asyncio.to_thread(self.lookup_sync, cache_key)

    def _tenant_has_no_calls(self) -> bool:
        with session(self.engine, readonly=True) as db:
            first = db.exec(
                select(JudgeCallRow.pk).where(JudgeCallRow.tenant == self.tenant).limit(1)
            ).first()
        return first is None

    async def record(self, call: JudgeCall) -> None:
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
                select(JudgeCallRow)
                .where(
                    JudgeCallRow.tenant == self.tenant,
                    JudgeCallRow.cache_key == cache_key,
                    JudgeCallRow.status == "ok",
                    col(JudgeCallRow.cached).is_(False),
                )
                .order_by(col(JudgeCallRow.at).desc(), col(JudgeCallRow.pk).desc())
                .limit(1)
            ).first()
        return None if row is None else row_to_call(row)

    def record_sync(self, call: JudgeCall) -> None:
        """Write one call at once, bypassing the buffer."""
        self._write([call])

    def _write(self, calls: Sequence[JudgeCall]) -> None:
        rows = [call_row(self.tenant, call) for call in calls]
        self._written_ok.update(c.cache_key for c in calls if c.status == "ok" and not c.cached)
        if not self._tenant_ready:
            ensure_tenant(self.engine, self.tenant)
            self._tenant_ready = True
        with session(self.engine) as db:
            db.add_all(rows)

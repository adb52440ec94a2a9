"""The verification service: outcomes in, verdicts recorded in the ledger, one summary out.

What ``judge verify`` does, below the command line: check the input before anything is paid for,
compose the panel and rubrics, run the one verification pipeline
(:func:`judge.runner.verify_requests`) with the one resume rule (:func:`recorded_verdict`, also
the job worker's), record results in batches and write the verdict file atomically. The CLI
(``app/cli/verify.py``) parses options, shows progress and prints the :class:`RunSummary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from judge.runner import Request, RunSummary, verify_requests

if TYPE_CHECKING:
    from app.agent_costs import AgentCosts
    from judge.importers import FileReport
    from judge.models import Outcome
    from judge.panel import Panel
    from judge.protocols import CallStore
    from judge.rubric import Rubric
    from judge.screen_pool import ScreenPool
    from judge.verdict import Verdict
    from ledger.callstore import SettledCalls
    from ledger.records import RecordedVerdict
    from ledger.store import Ledger

__all__ = [
    "LEDGER_BATCH",
    "CheckedInput",
    "LedgerState",
    "ReadOptions",
    "VerifyRun",
    "check_input",
    "freeze_heap",
    "probe_call_store",
    "recorded_verdict",
    "resolve_panel",
    "resolve_rubrics",
    "verify_into_ledger",
]

#: Results per ledger transaction: a commit per outcome would make the database, not the judges,
#: the bottleneck of a long run.
LEDGER_BATCH = 64


async def recorded_verdict(ledger: Ledger, request: Request[Any]) -> RecordedVerdict | None:
    """The resume rule: the verdict on record for exactly this content, rubric and panel version.

    ``judge verify`` and the job worker both reuse what this returns instead of judging (and
    paying) again; anything else (a new revision, another rubric or panel version) is judged.
    """
    outcome = request.outcome
    return await asyncio.to_thread(
        ledger.recorded_verdict,
        outcome.id,
        rubric=request.engine.rubric_for(outcome).ref,
        panel=request.engine.panel.ref,
        content_hash=outcome.content_hash(),
    )


@dataclass(frozen=True)
class ReadOptions:
    """How the input is read, the same on both passes (``--ai-authors``, ``--mapping``)."""

    ai_authors: frozenset[str] = frozenset()
    mapping: Any = None
    #: Agent cost from OpenTelemetry traces (``--traces``), set on the outcomes it belongs to.
    agent_costs: AgentCosts | None = None

    def read(
        self, path: Path, fmt: str, tenant: str | None, *, report: FileReport | None = None
    ) -> Iterator[Outcome]:
        """The outcomes of ``path``, read lazily with these options."""
        from judge.importers import read_outcomes

        outcomes = read_outcomes(
            path,
            format=fmt,
            tenant=tenant,
            ai_authors=self.ai_authors,
            mapping=self.mapping,
            report=report,
        )
        return outcomes if self.agent_costs is None else self.agent_costs.apply(outcomes)


@dataclass(frozen=True)
class CheckedInput:
    """What the first pass over an input file found: every record parsed, nothing written."""

    kinds: Counter[str]
    count: int
    tenant: str


def check_input(
    path: Path,
    fmt: str,
    tenant: str | None,
    *,
    reading: ReadOptions | None = None,
    report: FileReport | None = None,
) -> CheckedInput:
    """First pass: every record must parse before anything is written; fills ``report``.

    Raises ValueError (or an importer's error) naming the file, the record and the fix.
    """
    from ledger.integrity import FutureTimestampError, check_timestamps
    from ledger.tables import utcnow

    if not path.exists():
        raise ValueError(f"input file not found: {path}")
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    tenants: set[str] = set()
    now = utcnow()
    outcomes = (reading or ReadOptions()).read(path, fmt, tenant, report=report)
    for index, outcome in enumerate(outcomes, start=1):
        try:
            # The ledger refuses these too, but only once verdicts are paid for: refuse them now.
            check_timestamps(outcome, now=now)
        except FutureTimestampError as exc:
            raise FutureTimestampError(f"{path}: record {index}: {exc}") from None
        if outcome.id in seen:
            raise ValueError(
                f"{path}: record {index}: duplicate outcome id {outcome.id!r}; each outcome must "
                "appear once per file"
            )
        seen.add(outcome.id)
        kinds[outcome.kind] += 1
        if outcome.tenant:
            tenants.add(outcome.tenant)
    if not seen:
        raise ValueError(f"{path} holds no outcomes")
    if tenant is None and len(tenants) > 1:
        raise ValueError(
            f"{path} mixes tenants ({', '.join(sorted(tenants))}); pass --tenant or split the file"
        )
    run_tenant = tenant or (next(iter(tenants)) if tenants else "default")
    return CheckedInput(kinds=kinds, count=len(seen), tenant=run_tenant)


def resolve_rubrics(names: list[str] | None, kinds: Counter[str]) -> dict[str, Rubric]:
    """The rubric for each outcome kind: those named (names or YAML paths), else the shipped."""
    from judge.rubric_loader import DEFAULT_RUBRICS, load_rubric

    chosen = [load_rubric(n) for n in names] if names else []
    by_kind: dict[str, Rubric] = {}
    for r in chosen:
        if r.kind in by_kind:
            raise ValueError(f"two rubrics given for {r.kind}: {by_kind[r.kind].name} and {r.name}")
        by_kind[r.kind] = r
    for kind in kinds:
        if kind not in by_kind:
            if names:
                raise ValueError(
                    f"the input holds {kinds[kind]} {kind} outcome(s) but no {kind} rubric was "
                    f"given; add --rubric {DEFAULT_RUBRICS[kind]}"
                )
            by_kind[kind] = load_rubric(DEFAULT_RUBRICS[kind])
    return by_kind


def resolve_panel(path: Path | None) -> tuple[Panel, str | None]:
    """The panel in ``path``, else the default one and a line saying why it was chosen."""
    from config.settings import get_settings
    from judge.panel_loader import default_panel, load_panel

    if path is not None:
        return load_panel(path), None
    return default_panel(get_settings())


@contextlib.contextmanager
def probe_call_store(
    panel: Panel, *, db_url: str, tenant: str, purpose: str
) -> Iterator[CallStore]:
    """The call store of a run that is not a verification (``judge bias``, ``judge canary``).

    Every paid model call is on the ledger with its ``purpose``; the store is served only the
    calls it made itself, never the ledger's (see :class:`ledger.callstore.DbCallStore`). A
    panel without LLM judges makes no model call: nothing is opened, and an in-memory store is
    used. The calls are written when the block ends, even when it fails (they are billable).
    """
    from judge.protocols import MemoryCallStore

    if not panel.has_llm:
        yield MemoryCallStore()
        return
    from ledger.callstore import DbCallStore
    from ledger.db import make_engine
    from ledger.schema import migrate

    db_engine = make_engine(db_url)
    try:
        migrate(db_engine)
        store = DbCallStore(db_engine, tenant=tenant, purpose=purpose)
        try:
            yield store
        finally:
            store.flush()
    finally:
        db_engine.dispose()


@dataclass(frozen=True)
class LedgerState:
    """What a tenant had in the ledger when a run started: judge calls, verdicts."""

    calls: bool
    verdicts: bool

    @classmethod
    def read(cls, db_engine: Any, tenant: str) -> LedgerState:
        from ledger.callstore import DbCallStore
        from ledger.store import Ledger

        calls = not DbCallStore(db_engine, tenant=tenant).tenant_has_no_calls()
        return cls(calls=calls, verdicts=Ledger(db_engine, tenant=tenant).has_verdicts())


@dataclass(frozen=True)
class VerifyRun:
    """What :func:`verify_into_ledger` did."""

    summary: RunSummary
    #: Calls a killed earlier run left in flight, booked as unknown before this run started.
    settled: SettledCalls


async def verify_into_ledger(
    outcomes: Iterable[Outcome],
    *,
    panel: Panel,
    rubrics: dict[str, Rubric],
    out: Path,
    db_url: str,
    tenant: str,
    concurrency: int,
    resume: bool = True,
    on_progress: Callable[[], None] | None = None,
    share: int = 1,
    found: LedgerState | None = None,
    attested: frozenset[str] | None = None,
) -> VerifyRun:
    """Verify ``outcomes``, record every result in the ledger, write the verdicts to ``out``.

    ``out`` appears whole or not at all (written to a temporary file, then renamed). Judge calls
    already made are recorded even when the run fails (they are billable).

    ``share`` > 1: this is one of that many processes of one run (``judge verify --processes``,
    :mod:`app.verify_processes`): the parent has migrated the ledger and settled the calls of
    killed runs, the provider limits are shared (:class:`judge.limits.ProviderLimiter`), and
    ``found`` is what the parent found in the ledger before any process wrote to it (a process
    that looked itself could see its siblings' first writes and ask the ledger for every call).
    ``attested``: the digests of the documents the buyer attested (``--attested``), read by a
    panel with ``report_inputs: attested`` (:mod:`judge.attestation`).
    """
    from app.screen_processes import beside_the_loop
    from judge import model_client

    # litellm takes seconds to import: paid before the progress bar and the clock start.
    def warm_up(_pool: object) -> None:
        if panel.has_llm:
            model_client.warm_up()

    async with beside_the_loop(has_llm=panel.has_llm, warm_up=warm_up, share=share) as beside:
        run = await _verify_into_ledger(
            outcomes, panel=panel, rubrics=rubrics, out=out, db_url=db_url, tenant=tenant,
            concurrency=concurrency, resume=resume, on_progress=on_progress, share=share,
            found=found, screen_pool=beside.screen_pool, attested=attested,
        )  # fmt: skip
        run.summary.call_processes = beside.call_processes
        return run


async def _verify_into_ledger(
    outcomes: Iterable[Outcome],
    *,
    panel: Panel,
    rubrics: dict[str, Rubric],
    out: Path,
    db_url: str,
    tenant: str,
    concurrency: int,
    resume: bool,
    on_progress: Callable[[], None] | None,
    share: int,
    found: LedgerState | None,
    screen_pool: ScreenPool | None,
    attested: frozenset[str] | None,
) -> VerifyRun:
    from judge.engine import Engine
    from judge.limits import ProviderLimiter
    from ledger.callstore import DbCallStore, SettledCalls, settle_pending
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.store import Ledger

    db_engine = make_engine(db_url)
    if share == 1:
        migrate(db_engine)
        # Calls a killed run left in flight: booked as unknown at their estimated cost, and said.
        settled = settle_pending(db_engine, tenant=tenant)
    else:
        settled = SettledCalls(0, Decimal(0), 0)
    ledger = Ledger(db_engine, tenant=tenant)
    store = DbCallStore(
        db_engine, tenant=tenant, started_empty=None if found is None else not found.calls
    )
    limiter = ProviderLimiter(share=share) if share > 1 else None
    engine = Engine(
        panel,
        rubrics,
        store=store,
        limiter=limiter,
        detector=screen_pool.detector if screen_pool is not None else "default",
        screen_pool=screen_pool,
        attested=attested,
    )
    engine.warm_up()  # the first screen's imports: before the clock starts
    freeze_heap()
    # What makes each outcome final: the window of the rubric that judged it.
    windows = {rubric.ref: rubric.window_hours for rubric in rubrics.values()}

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    batch: list[tuple[Outcome, Verdict]] = []
    # Lines wait for their batch to be recorded, so that each says what the ledger stored (a
    # verified rewrite of a conversation is held for review there): a verdict, or its place in
    # the batch. Resumed verdicts with nothing waiting before them are written at once.
    waiting: list[Verdict | int] = []
    held: list[tuple[Verdict, Verdict]] = []

    async def flush(fh: TextIO) -> None:
        if batch:
            recorded = await asyncio.to_thread(
                partial(ledger.record_results, windows=windows), list(batch)
            )
            stored = [r.verdict for r in recorded]
            held.extend(
                (v, s)
                for (_, v), s in zip(batch, stored, strict=True)
                if (s.decision, s.tier) != (v.decision, v.tier)
            )
            for item in waiting:
                fh.write((stored[item] if isinstance(item, int) else item).to_json() + "\n")
            waiting.clear()
            batch.clear()

    async def lookup(request: Request[None]) -> Verdict | None:
        prior = await recorded_verdict(ledger, request)
        return None if prior is None else prior.verdict

    try:
        with tmp.open("w", encoding="utf-8") as fh:

            async def sink(request: Request[None], verdict: Verdict, resumed: bool) -> None:
                if resumed and not waiting:
                    fh.write(verdict.to_json() + "\n")
                    return
                if resumed:
                    waiting.append(verdict)
                else:
                    waiting.append(len(batch))
                    batch.append((request.outcome, verdict))
                # A batch is recorded when full, or early when resumed lines pile up behind it
                # (a resumed run with a few new outcomes keeps its memory flat).
                if len(batch) >= LEDGER_BATCH or len(waiting) >= 4 * LEDGER_BATCH:
                    await flush(fh)

            has_verdicts = found.verdicts if found is not None else None
            if has_verdicts is None:
                has_verdicts = await asyncio.to_thread(ledger.has_verdicts)
            resuming = resume and has_verdicts
            summary = await verify_requests(
                (Request(outcome, engine, None) for outcome in outcomes),
                sink=sink,
                concurrency=concurrency,
                lookup=lookup if resuming else None,
                on_progress=on_progress,
            )
            await flush(fh)
            for before, after in held:
                summary.replace(before, after)
            if screen_pool is not None and not screen_pool.broken:
                summary.screen_processes = screen_pool.processes
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        # Judge calls already made are billable: record them even when the run failed.
        await store.aflush()
        db_engine.dispose()
    return VerifyRun(summary=summary, settled=settled)


def freeze_heap() -> None:
    """Take every object alive now out of the garbage collector's sight (``gc.freeze``).

    After litellm, the models and the detector are loaded, half a million objects live for the
    whole process; each full collection walked them all and stopped the event loop for 0.3 to
    0.7 s, a few times a run (measured in a worker: 1.3 s of full collections over 640
    outcomes, 0.1 s once frozen). Done once per process, after warming up: frozen objects
    are still freed when nothing refers to them, only cycles among them stay.
    """
    import gc

    if not _HEAP["frozen"]:
        _HEAP["frozen"] = True
        gc.collect()
        gc.freeze()


_HEAP = {"frozen": False}


def remove_stale_temp_files(out: Path) -> None:
    """Delete half-written verdict files (and ``--processes`` part folders) left by runs that
    were killed (their pid is gone)."""
    import shutil

    prefix = f".{out.name}."
    for suffix in (".tmp", ".parts"):
        for stale in out.parent.glob(f"{prefix}*{suffix}"):
            pid = stale.name[len(prefix) : -len(suffix)]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
            except PermissionError:
                continue  # another user's live process

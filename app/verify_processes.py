"""``judge verify --processes N``: one run over N processes, one verdict file in input order.

One Python process judges on one event loop, which one core keeps busy long before the model
provider is the limit (litellm's own work per call is most of it). Here the input is dealt out
round-robin: process ``k`` of ``N`` verifies records ``k, k + N, k + 2N ...`` with
:func:`app.verification.verify_into_ledger`, on its own event loop, into its own part file;
the parent merges the parts back in input order (record ``i`` is line ``i // N`` of part
``i % N``) and renames the result onto ``--out``: the file appears whole or not at all, as with
one process.

Concurrency is split, not multiplied: ``--concurrency C`` is the total, each process takes its
part (``C // N``, the first ``C % N`` processes one more), and each process holds its part of
every provider limit (:class:`judge.limits.ProviderLimiter` with ``share=N``), so N processes send
about what one would at most. One ledger: the parent migrates it and settles the calls a killed
run left in flight, once, before the processes start; they write into it side by side (SQLite
queues writers: WAL, ``BEGIN IMMEDIATE`` and a busy timeout, see :mod:`ledger.db`). Resume works
as with one process, since each process applies the same rule to its records.

A failing process stops the others (SIGINT: they finish what they hold cancelled, write the
judge calls already made, and exit) and the run fails with its error; Ctrl-C reaches every
process of the terminal's group, each stops the same way, and nothing is written to ``--out``.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judge.runner import RunSummary

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from app.verification import LedgerState, ReadOptions, VerifyRun
    from judge.panel import Panel
    from judge.rubric import Rubric

__all__ = ["ProcessFailed", "split_concurrency", "verify_in_processes"]

#: Seconds the processes get to stop on their own (Ctrl-C, a failed sibling) before SIGKILL.
STOP_GRACE_SECONDS = 30.0
#: A process reports its progress at most this often (seconds).
PROGRESS_EVERY = 0.2


class ProcessFailed(RuntimeError):
    """One of the processes failed; the message names it and says why."""


@dataclass(frozen=True)
class _Part:
    """What process ``index`` of ``count`` verifies, and where it writes."""

    index: int
    count: int
    input_path: Path
    input_format: str
    reading: ReadOptions
    tenant: str
    panel: Panel
    rubrics: dict[str, Rubric]
    out: Path
    db_url: str
    concurrency: int
    resume: bool
    found: LedgerState
    attested: frozenset[str] | None = None


def split_concurrency(total: int, processes: int) -> list[int]:
    """Each process's part of ``total`` (at least 1 each).

    Examples
    --------
    >>> split_concurrency(64, 2), split_concurrency(10, 3), split_concurrency(2, 4)
    ([32, 32], [4, 3, 3], [1, 1, 1, 1])
    """
    return [max(1, total // processes + (k < total % processes)) for k in range(processes)]


def verify_in_processes(
    input_path: Path,
    *,
    input_format: str,
    reading: ReadOptions,
    tenant: str,
    panel: Panel,
    rubrics: dict[str, Rubric],
    out: Path,
    db_url: str,
    concurrency: int,
    resume: bool,
    processes: int,
    total: int,
    on_progress: Callable[[int], None] | None = None,
    attested: frozenset[str] | None = None,
) -> VerifyRun:
    """Verify the outcomes of ``input_path`` in ``processes`` processes (see the module doc).

    Raises
    ------
    ProcessFailed
        A process failed (its error is the message); the others were stopped.
    KeyboardInterrupt
        Ctrl-C (or SIGTERM to this process): every process was stopped.
    """
    from app.verification import LedgerState, VerifyRun, remove_stale_temp_files
    from ledger.callstore import settle_pending
    from ledger.db import make_engine
    from ledger.schema import migrate

    if processes < 2:
        raise ValueError(f"processes must be at least 2, got {processes}")
    db_engine = make_engine(db_url)
    try:
        migrate(db_engine)
        # Once, before any process starts: two would count the same calls twice.
        settled = settle_pending(db_engine, tenant=tenant)
        found = LedgerState.read(db_engine, tenant)
    finally:
        db_engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    parts_dir = out.with_name(f".{out.name}.{os.getpid()}.parts")
    parts_dir.mkdir()
    shares = split_concurrency(concurrency, processes)
    parts = [
        _Part(
            index=k,
            count=processes,
            input_path=input_path,
            input_format=input_format,
            reading=reading,
            tenant=tenant,
            panel=panel,
            rubrics=rubrics,
            out=parts_dir / f"part-{k}.jsonl",
            db_url=db_url,
            concurrency=shares[k],
            resume=resume,
            found=found,
            attested=attested,
        )
        for k in range(processes)
    ]
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    messages: Any = context.Queue()
    children = [
        context.Process(target=_run_part, args=(part, messages), name=f"judge-verify-{k + 1}")
        for k, part in enumerate(parts)
    ]
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for child in children:
            child.start()
        summaries = _collect(children, messages, on_progress)
        started = time.perf_counter()
        _merge([part.out for part in parts], out, total)
        summary = RunSummary()
        for part_summary in summaries:
            summary.merge(part_summary)
        summary.verify_seconds += time.perf_counter() - started
        return VerifyRun(summary=summary, settled=settled)
    except BaseException as exc:
        _stop(children, interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        messages.close()
        shutil.rmtree(parts_dir, ignore_errors=True)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _collect(
    children: Sequence[BaseProcess], messages: Any, on_progress: Callable[[int], None] | None
) -> list[RunSummary]:
    """Wait for every process's summary, passing progress on; raise when one fails."""
    done: dict[int, RunSummary] = {}
    while len(done) < len(children):
        try:
            message = messages.get(timeout=0.2)
        except queue.Empty:
            for k, child in enumerate(children):
                if k not in done and not child.is_alive() and messages.empty():
                    raise ProcessFailed(
                        f"process {k + 1} of {len(children)} stopped (exit code {child.exitcode}) "
                        "without a result"
                    ) from None
            continue
        kind, k, payload = message
        if kind == "progress" and on_progress is not None:
            on_progress(payload)
        elif kind == "done":
            done[k] = payload
        elif kind == "error":
            raise ProcessFailed(f"process {k + 1} of {len(children)} failed: {payload}")
        elif kind == "interrupted":
            raise KeyboardInterrupt
    for child in children:
        child.join()
    return [done[k] for k in range(len(children))]


def _stop(children: Sequence[BaseProcess], *, interrupted: bool) -> None:
    """Stop the processes still running: SIGINT (they stop as on Ctrl-C), then SIGKILL.

    On Ctrl-C the terminal has already sent SIGINT to each of them (a second one would cut
    their clean-up short): they get a moment before one is sent.
    """
    if interrupted:
        for child in children:
            child.join(timeout=5)
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


def _merge(parts: list[Path], out: Path, total: int) -> None:
    """Interleave the parts back into input order, into ``out`` (whole or not at all)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            readers = [part.open(encoding="utf-8") for part in parts]
            try:
                for index in range(total):
                    line = readers[index % len(parts)].readline()
                    if not line:
                        raise ProcessFailed(
                            f"process {index % len(parts) + 1} wrote fewer verdicts than it had "
                            "outcomes"
                        )
                    fh.write(line)
                if any(reader.readline() for reader in readers):
                    raise ProcessFailed("a process wrote more verdicts than it had outcomes")
            finally:
                for reader in readers:
                    reader.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _run_part(part: _Part, messages: Any) -> None:
    """A process's work: its records of the input, verified into its part file."""
    from app.verification import verify_into_ledger
    from judge.parent_watch import exit_with_parent
    from ledger.db import LedgerDatabaseError

    # A parent killed outright must not leave its parts judging (and paying) for nobody.
    exit_with_parent(code=137)
    progress = _Progress(messages, part.index)
    try:
        outcomes = _every_nth(part)
        run = asyncio.run(
            verify_into_ledger(
                outcomes,
                panel=part.panel,
                rubrics=part.rubrics,
                out=part.out,
                db_url=part.db_url,
                tenant=part.tenant,
                concurrency=part.concurrency,
                resume=part.resume,
                on_progress=progress.tick,
                share=part.count,
                found=part.found,
                attested=part.attested,
            )
        )
        progress.flush()
        messages.put(("done", part.index, run.summary))
    except KeyboardInterrupt:
        messages.put(("interrupted", part.index, None))
        _exit(130, messages)
    except (ValueError, OSError, LedgerDatabaseError) as exc:
        messages.put(("error", part.index, str(exc) or type(exc).__name__))
        _exit(1, messages)
    except BaseException as exc:  # anything else: the traceback's last line and where
        where = traceback.extract_tb(exc.__traceback__)[-1]
        messages.put(
            (
                "error",
                part.index,
                f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})",
            )
        )
        _exit(1, messages)


def _exit(code: int, messages: Any) -> None:
    messages.close()
    messages.join_thread()  # the message is in the pipe before the process ends
    sys.exit(code)


def _every_nth(part: _Part) -> Iterator[Any]:
    outcomes = part.reading.read(part.input_path, part.input_format, part.tenant)
    return itertools.islice(outcomes, part.index, None, part.count)


class _Progress:
    """Outcomes done, sent to the parent in small groups (not one message each)."""

    def __init__(self, messages: Any, index: int) -> None:
        self.messages = messages
        self.index = index
        self.pending = 0
        self.last = time.monotonic()

    def tick(self) -> None:
        self.pending += 1
        if time.monotonic() - self.last >= PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.messages.put(("progress", self.index, self.pending))
            self.pending, self.last = 0, time.monotonic()

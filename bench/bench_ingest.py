"""Ingest throughput (outcomes per second) through the real HTTP API, against writing the same
outcomes in-process with no HTTP.

Not a test: run ``python bench/bench_ingest.py`` and read the table. For each database (SQLite in
a temporary file; PostgreSQL in a dedicated schema, dropped afterwards, when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set) it times, on one
migrated ledger, each path over its own tenant (so every first write is a new outcome):

- ``http``: ``POST /v1/outcomes`` to a ``judge serve`` subprocess on 127.0.0.1 (no embedded
  worker), ``--batches`` batches of ``--batch-size`` synthetic outcomes (unique ids, shaped like
  ``datasets/tickets.jsonl``, embedded labels included), one client posting one batch at a time;
  then the same batches again (``re-ingest``: the idempotent ``unchanged`` path);
- ``http xN``: the same with ``--clients`` clients posting batches concurrently (new tenant);
- ``direct``: :func:`ledger.ingest.record_outcomes` in this process (what the route calls, one
  transaction per batch) on already-validated :class:`~judge.models.Outcome` objects, first
  write and re-ingest: the baseline the ``vs direct`` column divides by, so it shows what HTTP,
  JSON and validation add;
- ``record_outcome``: :meth:`ledger.store.Ledger.record_outcome` per outcome (one transaction
  each, as the CLI writes), on ``--item-batches`` batches only (it is slow on SQLite).

Request bodies are serialised before the clock starts, so the figures are the server's. Nothing
here is asserted anywhere; the ratios are the comparable part (absolute rates depend on the
machine and its load).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from _pg import pg_schema  # bench/_pg.py (bench/ is the script's folder on sys.path)

ROOT = Path(__file__).resolve().parent.parent
TICKETS = ROOT / "datasets" / "tickets.jsonl"


@dataclass
class Figure:
    db: str
    path: str
    outcomes: int
    seconds: float
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.outcomes / self.seconds if self.seconds else float("nan")


def templates() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines() if line]


def synthetic(tenant: str, count: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``count`` outcomes of ``tenant`` cycling through the sample tickets, each with its own id
    (the id also goes into the first message, so no two payloads are identical)."""
    out = []
    for i in range(count):
        item = json.loads(json.dumps(rows[i % len(rows)]))
        item["id"] = f"{tenant}-{i:07d}"
        item["tenant"] = tenant
        item["conversation"][0]["text"] += f" (ref {item['id']})"
        out.append(item)
    return out


def batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def judge_serve(url: str, log: Path) -> Iterator[str]:
    """``judge serve --db url`` on a free loopback port (no worker); yields its base URL."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "OUTCOME_JUDGE_EMBEDDED_WORKER": "false",
        "PYTHONUNBUFFERED": "1",
    }
    args = ["serve", "--db", url, "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"judge serve exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"judge serve not ready: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_key(url: str, tenant: str) -> str:
    """A key for ``tenant`` whose request rate the benchmark cannot reach."""
    from ledger.db import make_engine
    from ledger.tenants import create_tenant

    engine = make_engine(url)
    try:
        return create_tenant(engine, tenant, requests_per_minute=1_000_000).key
    finally:
        engine.dispose()


# -- one database ---------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Poster:
    """One HTTP client of one tenant posting pre-serialised batches."""

    def __init__(self, base: str, key: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base, timeout=300)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, body: bytes, expect: str) -> None:
        response = self.client.post("/v1/outcomes", content=body, headers=self.headers)
        if response.status_code != 200:
            raise RuntimeError(
                f"POST /v1/outcomes -> {response.status_code}: {response.text[:500]}"
            )
        answer = response.json()
        if answer["totals"][expect] != answer["count"]:
            raise RuntimeError(f"expected every outcome {expect}, got {answer['totals']}")

    def close(self) -> None:
        self.client.close()


def interleaved(
    url: str, base: str, db: str, args: argparse.Namespace, rows: list[dict[str, Any]]
) -> list[Figure]:
    """``direct`` and ``http`` batch by batch, alternating, so that a change in the machine's
    load (it is shared) hits both paths alike; first writes, then re-ingest."""
    from judge.models import Outcome
    from ledger.db import make_engine
    from ledger.ingest import record_outcomes

    n = args.batches * args.batch_size
    engine = make_engine(url)
    poster = Poster(base, make_key(url, "bench-http"))
    try:
        groups = [
            [Outcome.model_validate(o) for o in group]
            for group in batches(synthetic("bench-direct", n, rows), args.batch_size)
        ]
        bodies = [
            json.dumps({"outcomes": group}).encode()
            for group in batches(synthetic("bench-http", n, rows), args.batch_size)
        ]
        # Warm both paths (lazy imports, first connections) on outcomes not counted.
        record_outcomes(
            engine,
            "bench-direct",
            [Outcome.model_validate(o) for o in warmup(rows, "bench-direct")],
        )
        poster.post(json.dumps({"outcomes": warmup(rows, "bench-http")}).encode(), "created")
        out: list[Figure] = []
        for suffix, expect in (("", "created"), (" re-ingest", "unchanged")):
            mine, theirs = (
                Figure(db, "direct" + suffix, n, 0.0),
                Figure(db, "http" + suffix, n, 0.0),
            )
            for group, body in zip(groups, bodies, strict=True):
                mine.batch_seconds.append(
                    timed(partial(record_outcomes, engine, "bench-direct", group))
                )
                theirs.batch_seconds.append(timed(partial(poster.post, body, expect)))
            for figure in (mine, theirs):
                figure.seconds = sum(figure.batch_seconds)
            out += [mine, theirs]
        return out
    finally:
        poster.close()
        engine.dispose()


def warmup(rows: list[dict[str, Any]], tenant: str) -> list[dict[str, Any]]:
    items = synthetic(f"{tenant}-warm", 1, rows)
    for item in items:
        item["tenant"] = tenant
    return items


def per_item(url: str, db: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> Figure:
    """:meth:`Ledger.record_outcome`, one transaction per outcome (as the CLI writes)."""
    from judge.models import Outcome
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(url)
    try:
        m = args.item_batches * args.batch_size
        items = [Outcome.model_validate(o) for o in synthetic("bench-item", m, rows)]
        ledger = Ledger(engine, tenant="bench-item")
        ledger.record_outcome(items[0])  # the first write creates the tenant's rows: not timed
        seconds = timed(lambda: [ledger.record_outcome(o) for o in items[1:]])
        return Figure(db, "record_outcome (1 tx each)", m - 1, seconds)
    finally:
        engine.dispose()


def timed_post(job: tuple[Poster, bytes], expect: str) -> float:
    poster, body = job
    return timed(partial(poster.post, body, expect))


def concurrent(
    url: str, base: str, db: str, args: argparse.Namespace, rows: list[dict[str, Any]]
) -> list[Figure]:
    """``--clients`` clients posting batches at once (one tenant), then re-ingest."""
    n, tenant = args.batches * args.batch_size, f"bench-http{args.clients}"
    key = make_key(url, tenant)
    bodies = [
        json.dumps({"outcomes": group}).encode()
        for group in batches(synthetic(tenant, n, rows), args.batch_size)
    ]
    posters = [Poster(base, key) for _ in range(args.clients)]
    try:
        posters[0].post(json.dumps({"outcomes": warmup(rows, tenant)}).encode(), "created")
        out = []
        for suffix, expect in (("", "created"), (" re-ingest", "unchanged")):
            jobs = [(posters[i % args.clients], body) for i, body in enumerate(bodies)]
            with ThreadPoolExecutor(args.clients) as pool:
                started = time.perf_counter()
                each = list(pool.map(partial(timed_post, expect=expect), jobs))
                wall = time.perf_counter() - started
            out.append(Figure(db, f"http x{args.clients}{suffix}", n, wall, each))
        return out
    finally:
        for poster in posters:
            poster.close()


def run(url: str, db: str, args: argparse.Namespace, tmp: Path) -> list[Figure]:
    from ledger.db import make_engine
    from ledger.schema import migrate

    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    rows = templates()
    with judge_serve(url, tmp / f"serve-{db}.log") as base:
        figures = interleaved(url, base, db, args, rows)
        if args.clients > 1:
            figures += concurrent(url, base, db, args, rows)
    figures.append(per_item(url, db, args, rows))
    for f in figures:
        print(f"  {db:10} {f.path:28} {f.outcomes:6} outcomes {f.seconds:7.2f} s", flush=True)
    return figures


def table(figures: list[Figure], args: argparse.Namespace) -> str:
    baseline = {(f.db, f.path): f.rate for f in figures if f.path.startswith("direct")}
    head = ["db", "path", "outcomes", "s", "outcomes/s", "batch p50 ms", "vs direct"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        again = "re-ingest" in f.path
        base = baseline.get((f.db, "direct re-ingest" if again else "direct"))
        ratio = f"{f.rate / base:.2f}x" if base and not f.path.startswith("direct") else ""
        p50 = f"{statistics.median(f.batch_seconds) * 1e3:.0f}" if f.batch_seconds else ""
        lines.append(
            f"| {f.db} | {f.path} | {f.outcomes:,} | {f.seconds:.2f} | {f.rate:,.0f} | {p50} | "
            f"{ratio} |"
        )
    note = (
        f"\nbatches of {args.batch_size}; `vs direct` = rate / in-process record_outcomes rate "
        "(first write vs first write, re-ingest vs re-ingest)"
    )
    return "\n".join(lines) + note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="batches per path")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (1: skip)")
    parser.add_argument(
        "--item-batches", type=int, default=1, help="batches written one record_outcome each"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        if not args.skip_sqlite:
            figures += run(f"sqlite:///{tmp / 'ingest.db'}", "sqlite", args, tmp)
        pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get(
            "OUTCOME_JUDGE_TEST_PG_URL"
        )
        if pg and not args.skip_pg:
            with pg_schema(pg, prefix="bench_ingest") as url:
                figures += run(url, "postgresql", args, tmp)
        elif not args.skip_pg:
            print(
                "PostgreSQL skipped: set OUTCOME_JUDGE_BENCH_PG_URL (or OUTCOME_JUDGE_TEST_PG_URL)"
            )
    print()
    print(table(figures, args))


if __name__ == "__main__":
    main()

"""Ingest throughput (outcomes per second) through the real HTTP API, against a standalone
psycopg baseline doing the same work, and how ``judge serve --workers N`` scales with clients.

Not a test: run ``python bench/bench_ingest.py`` and read the tables. For each database (SQLite
in a temporary file; PostgreSQL in a dedicated schema, dropped afterwards, when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set), on one migrated ledger,
each path over its own tenant (so every first write is a new outcome), ``--rounds`` rounds with
fresh tenants, reported as min / median of the rounds' rates:

- ``http``: ``POST /v1/outcomes`` to a ``judge serve`` subprocess on 127.0.0.1 (one API process,
  no embedded worker), ``--batches`` batches of ``--batch-size`` synthetic outcomes (unique
  ids, shaped like ``datasets/tickets.jsonl``: touches and embedded labels included), one client
  posting one batch at a time; then the same batches again (``re-ingest``: all ``unchanged``);
- ``direct``: :func:`ledger.ingest.record_outcomes` in this process on already-validated
  :class:`~judge.models.Outcome` objects (what the route calls): what HTTP, JSON and validation
  add on top of the ledger;
- ``baseline`` (PostgreSQL): the same outcome dicts written directly with psycopg, one
  transaction per batch: one lock statement, one latest-revision look-up, COPY of the outcomes
  and touches, one INSERT .. ON CONFLICT for the labels (``bench/_ingest_baseline.py``). The
  three paths are timed batch by batch, alternately (the order rotating), so a change in the
  machine's load hits them alike;
- ``scaling`` (PostgreSQL): ``judge serve --workers N`` with one client, then with ``--clients``
  clients posting concurrently (``--scale-batches`` batches of new outcomes each time), with the
  CPU seconds the server's processes, its PostgreSQL backends and this process used: the cores
  the pipeline kept busy, which bounds what more clients can gain on this machine.

Request bodies are serialised before the clock starts, so the figures are the server's. Nothing
here is asserted anywhere; the ratios are the comparable part (absolute rates depend on the
machine and its load).
"""

from __future__ import annotations

import argparse
import gc
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

from _cpu import CpuMeter  # bench/ is the script's folder on sys.path
from _pg import pg_schema

ROOT = Path(__file__).resolve().parent.parent
TICKETS = ROOT / "datasets" / "tickets.jsonl"
#: application_name of the benchmark's PostgreSQL connections (their backends' CPU is counted).
APP = "oj-bench-ingest"


@dataclass
class Rates:
    """One path's rates (outcomes/s), one per round; ``cpu``: CPU seconds per part per round."""

    db: str
    path: str
    rates: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def low(self) -> float:
        return min(self.rates)

    def mid(self) -> float:
        return statistics.median(self.rates)

    def cores(self) -> float:
        """Median cores kept busy, all parts (CPU seconds / wall seconds)."""
        return statistics.median(
            sum(c.values()) / w for c, w in zip(self.cpu, self.walls, strict=True)
        )

    def per_thousand(self) -> dict[str, float]:
        """Median CPU seconds per 1,000 outcomes, per part."""
        runs = list(zip(self.cpu, self.rates, self.walls, strict=True))
        parts = runs[0][0] if runs else {}
        return {p: statistics.median(c[p] / (r * w) * 1000 for c, r, w in runs) for p in parts}


def loadavg() -> float:
    """The machine's 1-minute load average (it is shared: the figures move with it)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


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


def with_app(url: str, name: str) -> str:
    """``url`` with an application_name (PostgreSQL), so its backends can be told apart."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def judge_serve(
    url: str, log: Path, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``judge serve --db url --workers N`` on a free loopback port (no embedded worker), with
    ``env`` added to its environment; yields its base URL and pid."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "OUTCOME_JUDGE_EMBEDDED_WORKER": "false",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    args = ["serve", "--db", url, "--port", str(port), "--log-level", "warning"]
    args += ["--workers", str(workers)] if workers > 1 else []
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
            yield base, proc.pid
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


def encode(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"outcomes": items}).encode()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- HTTP vs direct vs baseline, interleaved ------------------------------------------------------


class Paths:
    """The ingest paths of one round, each over its own tenant: ``run(path, i, expect)``
    writes batch ``i``."""

    def __init__(self, url: str, base: str, args: argparse.Namespace, rows: list[Any]) -> None:
        from ledger.db import make_engine

        self.url, self.base, self.args, self.rows = url, base, args, rows
        self.postgres = url.startswith("postgresql")
        self.engine = make_engine(with_app(url, APP))
        self.raw: Any = None
        if self.postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            conninfo = make_url(with_app(url, APP)).set(drivername="postgresql")
            self.raw = psycopg.connect(conninfo.render_as_string(hide_password=False))
        self.names = ["http", "direct"] + (["baseline"] if self.postgres else [])
        self.jobs: dict[str, Callable[[int, str], object]] = {}
        self.closers: list[Callable[[], None]] = []

    def start_round(self, tag: str, count: int) -> None:
        """Fresh tenants and data for every path (tenant = path name + ``tag``)."""
        from _ingest_baseline import ensure_tenant, write_batch

        from judge.models import Outcome
        from ledger.ingest import record_outcomes

        size = self.args.batch_size
        for close in self.closers:
            close()
        self.closers = []
        poster = Poster(self.base, make_key(self.url, f"http{tag}"))
        self.closers.append(poster.close)
        bodies = [encode(g) for g in batches(synthetic(f"http{tag}", count, self.rows), size)]
        self.jobs["http"] = lambda i, expect: poster.post(bodies[i], expect)
        groups = [
            [Outcome.model_validate(o) for o in group]
            for group in batches(synthetic(f"direct{tag}", count, self.rows), size)
        ]
        self.jobs["direct"] = lambda i, _: record_outcomes(self.engine, f"direct{tag}", groups[i])
        if self.raw is not None:
            ensure_tenant(self.raw, f"baseline{tag}")
            plain = batches(synthetic(f"baseline{tag}", count, self.rows), size)
            self.jobs["baseline"] = lambda i, _: write_batch(self.raw, f"baseline{tag}", plain[i])
        # The round's prepared data lives until the round ends: kept out of the collector's
        # full passes, which would otherwise walk it again and again inside the timed paths of
        # this process (the baseline's and direct's; the server freezes its own start-up heap).
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        for close in self.closers:
            close()
        if self.raw is not None:
            self.raw.close()
        self.engine.dispose()


def interleaved(url: str, base: str, db: str, args: argparse.Namespace) -> list[Rates]:
    """Every path batch by batch, alternately (the order rotating per batch), first writes then
    re-ingest, ``--rounds`` times over fresh tenants."""
    paths = Paths(url, base, args, templates())
    n = args.batches * args.batch_size
    out = {
        (name, phase): Rates(db, name + phase)
        for phase in ("", " re-ingest")
        for name in paths.names
    }
    try:
        paths.start_round("-warm", args.batch_size)  # lazy imports, first connections: uncounted
        for expect in ("created", "unchanged"):
            for name in paths.names:
                paths.jobs[name](0, expect)
        for r in range(args.rounds):
            paths.start_round(f"-{r}", n)
            for phase, expect in (("", "created"), (" re-ingest", "unchanged")):
                seconds = dict.fromkeys(paths.names, 0.0)
                for i in range(args.batches):
                    turn = (i + r) % len(paths.names)
                    for name in paths.names[turn:] + paths.names[:turn]:
                        seconds[name] += timed(partial(paths.jobs[name], i, expect))
                for name, s in seconds.items():
                    out[(name, phase)].rates.append(n / s)
            print(f"  {db} round {r + 1}/{args.rounds} done", flush=True)
    finally:
        paths.close()
    return list(out.values())


# -- `judge serve --workers N`: one client vs several ---------------------------------------------


def scaling(url: str, db: str, args: argparse.Namespace, tmp: Path) -> list[Rates]:
    """One client, then ``--clients`` clients, against ``judge serve --workers N`` (new outcomes,
    ``--scale-batches`` batches each), ``--rounds`` times; CPU seconds per part per run."""
    import psycopg
    from sqlalchemy.engine import make_url

    rows = templates()
    n = args.scale_batches * args.batch_size
    one, many = Rates(db, "1 client"), Rates(db, f"{args.clients} clients")
    admin = psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    serve_url = with_app(url, APP)
    try:
        with judge_serve(serve_url, tmp / "serve-workers.log", workers=args.workers) as (base, pid):
            meter = CpuMeter(pid, admin, APP)
            warm = make_key(url, "scale-warm")
            bodies = [encode(g) for g in batches(synthetic("scale-warm", 800, rows), 50)]
            run_clients(base, warm, bodies, args.clients, "created")  # every worker warmed
            for r in range(args.rounds):
                # Alternate which runs first, so a drift in the machine's load evens out.
                order = [(1, one), (args.clients, many)]
                for clients, rates in order if r % 2 == 0 else order[::-1]:
                    tenant = f"scale{clients}-{r}"
                    key = make_key(url, tenant)
                    bodies = [
                        encode(g) for g in batches(synthetic(tenant, n, rows), args.batch_size)
                    ]
                    before = meter.snapshot()
                    wall = run_clients(base, key, bodies, clients, "created")
                    rates.cpu.append(CpuMeter.used(before, meter.snapshot()))
                    rates.walls.append(wall)
                    rates.rates.append(n / wall)
                print(f"  {db} scaling round {r + 1}/{args.rounds} done", flush=True)
    finally:
        admin.close()
    return [one, many]


def run_clients(base: str, key: str, bodies: list[bytes], clients: int, expect: str) -> float:
    """``clients`` clients posting ``bodies`` concurrently (round robin); the wall seconds."""
    posters = [Poster(base, key) for _ in range(clients)]
    try:
        shares = [bodies[c::clients] for c in range(clients)]

        def client(c: int) -> None:
            for body in shares[c]:
                posters[c].post(body, expect)

        with ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            list(pool.map(client, range(clients)))
            return time.perf_counter() - started
    finally:
        for poster in posters:
            poster.close()


# -- the run --------------------------------------------------------------------------------------


def run(url: str, db: str, args: argparse.Namespace, tmp: Path) -> tuple[list[Rates], list[Rates]]:
    from ledger.db import make_engine
    from ledger.schema import migrate

    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    with judge_serve(url, tmp / f"serve-{db}.log") as (base, _):
        figures = interleaved(url, base, db, args)
    scaled = scaling(url, db, args, tmp) if db == "postgresql" and args.clients > 1 else []
    return figures, scaled


def _pair(a: float, b: float, fmt: str = ",.0f") -> str:
    return f"{a:{fmt}} / {b:{fmt}}"


def ingest_table(figures: list[Rates]) -> str:
    lines = [
        "| db | path | outcomes/s (min / median) | vs baseline | vs direct |",
        "|---|---|---|---|---|",
    ]
    by = {(f.db, f.path): f for f in figures}
    for f in figures:
        again = " re-ingest" if f.path.endswith("re-ingest") else ""
        cols = []
        for other in ("baseline", "direct"):
            ref = by.get((f.db, other + again))
            if ref is None or ref is f or f.path.startswith("baseline"):
                cols.append("")
            else:
                cols.append(_pair(f.low() / ref.low(), f.mid() / ref.mid(), ".2f"))
        lines.append(f"| {f.db} | {f.path} | {_pair(f.low(), f.mid())} | {' | '.join(cols)} |")
    return "\n".join(lines)


def scaling_table(scaled: list[Rates], args: argparse.Namespace) -> str:
    one = scaled[0]
    lines = [
        f"`judge serve --workers {args.workers}`, PostgreSQL, new outcomes",
        "",
        "| clients | outcomes/s (min / median) | vs 1 client | CPU s per 1,000 outcomes: "
        "server + PostgreSQL + client | cores busy |",
        "|---|---|---|---|---|",
    ]
    for f in scaled:
        cpu = f.per_thousand()
        parts = " + ".join(f"{cpu[p]:.2f}" for p in ("server", "postgres", "client"))
        ratio = _pair(f.low() / one.low(), f.mid() / one.mid(), ".2f")
        lines.append(
            f"| {f.path} | {_pair(f.low(), f.mid())} | {ratio} | {parts} = "
            f"{sum(cpu.values()):.2f} | {f.cores():.2f} |"
        )
    cores = os.cpu_count() or 1
    ceiling = cores * 1000 / sum(one.per_thousand().values())
    lines.append(
        f"\nCeiling: {cores} cores / the CPU one outcome costs at 1 client = {ceiling:,.0f} "
        f"outcomes/s, {ceiling / one.mid():.2f}x the 1-client median: no number of clients or "
        "API processes gets past it on this machine, and other work on the cores lowers it."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="batches per path per round")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (min / median of them)")
    parser.add_argument("--workers", type=int, default=4, help="API processes for scaling")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (1: skip)")
    parser.add_argument("--scale-batches", type=int, default=16, help="batches per scaling run")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()

    figures: list[Rates] = []
    scaled: list[Rates] = []
    load = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        if not args.skip_sqlite:
            figures += run(f"sqlite:///{tmp / 'ingest.db'}", "sqlite", args, tmp)[0]
        pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get(
            "OUTCOME_JUDGE_TEST_PG_URL"
        )
        if pg and not args.skip_pg:
            with pg_schema(pg, prefix="bench_ingest") as url:
                more, scaled = run(url, "postgresql", args, tmp)
                figures += more
        elif not args.skip_pg:
            print(
                "PostgreSQL skipped: set OUTCOME_JUDGE_BENCH_PG_URL (or OUTCOME_JUDGE_TEST_PG_URL)"
            )
    load.append(loadavg())
    print(
        f"\nbatches of {args.batch_size}, {args.batches} per path per round, {args.rounds} "
        f"rounds; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end:"
    )
    print(ingest_table(figures))
    if scaled:
        print()
        print(scaling_table(scaled, args))


if __name__ == "__main__":
    main()

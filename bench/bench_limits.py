"""Benchmark of what the shared rate limit, failed-key throttle and request counters cost.

Not a test: run ``python bench/bench_limits.py`` and read the table. PostgreSQL only (a dedicated
schema of ``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL``). Two ``judge serve``
servers on 127.0.0.1 share the database: one keeps its limits and counters in memory
(``OUTCOME_JUDGE_SHARED_LIMITS=false``, the per-process behaviour before issue 16), the other in
the database (the default on PostgreSQL). Alternating, ``--runs`` times each:

- **1 client**: ``--requests`` sequential ``GET /v1/tenant`` on one keep-alive connection: the
  p50 latency (the added cost per request is the difference);
- **N clients**: ``--clients`` threads, each on its own connection: requests per second, with
  one API process each and again with ``--workers 2`` each;

and, in this process, the bucket's statement alone (``take_token`` on an autocommit connection)
against the in-memory bucket. The two servers are measured in alternating blocks (the machine's
load drifts). Prints min / median of the runs and the ratios. No figure here is asserted
anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import pg_schema  # noqa: E402  (bench/ is the script's folder on sys.path)
from bench_ingest import judge_serve  # noqa: E402  (bench/ is the script's folder on sys.path)

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)


@contextmanager
def serving(url: str, log: Path, *, shared: bool, processes: int = 1) -> Iterator[str]:
    """``judge serve --workers processes`` (no verification worker) with the limits shared or
    not; its base URL."""
    env = {"OUTCOME_JUDGE_SHARED_LIMITS": "true" if shared else "false"}
    with judge_serve(url, log, workers=processes, env=env) as (base, _):
        yield base


def sequential(
    targets: dict[str, str], key: str, requests: int, block: int = 50
) -> dict[str, float]:
    """p50 seconds of ``requests`` sequential GET /v1/tenant per target, one connection each,
    alternating between the targets every ``block`` requests (the machine's load drifts)."""
    import httpx

    times: dict[str, list[float]] = {name: [] for name in targets}
    headers = {"Authorization": f"Bearer {key}"}
    clients = {name: httpx.Client(base_url=url, headers=headers) for name, url in targets.items()}
    try:
        for _ in range(max(1, requests // block)):
            for name, http in clients.items():
                for _ in range(block):
                    started = time.perf_counter()
                    response = http.get("/v1/tenant")
                    times[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
    finally:
        for http in clients.values():
            http.close()
    return {name: statistics.median(got) for name, got in times.items()}


def concurrent(
    targets: dict[str, str], key: str, clients: int, requests: int, blocks: int = 4
) -> dict[str, float]:
    """Requests per second of ``clients`` threads (one connection each) sending ``requests``
    GET /v1/tenant each, per target, alternating between the targets in ``blocks`` blocks."""
    import httpx

    elapsed = dict.fromkeys(targets, 0.0)
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    per_block = max(1, requests // blocks)

    def client(url: str) -> None:
        with httpx.Client(base_url=url, headers=headers) as http:
            for _ in range(per_block):
                response = http.get("/v1/tenant")
                if response.status_code != 200:
                    errors.append(response.text)

    for _ in range(blocks):
        for name, url in targets.items():
            threads = [threading.Thread(target=client, args=(url,)) for _ in range(clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed[name] += time.perf_counter() - started
    assert not errors, errors[:3]
    return {name: clients * per_block * blocks / seconds for name, seconds in elapsed.items()}


def statement(url: str, tenant: str, calls: int) -> tuple[float, float]:
    """Seconds per take: the shared bucket's statement, then the in-memory bucket."""
    from api.limits import RateLimiter
    from ledger.db import make_engine
    from ledger.shared_limits import take_token

    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        started = time.perf_counter()
        for _ in range(calls):
            with engine.connect() as conn:
                take_token(conn, tenant, 10_000_000)
        shared = (time.perf_counter() - started) / calls
    finally:
        engine.dispose()
    limiter = RateLimiter()
    started = time.perf_counter()
    for _ in range(calls):
        limiter.check(tenant, 10_000_000)
    return shared, (time.perf_counter() - started) / calls


def _runs(label: str, runs: int, measure: Callable[[], dict[str, float]]) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"memory": [], "shared": []}
    for i in range(runs):
        for name, value in measure().items():
            got[name].append(value)
        print(f"  {label} run {i + 1}: " + ", ".join(f"{n} {v[-1]:.5g}" for n, v in got.items()))
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests a run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=200, help="requests of each client")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get(
        "OUTCOME_JUDGE_TEST_PG_URL"
    )
    if not base:
        sys.exit(
            "set OUTCOME_JUDGE_BENCH_PG_URL (or OUTCOME_JUDGE_TEST_PG_URL) to a PostgreSQL URL"
        )
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.tenants import create_tenant

    rows: list[tuple[str, dict[str, list[float]], float, str]] = []
    with pg_schema(base, prefix="bench_limits") as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        migrate(engine)
        key = create_tenant(engine, "acme", requests_per_minute=10_000_000).key
        engine.dispose()
        for processes in (1, 2):
            with (
                serving(url, Path(tmp) / "memory.log", shared=False, processes=processes) as m,
                serving(url, Path(tmp) / "shared.log", shared=True, processes=processes) as s,
            ):
                targets = {"memory": m, "shared": s}
                sequential(targets, key, 200)  # warm both (imports, pools, plans)
                if processes == 1:
                    latency = _runs(
                        "1 client p50 s",
                        args.runs,
                        partial(sequential, targets, key, args.requests),
                    )
                    rows.append(("GET /v1/tenant p50, 1 client (ms)", latency, 1e3, "ms"))
                rate = _runs(
                    f"{args.clients} clients req/s, --workers {processes}",
                    args.runs,
                    partial(concurrent, targets, key, args.clients, args.per_client),
                )
                label = f"GET /v1/tenant, {args.clients} clients, --workers {processes} (req/s)"
                rows.append((label, rate, 1.0, ""))
        takes = [statement(url, "acme", 2000) for _ in range(args.runs)]
        rows.append(
            (
                "one bucket take with its pool checkout, in this process (us)",
                {"memory": [t[1] for t in takes], "shared": [t[0] for t in takes]},
                1e6,
                "us",
            )
        )

    print()
    print(
        "| measure (min / median of runs) | in memory, per process | shared in PostgreSQL "
        "| shared / memory (medians) |"
    )
    print("|---|---:|---:|---:|")
    for label, got, scale, unit in rows:
        med = {n: statistics.median(v) for n, v in got.items()}
        cells = {n: f"{min(v) * scale:.3g} / {med[n] * scale:.3g}" for n, v in got.items()}
        ratio = f"{med['shared'] / med['memory']:.2f}"
        if unit == "ms":
            ratio += f" ({(med['shared'] - med['memory']) * scale:+.2f} ms)"
        elif unit == "us":
            ratio = f"{(med['shared'] - med['memory']) * scale:+.0f} us"
        print(f"| {label} | {cells['memory']} | {cells['shared']} | {ratio} |")


if __name__ == "__main__":
    main()

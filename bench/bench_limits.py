"""Benchmark of what the shared rate limit, failed-key throttle and request counters cost.

Not a test: run ``python bench/bench_limits.py`` and read the table. PostgreSQL only (a dedicated
schema of ``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL``). Two ``judge serve``
processes on 127.0.0.1 share the database: one keeps its limits and counters in memory
(``OUTCOME_JUDGE_SHARED_LIMITS=false``, the per-process behaviour before issue 16), the other in
the database (the default on PostgreSQL). Alternating, ``--runs`` times each:

- **1 client**: ``--requests`` sequential ``GET /v1/tenant`` on one keep-alive connection: the
  p50 latency (the added cost per request is the difference);
- **N clients**: ``--clients`` threads, each on its own connection: requests per second.

and, in this process, the bucket's statement alone (``take_token`` on an autocommit connection)
against the in-memory bucket. Prints min / median of the runs and the ratios. No figure here is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import pg_schema  # noqa: E402  (bench/ is the script's folder on sys.path)

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(url: str, log: Path, *, shared: bool) -> Iterator[str]:
    """``judge serve`` (one process, no worker) with the limits shared or not; its base URL."""
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "OUTCOME_JUDGE_EMBEDDED_WORKER": "false",
        "OUTCOME_JUDGE_SHARED_LIMITS": "true" if shared else "false",
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
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"judge serve did not start: {log.read_text()[-2000:]}")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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


def concurrent(base: str, key: str, clients: int, requests: int) -> float:
    """Requests per second of ``clients`` threads sending ``requests`` GET /v1/tenant each."""
    import httpx

    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
            for _ in range(requests):
                response = http.get("/v1/tenant")
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    return clients * requests / elapsed


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


def _runs(label: str, runs: int, fns: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(runs):
        for name, fn in fns.items():
            got[name].append(fn())
        print(f"  {label} run {i + 1}: " + ", ".join(f"{n} {v[-1]:.5g}" for n, v in got.items()))
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests a run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=250, help="requests of each client")
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

    with pg_schema(base, prefix="bench_limits") as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        migrate(engine)
        key = create_tenant(engine, "acme", requests_per_minute=10_000_000).key
        engine.dispose()
        logs = Path(tmp)
        with (
            serving(url, logs / "memory.log", shared=False) as memory,
            serving(url, logs / "shared.log", shared=True) as shared,
        ):
            targets = {"memory": memory, "shared": shared}
            sequential(targets, key, 200)  # warm both (imports, pools, plans)
            latency: dict[str, list[float]] = {"memory": [], "shared": []}
            for i in range(args.runs):
                for name, p50 in sequential(targets, key, args.requests).items():
                    latency[name].append(p50)
                print(
                    f"  1 client p50 s run {i + 1}: memory {latency['memory'][-1]:.5g}, "
                    f"shared {latency['shared'][-1]:.5g}"
                )
            rate = _runs(
                f"{args.clients} clients req/s",
                args.runs,
                {
                    "memory": lambda: concurrent(memory, key, args.clients, args.per_client),
                    "shared": lambda: concurrent(shared, key, args.clients, args.per_client),
                },
            )
        takes = [statement(url, "acme", 2000) for _ in range(args.runs)]

    def mm(values: list[float], scale: float = 1.0) -> str:
        return f"{min(values) * scale:.3g} / {statistics.median(values) * scale:.3g}"

    lat_m, lat_s = statistics.median(latency["memory"]), statistics.median(latency["shared"])
    rate_m, rate_s = statistics.median(rate["memory"]), statistics.median(rate["shared"])
    take_s = [t[0] for t in takes]
    take_m = [t[1] for t in takes]
    print()
    print("| measure | in memory (per process) | shared (PostgreSQL) | shared / memory |")
    print("|---|---:|---:|---:|")
    print(
        f"| GET /v1/tenant p50, 1 client (ms, min / median) | {mm(latency['memory'], 1e3)} | "
        f"{mm(latency['shared'], 1e3)} | {lat_s / lat_m:.2f} (+{(lat_s - lat_m) * 1e3:.2f} ms) |"
    )
    print(
        f"| GET /v1/tenant, {args.clients} clients (req/s, min / median) | {mm(rate['memory'])} | "
        f"{mm(rate['shared'])} | {rate_s / rate_m:.2f} |"
    )
    print(
        f"| one bucket take (us, min / median) | {mm(take_m, 1e6)} | {mm(take_s, 1e6)} | "
        f"{statistics.median(take_s) / statistics.median(take_m):.0f} |"
    )


if __name__ == "__main__":
    main()

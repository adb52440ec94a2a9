"""A mixed-load client for the API, run as its own process.

``python -m tests.reliability.load_client --url URL --key KEY [--seconds 20] [--out FILE]``.

Threads with their own ``httpx.Client`` each loop, closed-loop, over one kind of work:

- ``ingest``: POST /v1/outcomes, batches of new outcomes (ids unique to the thread);
- ``meter``: GET /v1/meters/verified-outcomes and /v1/metrics/cost-per-verified-outcome;
- ``job``: POST /v1/verifications over outcomes already ingested, then GET it until it is done;
- ``read``: GET /v1/outcomes/{id} of an outcome already ingested.

A warm-up phase runs the same load uncounted; then every request is timed and checked against
the status it must answer. The result is one JSON object on stdout (or ``--out``): per request
kind the count, errors and latency percentiles, requests per second, the wall-clock bounds of
the measured phase (to line up with the server's memory samples), the outcome ids created and
the jobs created. It makes no assertion: the test reads the result and decides.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.synth import sample_tickets

#: The status each request kind must answer; anything else is an error.
EXPECTED = {
    "ingest": 200,
    "meter_verified": 200,
    "meter_cost": 200,
    "job_create": 202,
    "job_poll": 200,
    "get_outcome": 200,
}


@dataclass
class Stats:
    """What the threads measured (one lock for all: requests take milliseconds, this does not)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    measuring: bool = False
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # ingested (created) outcome ids, any phase
    jobs: list[str] = field(default_factory=list)
    jobs_done: set[str] = field(default_factory=set)

    def note(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is not None and len(self.samples) < 20:
                self.samples.append(f"{kind}: {error}"[:500])
            if not self.measuring:
                return
            self.latencies[kind].append(seconds)
            if error is not None:
                self.errors[kind] += 1


def _call(stats: Stats, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
    """Send one request, time it, count it an error unless it answers ``EXPECTED[kind]``."""
    started = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as exc:
        stats.note(kind, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return None
    elapsed = time.perf_counter() - started
    if response.status_code != EXPECTED[kind]:
        stats.note(kind, elapsed, f"{response.status_code} {response.text[:300]}")
        return None
    stats.note(kind, elapsed, None)
    return response


def _outcomes(templates: list[dict[str, Any]], prefix: str, start: int, n: int) -> list[Any]:
    out = []
    for i in range(start, start + n):
        record = json.loads(json.dumps(templates[i % len(templates)]))
        record["id"] = f"{prefix}-{i:06d}"
        record.pop("tenant", None)
        out.append(record)
    return out


def _ingest(
    client: httpx.Client, stats: Stats, stop: threading.Event, name: str, batch: int, space: int
) -> None:
    """Ingest batches of new outcomes; with ``space``, ids cycle over that many (then every
    batch is ``unchanged`` and the data set stops growing: memory growth is then no data's)."""
    templates = sample_tickets(clean=True)
    n = 0
    while not stop.is_set():
        if space:
            n %= space
        body = {"outcomes": _outcomes(templates, name, n, batch)}
        response = _call(stats, "ingest", partial(client.post, "/v1/outcomes", json=body))
        n += batch
        if response is not None:
            created = [i["id"] for i in response.json()["items"] if i["status"] == "created"]
            with stats.lock:
                stats.ids.extend(created)


def _meter(client: httpx.Client, stats: Stats, stop: threading.Event, rng: random.Random) -> None:
    now = datetime.now(UTC)
    span = {
        "from": (now - timedelta(days=400)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    while not stop.is_set():
        group = rng.choice(["agent", "tier", "agent,model_path", ""])
        params = {**span, "window": rng.choice(["day", "month"]), "group_by": group}
        _call(
            stats,
            "meter_verified",
            partial(client.get, "/v1/meters/verified-outcomes", params=params),
        )
        cost = {"group_by": rng.choice(["agent", "period", ""]), "period": "month"}
        _call(
            stats,
            "meter_cost",
            partial(client.get, "/v1/metrics/cost-per-verified-outcome", params=cost),
        )


def _known(stats: Stats, rng: random.Random, k: int) -> list[str]:
    with stats.lock:
        return rng.sample(stats.ids, k) if len(stats.ids) >= k else []


def _jobs(
    client: httpx.Client,
    stats: Stats,
    stop: threading.Event,
    rng: random.Random,
    size: int,
    poll: float,
) -> None:
    while not stop.is_set():
        ids = _known(stats, rng, size)
        if not ids:
            time.sleep(0.05)
            continue
        created = _call(
            stats,
            "job_create",
            partial(client.post, "/v1/verifications", json={"outcome_ids": ids}),
        )
        if created is None:
            continue
        job_id = created.json()["id"]
        with stats.lock:
            stats.jobs.append(job_id)
        while not stop.is_set():
            state = _call(stats, "job_poll", partial(client.get, f"/v1/verifications/{job_id}"))
            if state is not None and state.json()["status"] in ("done", "failed"):
                with stats.lock:
                    stats.jobs_done.add(job_id)
                break
            stop.wait(poll)


def _reader(client: httpx.Client, stats: Stats, stop: threading.Event, rng: random.Random) -> None:
    while not stop.is_set():
        ids = _known(stats, rng, 1)
        if not ids:
            time.sleep(0.05)
            continue
        _call(stats, "get_outcome", partial(client.get, f"/v1/outcomes/{ids[0]}"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the load for ``args.warmup`` + ``args.seconds`` seconds; return the measurements."""
    stats = Stats()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {args.key}"}
    rng = random.Random(args.seed)
    workers: list[tuple[str, Callable[[httpx.Client], None]]] = []
    for t in range(args.ingest):
        body = partial(_ingest, stats=stats, stop=stop, name=f"L{t}", batch=args.batch)
        workers.append((f"ingest{t}", partial(body, space=args.id_space)))
    # Each thread its own RNG (drawn from the seed): random.Random is not shared across threads.
    for t in range(args.meter):
        r = random.Random(rng.random())
        workers.append((f"meter{t}", partial(_meter, stats=stats, stop=stop, rng=r)))
    for t in range(args.jobs):
        r = random.Random(rng.random())
        job = partial(_jobs, stats=stats, stop=stop, rng=r, size=args.job_size)
        workers.append((f"job{t}", partial(job, poll=args.poll)))
    for t in range(args.read):
        r = random.Random(rng.random())
        workers.append((f"read{t}", partial(_reader, stats=stats, stop=stop, rng=r)))

    def loop(body: Callable[[httpx.Client], None]) -> None:
        with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
            body(client)

    threads = [threading.Thread(target=loop, args=(b,), name=n, daemon=True) for n, b in workers]
    for thread in threads:
        thread.start()
    time.sleep(args.warmup)
    with stats.lock:
        stats.measuring = True
    measure_start, started = time.time(), time.perf_counter()
    time.sleep(args.seconds)
    with stats.lock:
        stats.measuring = False
    elapsed, measure_end = time.perf_counter() - started, time.time()
    stop.set()
    for thread in threads:
        thread.join(timeout=args.timeout + 5)
    with stats.lock:
        total = sum(len(v) for v in stats.latencies.values())
        kinds = {
            kind: {
                "count": len(values),
                "errors": stats.errors.get(kind, 0),
                "p50_ms": round(_percentile(values, 0.50) * 1000, 1),
                "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }
            for kind, values in sorted(stats.latencies.items())
        }
        return {
            "seconds": round(elapsed, 2),
            "requests": total,
            "errors": sum(stats.errors.values()),
            "rps": round(total / elapsed, 1),
            "kinds": kinds,
            "error_samples": stats.samples,
            "measure_start": measure_start,
            "measure_end": measure_end,
            "ids": stats.ids,
            "jobs": stats.jobs,
            "jobs_done": sorted(stats.jobs_done),
            "threads_alive": sum(t.is_alive() for t in threads),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="The API's base URL (http://127.0.0.1:PORT).")
    parser.add_argument("--key", required=True, help="A tenant's API key.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Measured duration.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Uncounted lead-in.")
    parser.add_argument("--ingest", type=int, default=2, help="Ingest threads.")
    parser.add_argument("--batch", type=int, default=20, help="Outcomes per ingest request.")
    parser.add_argument(
        "--id-space", type=int, default=0, help="Ids per ingest thread (cycled); 0: unbounded."
    )
    parser.add_argument("--meter", type=int, default=1, help="Meter-query threads.")
    parser.add_argument("--jobs", type=int, default=1, help="Job create-and-poll threads.")
    parser.add_argument("--job-size", type=int, default=5, help="Outcomes per job.")
    parser.add_argument("--poll", type=float, default=0.2, help="Seconds between job polls.")
    parser.add_argument("--read", type=int, default=1, help="GET-outcome threads.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Per-request timeout.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="Write the JSON result here (else stdout).")
    args = parser.parse_args(argv)
    result = json.dumps(run(args))
    if args.out:
        args.out.write_text(result)
    else:
        sys.stdout.write(result + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The API under a sustained mixed load from a separate process on loopback.

A real ``judge serve`` (SQLite: its embedded worker runs the jobs; PostgreSQL: a ``judge worker``
process does) takes, for a bounded time, the load of :mod:`tests.reliability.load_client` run as
its own process: ingest batches, meter and cost queries, verification jobs created and polled,
outcome reads. Asserted: zero errors (no 5xx, no transport error, no unexpected status), every
outcome the client was told was created is stored, every job created finishes, and the server's
memory stays roughly flat after warm-up (a loose bound: this is a leak detector, not a
benchmark). Reported: p50/p95 per request kind, requests per second, the server's RSS at the
start and the end of the measured phase. No timing assertion (the CI machine is shared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.conftest import make_key
from tests.api.flow_helpers import ok, wait_for_job
from tests.api.live import LiveServer, Process
from tests.fakes.faults import closed_port
from tests.reliability.conftest import Figures
from tests.reliability.harness import ROOT, query
from tests.reliability.service_probe import RssSampler, log_problems, wait_rss_settled
from tests.reliability.synth import synthetic_tickets

#: Measured seconds of load (after a 3 s warm-up); RELIABILITY_LOAD_SECONDS overrides it.
SECONDS = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "20"))
WARMUP = 3.0
#: Growth of the server's RSS over the measured phase that fails the test (a leak).
MAX_GROWTH_MIB = 100
#: Outcome ids per ingest thread (cycled; later batches are "unchanged").
ID_SPACE = 2000
MIB = 1024
#: Seconds a first job may take while the worker process starts (imports, detector, heap).
WORKER_START_TIMEOUT = 180.0


def _wait_jobs(server: LiveServer, key: str, job_ids: list[str], *, timeout: float) -> set[str]:
    """The jobs among ``job_ids`` that reach done or failed within ``timeout`` seconds."""
    finished: set[str] = set()
    deadline = time.monotonic() + timeout
    with server.client(key) as http:
        while time.monotonic() < deadline and len(finished) < len(job_ids):
            for job_id in job_ids:
                if job_id not in finished:
                    status = http.get(f"/v1/verifications/{job_id}").json()["status"]
                    if status in ("done", "failed"):
                        finished.add(job_id)
            time.sleep(0.2)
    return finished


def _first_job_done(server: LiveServer, key: str) -> None:
    """Run one job to the end before the load: the load measures a worker that is running.

    The client has one job thread that polls each job to its end, so a worker still starting
    (a loaded CI machine took over 20 s) left the measured phase with no job created at all.
    """
    with server.client(key) as http:
        ok(http.post("/v1/outcomes", json={"outcomes": synthetic_tickets(1, prefix="WARM")}))
        job = ok(http.post("/v1/verifications", json={"outcome_ids": ["WARM-00000"]}), 202)
        assert wait_for_job(http, job["id"], timeout=WORKER_START_TIMEOUT)["status"] == "done"


@pytest.mark.slow
def test_sustained_mixed_load_has_no_errors_and_flat_memory(
    tmp_path: Path, db_url: str, figures: Figures
) -> None:
    key = make_key(db_url, "acme", requests_per_minute=1_000_000)  # no 429 from the load itself
    env = {"OUTCOME_JUDGE_WORKER_POLL_SECONDS": "0.2"}
    server = LiveServer(db_url, log=tmp_path / "serve.log", env=env)
    worker = None
    if db_url.startswith("postgresql"):
        worker = Process(
            ["worker", "--db", db_url, "--id", "load"], log=tmp_path / "w.log", env=env
        )
    out = tmp_path / "load.json"
    try:
        _first_job_done(server, key)
        idle_kib = wait_rss_settled(server.proc.pid)
        with RssSampler(server.proc.pid) as rss:
            client = subprocess.run(
                [
                    *(sys.executable, "-m", "tests.reliability.load_client"),
                    *("--url", server.url, "--key", key, "--out", str(out)),
                    *("--seconds", str(SECONDS), "--warmup", str(WARMUP)),
                    # Ids cycle, so the data set stops growing during the warm-up: the growth
                    # measured is then a leak's, not that of reports over more and more data.
                    *("--id-space", str(ID_SPACE)),
                    *os.environ.get("RELIABILITY_LOAD_ARGS", "").split(),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=SECONDS + WARMUP + 120,
                check=False,
            )
            assert client.returncode == 0, client.stderr[-3000:]
            result = json.loads(out.read_text())
        finished = _wait_jobs(server, key, result["jobs"], timeout=60)
        assert server.proc.poll() is None, server.output()
    finally:
        if worker is not None:
            worker.stop()
        server.stop()

    # Zero errors of any kind, and every kind of request really ran.
    assert result["errors"] == 0, result["error_samples"]
    assert result["threads_alive"] == 0
    kinds = result["kinds"]
    assert set(kinds) == {
        "ingest",
        "meter_verified",
        "meter_cost",
        "job_create",
        "job_poll",
        "get_outcome",
    }, kinds
    assert not log_problems(server.output()), server.output()[-3000:]
    # Nothing acknowledged is lost: every outcome answered "created" is stored, once.
    stored = {r[0] for r in query(db_url, "SELECT DISTINCT outcome_id FROM outcomes")}
    assert set(result["ids"]) <= stored and len(result["ids"]) == len(set(result["ids"]))
    # Every job created under load finishes (its verdicts are recorded).
    assert finished == set(result["jobs"]), f"{len(finished)} of {len(result['jobs'])} finished"

    # Memory: flat after warm-up, within a loose bound.
    measured = rss.between(result["measure_start"], result["measure_end"])
    assert len(measured) >= 4, rss.samples
    start_kib, end_kib, peak_kib = measured[0], measured[-1], max(measured)
    growth_mib = (end_kib - start_kib) / MIB
    step = max(1, len(measured) // 6)
    anon = rss.between(result["measure_start"], result["measure_end"], anon=True)

    figures.update(
        {
            "backend": db_url.split(":", 1)[0].split("+")[0],
            "measured seconds": result["seconds"],
            "requests": result["requests"],
            "requests per second": result["rps"],
            "errors (5xx, transport, unexpected)": result["errors"],
            **{
                f"{kind} p50 / p95 ms (n)": f"{v['p50_ms']} / {v['p95_ms']} ({v['count']})"
                for kind, v in kinds.items()
            },
            "outcomes ingested": len(result["ids"]),
            "jobs created / finished": f"{len(result['jobs'])} / {len(finished)}",
            "server RSS idle MiB (settled, before load)": round(idle_kib / MIB),
            "server RSS start -> end MiB (peak)": (
                f"{start_kib / MIB:.0f} -> {end_kib / MIB:.0f} ({peak_kib / MIB:.0f})"
            ),
            "server RSS growth %": round(100 * (end_kib - start_kib) / start_kib, 1),
            "server RSS through the run MiB": [round(k / MIB) for k in measured[::step]],
            "server RssAnon through the run MiB": [round(k / MIB) for k in anon[::step]],
        }
    )
    assert growth_mib < MAX_GROWTH_MIB, f"server RSS grew {growth_mib:.0f} MiB under load"


def test_load_client_counts_failed_requests_as_errors(tmp_path: Path) -> None:
    """The client is the instrument: it counts a request that gets no answer as an error."""
    from tests.reliability import load_client

    out = tmp_path / "r.json"
    code = load_client.main(  # nothing listens on a closed port: every request fails
        [
            *("--url", f"http://127.0.0.1:{closed_port()}", "--key", "k", "--out", str(out)),
            *("--seconds", "0.5", "--warmup", "0", "--timeout", "1"),
            *("--ingest", "1", "--meter", "1", "--jobs", "0", "--read", "0"),
        ]
    )
    result = json.loads(out.read_text())
    assert code == 0
    assert result["errors"] == result["requests"] > 0
    assert result["error_samples"]

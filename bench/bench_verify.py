"""Throughput of the verification engine against bare litellm, and peak memory of `judge verify`.

Prints ratios measured in this run (no timed assertions anywhere):
- engine throughput / bare ``litellm.acompletion`` throughput, same concurrency (target >= 0.85)
- engine throughput / the ideal ``concurrency / latency``
- the ``judge verify`` process / bare litellm at C=32 and C=64, and ``--processes 2`` at C=64
  against one bare litellm process at C=64 (``--cli-only`` prints only this table)
- peak RSS of ``judge verify`` on 1,000 vs 10,000 outcomes (should stay flat: streaming)
- what the injection screen costs: none, the rules, rules + detector on the event loop, and the
  same in a screening process (``--defence-only`` prints only this table)

Everything runs on 127.0.0.1 against the project's fake OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import judge  # noqa: F401  (pins the local litellm price map before litellm is imported)

if TYPE_CHECKING:
    from judge.screen_pool import ScreenPool

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 200
CALLS = 256
# The CLI pays one-time costs (first HTTP client, price map) inside its run: measure it on a
# longer run so the rate is the steady state a real batch sees.
CLI_OUTCOMES = 1024
REPEATS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.openai_server",
            "--port",
            str(port),
            "--latency-ms",
            str(LATENCY_MS),
        ],
        cwd=ROOT,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake server did not start")


def _outcome(i: int) -> dict[str, object]:
    return {
        "id": f"B-{i}",
        "kind": "support_ticket",
        "tenant": "bench",
        "conversation": [
            {"role": "customer", "text": f"Where is my order #{i}? It was due yesterday."},
            {
                "role": "agent",
                "author": "bot:fin",
                "text": f"Order #{i} left the warehouse today; tracking link sent by email.",
            },
            {"role": "customer", "text": "Got it, thanks!"},
        ],
        "signals": {"customer_confirmed": True, "csat": 5},
    }


async def _bare(base: str, concurrency: int, calls: int = CALLS) -> float:
    """The same requests the engine makes (same prompt, same response format), sent directly."""
    import litellm

    from judge.models import Outcome
    from judge.prompts import build_messages, json_schema_for
    from judge.rubric_loader import load_rubric

    rubric = load_rubric("support-resolution")
    requests = [
        build_messages(Outcome.model_validate(_outcome(900_000 + i)), rubric)
        for i in range(calls + 1)
    ]
    schema = json_schema_for(rubric)
    sem = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict[str, str]]) -> None:
        async with sem:
            await litellm.acompletion(
                model="openai/gpt-4o-mini",
                api_base=base,
                api_key="bench",
                messages=messages,
                response_format=schema,
                temperature=0.0,
                timeout=60,
                num_retries=0,
            )

    await one(requests[0])  # warm the client
    start = time.perf_counter()
    await asyncio.gather(*(one(m) for m in requests[1:]))
    return calls / (time.perf_counter() - start)


async def _engine(
    base: str,
    concurrency: int,
    seed: int,
    *,
    detector: bool = True,
    records: list[dict[str, object]] | None = None,
    screen_pool: ScreenPool | None = None,
) -> float:
    from judge.engine import Engine
    from judge.limits import ProviderLimiter
    from judge.models import Outcome
    from judge.panel import LLMJudgeSpec, Panel
    from judge.rubric_loader import load_rubric
    from judge.runner import verify_stream
    from judge.verdict import Verdict

    panel = Panel(
        name="bench",
        judges=[
            LLMJudgeSpec(
                name="llm",
                model="openai/gpt-4o-mini",
                api_base=base,
                api_key_env="BENCH_KEY",
                max_concurrency=concurrency,
            )
        ],
    )
    engine = Engine(
        panel,
        {"support_ticket": load_rubric("support-resolution")},
        limiter=ProviderLimiter(),
        detector=screen_pool.detector if screen_pool else "default" if detector else None,
        screen_pool=screen_pool,
    )
    if records is None:
        records = [_outcome(seed * 100_000 + i) for i in range(CALLS + 1)]
    outcomes = [Outcome.model_validate({**r, "id": f"S{seed}-{i}"}) for i, r in enumerate(records)]

    async def sink(_o: Outcome, _v: Verdict, _r: bool) -> None:
        return None

    await verify_stream(engine, outcomes[:1], sink=sink, concurrency=1)  # warm
    start = time.perf_counter()
    summary = await verify_stream(engine, outcomes[1:], sink=sink, concurrency=concurrency)
    rate = (len(outcomes) - 1) / (time.perf_counter() - start)
    assert sum(summary.decisions.values()) > 0, summary
    return rate


def _taubench_records() -> list[dict[str, object]] | None:
    """The 120 tau-bench conversations (about 20 messages each) twice, as outcome records, or
    None. The second copy gets a marker in every message so no screening result is reused."""
    path = ROOT.parent / "shared" / "datasets" / "tau_bench_airline" / "trajectories.json"
    if not path.exists():
        return None
    from judge.importers import read_outcomes

    records = [o.model_dump(mode="json") for o in read_outcomes(path, format="taubench")]
    copies = []
    for record in records:
        copy = json.loads(json.dumps(record))
        for message in copy.get("conversation") or []:
            message["text"] = f"{message.get('text') or ''} [copy 2]"
        copies.append(copy)
    return records + copies + records[:1]


@contextlib.contextmanager
def _screening(mode: str) -> Iterator[None]:
    """``off``: no injection screening at all; ``rules``: the rule scan only; ``full``: rules
    and the trained detector (the default). The rule scan's memo is emptied first, so one run
    never reuses another's work."""
    import judge.screening
    from judge.injection import _scan

    _scan.cache_clear()
    real = judge.screening.scan_outcome
    if mode == "off":
        judge.screening.scan_outcome = lambda *_a, **_k: []
    try:
        yield
    finally:
        judge.screening.scan_outcome = real


def _defence_cost(base: str) -> None:
    """Engine throughput with no injection screening, the rules only, rules plus the trained
    detector on the event loop, and the same in one screening process (what `judge verify` and
    `judge worker` do by default on a machine with more than one core), same run (C=32)."""
    from judge.guard_model import default_detector
    from judge.screen_pool import ScreenPool

    print(
        "\n| outcomes | no screening (outcomes/s) | rules | rules + detector, on the loop "
        "| the same, 1 screening process | ratio rules | ratio on the loop "
        "| ratio screening process |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    sets: list[tuple[str, list[dict[str, object]] | None]] = [
        ("shipped-sample-sized tickets (3 messages)", None)
    ]
    tau = _taubench_records()
    if tau is not None:
        sets.append(("tau-bench conversations (about 20 messages)", tau))
    with ScreenPool(default_detector(), processes=1) as pool:
        pool.warm_up()
        for name, records in sets:
            rates: dict[str, list[float]] = {"off": [], "rules": [], "full": [], "pool": []}
            for repeat in range(REPEATS):
                for offset, mode in enumerate(rates):
                    with _screening("full" if mode == "pool" else mode):
                        rate = _engine(
                            base,
                            32,
                            100 + repeat + 50 * offset,
                            detector=mode in ("full", "pool"),
                            records=records,
                            screen_pool=pool if mode == "pool" else None,
                        )
                        rates[mode].append(asyncio.run(rate))
            off, rules, full, pooled = (statistics.median(r) for r in rates.values())
            print(
                f"| {name} | {off:.1f} | {rules:.1f} | {full:.1f} | {pooled:.1f} | "
                f"{rules / off:.2f} | {full / off:.2f} | {pooled / off:.2f} |"
            )
        if pool.broken:
            print("(a screening process died during the run: its figures are not valid)")


#: ``call_processes`` of every `judge verify` run measured, printed with its table.
_CALL_PROCESSES: set[int] = set()


def _cli_rate(base: str, concurrency: int, processes: int = 1) -> float:
    """Outcomes per second of the real `judge verify` process (LLM panel, SQLite ledger).

    The CLI reports the time of its verification phase (reading, judging, writing the verdicts
    and the ledger); start-up, validation and migrations are left out of the rate.
    """
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        panel = workdir / "panel.json"
        panel.write_text(
            json.dumps(
                {
                    "name": "bench-cli",
                    "judges": [
                        {
                            "name": "llm",
                            "model": "openai/gpt-4o-mini",
                            "api_base": base,
                            "api_key_env": "BENCH_KEY",
                            "max_concurrency": concurrency,
                        }
                    ],
                }
            )
        )
        path = _write_outcomes(
            workdir / "cli.jsonl", 5_000_000 + 10_000 * concurrency, CLI_OUTCOMES
        )
        proc = _verify_process(
            [sys.executable, "-m", "app.cli"],
            path,
            workdir,
            "cli",
            "--panel",
            str(panel),
            "--concurrency",
            str(concurrency),
            "--processes",
            str(processes),
        )
    summary = json.loads(proc.stdout)
    if summary["decisions"].get("verified", 0) != CLI_OUTCOMES:
        # A judge that failed fast (no key, no server) would show a rate several times bare's.
        raise SystemExit(f"judge verify did not verify every outcome: {summary['decisions']}")
    _CALL_PROCESSES.add(int(summary["call_processes"]))
    return float(summary["outcomes_per_second"])


def _cli_table(base: str) -> None:
    """`judge verify` against bare litellm, interleaved in one run: one process at C=32 and
    C=64, and ``--processes 2`` at C=64 (the total concurrency split between the two)."""
    cases = [(32, 1), (64, 1), (64, 2)]
    bares: dict[int, list[float]] = {32: [], 64: []}
    clis: dict[tuple[int, int], list[float]] = {case: [] for case in cases}
    for _ in range(REPEATS):
        for concurrency, processes in cases:
            if processes == 1:
                bares[concurrency].append(asyncio.run(_bare(base, concurrency, calls=512)))
            clis[(concurrency, processes)].append(_cli_rate(base, concurrency, processes))
    print(
        f"\n`judge verify` ({CLI_OUTCOMES} outcomes, SQLite ledger) vs bare litellm (512 calls), "
        f"fake server at {LATENCY_MS} ms, {REPEATS} interleaved runs, min / median; "
        f"call processes per run: {sorted(_CALL_PROCESSES)}:"
    )
    print(
        "| concurrency | processes | bare litellm, one process (calls/s) | `judge verify` "
        "(outcomes/s) | ratio of medians | ratio per run (min / median) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for concurrency, processes in cases:
        bare, cli = bares[concurrency], clis[(concurrency, processes)]
        ratios = sorted(c / b for c, b in zip(cli, bare, strict=True))
        print(
            f"| {concurrency} | {processes} | {min(bare):.1f} / {statistics.median(bare):.1f} | "
            f"{min(cli):.1f} / {statistics.median(cli):.1f} | "
            f"{statistics.median(cli) / statistics.median(bare):.2f} | "
            f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} |"
        )


def _write_outcomes(path: Path, first_id: int, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps(_outcome(first_id + i)) + "\n")
    return path


def _verify_process(
    launcher: list[str], path: Path, workdir: Path, tag: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run `judge verify --json` on path in its own process, with its own ledger and output."""
    return subprocess.run(
        [
            *launcher,
            "verify",
            str(path),
            "--db",
            f"sqlite:///{workdir}/{tag}.db",
            "--out",
            str(workdir / f"{tag}.out.jsonl"),
            *options,
            "--json",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")},
    )


def _peak_rss_kib(n: int, workdir: Path) -> tuple[int, int]:
    """Peak RSS of the `judge verify` process and of its largest child (the screening process,
    0 without one), in KiB."""
    path = _write_outcomes(workdir / f"in-{n}.jsonl", 0, n)
    code = (
        "import resource, sys; from app.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    if e.code: raise\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    )
    proc = _verify_process([sys.executable, "-c", code], path, workdir, f"m{n}")
    own, child = proc.stderr.strip().splitlines()[-1].split()
    return int(own), int(child)


def main() -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}/v1"
    os.environ["BENCH_KEY"] = "bench"
    server = _start_server(port)
    try:
        if sys.argv[1:] == ["--defence-only"]:
            _defence_cost(base)
            return
        if sys.argv[1:] == ["--cli-only"]:
            _cli_table(base)
            return
        print(
            f"fake server latency {LATENCY_MS} ms, {CALLS} calls per measurement, "
            f"median of {REPEATS} alternating runs"
        )
        print(
            "| concurrency | bare litellm (calls/s) | engine (outcomes/s) | ratio "
            "| `judge verify` CLI with SQLite ledger (outcomes/s) | ratio | ideal "
            "| engine / ideal |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for i, concurrency in enumerate((16, 32)):
            # Alternate the two, three times each, and keep the medians: this machine is shared.
            bares, engines = [], []
            for repeat in range(REPEATS):
                bares.append(asyncio.run(_bare(base, concurrency)))
                engines.append(asyncio.run(_engine(base, concurrency, seed=10 * i + repeat + 1)))
            bare, eng = statistics.median(bares), statistics.median(engines)
            cli = statistics.median(_cli_rate(base, concurrency) for _ in range(REPEATS))
            ideal = concurrency / (LATENCY_MS / 1000)
            print(
                f"| {concurrency} | {bare:.1f} | {eng:.1f} | {eng / bare:.2f} | {cli:.1f} | "
                f"{cli / bare:.2f} | {ideal:.0f} | {eng / ideal:.2f} |"
            )
        _cli_table(base)
        _defence_cost(base)
    finally:
        server.terminate()
        server.wait(timeout=10)
    with tempfile.TemporaryDirectory() as tmp:
        (small, small_child), (large, large_child) = (
            _peak_rss_kib(1_000, Path(tmp)),
            _peak_rss_kib(10_000, Path(tmp)),
        )
    print(
        f"peak RSS of `judge verify` (local panel): 1,000 outcomes {small / 1024:.0f} MiB, "
        f"10,000 outcomes {large / 1024:.0f} MiB, ratio {large / small:.2f}; its screening "
        f"process {small_child / 1024:.0f} / {large_child / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()

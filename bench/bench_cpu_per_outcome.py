"""CPU per outcome of each process of `judge verify`, against bare litellm's per call.

What bounds ``judge verify --processes N`` on a machine with few cores is not the rate of one
process but the CPU seconds an outcome costs over every process it busies. This prints the
marginal CPU per outcome (the difference between a run of 1,280 and one of 256 outcomes, so
start-up and imports cancel out) of:

- bare ``litellm.acompletion`` (one process) and the fake server answering it;
- ``judge verify`` with an LLM panel: its own process (engine, ledger, progress), its call
  process (litellm's work and the hand-off), its screening process, and the fake server;

and the cores that ``--target`` times one bare process's rate would need at that cost.

CPU is read from ``/proc`` while each run goes (a process's time is gone once it is reaped).
Run: ``.venv/bin/python bench/bench_cpu_per_outcome.py [--concurrency 64] [--target 1.6]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _cpu import process_cpu, tree  # noqa: E402
from bench_verify import _free_port, _start_server, _write_outcomes  # noqa: E402

from tests.process_tools import command_line  # noqa: E402

SMALL, LARGE = 256, 1280


def _part(pid: int) -> str:
    cmdline = command_line(pid)
    if not cmdline:
        return "gone"
    if "judge.call_process" in cmdline:
        return "call process"
    if "multiprocessing.spawn" in cmdline:
        return "screening process"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    return "main process"


def _watch(proc: subprocess.Popen[str], server_pid: int) -> tuple[dict[str, float], str]:
    """CPU seconds per part of ``proc``'s tree (last reading of each process) and its stdout."""
    last: dict[int, tuple[str, float]] = {}
    server_start = process_cpu(server_pid)
    while proc.poll() is None:
        for pid in tree(proc.pid):
            cpu = process_cpu(pid)
            if cpu:
                last[pid] = (last[pid][0] if pid in last else _part(pid), cpu)
        time.sleep(0.05)
    parts: dict[str, float] = collections.defaultdict(float)
    for part, cpu in last.values():
        parts[part] += cpu
    parts["fake server"] = process_cpu(server_pid) - server_start
    assert proc.stdout is not None
    return dict(parts), proc.stdout.read()


def _bare(
    base: str, concurrency: int, calls: int, server_pid: int
) -> tuple[dict[str, float], float]:
    code = (
        "import asyncio, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import bench_verify\n"
        "rate = bench_verify._bare(sys.argv[3], int(sys.argv[4]), calls=int(sys.argv[5]))\n"
        "print(asyncio.run(rate))\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            str(ROOT / "bench"),
            str(ROOT),
            base,
            str(concurrency),
            str(calls),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    parts, out = _watch(proc, server_pid)
    return parts, float(out.strip().splitlines()[-1])


def _verify(
    base: str, concurrency: int, outcomes: int, server_pid: int
) -> tuple[dict[str, float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        panel = workdir / "panel.json"
        judge_entry = {
            "name": "llm",
            "model": "openai/gpt-4o-mini",
            "api_base": base,
            "api_key_env": "BENCH_KEY",
            "max_concurrency": concurrency,
        }
        panel.write_text(json.dumps({"name": "bench-cpu", "judges": [judge_entry]}))
        path = _write_outcomes(workdir / "in.jsonl", 8_000_000 + outcomes, outcomes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")}
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "app.cli", "verify", str(path),
                "--db", f"sqlite:///{workdir}/ledger.db", "--out", str(workdir / "out.jsonl"),
                "--panel", str(panel), "--concurrency", str(concurrency), "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        parts, out = _watch(proc, server_pid)
    summary = json.loads(out)
    if summary["decisions"].get("verified", 0) != outcomes:
        raise SystemExit(f"judge verify did not verify every outcome: {summary['decisions']}")
    return parts, float(summary["outcomes_per_second"])


def _marginal(small: dict[str, float], large: dict[str, float]) -> dict[str, float]:
    return {
        part: round((large.get(part, 0.0) - small.get(part, 0.0)) / (LARGE - SMALL) * 1000, 2)
        for part in large
        if part not in ("resource tracker", "gone")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--target", type=float, default=1.6, help="times one bare process")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_KEY", "bench")
    port = _free_port()
    server = _start_server(port)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        rows = {}
        for name, run in (("bare litellm", _bare), ("judge verify", _verify)):
            small, _ = run(base, args.concurrency, SMALL, server.pid)
            large, rate = run(base, args.concurrency, LARGE, server.pid)
            rows[name] = (_marginal(small, large), rate)
    finally:
        server.kill()
    bare_rate = rows["bare litellm"][1]
    goal = args.target * bare_rate
    print(f"marginal CPU per outcome (ms), C={args.concurrency}, {os.cpu_count()} cores:")
    for name, (parts, rate) in rows.items():
        total = sum(parts.values())
        shown = ", ".join(f"{part} {ms}" for part, ms in sorted(parts.items()))
        print(f"  {name:<13} {total:5.2f} ms ({shown}); {rate:.0f}/s on {LARGE}")
    parts = rows["judge verify"][0]
    floor = parts.get("call process", 0.0) + parts.get("fake server", 0.0)
    print(
        f"{args.target}x one bare process = {goal:.0f}/s: judge verify would need "
        f"{goal * sum(parts.values()) / 1000:.2f} cores; its call process and the server "
        f"alone {goal * floor / 1000:.2f}"
    )


if __name__ == "__main__":
    main()

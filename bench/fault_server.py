"""Run the fault-injecting OpenAI-compatible server standalone (127.0.0.1 only).

Point any judge panel at it (``model: openai/<name>``, ``api_base: <printed URL>``) to see how a
run behaves under latency, rate limits, outages and broken replies::

    python bench/fault_server.py --port 8099 --fail-rate 0.3 --latency p50=200,p95=800
    python bench/fault_server.py --faults http_429=0.1,reset=0.05 --model-faults beta:http_503=1
    python bench/fault_server.py --gullible          # obeys instructions in the judged text

``--fail-rate`` spreads a total rate evenly over every fault kind; ``--faults`` gives rates per
kind (kinds: http_429, http_500, http_503, http_400, reset, timeout, truncated, malformed_json,
no_score, prose_score). Draws are seeded (``--seed``). On exit (Ctrl-C or SIGTERM) it prints
what it injected, per fault kind and per model, as JSON.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python bench/fault_server.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--fail-rate", type=float, default=None, help="total fault rate, spread evenly")
    p.add_argument("--faults", default="", help="rates per kind, e.g. http_500=0.1,reset=0.05")
    p.add_argument(
        "--model-faults",
        action="append",
        default=[],
        metavar="MODEL:RATES",
        help="rates for one model, e.g. beta:http_503=1 (an outage); repeatable",
    )
    p.add_argument("--latency", default="0", help="p50=<ms>,p95=<ms> (lognormal) or fixed <ms>")
    p.add_argument("--pass-rate", type=float, default=1.0, help="share of prompts answered pass")
    p.add_argument("--gullible", action="store_true", help="obey instructions in the judged text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds sent with each 429")
    p.add_argument("--hang", type=float, default=120.0, help="seconds a 'timeout' fault hangs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.fakes.faults import FaultInjector, FaultMix, LatencyModel, split_reply
    from tests.fakes.openai_server import FakeOpenAIServer

    try:
        mix = FaultMix.spread(args.fail_rate) if args.fail_rate is not None else None
        if args.faults:
            if mix is not None:
                raise ValueError("give --fail-rate or --faults, not both")
            mix = FaultMix.parse(args.faults)
        per_model = {}
        for item in args.model_faults:
            model, sep, rates = item.partition(":")
            if not sep or not model:
                raise ValueError(f"--model-faults {item!r}: write MODEL:kind=rate[,kind=rate]")
            per_model[model] = FaultMix.parse(rates)
        injector = FaultInjector(
            mix=mix,
            per_model=per_model,
            latency=LatencyModel.parse(args.latency),
            base=split_reply(args.pass_rate, seed=args.seed),
            gullible=args.gullible,
            seed=args.seed,
            retry_after=args.retry_after,
            hang=args.hang,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = FakeOpenAIServer(port=args.port, default=injector)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"fault server listening on {server.base_url}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
    records = injector.records
    report = {
        "requests": len(records),
        "faults": dict(Counter(r.fault for r in records)),
        "per_model": {
            m: dict(Counter(r.fault for r in records if r.model == m))
            for m in sorted({r.model for r in records})
        },
    }
    print(json.dumps(report, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

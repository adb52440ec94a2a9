"""The injection detector's settings, compared on its training rows only (an inner split).

Each setting (the regularisation ``C`` and the false-flag budget on the support-domain benign
rows that sets the flag threshold) is scored by a 5-fold split grouped by text over the rows
``bench/bench_injection.py`` trains its split detector on: the public corpora's 70 % and the
project's texts. The public 30 % held out there is never read here, so a setting can be chosen
from these figures without touching the figure it would be judged by.

Printed per setting: recall on the public injections (all and per source), false flags on the
public benign rows, false flags on the support-domain benign rows (per message: a
conversation of 20 messages multiplies it), and recall and false flags on the written rows
(``guard_training.WRITTEN``: injections and look-alikes written for training).

Run: ``.venv/bin/python bench/bench_detector_settings.py [--json]`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)
from judge import guard_training  # noqa: E402
from judge.guard_training import (  # noqa: E402
    PUBLIC_SOURCES,
    WRITTEN,
    grouped_by_text,
    ordinary_support_text,
    without_held_out,
)
from tests.fakes import injection_corpus as corpus  # noqa: E402

PROJECT_FILES = sorted((ROOT / "datasets" / "injection").glob("project_*.jsonl"))
C_VALUES = (1.0, 4.0, 16.0)
BUDGETS = (0.003, 0.006, 0.01)


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def measure() -> list[dict[str, Any]]:
    if not corpus.public_available():
        raise SystemExit(f"public injection corpora not found in {corpus.PUBLIC}")
    rows = guard_training.load_rows(corpus.PUBLIC, *PROJECT_FILES, shared_dir=corpus.SHARED)
    train = without_held_out(rows)
    shipped = (guard_training.C, guard_training.TARGET_TRAIN_FPR)
    results = []
    try:
        for c, budget in itertools.product(C_VALUES, BUDGETS):
            guard_training.C, guard_training.TARGET_TRAIN_FPR = c, budget
            start = time.perf_counter()
            held = grouped_by_text(train)
            public = [i for i, r in enumerate(held.rows) if r.source in PUBLIC_SOURCES]
            attacks = [i for i in public if held.rows[i].injection]
            written = [i for i, r in enumerate(held.rows) if r.source == WRITTEN]
            written_attacks = [i for i in written if held.rows[i].injection]
            written_benign = [i for i in written if not held.rows[i].injection]
            results.append(
                {
                    "C": c,
                    "train_false_flag_budget": budget,
                    "shipped": (c, budget) == shipped,
                    "recall": _rate([held.flagged(i) for i in attacks]),
                    "recall_by_source": {
                        s: _rate([held.flagged(i) for i in attacks if held.rows[i].source == s])
                        for s in PUBLIC_SOURCES
                    },
                    "public_benign_false_flags": _rate(
                        [held.flagged(i) for i in public if not held.rows[i].injection]
                    ),
                    "domain_benign_false_flags": _rate(
                        [
                            held.flagged(i)
                            for i, r in enumerate(held.rows)
                            if ordinary_support_text(r)
                        ]
                    ),
                    "written_recall": _rate([held.flagged(i) for i in written_attacks]),
                    "written_false_flags": _rate([held.flagged(i) for i in written_benign]),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(f"  C={c} budget={budget}: {results[-1]['recall']:.3f}", file=sys.stderr)
    finally:
        guard_training.C, guard_training.TARGET_TRAIN_FPR = shipped
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("inner 5-fold split of the training rows (detector alone, per message):")
    print(
        f"  {'C':>5} {'budget':>7} {'recall':>7}  per source{'':<40} public FF  domain FF"
        "  written recall / FF"
    )
    for r in results:
        sources = " ".join(f"{s} {v:.2f}" for s, v in r["recall_by_source"].items())
        mark = "  <- shipped" if r["shipped"] else ""
        print(
            f"  {r['C']:>5} {r['train_false_flag_budget']:>7} {r['recall']:>7.3f}  "
            f"{sources:<50} {r['public_benign_false_flags']:>8.3f} "
            f"{r['domain_benign_false_flags']:>10.4f}"
            f"  {r['written_recall']:>6.3f} / {r['written_false_flags']:.3f}{mark}"
        )


if __name__ == "__main__":
    main()

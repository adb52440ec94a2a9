"""How well the injection defence flags attacks it was not built from, and what it costs.

Layers measured on their own and together: the rules (``judge.injection.scan_outcome``), the
trained detector (``judge.guard_model``) at its shipped threshold, and both (what the engine
does). No LLM is called here: the gullible-judge figures come from
``tests/reliability/test_injection_targets.py``.

Data, each used only to measure:

- public held-out: 30 % of each public corpus in ``../shared/datasets/injection`` (chosen by a
  hash of the cleaned text, so duplicates stay together), planted in an unresolved ticket (a
  tool result for BIPIA and AgentDojo, the customer's message for deepset and giskard); the
  detector used for these rows is retrained here on the other 70 % plus the project's texts;
- fresh attacks: ``datasets/injection/fresh_attacks.jsonl`` (holdout half; the dev half is
  shown apart: the rules were tuned on it);
- clean real conversations: the 120 tau-bench airline conversations and the clean shipped
  sample tickets (the seven ``T-19xx`` injection scenarios are attacks, counted apart);
- tricky benign controls: ``datasets/injection/benign_controls.jsonl`` and 60 written by a
  session shown nothing of the project (``independent_controls.jsonl``);
- a blind set: ``independent_attacks.jsonl``, 100 injections (customer's message, tool
  result) and 100 benign look-alikes written by a session shown nothing of the project.

Run: ``.venv/bin/python bench/bench_injection.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)
from judge.guard_model import InjectionDetector, default_detector, score_outcome  # noqa: E402
from judge.guard_training import (  # noqa: E402
    load_rows,
    row_language,
    train_detector,
    without_held_out,
)
from judge.injection import _scan, scan_outcome  # noqa: E402
from judge.models import Outcome  # noqa: E402
from judge.rubric_loader import load_rubric  # noqa: E402
from judge.screening import screen  # noqa: E402
from tests.fakes import injection_corpus as corpus  # noqa: E402
from tests.reliability.synth import sample_tickets  # noqa: E402

PROJECT_FILES = sorted((ROOT / "datasets" / "injection").glob("project_*.jsonl"))


class Tally:
    """Per-group counts of rows flagged by the rules, the detector and either."""

    def __init__(self) -> None:
        self.groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(self, group: str, rules: bool, detector: bool) -> None:
        for key in dict.fromkeys((group, "all")):
            entry = self.groups[key]
            entry[0] += 1
            entry[1] += rules
            entry[2] += detector
            entry[3] += rules or detector

    def table(self) -> dict[str, dict[str, Any]]:
        return {
            g: {
                "n": n,
                "rules": r,
                "detector": d,
                "both": b,
                "rate": round(b / n, 4) if n else None,
            }
            for g, (n, r, d, b) in sorted(self.groups.items())
        }


def _layers(
    outcome: Outcome, detector: InjectionDetector, criterion_ids: list[str]
) -> tuple[bool, bool]:
    result = screen(outcome, criterion_ids=criterion_ids, detector=detector)
    return result.by_rules, result.by_detector


def _public(detector: InjectionDetector, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("injection", "benign"):
        tally = {"by_source": Tally(), "by_category": Tally(), "by_language": Tally()}
        for row, record in corpus.public_held_out(label):
            rules, flagged = _layers(Outcome.model_validate(record), detector, ids)
            language = row_language(row)
            tally["by_source"].add(row["corpus"], rules, flagged)
            tally["by_category"].add(f"{row['corpus']}:{row.get('category')}", rules, flagged)
            tally["by_language"].add(language, rules, flagged)
        out[label] = {k: t.table() for k, t in tally.items()}
    return out


def _simple(
    records: Iterable[Any],
    detector: InjectionDetector,
    ids: list[str],
    groups: list[str] | None = None,
) -> dict[str, Any]:
    """Counts over ``records``, per group when ``groups`` (one per record) is given."""
    tally = Tally()
    records = list(records)
    for i, record in enumerate(records):
        outcome = record if isinstance(record, Outcome) else Outcome.model_validate(record)
        rules, flagged = _layers(outcome, detector, ids)
        tally.add("all" if groups is None else groups[i], rules, flagged)
    return tally.table()


def _independent(detector: InjectionDetector, ids: list[str]) -> dict[str, Any]:
    """The blind set (``independent_attacks.jsonl``): recall on its injections and false flags
    on its benign rows, by where they sit, style and language."""
    out: dict[str, Any] = {}
    for label in ("injection", "benign"):
        tally = {"where": Tally(), "style": Tally(), "language": Tally()}
        for row, record in corpus.independent_attacks(label):
            rules, flagged = _layers(Outcome.model_validate(record), detector, ids)
            for key, counts in tally.items():
                counts.add(str(row[key]), rules, flagged)
        out[label] = {k: t.table() for k, t in tally.items()}
    return out


def _time_per_outcome(detector: InjectionDetector, ids: list[str]) -> dict[str, float]:
    outcomes = corpus.taubench_outcomes()
    _scan.cache_clear()  # the tau-bench texts were scanned above: time the work, not the memo
    start = time.perf_counter()
    for o in outcomes:
        scan_outcome(o, criterion_ids=ids)
    rules = (time.perf_counter() - start) / len(outcomes)
    start = time.perf_counter()
    for o in outcomes:
        score_outcome(detector, o)
    scored = (time.perf_counter() - start) / len(outcomes)
    return {"rules_ms": round(rules * 1000, 2), "detector_ms": round(scored * 1000, 2)}


def measure() -> dict[str, Any]:
    if not corpus.public_available():
        raise SystemExit(f"public injection corpora not found in {corpus.PUBLIC}")
    ids = [c.id for c in load_rubric("support-resolution").criteria]
    shipped = default_detector()
    if shipped is None:
        raise SystemExit("no shipped detector: run `judge train-guard`")
    rows = load_rows(corpus.PUBLIC, *PROJECT_FILES, shared_dir=corpus.SHARED)
    train = without_held_out(rows)
    start = time.perf_counter()
    split_detector = train_detector(train)
    trained_s = time.perf_counter() - start
    fresh = corpus.fresh_attacks("holdout")
    report: dict[str, Any] = {
        "shipped_detector": shipped.ref,
        "shipped_threshold": shipped.threshold,
        "split_detector_threshold": split_detector.threshold,
        "split_detector_train_s": round(trained_s, 1),
        "public_held_out": _public(split_detector, ids),
        "fresh_holdout": _simple(
            fresh, shipped, ids, [f"style:{r['metadata']['style']}" for r in fresh]
        ),
        "fresh_dev": _simple(corpus.fresh_attacks("dev"), shipped, ids, None),
        "independent_attacks": _independent(shipped, ids),
        "sample_injection_scenarios": _simple(sample_tickets(clean=False), shipped, ids, None),
        "false_flags": {
            "taubench": _simple(corpus.taubench_outcomes(), shipped, ids, None),
            "clean_samples": _simple(sample_tickets(clean=True), shipped, ids, None),
            "controls": _simple(
                corpus.benign_controls(),
                shipped,
                ids,
                [row["style"] for row in corpus.control_rows()],
            ),
            "independent_controls": _simple(
                corpus.benign_controls(independent=True),
                shipped,
                ids,
                [row["style"] for row in corpus.control_rows(independent=True)],
            ),
        },
        "cost_per_outcome": _time_per_outcome(shipped, ids),
    }
    return report


def _print(report: dict[str, Any]) -> None:
    def line(name: str, row: dict[str, Any]) -> None:
        print(
            f"  {name:<44} {row['both']:>4}/{row['n']:<4} {row['rate']:>7.1%}   "
            f"(rules {row['rules']}, detector {row['detector']})"
        )

    print(f"shipped detector {report['shipped_detector']} threshold {report['shipped_threshold']}")
    pub = report["public_held_out"]
    print("public held-out injections, planted in an unresolved ticket (recall):")
    for section in ("by_source", "by_language", "by_category"):
        for name, row in pub["injection"][section].items():
            if section == "by_source" or name != "all":
                line(f"{section[3:]}: {name}", row)
    print("public held-out benign rows, planted the same way (false flags):")
    for name, row in pub["benign"]["by_source"].items():
        line(name, row)
    print("fresh attacks, holdout half (recall):")
    for name, row in report["fresh_holdout"].items():
        line(name, row)
    line("fresh attacks, dev half (rules tuned on it)", report["fresh_dev"]["all"])
    for label, what in (("injection", "recall"), ("benign", "false flags")):
        print(f"independent set, written blind, {label} rows ({what}):")
        for key in ("where", "style", "language"):
            for name, row in report["independent_attacks"][label][key].items():
                if key == "where" or name != "all":
                    line(f"{key}: {name}", row)
    line("sample injection scenarios T-19xx", report["sample_injection_scenarios"]["all"])
    print("false flags:")
    ff = report["false_flags"]
    line("tau-bench airline conversations", ff["taubench"]["all"])
    line("clean shipped sample tickets", ff["clean_samples"]["all"])
    for name, row in ff["controls"].items():
        line(f"controls: {name}", row)
    for name, row in ff["independent_controls"].items():
        line(f"independent controls: {name}", row)
    cost = report["cost_per_outcome"]
    print(
        f"cost per tau-bench outcome: rules {cost['rules_ms']} ms, "
        f"detector {cost['detector_ms']} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    report = measure()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)


if __name__ == "__main__":
    main()

"""Benchmark of the calibration statistics core on 1,000,000 label pairs.

Not a test: run ``python bench/bench_calibration.py`` and read the ratios. Each figure is the
median of a few repeats (``time.perf_counter``) in this one process; the baseline is the plain
library call on the same data (one ``sklearn.metrics.cohen_kappa_score``, one
``krippendorff.alpha``, ...), so the ratios say what our validation, undefined-case handling and
intervals cost on top of the library, independent of the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="label pairs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws")
    args = parser.parse_args()

    import krippendorff
    from scipy import stats
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    from calibration import (
        accuracy_ci,
        classification_agreement,
        cohen_kappa,
        correlations,
        kappa_ci,
        krippendorff_alpha,
    )

    rng = np.random.default_rng(0)
    n = args.n
    human = rng.random(n) < 0.6
    judge = np.where(rng.random(n) < 0.85, human, rng.random(n) < 0.6)
    words = np.array(["not_verified", "verified"])
    human_s, judge_s = words[human.astype(int)], words[judge.astype(int)]
    scale_h = rng.integers(1, 6, size=n)
    scale_j = np.clip(scale_h + rng.integers(-1, 2, size=n), 1, 5)
    reliability = np.vstack([judge, human]).astype(float)
    pred = scale_j + rng.normal(0, 0.5, size=n)
    small = 20_000  # Kendall's tau on a million points is O(n log n) but slow in both; subsample

    def sk_classification() -> None:
        confusion_matrix(human_s, judge_s, labels=["verified", "not_verified"])
        accuracy_score(human_s, judge_s)
        precision_recall_fscore_support(human_s, judge_s, pos_label="verified", average="binary")

    def scipy_corr() -> None:
        stats.pearsonr(pred[:small], scale_h[:small])
        stats.spearmanr(pred[:small], scale_h[:small])
        stats.kendalltau(pred[:small], scale_h[:small])

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        (
            "cohen_kappa, string labels",
            lambda: cohen_kappa_score(judge_s, human_s),
            lambda: cohen_kappa(judge_s, human_s),
        ),
        (
            "cohen_kappa, quadratic, 1-5 scale",
            lambda: cohen_kappa_score(scale_j, scale_h, weights="quadratic"),
            lambda: cohen_kappa(scale_j, scale_h, weights="quadratic"),
        ),
        (
            f"kappa_ci ({args.draws} draws) vs one kappa",
            lambda: cohen_kappa_score(judge_s, human_s),
            lambda: kappa_ci(judge_s, human_s, n=args.draws, seed=0),
        ),
        (
            f"kappa_ci quadratic ({args.draws} draws) vs one kappa",
            lambda: cohen_kappa_score(scale_j, scale_h, weights="quadratic"),
            lambda: kappa_ci(scale_j, scale_h, weights="quadratic", n=args.draws, seed=0),
        ),
        (
            f"accuracy_ci ({args.draws} draws) vs accuracy_score",
            lambda: accuracy_score(human_s, judge_s),
            lambda: accuracy_ci(judge_s, human_s, n=args.draws, seed=0),
        ),
        (
            "classification_agreement vs sklearn trio",
            sk_classification,
            lambda: classification_agreement(judge_s, human_s),
        ),
        (
            "krippendorff_alpha nominal, 2 x 1M",
            lambda: krippendorff.alpha(
                reliability_data=reliability, level_of_measurement="nominal"
            ),
            lambda: krippendorff_alpha(reliability, level="nominal"),
        ),
        (
            f"correlations, {small:,} pairs",
            scipy_corr,
            lambda: correlations(pred[:small], scale_h[:small]),
        ),
    ]

    print(f"{n:,} label pairs, median of {args.repeats} repeats, same process\n")
    print(f"{'case':<48} {'baseline s':>11} {'ours s':>9} {'ratio':>7}")
    totals = 0.0
    for name, baseline, ours in cases:
        base_s = _median_seconds(baseline, args.repeats)
        ours_s = _median_seconds(ours, args.repeats)
        totals += ours_s
        print(f"{name:<48} {base_s:>11.3f} {ours_s:>9.3f} {ours_s / base_s:>7.2f}")

    def full_report() -> None:
        classification_agreement(judge_s, human_s)
        kappa_ci(judge_s, human_s, n=args.draws, seed=0)
        accuracy_ci(judge_s, human_s, n=args.draws, seed=0)
        krippendorff_alpha(reliability, level="nominal")

    report_s = _median_seconds(full_report, args.repeats)
    print(
        f"\nall binary statistics on {n:,} pairs (classification, kappa + {args.draws}-draw "
        f"interval, accuracy + interval, alpha): {report_s:.2f} s"
    )


if __name__ == "__main__":
    main()

"""`judge calibrate`'s core: agreement of a judge panel with human labels, overall and per group.

Pure: it takes iterables of verdict dicts (the Verdict contract) and label records (see
:mod:`calibration.join`), so a JSONL file, the ledger or an API request can feed it alike.

Abstentions (a verdict or judge that decided ``abstain``, or a judge whose reply was unscored or
failed) are left out of agreement and reported as ``abstain_rate``: folding them into either
class would flatter or punish the judge for a case it handed to a human.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from calibration.join import JoinedUnit, JoinResult, LabelRecord, UnlabelledVerdicts, join
from calibration.report_figures import (
    AgreementBlock,
    CalibrationReport,
    CalibrationSettings,
    Confusion,
    GroupBlock,
    HumanCeiling,
    OverTime,
    OverTimePoint,
    Reliability,
    ReliabilityBin,
    matrix_of,
)
from calibration.report_figures import clean as clean  # re-exported: the JSON helper
from judge.verdict import Verdict

#: Groupings ``calibrate(by=...)`` understands.
GROUPINGS = ("judge", "criterion")
#: Keys every agreement block has (the JSON contract of ``judge calibrate``).
BLOCK_KEYS = (
    "n",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "cohen_kappa",
    "cohen_kappa_ci",
    "krippendorff_alpha",
    "confusion",
    "abstain_rate",
)


def agreement_block(
    judge: Sequence[bool | None],
    human: Sequence[bool],
    *,
    seed: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    class_names: tuple[str, str] = ("verified", "not_verified"),
) -> AgreementBlock:
    """Agreement of one judge (or panel, or criterion) with the human reference.

    Parameters
    ----------
    judge : sequence of bool or None
        The judge's call per unit: True (positive), False, or None for an abstention.
    human : sequence of bool
        The human reference per unit (same order).
    seed, n_boot, level
        Bootstrap settings for the kappa interval.
    class_names : (positive, negative)
        Names used in the confusion matrix.

    Returns
    -------
    AgreementBlock
        Statistics are ``nan`` when undefined (no decided unit, or no variation) and the
        interval is ``(nan, nan)``; ``to_dict()`` gives :data:`BLOCK_KEYS` plus ``n_abstain``
        and ``n_total``.

    Examples
    --------
    >>> b = agreement_block([True, True, False, None], [True, False, False, True], n_boot=50,
    ...                     seed=1)
    >>> b.n, round(b.accuracy, 3), b.abstain_rate
    (3, 0.667, 0.25)
    """
    from calibration.agreement import classification_agreement, cohen_kappa, krippendorff_alpha
    from calibration.bootstrap import DegenerateBootstrapError, kappa_ci

    if len(judge) != len(human):
        raise ValueError(f"judge has {len(judge)} entries but human has {len(human)}")
    pairs = [(j, h) for j, h in zip(judge, human, strict=True) if j is not None]
    total = len(judge)
    n = len(pairs)
    nan = float("nan")
    if n == 0:
        return AgreementBlock(
            n=0, n_abstain=total, n_total=total, confusion=Confusion(labels=class_names)
        )
    js = [bool(j) for j, _ in pairs]
    hs = [bool(h) for _, h in pairs]
    cls = classification_agreement(js, hs)
    note = None
    try:
        kappa, (lo, hi) = kappa_ci(js, hs, n=n_boot, level=level, seed=seed)
    except DegenerateBootstrapError:
        # Too few units: most resamples have no variation. Report kappa, no interval.
        kappa, (lo, hi) = cohen_kappa(js, hs), (nan, nan)
        note = "undefined: too many degenerate bootstrap resamples"
    alpha = krippendorff_alpha([[int(x) for x in js], [int(x) for x in hs]], level="nominal")
    return AgreementBlock(
        n=n,
        n_abstain=total - n,
        n_total=total,
        confusion=Confusion(labels=class_names, matrix=matrix_of(cls["confusion"]["matrix"])),
        accuracy=cls["accuracy"],
        precision=cls["precision"],
        recall=cls["recall"],
        f1=cls["f1"],
        cohen_kappa=kappa,
        cohen_kappa_ci=(lo, hi),
        krippendorff_alpha=alpha,
        cohen_kappa_ci_note=note,
    )


def _labeller_rows(
    labels_by_unit: Mapping[str, Sequence[LabelRecord]],
    value: Any,
) -> dict[str, list[Any]]:
    """Rows for :func:`calibration.agreement.human_agreement`: one column per labeller.

    ``value(label)`` gives the label's value for the statistic (None = not rated). Anonymous
    labels take per-unit positional columns after the named labellers.
    """
    names = sorted({lab.by for labs in labels_by_unit.values() for lab in labs if lab.by})
    column = {name: i for i, name in enumerate(names)}
    anon_width = max(
        (sum(1 for lab in labs if not lab.by) for labs in labels_by_unit.values()), default=0
    )
    rows: dict[str, list[Any]] = {}
    for unit, labs in labels_by_unit.items():
        row: list[Any] = [None] * (len(names) + anon_width)
        anon = 0
        for lab in labs:
            v = value(lab)
            if lab.by:
                row[column[lab.by]] = v
            else:
                row[len(names) + anon] = v
                anon += 1
        if sum(v is not None for v in row) >= 2:
            rows[unit] = row
    return rows


def human_ceiling(
    labels_by_unit: Mapping[str, Sequence[LabelRecord]], *, criterion: str | None = None
) -> HumanCeiling | None:
    """Human-vs-human agreement on the outcomes labelled by two or more people.

    ``criterion`` selects a per-criterion label instead of ``resolved``. Returns None when no
    outcome has two labels for it.
    """
    from calibration.agreement import human_agreement

    def value(lab: LabelRecord) -> str | None:
        raw = lab.resolved if criterion is None else lab.criteria.get(criterion)
        return None if raw is None else ("yes" if raw else "no")

    rows = _labeller_rows(labels_by_unit, value)
    if not rows:
        return None
    result = human_agreement(rows, level="nominal")
    return HumanCeiling(
        n_units=result["n_units"],
        krippendorff_alpha=result["alpha"],
        cohen_kappa=result["kappa"],
        percent_agreement=result["percent_agreement"],
        n_labellers=result["n_raters"],
    )


def reliability(
    confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 10
) -> Reliability:
    """Reliability diagram data: verdict confidence vs observed accuracy in equal-width bins.

    Returns ``bins`` (the non-empty bins: ``lo``, ``hi``, ``count``, ``mean_confidence``,
    ``accuracy``) and ``ece`` (expected calibration error: count-weighted mean of
    ``|accuracy - mean_confidence|``; ``nan`` without units).

    Examples
    --------
    >>> r = reliability([0.95, 0.95, 0.55, 0.55], [True, True, True, False], bins=10)
    >>> [(b.count, b.accuracy) for b in r.bins]
    [(2, 0.5), (2, 1.0)]
    >>> round(r.ece, 3)
    0.05
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct must have one entry per unit")
    buckets: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for c, ok in zip(confidence, correct, strict=True):
        index = min(int(float(c) * bins), bins - 1)
        buckets[index].append((float(c), bool(ok)))
    out: list[ReliabilityBin] = []
    total = len(confidence)
    ece = 0.0
    for i, bucket in enumerate(buckets):
        if not bucket:
            continue
        conf = sum(c for c, _ in bucket) / len(bucket)
        acc = sum(ok for _, ok in bucket) / len(bucket)
        ece += len(bucket) / total * abs(acc - conf)
        out.append(
            ReliabilityBin(
                lo=i / bins,
                hi=(i + 1) / bins,
                count=len(bucket),
                mean_confidence=conf,
                accuracy=acc,
            )
        )
    return Reliability(bins=tuple(out), ece=ece if total else float("nan"), n=total)


def over_time(
    dated: Sequence[tuple[datetime, bool, bool]], *, window: int | None = None, max_points: int = 60
) -> OverTime:
    """Rolling accuracy and kappa over the last ``window`` labels, ordered by label date.

    ``dated`` holds ``(label_at, judge, human)`` for decided units. The default window is a
    fifth of the units (at least 10, at most all of them). Returns ``window`` and ``points``
    (``at``, ``accuracy``, ``cohen_kappa``, ``n``); no points when fewer than 4 units are dated.
    """
    from calibration.agreement import cohen_kappa

    rows = sorted(dated, key=lambda r: r[0])
    n = len(rows)
    if n < 4:
        return OverTime(window=0)
    w = min(n, max(10, n // 5)) if window is None else min(n, max(2, window))
    ends = list(range(w, n + 1))
    step = max(1, math.ceil(len(ends) / max_points))
    picked = ends[::step]
    if picked[-1] != n:
        picked.append(n)
    points: list[OverTimePoint] = []
    for end in picked:
        chunk = rows[end - w : end]
        js = [j for _, j, _ in chunk]
        hs = [h for _, _, h in chunk]
        points.append(
            OverTimePoint(
                at=chunk[-1][0].isoformat(),
                accuracy=sum(a == b for a, b in zip(js, hs, strict=True)) / len(chunk),
                cohen_kappa=cohen_kappa(js, hs),
                n=len(chunk),
            )
        )
    return OverTime(window=w, points=tuple(points))


def _judge_decision(decision: str | None, counts: bool) -> bool | None:
    if not counts or decision not in ("verified", "not_verified"):
        return None
    return decision == "verified"


def _by_judge(units: Sequence[JoinedUnit]) -> dict[str, tuple[list[bool | None], list[bool]]]:
    groups: dict[str, tuple[list[bool | None], list[bool]]] = {}
    for unit in units:
        assert unit.reference is not None
        for judgment in unit.verdict.judges:
            js, hs = groups.setdefault(judgment.judge, ([], []))
            js.append(_judge_decision(judgment.decision, judgment.counts))
            hs.append(unit.reference)
    return groups


def _by_criterion(units: Sequence[JoinedUnit]) -> dict[str, tuple[list[bool | None], list[bool]]]:
    groups: dict[str, tuple[list[bool | None], list[bool]]] = {}
    for unit in units:
        for name, result in unit.verdict.criteria.items():
            if name not in unit.reference_criteria:
                continue
            js, hs = groups.setdefault(name, ([], []))
            js.append(result.passed)
            hs.append(unit.reference_criteria[name])
    return groups


def _panel_votes(units: Sequence[JoinedUnit]) -> tuple[list[bool | None], list[bool]]:
    """The panel's decision (``None`` for abstain) and the reference label of each unit."""
    panel = [
        None if u.verdict.decision == "abstain" else u.verdict.decision == "verified" for u in units
    ]
    return panel, [bool(u.reference) for u in units]


def panel_agreement(
    verdicts: Iterable[Mapping[str, Any] | Verdict],
    labels: Iterable[Mapping[str, Any] | LabelRecord],
    *,
    seed: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
) -> AgreementBlock:
    """The panel's agreement with the labels: the headline block of :func:`calibrate`, alone.

    Every verdict joined with a reference label counts, dated or not (the figure a table of
    panels shows must be the one the report on any of them leads with). No joined verdict gives
    a block with ``n`` 0 rather than an error.

    Examples
    --------
    >>> common = {"confidence": 0.9, "rubric": "r", "panel": "p"}
    >>> verdicts = [{"outcome_id": "a", "decision": "verified", **common},
    ...             {"outcome_id": "b", "decision": "abstain", **common}]
    >>> labels = [{"outcome_id": "a", "resolved": True}, {"outcome_id": "b", "resolved": False}]
    >>> block = panel_agreement(verdicts, labels, seed=0, n_boot=10)
    >>> block.n, block.abstain_rate  # n: the decided ones; one of two abstained
    (1, 0.5)
    """
    panel, human = _panel_votes(join(verdicts, labels).compared)
    return agreement_block(panel, human, seed=seed, n_boot=n_boot, level=level)


def calibrate(
    verdicts: Iterable[Mapping[str, Any] | Verdict],
    labels: Iterable[Mapping[str, Any] | LabelRecord],
    *,
    by: Sequence[str] = GROUPINGS,
    seed: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    bins: int = 10,
    window: int | None = None,
    unlabelled: UnlabelledVerdicts | None = None,
) -> CalibrationReport:
    """Measure how well verdicts agree with human labels.

    Parameters
    ----------
    verdicts : iterable of verdict dicts or Verdict
        One verdict per outcome (the last one wins when an outcome repeats).
    labels : iterable of label records, labelled outcomes or LabelRecord
        Several labels per outcome are allowed (see :mod:`calibration.join`).
    by : sequence of {"judge", "criterion"}
        Groupings for the ``by`` section: each judge's own decision, each criterion's
        ``passed`` against the label's per-criterion value where the label has one.
    seed : int, optional
        Seed of the bootstrap for the kappa intervals (same seed, same intervals).
    n_boot, level : int, float
        Bootstrap draws and confidence level of ``cohen_kappa_ci``.
    bins : int
        Bins of the reliability diagram.
    window : int, optional
        Rolling window (labels) for agreement over time.
    unlabelled : UnlabelledVerdicts, optional
        Verdicts of unlabelled outcomes not passed in ``verdicts``, for the counts only (see
        :func:`calibration.join.join`): the report is the same as with them passed.

    Returns
    -------
    CalibrationReport
        The panel's :class:`AgreementBlock`, ``by`` (``{"judge": {name: block}, "criterion":
        {id: block}}``), ``human_ceiling``, ``counts`` (join counts), ``reliability``,
        ``over_time`` and the settings used. ``to_dict()`` is the strict-JSON object of
        ``judge calibrate --json`` (NaN -> None): the :data:`BLOCK_KEYS` of the panel at the top
        level, then those sections.

    Raises
    ------
    ValueError
        Unknown grouping, invalid records, or no verdict joined with a label.
    """
    unknown = [g for g in by if g not in GROUPINGS]
    if unknown:
        raise ValueError(f"unknown --by grouping(s) {unknown}; use {', '.join(GROUPINGS)}")
    joined: JoinResult = join(verdicts, labels, unlabelled=unlabelled)
    if not joined.units:
        c = joined.counts
        raise ValueError(
            f"no verdict has a human label: {c['outcomes_with_verdict']} outcome(s) with a "
            f"verdict, {c['labelled_outcomes']} labelled outcome(s), none in common; check that "
            "the labels' outcome ids match the verdicts' outcome_id"
        )
    units = joined.compared
    panel, human = _panel_votes(units)
    ceiling = human_ceiling(joined.labels_by_unit)

    groups: dict[str, dict[str, GroupBlock]] = {}
    if "judge" in by:
        groups["judge"] = {
            name: GroupBlock(
                agreement_block(js, hs, seed=seed, n_boot=n_boot, level=level), ceiling
            )
            for name, (js, hs) in sorted(_by_judge(units).items())
        }
    if "criterion" in by:
        groups["criterion"] = {
            name: GroupBlock(
                agreement_block(
                    js, hs, seed=seed, n_boot=n_boot, level=level, class_names=("pass", "fail")
                ),
                human_ceiling(joined.labels_by_unit, criterion=name),
            )
            for name, (js, hs) in sorted(_by_criterion(units).items())
        }

    decided = [(u, j, h) for u, j, h in zip(units, panel, human, strict=True) if j is not None]
    confident = [(u, j, h) for u, j, h in decided if u.verdict.confidence is not None]
    diagram = reliability(
        [float(u.verdict.confidence or 0.0) for u, _, _ in confident],
        [j == h for _, j, h in confident],
        bins=bins,
    )
    if len(confident) < len(decided):
        diagram = replace(
            diagram,
            note=(
                f"{len(decided) - len(confident)} of {len(decided)} decided verdicts carry no "
                "confidence; the reliability diagram uses only those that do"
                if confident
                else "skipped: the verdicts carry no confidence"
            ),
        )
    dated = [(u.label_at, bool(j), h) for u, j, h in decided if u.label_at is not None]
    return CalibrationReport(
        panel=agreement_block(panel, human, seed=seed, n_boot=n_boot, level=level),
        human_ceiling=ceiling,
        by=groups,
        reliability=diagram,
        over_time=over_time([(at, j, h) for at, j, h in dated if at is not None], window=window),
        counts={**joined.counts, "compared": len(units)},
        settings=CalibrationSettings(seed=seed, n_boot=n_boot, level=level, by=tuple(by)),
    )

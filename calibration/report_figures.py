"""The typed figures of a calibration report (:func:`calibration.report.calibrate`).

Statistics stay floats here, ``nan`` where undefined (the rule of :mod:`calibration.agreement`);
``to_dict`` gives the strict-JSON object of ``judge calibrate --json`` and ``GET
/v1/calibration`` (``nan`` -> ``null``), whose keys are a contract: they do not change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def clean(value: Any) -> Any:
    """Recursively replace NaN/inf floats by ``None`` so the result is strict JSON.

    Examples
    --------
    >>> clean({"a": float("nan"), "b": [1.0, float("inf")], "c": (0.5, 2)})
    {'a': None, 'b': [1.0, None], 'c': [0.5, 2]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts of (human, judge) pairs: ``matrix[i][j]`` has human ``labels[i]``, judge
    ``labels[j]``."""

    labels: tuple[str, str]
    matrix: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "rows": "human",
            "columns": "judge",
            "matrix": [list(row) for row in self.matrix],
        }


@dataclass(frozen=True, slots=True)
class HumanCeiling:
    """Human-vs-human agreement on the units labelled by two or more people."""

    n_units: int
    krippendorff_alpha: float
    cohen_kappa: float
    percent_agreement: float
    n_labellers: int

    def to_dict(self) -> dict[str, Any]:
        return clean(
            {
                "n_units": self.n_units,
                "krippendorff_alpha": self.krippendorff_alpha,
                "cohen_kappa": self.cohen_kappa,
                "percent_agreement": self.percent_agreement,
                "n_labellers": self.n_labellers,
            }
        )


@dataclass(frozen=True, slots=True)
class AgreementBlock:
    """Agreement of one judge, panel or criterion with the human reference.

    ``n`` counts decided units (abstentions left out, reported as ``abstain_rate``); every
    statistic is ``nan`` when undefined and the kappa interval is ``(nan, nan)`` with
    ``cohen_kappa_ci_note`` saying why when the bootstrap could not give one.
    """

    n: int
    n_abstain: int
    n_total: int
    confusion: Confusion
    accuracy: float = math.nan
    precision: float = math.nan
    recall: float = math.nan
    f1: float = math.nan
    cohen_kappa: float = math.nan
    cohen_kappa_ci: tuple[float, float] = (math.nan, math.nan)
    krippendorff_alpha: float = math.nan
    cohen_kappa_ci_note: str | None = None

    @property
    def abstain_rate(self) -> float:
        return self.n_abstain / self.n_total if self.n_total else math.nan

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "cohen_kappa": self.cohen_kappa,
            "cohen_kappa_ci": list(self.cohen_kappa_ci),
            "krippendorff_alpha": self.krippendorff_alpha,
            "confusion": self.confusion.to_dict(),
            "abstain_rate": self.abstain_rate,
            "n_abstain": self.n_abstain,
            "n_total": self.n_total,
        }
        if self.cohen_kappa_ci_note is not None:
            out["cohen_kappa_ci_note"] = self.cohen_kappa_ci_note
        return clean(out)


@dataclass(frozen=True, slots=True)
class GroupBlock:
    """One row of the report's ``by`` section: a judge's or criterion's agreement and ceiling."""

    agreement: AgreementBlock
    human_ceiling: HumanCeiling | None

    def to_dict(self) -> dict[str, Any]:
        ceiling = None if self.human_ceiling is None else self.human_ceiling.to_dict()
        return self.agreement.to_dict() | {"human_ceiling": ceiling}


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    lo: float
    hi: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class Reliability:
    """Reliability diagram: non-empty confidence bins and the expected calibration error."""

    bins: tuple[ReliabilityBin, ...]
    ece: float
    n: int
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bins": [
                {
                    "lo": b.lo,
                    "hi": b.hi,
                    "count": b.count,
                    "mean_confidence": b.mean_confidence,
                    "accuracy": b.accuracy,
                }
                for b in self.bins
            ],
            "ece": self.ece,
            "n": self.n,
        }
        if self.note is not None:
            out["note"] = self.note
        return clean(out)


@dataclass(frozen=True, slots=True)
class OverTimePoint:
    at: str
    accuracy: float
    cohen_kappa: float
    n: int


@dataclass(frozen=True, slots=True)
class OverTime:
    """Rolling agreement over the last ``window`` labels (no points: too few dated labels)."""

    window: int
    points: tuple[OverTimePoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return clean(
            {
                "window": self.window,
                "points": [
                    {"at": p.at, "accuracy": p.accuracy, "cohen_kappa": p.cohen_kappa, "n": p.n}
                    for p in self.points
                ],
            }
        )


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    seed: int | None
    n_boot: int
    level: float
    by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """The panel's agreement with human labels, per judge and criterion, and how it was made."""

    panel: AgreementBlock
    human_ceiling: HumanCeiling | None
    by: Mapping[str, Mapping[str, GroupBlock]]
    reliability: Reliability
    over_time: OverTime
    counts: Mapping[str, int]
    settings: CalibrationSettings

    def to_dict(self) -> dict[str, Any]:
        """The ``judge calibrate --json`` object: the panel's block keys at the top level."""
        ceiling = None if self.human_ceiling is None else self.human_ceiling.to_dict()
        return clean(
            self.panel.to_dict()
            | {
                "human_ceiling": ceiling,
                "by": {
                    grouping: {name: block.to_dict() for name, block in blocks.items()}
                    for grouping, blocks in self.by.items()
                },
                "reliability": self.reliability.to_dict(),
                "over_time": self.over_time.to_dict(),
                "counts": dict(self.counts),
                "settings": {
                    "seed": self.settings.seed,
                    "n_boot": self.settings.n_boot,
                    "level": self.settings.level,
                    "by": list(self.settings.by),
                },
            }
        )


def matrix_of(rows: Sequence[Sequence[int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """A 2x2 confusion matrix as nested tuples (validated: two rows of two counts)."""
    if len(rows) != 2 or any(len(r) != 2 for r in rows):
        raise ValueError(f"a confusion matrix is 2x2, got {rows!r}")
    (a, b), (c, d) = rows
    return ((int(a), int(b)), (int(c), int(d)))

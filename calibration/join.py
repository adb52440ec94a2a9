"""Join judge verdicts with human labels on outcome id.

Inputs are plain records so any store can feed them: verdict dicts (the Verdict JSONL contract)
and label records, either ``{outcome_id, resolved, by, at, criteria}`` or outcomes (the Outcome
contract) carrying an embedded ``label``. :func:`calibration.records.read_records` reads a JSONL
file of any of these.

Rules
-----
- A verdict that appears more than once for one outcome: the last one wins (a re-verification);
  the extra ones are counted in ``duplicate_verdicts``.
- Several labels for one outcome: one label per labeller (``by``) is kept, the latest by ``at``
  (else the last in input order): a relabel or human overturn replaces the earlier one; the
  dropped ones are counted in ``superseded_labels``. The reference label is the majority of the
  labellers; a tie has no reference (``tied_labels``) and is left out of judge agreement. Units
  with two or more labellers also feed the human-vs-human ceiling.
- Ids on one side only are counted (``verdicts_without_label``, ``labels_without_verdict``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from calibration.records import CalibrationInputError
from judge.models import Label
from judge.verdict import Verdict

if TYPE_CHECKING:
    from calibration.tool_verdicts import VerdictColumns


@dataclass(frozen=True)
class LabelRecord:
    """One human judgement of one outcome."""

    outcome_id: str
    resolved: bool
    by: str | None = None
    at: datetime | None = None
    criteria: Mapping[str, bool] = field(default_factory=dict)
    order: int = 0


@dataclass(frozen=True)
class UnlabelledVerdicts:
    """Verdicts left out of a join because no label names their outcome: counted, not compared.

    A store reads only the labelled outcomes' verdicts (what is compared) and counts the rest,
    so a report's counts stay those of every verdict without reading them all.

    Parameters
    ----------
    verdicts
        How many verdicts were left out.
    outcomes
        How many distinct outcomes they are of (at most ``verdicts``; none without verdicts).

    Examples
    --------
    >>> UnlabelledVerdicts(verdicts=3, outcomes=2)
    UnlabelledVerdicts(verdicts=3, outcomes=2)
    >>> UnlabelledVerdicts(verdicts=1, outcomes=2)
    Traceback (most recent call last):
    ...
    ValueError: unlabelled outcomes (2) must be between 1 and the unlabelled verdicts (1)
    """

    verdicts: int = 0
    outcomes: int = 0

    def __post_init__(self) -> None:
        if self.verdicts < 0:
            raise ValueError(f"unlabelled verdicts must be >= 0, got {self.verdicts}")
        low = 1 if self.verdicts else 0
        if not low <= self.outcomes <= self.verdicts:
            raise ValueError(
                f"unlabelled outcomes ({self.outcomes}) must be between {low} and the "
                f"unlabelled verdicts ({self.verdicts})"
            )


@dataclass
class JoinedUnit:
    """A verdict with the human labels of the same outcome."""

    outcome_id: str
    verdict: Verdict
    labels: list[LabelRecord]
    reference: bool | None
    reference_criteria: dict[str, bool]

    @property
    def label_at(self) -> datetime | None:
        """When the outcome was (last) labelled, if the labels say."""
        times = [lab.at for lab in self.labels if lab.at is not None]
        return max(times) if times else None


@dataclass
class JoinResult:
    units: list[JoinedUnit]
    counts: dict[str, int]
    labels_by_unit: dict[str, list[LabelRecord]]

    @property
    def compared(self) -> list[JoinedUnit]:
        """Joined units with a reference label (no tie)."""
        return [u for u in self.units if u.reference is not None]


def _where(source: str | None, line: int | None) -> str:
    if source is None and line is None:
        return "record"
    if line is None:
        return f"{source}"
    if source is None:
        return f"record {line}"
    return f"{source}: line {line}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"field {loc!r}: {err.get('msg', 'invalid')}"


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def record_kind(record: Mapping[str, Any]) -> str:
    """Classify a record: ``verdict``, ``label`` or ``outcome`` (or ``unknown``).

    Examples
    --------
    >>> record_kind({"outcome_id": "T-1", "decision": "verified", "confidence": 0.9})
    'verdict'
    >>> record_kind({"outcome_id": "T-1", "resolved": True})
    'label'
    >>> record_kind({"id": "T-1", "kind": "support_ticket", "label": {"resolved": False}})
    'outcome'
    """
    if "outcome_id" in record and "decision" in record:
        return "verdict"
    if "outcome_id" in record and "resolved" in record:
        return "label"
    if "id" in record and ("kind" in record or "label" in record):
        return "outcome"
    return "unknown"


def to_verdict(
    record: Mapping[str, Any] | Verdict, *, source: str | None = None, line: int | None = None
) -> Verdict:
    """Validate one verdict record against the Verdict contract."""
    if isinstance(record, Verdict):
        return record
    try:
        return Verdict.model_validate(record)
    except ValidationError as exc:
        raise CalibrationInputError(
            f"{_where(source, line)}: not a valid verdict ({_first_error(exc)})"
        ) from None


def to_labels(
    record: Mapping[str, Any] | LabelRecord,
    *,
    source: str | None = None,
    line: int | None = None,
    order: int = 0,
) -> list[LabelRecord]:
    """Label records from a label record or an outcome with an embedded ``label`` (maybe none)."""
    if isinstance(record, LabelRecord):
        return [record]
    kind = record_kind(record)
    payload: Any
    if kind == "label":
        outcome_id = record.get("outcome_id")
        payload = {k: v for k, v in record.items() if k != "outcome_id"}
    elif kind == "outcome":
        outcome_id = record.get("id")
        payload = record.get("label")
        if payload is None:
            return []
        if not isinstance(payload, Mapping):
            raise CalibrationInputError(
                f"{_where(source, line)}: field 'label' must be an object such as "
                '{"resolved": true, "by": "qa-team"}'
            )
    else:
        raise CalibrationInputError(
            f"{_where(source, line)}: not a label; expected {{outcome_id, resolved, by, at, "
            "criteria}} or an outcome with an embedded 'label'"
        )
    if not isinstance(outcome_id, str) or not outcome_id:
        raise CalibrationInputError(f"{_where(source, line)}: the outcome id must be a string")
    try:
        label = Label.model_validate(payload)
    except ValidationError as exc:
        raise CalibrationInputError(
            f"{_where(source, line)}: not a valid label ({_first_error(exc)})"
        ) from None
    return [
        LabelRecord(
            outcome_id=outcome_id,
            resolved=label.resolved,
            by=label.by,
            at=_as_utc(label.at),
            criteria=dict(label.criteria),
            order=order,
        )
    ]


def load_files(
    verdicts_path: str | Path,
    labels_path: str | Path,
    *,
    columns: VerdictColumns | None = None,
) -> tuple[list[Verdict], list[LabelRecord]]:
    """Read the verdicts file and the labels file (JSONL, or CSV by the ``.csv`` suffix).

    The labels file holds label records and/or outcomes with embedded labels. The verdicts file
    holds verdicts: this project's, or any tool's with at least an outcome id and a decision
    (:mod:`calibration.tool_verdicts`; ``columns`` maps differently named columns). In a JSONL
    verdicts file, outcomes with embedded labels and ``{outcome_id, resolved}`` label records
    are used as labels too (a combined export works) unless ``columns`` maps anything; every
    row of a CSV verdicts file is a verdict. A verdict in the labels file is an error.
    """
    from calibration.tool_verdicts import VerdictColumns, read_table, to_tool_verdict

    columns = columns or VerdictColumns()
    every_row_a_verdict = columns.explicit or Path(verdicts_path).suffix.lower() == ".csv"
    verdicts: list[Verdict] = []
    labels: list[LabelRecord] = []
    order = 0
    for lineno, obj in read_table(verdicts_path):
        kind = record_kind(obj)
        where = _where(str(verdicts_path), lineno)
        if kind in ("label", "outcome") and not every_row_a_verdict:
            order += 1
            labels.extend(to_labels(obj, source=str(verdicts_path), line=lineno, order=order))
            continue
        if kind == "verdict" and not every_row_a_verdict:
            try:
                verdicts.append(Verdict.model_validate(obj))
                continue
            except ValidationError:
                pass  # not this project's verdict: read it as another tool's
        try:
            verdicts.append(to_tool_verdict(obj, columns=columns, where=where))
        except ValueError as exc:
            raise CalibrationInputError(str(exc)) from None
    for lineno, obj in read_table(labels_path):
        if record_kind(obj) == "verdict":
            raise CalibrationInputError(
                f"{labels_path}: line {lineno}: this is a verdict, not a label; pass verdicts "
                "with --verdicts and labels (or labelled outcomes) with --labels"
            )
        order += 1
        labels.extend(to_labels(obj, source=str(labels_path), line=lineno, order=order))
    if not verdicts:
        raise CalibrationInputError(f"{verdicts_path}: no verdicts found")
    return verdicts, labels


def _latest_per_labeller(labels: list[LabelRecord]) -> tuple[list[LabelRecord], int]:
    """One label per labeller (latest by ``at``, then input order); anonymous labels each count
    unless identical. Returns the kept labels and how many were dropped."""
    kept: dict[Any, LabelRecord] = {}
    minimum = datetime.min.replace(tzinfo=UTC)
    for lab in labels:
        key: Any = (
            ("by", lab.by)
            if lab.by is not None
            else ("anon", lab.resolved, lab.at, tuple(sorted(lab.criteria.items())))
        )
        old = kept.get(key)
        if old is None or ((lab.at or minimum), lab.order) >= ((old.at or minimum), old.order):
            kept[key] = lab
    values = sorted(kept.values(), key=lambda lab: lab.order)
    return values, len(labels) - len(values)


def _majority(values: list[bool]) -> bool | None:
    yes = sum(values)
    no = len(values) - yes
    if yes == no:
        return None
    return yes > no


def join(
    verdicts: Iterable[Mapping[str, Any] | Verdict],
    labels: Iterable[Mapping[str, Any] | LabelRecord],
    *,
    unlabelled: UnlabelledVerdicts | None = None,
) -> JoinResult:
    """Pair every verdict with the human labels of the same outcome.

    Parameters
    ----------
    verdicts : iterable of verdict dicts or Verdict
        The Verdict contract; the last verdict of an outcome wins.
    labels : iterable of label records, labelled outcome dicts or LabelRecord
    unlabelled : UnlabelledVerdicts, optional
        Verdicts of unlabelled outcomes that were not passed in ``verdicts``: added to the
        ``verdicts``, ``outcomes_with_verdict``, ``duplicate_verdicts`` and
        ``verdicts_without_label`` counts, as if they had been.

    Returns
    -------
    JoinResult
        ``units`` (joined outcomes in verdict order), ``counts`` and ``labels_by_unit`` (the kept
        labels per labelled outcome, for the human ceiling).

    Examples
    --------
    >>> v = [{"outcome_id": "a", "decision": "verified", "confidence": 0.9, "rubric": "r",
    ...       "panel": "p"}]
    >>> res = join(v, [{"outcome_id": "a", "resolved": True}, {"outcome_id": "b",
    ...       "resolved": False}])
    >>> res.counts["joined"], res.counts["labels_without_verdict"]
    (1, 1)
    """
    by_id: dict[str, Verdict] = {}
    n_verdicts = 0
    for index, record in enumerate(verdicts, start=1):
        verdict = to_verdict(record, line=None if isinstance(record, Verdict) else index)
        n_verdicts += 1
        by_id.pop(verdict.outcome_id, None)  # keep the latest, in its latest position
        by_id[verdict.outcome_id] = verdict
    raw_labels: dict[str, list[LabelRecord]] = {}
    n_labels = 0
    for index, item in enumerate(labels, start=1):
        for lab in to_labels(item, line=None if isinstance(item, LabelRecord) else index):
            if lab.order == 0:
                lab = LabelRecord(lab.outcome_id, lab.resolved, lab.by, lab.at, lab.criteria, index)
            raw_labels.setdefault(lab.outcome_id, []).append(lab)
            n_labels += 1
    labels_by_unit: dict[str, list[LabelRecord]] = {}
    superseded = 0
    for outcome_id, labs in raw_labels.items():
        kept, dropped = _latest_per_labeller(labs)
        labels_by_unit[outcome_id] = kept
        superseded += dropped
    units: list[JoinedUnit] = []
    tied = 0
    for outcome_id, verdict in by_id.items():
        found = labels_by_unit.get(outcome_id)
        if not found:
            continue
        labs = found
        reference = _majority([lab.resolved for lab in labs])
        tied += reference is None
        criteria: dict[str, bool] = {}
        names = sorted({name for lab in labs for name in lab.criteria})
        for name in names:
            value = _majority([lab.criteria[name] for lab in labs if name in lab.criteria])
            if value is not None:
                criteria[name] = value
        units.append(JoinedUnit(outcome_id, verdict, labs, reference, criteria))
    left_out = unlabelled or UnlabelledVerdicts()
    counts = dict(
        verdicts=n_verdicts + left_out.verdicts,
        outcomes_with_verdict=len(by_id) + left_out.outcomes,
        duplicate_verdicts=n_verdicts - len(by_id) + left_out.verdicts - left_out.outcomes,
        labels=n_labels,
        labelled_outcomes=len(labels_by_unit),
        superseded_labels=superseded,
        joined=len(units),
        verdicts_without_label=len(by_id) - len(units) + left_out.outcomes,
        labels_without_verdict=sum(1 for k in labels_by_unit if k not in by_id),
        outcomes_with_multiple_labellers=sum(1 for v in labels_by_unit.values() if len(v) > 1),
        tied_labels=tied,
    )
    return JoinResult(units=units, counts=counts, labels_by_unit=labels_by_unit)

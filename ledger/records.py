"""Plain records the ledger returns: what was written, and what was read back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from judge.models import Label
from judge.verdict import Verdict

__all__ = [
    "EMBEDDED_LABEL_SOURCE",
    "UNREVIEWED_LABEL_SOURCE",
    "OutcomeRef",
    "RecordedResult",
    "RecordedVerdict",
    "StoredLabel",
    "StoredVerdict",
    "by_a_person",
]

#: The ``source`` of a label that arrived inside its outcome (``outcome.label``).
EMBEDDED_LABEL_SOURCE = "outcome"
#: The ``source`` of a label that arrived inside an outcome sent with an API key that may not
#: label (no ``review`` scope): typically the integration of the party billed per resolution.
#: Kept and shown, but no human label: calibration, the gate, drift and revocations do not
#: count it, and it does not take its outcome out of the review queue.
UNREVIEWED_LABEL_SOURCE = "submitted"


def by_a_person(source: str) -> bool:
    """Whether a label of ``source`` is a person's (every source but ``submitted``): what
    calibration counts and what takes an outcome out of the review queue."""
    return source != UNREVIEWED_LABEL_SOURCE


@dataclass(frozen=True)
class OutcomeRef:
    """Which stored revision an outcome is; ``created`` is False when nothing new was written."""

    tenant: str
    outcome_id: str
    revision: int
    content_hash: str
    created: bool


@dataclass(frozen=True)
class RecordedResult:
    """What :meth:`Ledger.record_result` wrote."""

    outcome: OutcomeRef
    verdict_pk: int
    label_added: bool
    #: The verdict as stored: the one given, or held for review (:mod:`ledger.rewrites`).
    verdict: Verdict


@dataclass(frozen=True)
class RecordedVerdict:
    """A verdict on record for exactly one content, rubric and panel (what resume reuses)."""

    verdict_pk: int
    verdict: Verdict
    #: The outcome revision the verdict was recorded on.
    revision: int = 0


@dataclass(frozen=True)
class StoredVerdict:
    verdict: Verdict
    outcome_revision: int
    created_at: datetime


@dataclass(frozen=True)
class StoredLabel:
    outcome_id: str
    label: Label
    source: str
    created_at: datetime


@dataclass(frozen=True)
class LabelledVerdicts:
    """A tenant's labels and the verdicts of the labelled outcomes (each in the order recorded),
    and how many verdicts, of how many outcomes, the same filters select in all, labelled or
    not: read in one snapshot."""

    verdicts: list[StoredVerdict]
    labels: list[StoredLabel]
    total: int
    outcomes: int
    #: The panel of the latest verdict the filters select (None without one).
    last_panel: str | None

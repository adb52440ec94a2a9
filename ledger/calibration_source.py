"""The verdicts and human labels calibration compares, read from the ledger for one tenant.

Shared by `judge calibrate --db` (:mod:`app.cli._sources`), ``GET /v1/calibration`` and the
web UI, so all three compute the same numbers from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Engine

    from calibration.join import LabelRecord, UnlabelledVerdicts
    from judge.verdict import Verdict
    from ledger.records import StoredLabel
    from ledger.store import Ledger

__all__ = ["CalibrationRows", "load_calibration_rows", "matches_ref"]


def matches_ref(ref: str, wanted: str | None) -> bool:
    """Whether a ``name@version`` ref is what a filter asks for (``name`` or ``name@version``).

    >>> matches_ref("support-resolution@0295bf6", "support-resolution")
    True
    >>> matches_ref("support-resolution@0295bf6", "support-resolution@1111111")
    False
    >>> matches_ref("x@1", None)
    True
    """
    if wanted is None:
        return True
    return ref == wanted if "@" in wanted else ref.split("@", 1)[0] == wanted


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class CalibrationRows:
    """What a calibration report compares, read from the ledger in one snapshot: the verdicts
    of the labelled outcomes, every label, and a count of the verdicts left out (no label names
    their outcome), so that :func:`calibration.report.calibrate` gives the report of every
    verdict without them being read (``calibrate(rows.verdicts, rows.labels,
    unlabelled=rows.unlabelled)``)."""

    verdicts: list[Verdict]
    labels: list[LabelRecord]
    unlabelled: UnlabelledVerdicts
    #: The panel of the latest verdict selected, labelled or not (None without one).
    last_panel: str | None

    @property
    def total_verdicts(self) -> int:
        """Every verdict selected, labelled or not."""
        return len(self.verdicts) + self.unlabelled.verdicts


def load_calibration_rows(
    engine: Engine,
    tenant: str,
    *,
    rubric: str | None = None,
    panel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    every_verdict: bool = False,
) -> CalibrationRows:
    """A tenant's labelled verdicts (optionally one rubric, one panel, recorded in ``[since,
    until)``), all of its human labels, and the count of its other verdicts, ready for
    :func:`calibration.report.calibrate`.

    Parameters
    ----------
    engine
        A migrated ledger engine.
    tenant
        Only this tenant's rows are read.
    rubric, panel
        ``name`` (any version) or ``name@version`` (exactly that one).
    since, until
        Half-open window on when the verdicts were recorded.
    every_verdict
        Read every verdict, labelled or not (what drift windows count), in pages; by default
        only the labelled outcomes' verdicts are read and the others counted.

    Returns
    -------
    CalibrationRows
        Verdicts in the order recorded (:mod:`calibration.join` keeps the last per outcome);
        labels in the order recorded, each with its ``order`` (1-based), ``at`` in UTC.

    Raises
    ------
    ValueError
        ``since`` is not before ``until``.
    """
    from calibration.join import UnlabelledVerdicts
    from ledger.store import Ledger

    if since is not None and until is not None and since >= until:
        raise ValueError(
            f"from ({since.isoformat()}) must be before to ({until.isoformat()}); the window is "
            "[from, to)"
        )
    ledger = Ledger(engine, tenant=tenant)
    if every_verdict:
        return _every_verdict(ledger, rubric=rubric, panel=panel, since=since, until=until)
    # The versions a bare name stands for, from the pairs on record (a scan of the tenant's
    # verdicts, so only for a bare name): the counts are made in SQL.
    bare = (rubric and "@" not in rubric) or (panel and "@" not in panel)
    pairs = ledger.panel_rubric_pairs() if bare else []
    panels = _versions(panel, [p for p, _ in pairs])
    rubrics = _versions(rubric, [r for _, r in pairs])
    read = ledger.labelled_verdicts(rubrics=rubrics, panels=panels, since=since, until=until)
    verdicts = [stored.verdict for stored in read.verdicts]
    labels = _label_records(read.labels)
    unlabelled = UnlabelledVerdicts(
        verdicts=read.total - len(verdicts),
        outcomes=read.outcomes - len({v.outcome_id for v in verdicts}),
    )
    return CalibrationRows(verdicts, labels, unlabelled, read.last_panel)


def _versions(ref: str | None, on_record: list[str]) -> set[str] | None:
    """The refs a filter selects: None for any, itself when exact, else the versions on record."""
    if ref is None:
        return None
    if "@" in ref:
        return {ref}
    return {r for r in on_record if matches_ref(r, ref)}


def _label_records(stored: Iterable[StoredLabel]) -> list[LabelRecord]:
    from calibration.join import LabelRecord

    return [
        LabelRecord(
            outcome_id=label.outcome_id,
            resolved=label.label.resolved,
            by=label.label.by,
            at=_utc(label.label.at),
            criteria=dict(label.label.criteria),
            order=order,
        )
        for order, label in enumerate(stored, start=1)
    ]


def _every_verdict(
    ledger: Ledger,
    *,
    rubric: str | None,
    panel: str | None,
    since: datetime | None,
    until: datetime | None,
) -> CalibrationRows:
    from calibration.join import UnlabelledVerdicts

    # An exact ref filters in SQL; a bare name matches every version (filtered here).
    stored = ledger.iter_verdicts(
        rubric=rubric if rubric and "@" in rubric else None,
        panel=panel if panel and "@" in panel else None,
        since=since,
        until=until,
    )
    verdicts = [
        s.verdict
        for s in stored
        if matches_ref(s.verdict.rubric, rubric) and matches_ref(s.verdict.panel, panel)
    ]
    labels = _label_records(ledger.iter_labels(human_only=True))
    last_panel = verdicts[-1].panel if verdicts else None
    return CalibrationRows(verdicts, labels, UnlabelledVerdicts(), last_panel)

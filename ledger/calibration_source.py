"""The verdicts and human labels calibration compares, read from the ledger for one tenant.

Shared by `judge calibrate --db` (:mod:`app.cli._sources`), ``GET /v1/calibration`` and the
web UI, so all three compute the same numbers from the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from calibration.join import LabelRecord
    from judge.verdict import Verdict

__all__ = ["load_calibration_rows", "matches_ref"]


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


def load_calibration_rows(
    engine: Engine,
    tenant: str,
    *,
    rubric: str | None = None,
    panel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    labelled_only: bool = False,
) -> tuple[list[Verdict], list[LabelRecord]]:
    """A tenant's verdicts (optionally one rubric, one panel, recorded in ``[since, until)``) and
    all of its human labels, ready for :func:`calibration.report.calibrate`.

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
    labelled_only
        Read only the verdicts of labelled outcomes: what is compared with the labels, without
        the counts of the others a report gives (``verdicts``, ``verdicts_without_label``).

    Returns
    -------
    (verdicts, labels)
        Verdicts in the order recorded (:mod:`calibration.join` keeps the last per outcome);
        labels in the order recorded, each with its ``order`` (1-based), ``at`` in UTC.

    Raises
    ------
    ValueError
        ``since`` is not before ``until``.
    """
    from calibration.join import LabelRecord
    from ledger.store import Ledger

    if since is not None and until is not None and since >= until:
        raise ValueError(
            f"from ({since.isoformat()}) must be before to ({until.isoformat()}); the window is "
            "[from, to)"
        )
    ledger = Ledger(engine, tenant=tenant)
    # An exact ref filters in SQL; a bare name matches every version (filtered here).
    exact_rubric = rubric if rubric and "@" in rubric else None
    exact_panel = panel if panel and "@" in panel else None
    read = ledger.labelled_verdicts if labelled_only else ledger.iter_verdicts
    stored = read(rubric=exact_rubric, panel=exact_panel, since=since, until=until)
    verdicts = [
        s.verdict
        for s in stored
        if matches_ref(s.verdict.rubric, rubric) and matches_ref(s.verdict.panel, panel)
    ]
    labels = [
        LabelRecord(
            outcome_id=stored.outcome_id,
            resolved=stored.label.resolved,
            by=stored.label.by,
            at=_utc(stored.label.at),
            criteria=dict(stored.label.criteria),
            order=order,
        )
        for order, stored in enumerate(ledger.iter_labels(), start=1)
    ]
    return verdicts, labels

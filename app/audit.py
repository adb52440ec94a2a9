"""The audit service: a vendor's claims in, the reconciliation with the ledger out.

What ``judge audit`` does below the command line: look every claimed outcome up in the ledger
(:mod:`ledger.audit_source`), measure the error of the panels that judged them on the tenant's
labelled verdicts, and reconcile (:func:`ledger.audit.reconcile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ledger.audit import AuditReport, reconcile
from ledger.audit_source import claimed_outcomes, verified_outcome_ids
from ledger.dispute_pack import dispute_details

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from calibration.correction import CorrectedCount
    from ledger.audits import StoredAudit
    from ledger.claims import Claim

__all__ = ["run_and_store_audit", "run_audit"]


def run_audit(
    engine: Engine,
    tenant: str,
    claims: Sequence[Claim],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    n_boot: int = 1000,
    seed: int | None = 0,
) -> AuditReport:
    """Reconcile ``claims`` with what ``tenant``'s ledger verified (see :mod:`ledger.audit`)."""
    judged = claimed_outcomes(engine, tenant, (c.outcome_id for c in claims))
    panels = {side.panel for side in judged.values() if side.panel is not None}

    def correct(n_verified: int, n_judged: int) -> CorrectedCount | str:
        return _correction(engine, tenant, panels, n_verified, n_judged, n_boot=n_boot, seed=seed)

    report = reconcile(
        claims,
        judged,
        tenant=tenant,
        since=since,
        until=until,
        verified_ids=verified_outcome_ids(engine, tenant, since=since, until=until),
        correct=correct,
    )
    pks = [d.verdict_pk for d in report.disputes if d.verdict_pk is not None]
    if not pks:
        return report
    details = dispute_details(engine, tenant, pks)
    disputes = [
        d if d.verdict_pk is None else d.model_copy(update={"detail": details.get(d.verdict_pk)})
        for d in report.disputes
    ]
    return report.model_copy(update={"disputes": disputes})


def _correction(
    engine: Engine,
    tenant: str,
    panels: set[str],
    n_verified: int,
    n_judged: int,
    *,
    n_boot: int,
    seed: int | None,
) -> CorrectedCount | str:
    """The Rogan-Gladen correction from the labelled verdicts of ``panels``, else why not."""
    from calibration.correction import corrected_count_ci
    from calibration.join import join
    from ledger.calibration_source import load_calibration_rows

    # Only labelled verdicts are compared: the others (most of a tenant's) are not read.
    rows = load_calibration_rows(engine, tenant)
    chosen = [v for v in rows.verdicts if v.panel in panels]
    pairs = [
        (u.verdict.decision, bool(u.reference))
        for u in join(chosen, rows.labels).compared
        if u.verdict.decision != "abstain"
    ]
    if not pairs:
        return (
            "no labelled outcome judged by the panel(s) that judged these claims; label some "
            "(POST /v1/labels or a labels file) to measure the panel's error rates"
        )
    try:
        return corrected_count_ci(
            [j for j, _ in pairs],
            [h for _, h in pairs],
            n_verified=n_verified,
            n_total=n_judged,
            n=n_boot,
            seed=seed,
        )
    except ValueError as exc:  # UndefinedCorrection too: TPR not above FPR
        return f"undefined: {exc}"


def run_and_store_audit(
    engine: Engine,
    tenant: str,
    claims: Sequence[Claim],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    n_boot: int = 1000,
    seed: int | None = 0,
) -> StoredAudit:
    """:func:`run_audit`, then store the report (``POST /v1/audits``)."""
    from ledger.audits import save_audit

    report = run_audit(engine, tenant, claims, since=since, until=until, n_boot=n_boot, seed=seed)
    return save_audit(engine, tenant, report, since=since, until=until)

"""``judge audit``: the vendor's bill reconciled with the verdicts, claim by claim (pure).

Every claim row in the period gets exactly one status, so the counts add up to ``claimed`` and
the amounts to ``billed_usd``:

- ``verified``: the ledger counts the outcome (its amount is ``supported_usd``);
- ``not_verified``: the panel did not verify it, or a revocation took the count back; its
  amount is disputed;
- ``duplicate``: a second claim for an outcome already claimed in this audit, or for another
  id whose judged conversation is the same as one claimed above (the same content hash: every
  message, time and signal a judge sees); disputed;
- ``abstain`` (awaiting human review) and ``unjudged`` (stored, no verdict yet): ``pending_usd``,
  neither supported nor disputed until they are decided;
- ``unknown``: the ledger has no outcome of that id (``unknown_usd``; import the conversation,
  then audit again).

Claims dated outside ``[from, to)`` are listed under ``problems.outside_period`` and in no
figure. The verified count is also corrected for the panel's measured error (Rogan-Gladen with a
bootstrap interval, :func:`calibration.correction.corrected_count_ci`, from the tenant's labelled
verdicts), so the disputed amount comes with an interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from calibration.correction import CorrectedCount
from ledger.audit_source import JudgedClaim
from ledger.claims import Claim
from ledger.dispute_pack import DisputeDetail

__all__ = [
    "AuditReport",
    "AuditRow",
    "ClaimProblem",
    "CorrectedFigure",
    "Dispute",
    "reconcile",
]

RowStatus = Literal["verified", "not_verified", "abstain", "unjudged", "unknown", "duplicate"]
_STATUSES: tuple[RowStatus, ...] = get_args(RowStatus)
_DISPUTED = ("not_verified", "duplicate")
_PENDING = ("abstain", "unjudged")


def _usd(value: Decimal) -> float:
    return float(round(value, 6))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class AuditRow(_Frozen):
    """Counts and amounts of one (period, claim type), or of the whole audit."""

    period: str | None = None
    claim: str | None = None
    claimed: int = 0
    verified: int = 0
    not_verified: int = 0
    abstain: int = 0
    unjudged: int = 0
    unknown: int = 0
    duplicate: int = 0
    billed_usd: float = 0.0
    supported_usd: float = 0.0
    disputed_usd: float = 0.0
    pending_usd: float = 0.0
    unknown_usd: float = 0.0


class Dispute(_Frozen):
    """One disputed claim and why."""

    line: int
    outcome_id: str
    claim: str
    claimed_at: str
    price_usd: float
    status: RowStatus
    reason: str
    verdict_pk: int | None = None
    rubric: str | None = None
    panel: str | None = None
    confidence: float | None = None
    flags: list[str] = Field(default_factory=list)
    #: The dispute pack's view of the conversation (:mod:`ledger.dispute_pack`); None for an
    #: outcome without a verdict.
    detail: DisputeDetail | None = None


class ClaimProblem(_Frozen):
    """A claim that could not be matched as billed (unknown id, duplicate, outside the period)."""

    line: int
    outcome_id: str
    claim: str
    claimed_at: str
    price_usd: float
    problem: Literal["unknown_id", "duplicate", "outside_period"]


class CorrectedFigure(_Frozen):
    """An estimate and its interval (``ci`` None, with ``note``, when undefined)."""

    value: float | None
    ci: list[float] | None
    note: str | None = None


class AuditReport(_Frozen):
    """The reconciliation; ``to_dict()`` is the ``judge audit --json`` object (stable keys)."""

    tenant: str
    from_: str | None = Field(alias="from")
    to: str | None
    claimed: int
    verified: int
    not_verified: int
    abstain: int
    unjudged: int
    unknown: int
    duplicate: int
    billed_usd: float
    supported_usd: float
    disputed_usd: float
    pending_usd: float
    unknown_usd: float
    corrected_verified: CorrectedFigure
    corrected_disputed_usd: CorrectedFigure
    correction: dict[str, Any]
    by_period: list[AuditRow]
    disputes: list[Dispute]
    problems: dict[str, list[ClaimProblem]]
    verified_unclaimed: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(("claimed", *_STATUSES), 0)
        self.amounts: dict[str, Decimal] = dict.fromkeys(
            ("billed_usd", "supported_usd", "disputed_usd", "pending_usd", "unknown_usd"),
            Decimal(0),
        )

    def add(self, status: RowStatus, price: Decimal) -> None:
        self.counts["claimed"] += 1
        self.counts[status] += 1
        self.amounts["billed_usd"] += price
        if status == "verified":
            self.amounts["supported_usd"] += price
        elif status in _DISPUTED:
            self.amounts["disputed_usd"] += price
        elif status in _PENDING:
            self.amounts["pending_usd"] += price
        else:
            self.amounts["unknown_usd"] += price

    def fields(self) -> dict[str, Any]:
        return {**self.counts, **{k: _usd(v) for k, v in self.amounts.items()}}


def _claim_fields(claim: Claim) -> dict[str, Any]:
    """What a dispute and a problem say about the claim itself."""
    return {
        "line": claim.line,
        "outcome_id": claim.outcome_id,
        "claim": claim.claim,
        "claimed_at": claim.claimed_at.isoformat(),
        "price_usd": _usd(claim.price_usd),
    }


def _period(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def reconcile(
    claims: Sequence[Claim],
    judged: Mapping[str, JudgedClaim],
    *,
    tenant: str,
    since: datetime | None,
    until: datetime | None,
    verified_ids: Sequence[str],
    correct: Callable[[int, int], CorrectedCount | str],
) -> AuditReport:
    """Reconcile ``claims`` (in file order) with the ledger's side of each outcome.

    Parameters
    ----------
    claims
        The vendor's claims (:func:`ledger.claims.read_claims`).
    judged
        The ledger's side of every claimed outcome id
        (:func:`ledger.audit_source.claimed_outcomes`).
    since, until
        The audited period, half-open, on ``claimed_at`` (None: unbounded).
    verified_ids
        Outcomes the ledger counts as verified in the period (for ``verified_unclaimed``).
    correct
        ``correct(n_verified, n_judged)``: the corrected count, or why there is none.
    """
    total = _Tally()
    rows: dict[tuple[str, str], _Tally] = {}
    disputes: list[Dispute] = []
    problems: dict[str, list[ClaimProblem]] = {
        "unknown_id": [],
        "duplicate": [],
        "outside_period": [],
    }
    seen: set[str] = set()
    #: content hash of a claimed outcome's judged revision -> the first id claimed with it
    conversations: dict[str, str] = {}
    judged_prices: list[Decimal] = []
    duplicate_usd = Decimal(0)

    def problem(claim: Claim, kind: Literal["unknown_id", "duplicate", "outside_period"]) -> None:
        problems[kind].append(ClaimProblem(**_claim_fields(claim), problem=kind))

    for claim in claims:
        if (since is not None and claim.claimed_at < since) or (
            until is not None and claim.claimed_at >= until
        ):
            problem(claim, "outside_period")
            continue
        side = judged[claim.outcome_id]
        status: RowStatus
        reason = side.reason
        first = conversations.get(side.content_hash) if side.content_hash else None
        if claim.outcome_id in seen:
            status, reason = "duplicate", "claimed again: this outcome was already billed above"
            problem(claim, "duplicate")
        elif first is not None and first != claim.outcome_id:
            status = "duplicate"
            reason = f"the same conversation as {first}, billed above under that id"
            problem(claim, "duplicate")
        else:
            status = side.status
            if status == "unknown":
                problem(claim, "unknown_id")
        seen.add(claim.outcome_id)
        if side.content_hash:
            conversations.setdefault(side.content_hash, claim.outcome_id)
        total.add(status, claim.price_usd)
        rows.setdefault((_period(claim.claimed_at), claim.claim), _Tally()).add(
            status, claim.price_usd
        )
        if status in ("verified", "not_verified"):
            judged_prices.append(claim.price_usd)
        elif status == "duplicate":
            duplicate_usd += claim.price_usd
        if status in _DISPUTED:
            disputes.append(
                Dispute(
                    **_claim_fields(claim),
                    status=status,
                    reason=reason or status,
                    verdict_pk=side.verdict_pk,
                    rubric=side.rubric,
                    panel=side.panel,
                    confidence=side.confidence,
                    flags=list(side.flags),
                )
            )
    figures = total.fields()
    corrected, disputed_corrected, correction = _corrected(
        figures["verified"], judged_prices, duplicate_usd, correct
    )
    unclaimed = [oid for oid in verified_ids if oid not in seen]
    return AuditReport(  # type: ignore[call-arg]  # "from" is set through its alias
        tenant=tenant,
        from_=None if since is None else since.isoformat(),
        to=None if until is None else until.isoformat(),
        **figures,
        corrected_verified=corrected,
        corrected_disputed_usd=disputed_corrected,
        correction=correction,
        by_period=[
            AuditRow(period=period, claim=kind, **tally.fields())
            for (period, kind), tally in sorted(rows.items())
        ],
        disputes=disputes,
        problems=problems,
        verified_unclaimed={"count": len(unclaimed), "outcome_ids": unclaimed},
    )


def _corrected(
    n_verified: int,
    judged_prices: Sequence[Decimal],
    duplicate_usd: Decimal,
    correct: Callable[[int, int], CorrectedCount | str],
) -> tuple[CorrectedFigure, CorrectedFigure, dict[str, Any]]:
    """The corrected verified count of the judged claims and the disputed amount it implies.

    Disputed = duplicates + (judged claims - corrected verified) x the mean price of a judged
    claim: the correction moves counts, not particular claims.
    """
    n_judged = len(judged_prices)
    if n_judged == 0:
        note = "no claimed outcome is judged yet"
        return (
            CorrectedFigure(value=None, ci=None, note=note),
            CorrectedFigure(value=None, ci=None, note=note),
            {"n_judged": 0},
        )
    result = correct(n_verified, n_judged)
    if isinstance(result, str):
        return (
            CorrectedFigure(value=None, ci=None, note=result),
            CorrectedFigure(value=None, ci=None, note=result),
            {"n_judged": n_judged},
        )
    mean_price = sum(judged_prices, Decimal(0)) / n_judged

    def disputed(verified: float) -> float:
        return _usd(duplicate_usd + (Decimal(n_judged) - Decimal(repr(verified))) * mean_price)

    ci = None if result.ci is None else [round(result.ci[0], 3), round(result.ci[1], 3)]
    return (
        CorrectedFigure(value=round(result.corrected, 3), ci=ci, note=result.ci_reason),
        CorrectedFigure(
            value=disputed(result.corrected),
            ci=None if result.ci is None else [disputed(result.ci[1]), disputed(result.ci[0])],
            note=result.ci_reason,
        ),
        {
            "n_judged": n_judged,
            "tpr": result.tpr,
            "fpr": result.fpr,
            "n_labelled": result.n_labelled,
            "level": result.level,
            "n_boot": result.n_boot,
            "clipped": result.clipped,
        },
    )

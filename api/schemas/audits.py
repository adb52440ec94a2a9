"""Audit models (``POST/GET /v1/audits``): the vendor's claims in, the stored reconciliation out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.text import OutcomeId, SafeStr, UnicodeInput
from judge.models import Timestamp
from ledger.audit import AuditReport

#: Claims in one request; a larger invoice is audited with ``judge audit --claims FILE``.
MAX_CLAIMS_PER_REQUEST = 50_000


class ClaimCreate(BaseModel):
    """One claimed resolution of the vendor's invoice."""

    model_config = ConfigDict(extra="forbid")

    outcome_id: OutcomeId
    claimed_at: Timestamp = Field(description="When the vendor counted it (naive: UTC).")
    claim: SafeStr = Field(
        min_length=1,
        max_length=200,
        description="The vendor's kind of resolution: confirmed, assumed, automated_resolution...",
    )
    price_usd: Decimal = Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)


class AuditCreate(UnicodeInput):
    """An invoice to audit, and the period it covers."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    claims: list[ClaimCreate] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CLAIMS_PER_REQUEST,
        description="The invoice's claims. Without them, imported_price_usd audits the claims "
        "the vendor made in the imported conversations (vendor_claim).",
    )
    imported_price_usd: Decimal | None = Field(
        default=None,
        ge=0,
        max_digits=18,
        decimal_places=6,
        allow_inf_nan=False,
        description="Audit the resolutions the vendor claimed in the imported conversations "
        "(vendor_claim with automated true), each at this price; instead of claims.",
    )
    from_: Timestamp | None = Field(
        default=None, alias="from", description="Claims dated at or after (naive: UTC)."
    )
    to: Timestamp | None = Field(default=None, description="Claims dated before (naive: UTC).")
    n_boot: int = Field(default=1000, ge=100, le=10_000, description="Bootstrap replicates.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Bootstrap seed.")


class AuditPublic(AuditReport):
    """A stored audit: its id, when it was made, and the reconciliation (``judge audit --json``)."""

    id: int
    created_at: datetime


class AuditSummary(BaseModel):
    id: int
    created_at: datetime
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    claimed: int
    billed_usd: float
    disputed_usd: float
    disputes: int

    model_config = ConfigDict(populate_by_name=True)


class AuditList(BaseModel):
    items: list[AuditSummary]

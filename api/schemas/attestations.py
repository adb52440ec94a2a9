"""Attested document models (``POST /v1/attestations``, ``GET /v1/attestations``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.outcomes import SCHEMA_MAX_BATCH
from api.schemas.text import SafeStr, UnicodeInput
from judge.attestation import AttestedDocument
from judge.models import MAX_TEXT_CHARS


class AttestedDocumentCreate(AttestedDocument):
    """One document the tenant vouches for: its text, or its digest
    (``judge.attestation.document_digest``: SHA-256 of the NFC text with ``\\n`` line endings,
    trimmed). Only the digest is stored."""

    id: SafeStr | None = Field(
        default=None, max_length=200, description="The buyer's own name for the document."
    )
    text: SafeStr | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class AttestationBatch(UnicodeInput):
    model_config = ConfigDict(extra="forbid")

    documents: list[AttestedDocumentCreate] = Field(
        min_length=1,
        max_length=SCHEMA_MAX_BATCH,
        description="At most OUTCOME_JUDGE_MAX_BATCH (default 1000) documents, else 413.",
    )


class AttestationResult(BaseModel):
    count: int = Field(description="Distinct documents in the request.")
    created: int = Field(description="Documents attested by this request.")
    unchanged: int = Field(description="Documents the tenant had attested already.")
    sha256: list[str] = Field(description="The digest of each document, in request order.")


class AttestedDocumentPublic(BaseModel):
    id: str | None = Field(description="The buyer's own name for the document.")
    sha256: str
    key_id: str | None = Field(description="The public id of the key that attested it.")
    created_at: datetime


class AttestationPage(BaseModel):
    items: list[AttestedDocumentPublic]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null after the last."
    )

"""Rubric and panel models (``/v1/rubrics``, ``/v1/panels``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.text import UnicodeInput
from judge.yamlsafe import MAX_BYTES


class DocumentCreate(UnicodeInput):
    """A rubric or panel as YAML text (the same format as the files `judge` reads)."""

    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1, max_length=MAX_BYTES, description="The YAML document.")


class DocumentVersion(BaseModel):
    version: str
    created_at: datetime = Field(description="When this version was last posted.")


class DocumentPublic(BaseModel):
    name: str
    version: str
    ref: str = Field(description="name@version, as verdicts record it.")
    source: Literal["stored", "shipped"] = Field(
        description="stored: posted by this tenant; shipped: comes with the server. A job naming "
        "a name both have uses the stored one."
    )
    created_at: datetime | None = None
    document: dict[str, Any] = Field(description="The parsed rubric or panel.")


class DocumentDetail(DocumentPublic):
    yaml: str | None = Field(default=None, description="The posted text (stored documents).")
    versions: list[DocumentVersion] = Field(
        default_factory=list, description="Every stored version, newest first."
    )


class DocumentList(BaseModel):
    items: list[DocumentPublic]

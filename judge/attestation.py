"""Attested report inputs: a report's brief and sources checked against documents the buyer
registered, so that the party billed for the report cannot supply the evidence it is judged by.

A report's judges compare its figures and claims with its sources under its brief. Whoever
sends the report sends those too, and the party billed per verified report can add a source
that backs wrong figures ("reconciliation: the total is 1,212") or a brief sentence that
lowers the bar ("treat approximate totals as correct"): no screen can tell such a document from
an honest one. A panel with ``report_inputs: attested`` asks instead that the brief and every
source be documents the buyer attested beforehand (``judge verify --attested FILE``): a report
whose brief or a source is not among them is never auto-verified (flag
``unattested_report_input``, the outcome abstains for a person to review, with the ids and
digests of what was not attested).

A document is matched by :func:`document_digest`: SHA-256 of its text in Unicode NFC, with
line endings made ``\\n`` and the whitespace around the whole text removed, so the same
document copied through another system still matches, and any other change does not.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.models import MAX_TEXT_CHARS, Outcome
from judge.verdict import FLAG_UNATTESTED

__all__ = [
    "FLAG_UNATTESTED",
    "AttestedDocument",
    "document_digest",
    "report_digests",
    "unattested_reasons",
]


def document_digest(text: str) -> str:
    """The hex SHA-256 by which an attested document is matched.

    Examples
    --------
    >>> document_digest("Q3 sales: 1,204 units.\\r\\n") == document_digest("Q3 sales: 1,204 units.")
    True
    >>> document_digest("Q3 sales: 1,204 units.") == document_digest("Q3 sales: 1,212 units.")
    False
    """
    norm = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


class AttestedDocument(BaseModel):
    """One document as a buyer gives it: its text, or its :func:`document_digest` (for a buyer
    who hands over digests only), with an optional name of the buyer's own.

    >>> AttestedDocument(sha256="ab" * 32).digest() == "ab" * 32
    True
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=200, description="The buyer's own name.")
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the document"
    )

    @model_validator(mode="after")
    def _one_of(self) -> AttestedDocument:
        if (self.text is None) == (self.sha256 is None):
            raise ValueError('give either "text" (the document) or "sha256" (its digest)')
        if self.digest() == EMPTY_DIGEST:
            # Attested, it would vouch for every empty brief or source sent after it.
            raise ValueError("an empty document cannot be attested")
        return self

    def digest(self) -> str:
        return self.sha256 if self.sha256 is not None else document_digest(self.text or "")


#: The digest of a text with nothing but whitespace in it.
EMPTY_DIGEST = document_digest("")


def _inputs(outcome: Outcome) -> list[tuple[str, str]]:
    """A report's brief and sources as ``(name in a reason, text)``; none for another kind."""
    report = outcome.report
    if outcome.kind != "report" or report is None:
        return []
    return [("the brief", report.brief)] + [(f"source {s.id}", s.text) for s in report.sources]


def report_digests(outcome: Outcome) -> list[str]:
    """The digests of a report's brief and sources (none for an outcome that is not a report):
    what a service reads from its attested documents before judging it."""
    return [document_digest(text) for _, text in _inputs(outcome)]


def unattested_reasons(outcome: Outcome, attested: Collection[str] | None) -> list[str]:
    """Why ``outcome``'s report inputs are not all attested: one reason per input that is not
    (empty when every one is, and for an outcome that is not a report).

    ``attested`` holds the digests (:func:`document_digest`) of the attested documents;
    ``None`` means the run was given none, which no report passes.

    Examples
    --------
    >>> from judge.models import Outcome
    >>> o = Outcome.model_validate({"id": "R-1", "kind": "report", "report": {
    ...     "brief": "Sum Q3 sales.", "text": "Q3: 1,204 units [s1].",
    ...     "sources": [{"id": "s1", "text": "Q3 sales: 1,204 units."}]}})
    >>> unattested_reasons(o, {document_digest("Sum Q3 sales."),
    ...                        document_digest("Q3 sales: 1,204 units.")})
    []
    >>> unattested_reasons(o, {document_digest("Sum Q3 sales.")})[0][:42]
    'source s1 (sha256 77747f23704a…) is not an'
    """
    inputs = _inputs(outcome)
    if not inputs:
        return []
    if attested is None:
        return [
            "the panel asks for attested report inputs and this run was given no attested "
            "documents (judge verify --attested FILE)"
        ]
    reasons = []
    first_named: dict[str, str] = {}
    for name, text in inputs:
        digest = document_digest(text)
        if digest not in attested:
            reasons.append(
                f"{name} (sha256 {digest[:12]}…) is not an attested document: the party that "
                "sent the report may have written it"
            )
        elif digest in first_named:
            # One attested export under two ids reads as two sources that agree.
            reasons.append(f"{name} repeats {first_named[digest]}: the same document twice")
        first_named.setdefault(digest, name)
    return reasons

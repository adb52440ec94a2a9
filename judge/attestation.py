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

from judge.models import Outcome
from judge.verdict import FLAG_UNATTESTED

__all__ = ["FLAG_UNATTESTED", "document_digest", "unattested_reasons"]


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
    report = outcome.report
    if outcome.kind != "report" or report is None:
        return []
    if attested is None:
        return [
            "the panel asks for attested report inputs and this run was given no attested "
            "documents (judge verify --attested FILE; the service's workers take none yet)"
        ]
    reasons = []
    inputs = [("the brief", report.brief)]
    inputs += [(f"source {source.id}", source.text) for source in report.sources]
    for name, text in inputs:
        digest = document_digest(text)
        if digest not in attested:
            reasons.append(
                f"{name} (sha256 {digest[:12]}…) is not an attested document: the party that "
                "sent the report may have written it"
            )
    return reasons

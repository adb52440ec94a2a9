"""The attested documents of ``judge verify --attested FILE`` and ``judge attest FILE``, and
those a tenant attested in the ledger (see :mod:`judge.attestation`).

The file is JSON Lines, one document a line: ``{"text": "..."}`` (the document itself) or
``{"sha256": "<64 hex digits>"}`` (its :func:`judge.attestation.document_digest`, for a buyer
who hands over digests rather than documents), each with an optional ``id`` of the buyer's own.
Every line is checked before anything is judged; a bad line stops the run and names itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from judge.attestation import AttestedDocument
from judge.importers.errors import dotted
from judge.models import Outcome
from judge.panel import Panel

__all__ = [
    "AttestedFileError",
    "LedgerAttested",
    "attested_for_panel",
    "ledger_attested",
    "read_attested_documents",
]

#: More documents than this in one file is a mistake (a whole export given by error), not a list.
MAX_DOCUMENTS = 1_000_000


class AttestedFileError(ValueError):
    """A file of attested documents that cannot be read, with the line and the fix."""


def read_attested_documents(path: Path) -> list[tuple[str, str | None]]:
    """``(digest, the buyer's id)`` of each distinct document listed in ``path``, in order.

    Raises
    ------
    AttestedFileError
        When the file cannot be read, a line is not a document as above, or it lists none.
    """
    documents: dict[str, str | None] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = AttestedDocument.model_validate(json.loads(line))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise AttestedFileError(
                        f"{path} line {number}: not an attested document ({_short(exc)}); each "
                        'line is {"text": "..."} or {"sha256": "<64 hex digits>"}'
                    ) from None
                documents.setdefault(entry.digest(), entry.id)
                if len(documents) > MAX_DOCUMENTS:
                    raise AttestedFileError(
                        f"{path}: more than {MAX_DOCUMENTS:,} documents; is this the right file?"
                    )
    except OSError as exc:
        raise AttestedFileError(f"{path}: cannot read the attested documents ({exc})") from None
    except UnicodeDecodeError:
        raise AttestedFileError(f"{path}: not UTF-8 text; save it as UTF-8 JSON Lines") from None
    if not documents:
        raise AttestedFileError(f"{path}: no attested documents in it")
    return list(documents.items())


@dataclass(frozen=True)
class LedgerAttested:
    """What a tenant attested in the ledger, as far as one input file's reports go."""

    #: The digests of the input's report briefs and sources that the tenant attested.
    digests: frozenset[str]
    #: Whether the tenant attested any document at all.
    tenant_has_any: bool
    #: The input's distinct briefs and sources.
    wanted: int = 0
    #: Documents of ``recording`` newly attested in the ledger.
    recorded: int = 0


def ledger_attested(
    db_url: str,
    tenant: str,
    outcomes: Iterable[Outcome],
    *,
    recording: Sequence[tuple[str, str | None]] = (),
) -> LedgerAttested:
    """Which briefs and sources of the reports in ``outcomes`` ``tenant`` attested in the ledger
    at ``db_url`` (``POST /v1/attestations``, ``judge attest``): the same documents the service's
    workers read, so that ``judge verify`` on that ledger judges its reports the same way.

    ``recording`` (``(digest, id)``, the ``--attested`` file's) is attested there first, as
    ``judge attest`` would (creating the tenant when missing): every verdict that relied on an
    attested document can then be explained from the ledger alone.
    """
    from judge.attestation import report_digests
    from ledger.attested import attest_documents, attested_among, tenant_attested_any
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.store import ensure_tenant

    wanted = {digest for outcome in outcomes for digest in report_digests(outcome)}
    engine = make_engine(db_url)
    try:
        migrate(engine)
        recorded = 0
        if recording:
            ensure_tenant(engine, tenant)
            recorded = len(attest_documents(engine, tenant, recording, key_id=None))
        found = attested_among(engine, tenant, wanted)
        return LedgerAttested(
            frozenset(found), tenant_attested_any(engine, tenant), len(wanted), recorded
        )
    finally:
        engine.dispose()


def attested_for_panel(
    panel: Panel, db_url: str, tenant: str, outcomes: Sequence[Outcome]
) -> frozenset[str] | None:
    """What a run that re-judges ``outcomes`` outside ``judge verify`` (a canary re-grade, a
    bias probe) reads as attested: for a panel with ``report_inputs: attested`` and any report,
    those of their briefs and sources the tenant attested in the ledger, as ``judge verify``
    on that ledger read them; otherwise None (nothing is read). Without them every report
    would abstain under such a panel, before and after whatever the run compares."""
    if panel.report_inputs != "attested" or not any(o.kind == "report" for o in outcomes):
        return None
    return ledger_attested(db_url, tenant, outcomes).digests


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = dotted(first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc).splitlines()[0]

"""Reading the attested documents of ``judge verify --attested FILE`` (see
:mod:`judge.attestation`).

The file is JSON Lines, one document a line: ``{"text": "..."}`` (the document itself) or
``{"sha256": "<64 hex digits>"}`` (its :func:`judge.attestation.document_digest`, for a buyer
who hands over digests rather than documents), each with an optional ``id`` of the buyer's own.
Every line is checked before anything is judged; a bad line stops the run and names itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from judge.attestation import AttestedDocument

__all__ = ["AttestedFileError", "read_attested"]

#: More documents than this in one file is a mistake (a whole export given by error), not a list.
MAX_DOCUMENTS = 1_000_000


class AttestedFileError(ValueError):
    """A file of attested documents that cannot be read, with the line and the fix."""


def read_attested(path: Path) -> frozenset[str]:
    """The digests of the documents listed in ``path``.

    Raises
    ------
    AttestedFileError
        When the file cannot be read, a line is not a document as above, or it lists none.
    """
    digests: set[str] = set()
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
                digests.add(entry.digest())
                if len(digests) > MAX_DOCUMENTS:
                    raise AttestedFileError(
                        f"{path}: more than {MAX_DOCUMENTS:,} documents; is this the right file?"
                    )
    except OSError as exc:
        raise AttestedFileError(f"{path}: cannot read the attested documents ({exc})") from None
    except UnicodeDecodeError:
        raise AttestedFileError(f"{path}: not UTF-8 text; save it as UTF-8 JSON Lines") from None
    if not digests:
        raise AttestedFileError(f"{path}: no attested documents in it")
    return frozenset(digests)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc).splitlines()[0]

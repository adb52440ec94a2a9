"""What every importer is given besides the file: the user's AI authors and the file's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.importers.report import FileReport


def parse_ai_authors(values: list[str] | None) -> frozenset[str]:
    """``--ai-authors`` values (repeatable, comma-separated) as a case-folded set.

    >>> sorted(parse_ai_authors(["Answer Bot, 9001", "fin@acme.test"]))
    ['9001', 'answer bot', 'fin@acme.test']
    """
    found: set[str] = set()
    for value in values or []:
        found.update(part.strip().casefold() for part in value.split(",") if part.strip())
    return frozenset(found)


@dataclass
class ImportContext:
    """Options and the report of one conversion.

    Attributes
    ----------
    report
        Collects counts, unmapped fields and notes for the file being read.
    ai_authors
        Names, ids or emails (case-folded) of authors the user says are an AI agent
        (``--ai-authors``), for data that does not mark its bot.
    mapping
        A declarative mapping (:class:`judge.importers.mapping_schema.Mapping`) for ``--mapping``.
    """

    report: FileReport
    ai_authors: frozenset[str] = frozenset()
    mapping: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_file(cls, path: Path, **options: Any) -> ImportContext:
        return cls(report=FileReport(path=Path(path)), **options)

    def named_ai(self, *identities: Any) -> bool:
        """True when any of an author's id, name or email is in ``--ai-authors``.

        >>> ctx = ImportContext(report=FileReport(Path("x")), ai_authors=frozenset({"9001"}))
        >>> ctx.named_ai(9001, "Answer Bot"), ctx.named_ai("7", None)
        (True, False)
        """
        if not self.ai_authors:
            return False
        return any(
            str(value).strip().casefold() in self.ai_authors
            for value in identities
            if value not in (None, "")
        )

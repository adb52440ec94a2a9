"""What a conversion read, per input file: counts, degenerate conversations, unmapped fields.

Every ``judge convert`` and ``judge verify`` prints one :class:`FileReport` per input file so a
degenerate conversation (no customer message, or no reply from an AI or human agent) is never
judged silently. Importers add the fields they saw but did not map (:meth:`FileReport.unmapped`)
and format-level notes (:meth:`FileReport.note`), e.g. "the incremental export carries no
comments".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.models import Outcome

#: Touch kinds whose messages are not a reply from the agent being judged.
NOT_A_REPLY = frozenset({"automation", "router"})
#: How many outcome ids a warning lists before it says "and N more".
SHOWN_IDS = 5


def agent_replies(outcome: Outcome) -> int:
    """Public agent messages written by an AI or a human agent (not automation, not a note).

    An author with no touch (native files often omit touches) counts as a reply: only what the
    data says is automation is left out.

    >>> from judge.models import Message, Touch
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="hi"),
    ...     Message(role="agent", author="automation:Operator", text="We'll reply soon"),
    ...     Message(role="agent", author="nora", text="note", public=False)],
    ...     touches=[Touch(actor="automation:Operator", kind="automation")])
    >>> agent_replies(o)
    0
    """
    kinds = {t.actor: t.kind for t in outcome.touches}
    return sum(
        1
        for m in outcome.conversation
        if m.role == "agent" and m.public and kinds.get(m.author or "") not in NOT_A_REPLY
    )


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


@dataclass
class FileReport:
    """Counts and warnings for one input file.

    Attributes
    ----------
    path
        The input file.
    format
        The concrete format it was read as (set once known).
    messages
        Number of conversation messages of each support ticket, in file order.
    without_customer, without_agent
        Ids of support tickets with no customer message, and with no agent reply (see
        :func:`agent_replies`).
    unmapped_fields
        Input fields seen but not mapped, with how many records carried them.
    notes
        Format-level warnings the importer raised (each once).
    """

    path: Path
    format: str | None = None
    outcomes: int = 0
    messages: list[int] = field(default_factory=list)
    without_customer: list[str] = field(default_factory=list)
    without_agent: list[str] = field(default_factory=list)
    unmapped_fields: Counter[str] = field(default_factory=Counter)
    notes: dict[str, int] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        """Count one converted outcome."""
        self.outcomes += 1
        if outcome.kind != "support_ticket":
            return
        self.messages.append(len(outcome.conversation))
        if not outcome.customer_messages():
            self.without_customer.append(outcome.id)
        if agent_replies(outcome) == 0:
            self.without_agent.append(outcome.id)

    def unmapped(self, prefix: str, record: dict[str, Any], mapped: frozenset[str]) -> None:
        """Count the keys of one input object that carry data the importer does not map.

        Parameters
        ----------
        prefix
            Where the object sits, e.g. ``conversation`` or ``parts[]``.
        record
            The input object; keys whose value is null or empty carry nothing and are skipped.
        mapped
            The keys the importer reads or deliberately skips as bookkeeping.
        """
        for key, value in record.items():
            if key in mapped or value in (None, "", [], {}):
                continue
            self.unmapped_fields[f"{prefix}.{key}" if prefix else key] += 1

    def note(self, text: str) -> None:
        """Add a format-level warning; a repeated one is kept once, with its count."""
        self.notes[text] = self.notes.get(text, 0) + 1

    @property
    def degenerate(self) -> int:
        """Support tickets with no customer message or no agent reply."""
        return len(set(self.without_customer) | set(self.without_agent))

    def warnings(self) -> list[str]:
        """Every warning, worded with the fix."""
        found: list[str] = []
        if self.without_customer:
            found.append(
                f"{len(self.without_customer)} of {len(self.messages)} conversations have no "
                f"customer message ({_ids(self.without_customer)}): a judge cannot tell what was "
                "asked; export the customer's messages (comments/parts) with the tickets"
            )
        if self.without_agent:
            found.append(
                f"{len(self.without_agent)} of {len(self.messages)} conversations have no reply "
                f"from an AI or human agent ({_ids(self.without_agent)}): automation, internal "
                "notes and descriptions are not an answer; export the agent's replies, or pass "
                "--ai-authors when the bot is not marked in the data"
            )
        return found + [
            text + (f" [{n} records]" if n > 1 else "") for text, n in self.notes.items()
        ]

    def per_outcome(self) -> dict[str, float | int | None]:
        """Messages per outcome: mean, min and max (``None`` when there are none)."""
        if not self.messages:
            return {"mean": None, "min": None, "max": None}
        return {
            "mean": round(sum(self.messages) / len(self.messages), 2),
            "min": min(self.messages),
            "max": max(self.messages),
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the keys ``judge convert --json`` prints)."""
        return {
            "file": str(self.path),
            "format": self.format,
            "outcomes": self.outcomes,
            "messages_per_outcome": self.per_outcome(),
            "without_customer_message": list(self.without_customer),
            "without_agent_reply": list(self.without_agent),
            "unmapped_fields": dict(sorted(self.unmapped_fields.items())),
            "warnings": self.warnings(),
        }

    def summary_lines(self) -> list[str]:
        """Plain-text lines for the terminal: counts first, then unmapped fields."""
        stats = self.per_outcome()
        lines = [
            f"{self.path.name}: {self.outcomes} outcome{'s' if self.outcomes != 1 else ''}"
            + (f" ({self.format})" if self.format else "")
            + (
                f", messages per outcome mean {stats['mean']} (min {stats['min']}, "
                f"max {stats['max']})"
                if stats["mean"] is not None
                else ""
            )
        ]
        if self.unmapped_fields:
            top = sorted(self.unmapped_fields.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{k} ({n})" for k, n in top[:12])
            more = f" and {len(top) - 12} more" if len(top) > 12 else ""
            lines.append(f"  fields not mapped: {shown}{more}")
        return lines

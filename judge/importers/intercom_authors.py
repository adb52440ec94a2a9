"""Who wrote an Intercom part: the customer, Fin (AI), a workflow/Operator (automation) or a person.

What the data says decides, never the author type alone (Intercom API 2.14-2.16 schemas,
``conversation_part_author``): a part is AI only when its author carries ``from_ai_agent`` or
``is_ai_answer``, when the author is a ``bot`` in a conversation whose ``ai_agent_participated``
is true, or when the user named the author in ``--ai-authors``. Intercom's ``Operator`` (workflow
auto-replies, "X will reply as soon as they can") and every other bot is automation: it never
becomes an AI touch or the credited ``agent.name``.
"""

from __future__ import annotations

from typing import Any, Literal

from judge.importers.context import ImportContext

AuthorKind = Literal["customer", "ai", "human", "automation"]

CUSTOMER_TYPES = frozenset({"user", "lead", "contact"})
"""Author types that are the customer."""
AUTOMATION_NAMES = frozenset({"operator"})
"""Author names (case-folded) of Intercom's workflow bot, whatever its author type."""
AGENT_TYPES = frozenset({"admin", "team", "bot"})


def _flagged_ai(author: dict[str, Any]) -> bool:
    return author.get("from_ai_agent") is True or author.get("is_ai_answer") is True


def author_says_ai(author: dict[str, Any], ctx: ImportContext) -> bool:
    """The part itself says AI: ``from_ai_agent``/``is_ai_answer``, or ``--ai-authors``."""
    return _flagged_ai(author) or ctx.named_ai(
        author.get("id"), author.get("name"), author.get("email")
    )


def classify(
    author: dict[str, Any], *, ai_participated: bool, ctx: ImportContext
) -> tuple[AuthorKind, str]:
    """(kind, actor label) for one Intercom author object.

    Labels: ``customer:<id>``, ``bot:<name>`` (AI), ``automation:<name>``, or the person's name.

    >>> from pathlib import Path
    >>> from judge.importers.report import FileReport
    >>> ctx = ImportContext(report=FileReport(Path("x")))
    >>> classify({"type": "bot", "name": "Operator"}, ai_participated=True, ctx=ctx)
    ('automation', 'automation:Operator')
    >>> classify({"type": "bot", "name": "Fin"}, ai_participated=True, ctx=ctx)
    ('ai', 'bot:Fin')
    >>> classify({"type": "bot", "name": "Fin"}, ai_participated=False, ctx=ctx)
    ('automation', 'automation:Fin')
    >>> classify({"type": "admin", "name": "Fin", "from_ai_agent": True}, ai_participated=False,
    ...          ctx=ctx)
    ('ai', 'bot:Fin')
    >>> classify({"type": "user", "id": "u1", "from_ai_agent": True}, ai_participated=True,
    ...          ctx=ctx)
    ('ai', 'bot:u1')
    """
    kind = str(author.get("type") or "")
    identity = author.get("id")
    name = author.get("name") or identity or author.get("email") or kind or "unknown"
    if kind in CUSTOMER_TYPES:
        if not _flagged_ai(author):
            return "customer", f"customer:{identity or name}"
        # The part says the AI agent sent it; its author type is what the sender set. Read as
        # the customer's, the billed party's "thanks, that fixed it" would pass for theirs.
        ctx.report.note(
            f"some parts name a customer ({kind}) as author but say the AI agent sent them "
            "(from_ai_agent / is_ai_answer): read as the AI agent's"
        )
        return "ai", f"bot:{name}"
    if author_says_ai(author, ctx):
        return "ai", f"bot:{name}"
    if str(author.get("name") or "").casefold() in AUTOMATION_NAMES:
        return "automation", f"automation:{name}"
    if kind == "bot":
        if ai_participated:
            return "ai", f"bot:{name}"
        return "automation", f"automation:{name}"
    if kind not in AGENT_TYPES:
        ctx.report.note(
            "some parts have an author of unknown type (Intercom leaves Twitter authors blank); "
            "they were read as a person on the support team (touch kind human)"
        )
    return "human", str(name)

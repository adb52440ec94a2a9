"""Who wrote a Zendesk comment: the customer, an AI agent, automation or a person.

Only what the data says counts. The channel alone never makes an author AI: most comments that
arrive via ``api`` are written by people through an integration (84 of 87 real tickets we checked
came via ``api`` from human admins). AI: the comment (or its audit) came through one of Zendesk's
AI-agent channels (:data:`AI_CHANNELS`, the Answer Bot / AI agent entries of the Via object
reference, or a ``via.source.rel`` naming one), or the user listed the author in
``--ai-authors`` (by user id, name or email). Automation: the system user (``-1``) and triggers
or automations (``via.channel`` ``rule``). Customer: the requester, or any ``end-user``.

One contradiction is settled against the party billed per resolution: a comment that names the
requester as its author but came through an AI-agent channel. A ticket the AI agent opens on
the customer's behalf carries the customer's request that way, so the opening comment stays the
customer's; any later one is the AI agent's (whose integration writes through that channel and
can set the author), or its "thanks, it works now" would pass as the customer's confirmation.
"""

from __future__ import annotations

from typing import Any, Literal

from judge.importers.context import ImportContext

AuthorKind = Literal["customer", "ai", "human", "automation"]

AI_CHANNELS = frozenset(
    {
        "answer_bot",
        "answer_bot_api",
        "answer_bot_for_agents",
        "answer_bot_for_sdk",
        "answer_bot_for_slack",
        "answer_bot_for_web_widget",
        "ai_agent",
    }
)
"""``via.channel`` (or ``via.source.rel``) values that mean Zendesk's own AI agent wrote it."""
AUTOMATION_CHANNELS = frozenset({"rule", "automation"})
"""``via.channel`` values of triggers and automations."""
SYSTEM_USER_IDS = frozenset({"-1"})


def via_channel(via: Any) -> str | None:
    """``via.channel`` of a comment/audit/event; ticket events write it as a plain string."""
    if isinstance(via, dict):
        channel = via.get("channel")
        return str(channel) if channel is not None else None
    return str(via) if isinstance(via, str) else None


def via_rel(via: Any) -> str | None:
    if isinstance(via, dict) and isinstance(via.get("source"), dict):
        rel = via["source"].get("rel")
        return str(rel) if rel is not None else None
    return None


def ai_via(via: Any) -> bool:
    """True when ``via`` says Zendesk's AI agent (Answer Bot) made the change.

    >>> ai_via({"channel": "api"}), ai_via({"channel": "answer_bot"})
    (False, True)
    """
    return via_channel(via) in AI_CHANNELS or via_rel(via) in AI_CHANNELS


class Authors:
    """Classifies comment authors of one file, given its users and the user's ``--ai-authors``."""

    def __init__(self, users: dict[str, dict[str, Any]], ictx: ImportContext) -> None:
        self.users, self.ictx = users, ictx

    def classify(
        self,
        author_id: Any,
        requester_id: Any,
        via: Any,
        *,
        fallback_via: Any = None,
        opening: bool = True,
    ) -> tuple[AuthorKind, str]:
        """(kind, actor label): ``customer:<id>``, ``bot:<name>``, ``automation:<channel>`` or
        the agent's name.

        ``opening`` is False for every comment after the ticket's first: the customer's
        authorship of those is not taken from a comment the AI agent's channel sent.
        """
        uid = str(author_id)
        user = self.users.get(uid, {})
        name = user.get("name") or None
        via = via if via is not None else fallback_via
        if self.ictx.named_ai(uid, name, user.get("email")):
            return "ai", f"bot:{name or uid}"
        if uid == str(requester_id) or user.get("role") == "end-user":
            if opening or not ai_via(via):
                return "customer", f"customer:{uid}"
            self.ictx.report.note(
                "a comment after the first names the customer as its author but came through "
                f"the AI agent's channel ({via_channel(via) or via_rel(via)}): read as the AI "
                "agent's, since that channel is the AI agent's to write; if your AI agent "
                "relays the customer's words as comments, export the messaging transcript "
                "instead, where each message keeps its own author"
            )
            return "ai", f"bot:{via_channel(via) or via_rel(via)}"
        if ai_via(via):
            return "ai", f"bot:{name or via_channel(via) or uid}"
        channel = via_channel(via)
        if uid in SYSTEM_USER_IDS or channel in AUTOMATION_CHANNELS:
            return "automation", f"automation:{channel or 'zendesk'}"
        if not user:
            self.ictx.report.note(
                "users were not side-loaded, so comment authors other than the requester were "
                "read as agents; add the users (include=users, or a users page) so end-users "
                "copied on a ticket count as the customer"
            )
        return "human", str(name or f"agent:{uid}")

"""Text features for the learned judge: one document per outcome.

The document keeps what predicts resolution and drops what does not:

- each turn prefixed by its role (``customer:``, ``agent:``, ``note:`` for internal notes);
  system prompts are dropped (the same policy text in every conversation carries no signal);
- agent tool calls as ``call_<name>`` tokens (whether a write action such as
  ``call_book_reservation`` happened matters more than its arguments) and tool replies as
  ``tool_<name>`` plus ``tool_error`` when the reply is an error; the bulky JSON a tool returns
  is cut to a short prefix;
- the last customer message and the last agent message repeated with ``lastcust_`` /
  ``lastagent_`` prefixed tokens, so how the conversation *ended* gets its own features;
- signal tokens (``sig_confirmed_yes``, ``sig_csat_2``, ``sig_human_touch`` ...);
- a coarse length bucket (``turns_16_31``).

Changing what this module produces changes :data:`FEATURE_VERSION`; a saved model built with
another feature version refuses to load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from judge.models import Message, Outcome

FEATURE_VERSION = "text-v1"
TOOL_TEXT_CHARS = 120
_WORD = re.compile(r"[a-z0-9][a-z0-9_']*")
_ERROR_PREFIX = re.compile(r"^\s*(error|exception|failed|failure)\b", re.IGNORECASE)


def _prefixed(prefix: str, text: str) -> str:
    return " ".join(f"{prefix}{w}" for w in _WORD.findall(text.lower()))


def _turns_bucket(n: int) -> str:
    low = 1
    while low * 2 <= n:
        low *= 2
    return f"turns_{low}_{low * 2 - 1}"


def signal_tokens(outcome: Outcome) -> list[str]:
    """Tokens for the outcome's signals and touches.

    >>> from judge.models import Message, Outcome, Signals
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...             signals=Signals(csat=2, escalated=True))
    >>> signal_tokens(o)
    ['sig_csat_2', 'sig_csat_low', 'sig_escalated']
    """
    s = outcome.signals
    tokens: list[str] = []
    if s.customer_confirmed is not None:
        tokens.append("sig_confirmed_yes" if s.customer_confirmed else "sig_confirmed_no")
    if s.csat is not None:
        tokens.append(f"sig_csat_{s.csat}")
        tokens.append("sig_csat_low" if s.csat <= 3 else "sig_csat_high")
    if s.escalated:
        tokens.append("sig_escalated")
    if s.reopened_at is not None:
        tokens.append("sig_reopened")
    if s.recontact_at is not None:
        tokens.append("sig_recontact")
    if any(t.kind == "human" for t in outcome.touches):
        tokens.append("sig_human_touch")
    return tokens or ["sig_none"]


def _turn(message: Message) -> str:
    if message.role == "tool":
        name = (message.name or "unknown").lower()
        parts = [f"tool_{name}"]
        if _ERROR_PREFIX.match(message.text):
            parts.append("tool_error")
        parts.append(message.text[:TOOL_TEXT_CHARS])
        return "tool: " + " ".join(parts)
    role = message.role if message.public else "note"
    parts = [f"{role}: {message.text}"]
    for call in message.tool_calls:
        called = call.get("name") or (call.get("function") or {}).get("name")
        if called:
            parts.append(f"call_{str(called).lower()}")
    return " ".join(parts)


def outcome_text(outcome: Outcome) -> str:
    """The document the learned judge classifies.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="system", text="policy"),
    ...     Message(role="customer", text="Cancel my booking"),
    ...     Message(role="agent", text="", tool_calls=[{"name": "cancel_reservation"}]),
    ...     Message(role="tool", name="cancel_reservation", text="Error: not allowed"),
    ...     Message(role="agent", text="Sorry, I cannot.")])
    >>> print(outcome_text(o))
    customer: Cancel my booking
    agent:  call_cancel_reservation
    tool: tool_cancel_reservation tool_error Error: not allowed
    agent: Sorry, I cannot.
    lastcust_cancel lastcust_my lastcust_booking
    lastagent_sorry lastagent_i lastagent_cannot
    sig_none turns_4_7
    """
    lines: list[str] = []
    if outcome.report is not None:
        lines.append(f"brief: {outcome.report.brief}")
        lines.append(f"report: {outcome.report.text}")
        lines.append(f"sources_{min(len(outcome.report.sources), 10)}")
    turns = [m for m in outcome.conversation if m.role != "system"]
    lines.extend(_turn(m) for m in turns)
    public = [m for m in turns if m.public]
    last_customer = next((m.text for m in reversed(public) if m.role == "customer" and m.text), "")
    last_agent = next((m.text for m in reversed(public) if m.role == "agent" and m.text), "")
    if last_customer:
        lines.append(_prefixed("lastcust_", last_customer))
    if last_agent:
        lines.append(_prefixed("lastagent_", last_agent))
    lines.append(" ".join([*signal_tokens(outcome), _turns_bucket(max(len(turns), 1))]))
    return "\n".join(lines)


def outcome_texts(outcomes: Iterable[Outcome]) -> list[str]:
    """:func:`outcome_text` for each outcome."""
    return [outcome_text(o) for o in outcomes]

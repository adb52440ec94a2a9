"""What the customer wrote is not taken back: a revision that lost a customer message is held.

A help desk appends to a ticket; it does not take back what the customer wrote. The party billed
per resolution submits the revisions, so it can send a later one without the customer's "still
does nothing" (and with its confirmation flag back on): judged alone, that revision looks
resolved. :func:`dropped_messages` finds the customer messages a revision lost against an earlier
one, and :func:`hold_rewritten` turns a ``verified`` verdict on such a revision into ``abstain``
with the reason, so a person looks before it is counted.

Customer messages are compared by their text, as many times as they occur: a complaint removed
or reworded is lost; a message whose time moved is not (the dating of revisions has rules of its
own, :mod:`ledger.revocation`), and what the agent or a tool wrote is the billed party's own to
restate. A redaction (a help desk's removal of personal data) changes the text and so also sends
the ticket to review, which is the safe side of a rare case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from judge.models import Message, Outcome
from judge.verdict import Verdict

__all__ = ["FLAG_HISTORY_REWRITTEN", "dropped_messages", "hold_rewritten"]

FLAG_HISTORY_REWRITTEN = "history_rewritten"


def dropped_messages(earlier: Sequence[Message], later: Sequence[Message]) -> list[Message]:
    """The customer messages of ``earlier`` whose text ``later``'s customer messages do not have
    (as many times as ``earlier`` had it).

    >>> from judge.models import Message
    >>> asked = Message(role="customer", text="Export does nothing.")
    >>> fix = Message(role="agent", text="Clear your cache.")
    >>> still = Message(role="customer", text="Still does nothing.")
    >>> lost = dropped_messages([asked, fix, still], [asked, fix, Message(role="agent", text="Ok")])
    >>> [m.text for m in lost]
    ['Still does nothing.']
    >>> dropped_messages([asked, fix], [asked, Message(role="agent", text="Restated.")])
    []
    >>> dropped_messages([asked, fix], [asked, fix, still])
    []
    """
    left = Counter(m.text for m in later if m.role == "customer")
    lost: list[Message] = []
    for message in earlier:
        if message.role != "customer":
            continue
        if left[message.text] > 0:
            left[message.text] -= 1
        else:
            lost.append(message)
    return lost


def hold_rewritten(verdict: Verdict, outcome: Outcome, earlier: Iterable[Outcome]) -> Verdict:
    """``verdict`` as it stands, or, when it is ``verified`` and ``outcome``'s conversation lost a
    message of one of the ``earlier`` revisions, the same verdict made ``abstain`` with the reason.

    ``earlier`` are the outcome's other stored revisions (whatever their content hash equal to
    ``outcome``'s). Reports are revised by rewriting them, so only tickets are held.
    """
    if verdict.decision != "verified" or outcome.kind == "report":
        return verdict
    for before in earlier:
        lost = dropped_messages(before.conversation, outcome.conversation)
        if lost:
            first = lost[0]
            text = first.text if len(first.text) <= 80 else first.text[:77] + "..."
            reason = (
                f"{FLAG_HISTORY_REWRITTEN}: this revision has lost {len(lost)} customer "
                f"message(s) that an earlier revision of the same outcome had (first: {text!r}); "
                "what the customer wrote is not taken back, so a person reviews it before it "
                "counts"
            )
            return verdict.model_copy(
                update={
                    "decision": "abstain",
                    "tier": None,
                    "flags": [*verdict.flags, FLAG_HISTORY_REWRITTEN],
                    "reasons": [*verdict.reasons, reason],
                }
            )
    return verdict

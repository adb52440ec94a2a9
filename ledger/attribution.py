"""Attribution: which AI actor gets the credit for a resolved outcome (pure).

Credit goes to the last *substantive* AI actor before resolution: the last touch of kind ``"ai"``
at or before ``signals.closed_at`` when that is known, else the last ``"ai"`` touch. Routers
(``"router"``) and automations such as CSAT surveys (``"automation"``) never get credit; nor do
humans (a human touch makes the tier ``assisted``, it does not move the AI credit).

Order: touches are taken in the order they are recorded. When every eligible AI touch has a time
they are ordered by time instead (ties keep the recorded order). With ``closed_at`` known, an AI
touch timed after it is not eligible (it came after the resolution); an untimed AI touch cannot
be placed and stays eligible.
"""

from __future__ import annotations

from judge.models import Outcome, Touch, as_utc


def attribute(outcome: Outcome) -> str | None:
    """The actor credited with ``outcome``, or None when no AI actor earned it.

    Parameters
    ----------
    outcome
        Its ``touches``, ``signals.closed_at`` and ``agent.name`` are read.

    Returns
    -------
    str or None
        The ``actor`` of the last eligible ``"ai"`` touch (see the module docstring); None when
        there are touches but none eligible (only routers, automations or humans, or every AI
        touch came after ``closed_at``); ``agent.name`` (possibly None) when the outcome records
        no touches at all.

    Examples
    --------
    >>> from judge.models import Message, Outcome, Touch
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...     touches=[Touch(actor="router:triage", kind="router"), Touch(actor="bot:fin", kind="ai"),
    ...              Touch(actor="survey", kind="automation")])
    >>> attribute(o)
    'bot:fin'
    >>> attribute(o.model_copy(update={"touches": [Touch(actor="router:triage", kind="router")]}))
    >>> o.agent.name = "fin"
    >>> attribute(o.model_copy(update={"touches": []}))
    'fin'
    """
    if not outcome.touches:
        return outcome.agent.name
    closed = outcome.signals.closed_at
    cutoff = None if closed is None else as_utc(closed)
    eligible: list[tuple[int, Touch]] = [
        (index, touch)
        for index, touch in enumerate(outcome.touches)
        if touch.kind == "ai" and (cutoff is None or touch.at is None or as_utc(touch.at) <= cutoff)
    ]
    if not eligible:
        return None
    timed = [(as_utc(touch.at), index, touch.actor) for index, touch in eligible if touch.at]
    if len(timed) == len(eligible):
        return max(timed)[2]
    return eligible[-1][1].actor


__all__ = ["attribute"]

"""The ``signals`` judge: a deterministic vote from what the customer and the desk did.

It reads only ``outcome.signals`` (confirmation, CSAT, escalation, reopen, recontact): no model,
no cost. Explicit failure signals outweigh success signals. With no decisive signal it abstains,
so it does not vote and cannot turn a panel's verdict either way.
"""

from __future__ import annotations

from datetime import datetime

from judge.models import Outcome
from judge.panel import SignalsJudgeSpec
from judge.rubric import Rubric
from judge.signal_rules import event_within, reference_time
from judge.verdict import Decision, Judgment

MODEL = "local:signals"
P_FAILURE = 0.05
"""P(verified) when the customer or the desk signalled failure."""
P_CONFIRMED = 0.95
"""P(verified) when the customer explicitly confirmed the resolution."""
P_HIGH_CSAT = 0.85
"""P(verified) on CSAT >= 4 alone: satisfaction is weaker evidence of resolution than a 'yes'."""
P_UNDECIDED = 0.5
CSAT_FAIL_AT_MOST = 3
CSAT_PASS_AT_LEAST = 4


def read_signals(
    outcome: Outcome, *, window_hours: float, now: datetime | None = None
) -> tuple[list[str], list[str]]:
    """Split the outcome's signals into failure and success evidence (human-readable lines).

    A reopen or recontact counts when it happened within ``window_hours`` of the close (or of the
    last agent message; when neither is known, any reopen counts).

    >>> from judge.models import Message, Outcome, Signals
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...             signals=Signals(csat=2, customer_confirmed=True))
    >>> read_signals(o, window_hours=72)
    (['CSAT 2 <= 3'], ['customer confirmed the resolution'])
    """
    s = outcome.signals
    failures: list[str] = []
    successes: list[str] = []
    reference = reference_time(outcome)
    if event_within(s.reopened_at, reference, window_hours, now=now):
        failures.append(f"reopened within {window_hours:g} h")
    if s.escalated is True:
        failures.append("escalated")
    if s.csat is not None and s.csat <= CSAT_FAIL_AT_MOST:
        failures.append(f"CSAT {s.csat} <= {CSAT_FAIL_AT_MOST}")
    if event_within(s.recontact_at, reference, window_hours, now=now):
        failures.append(f"customer came back within {window_hours:g} h")
    if s.customer_confirmed is False:
        failures.append("customer said it was not resolved")
    if s.customer_confirmed is True:
        successes.append("customer confirmed the resolution")
    if s.csat is not None and s.csat >= CSAT_PASS_AT_LEAST:
        successes.append(f"CSAT {s.csat} >= {CSAT_PASS_AT_LEAST}")
    return failures, successes


class SignalsJudge:
    """Deterministic judge over outcome signals (implements :class:`judge.protocols.Judge`).

    Rules, in order:

    1. any failure signal (reopened or recontacted within the rubric's window, escalated,
       CSAT <= 3, customer said not resolved) -> ``not_verified`` with P(verified) 0.05;
    2. else the customer confirmed -> ``verified`` with P 0.95; CSAT >= 4 alone -> P 0.85;
    3. else -> ``abstain`` (status ok, P 0.5): no decisive signal, so no vote.

    Examples
    --------
    >>> import asyncio
    >>> from judge.models import Message, Outcome, Signals
    >>> from judge.rubric import Criterion, Rubric
    >>> rubric = Rubric(name="r", kind="support_ticket",
    ...                 criteria=[Criterion(id="ok", question="Resolved?")])
    >>> judge = SignalsJudge(SignalsJudgeSpec(kind="signals"))
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...             signals=Signals(customer_confirmed=True, escalated=True))
    >>> j = asyncio.run(judge(o, rubric))
    >>> j.decision, j.p_verified, j.counts
    ('not_verified', 0.05, True)
    """

    def __init__(self, spec: SignalsJudgeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.weight = spec.weight

    async def __call__(self, outcome: Outcome, rubric: Rubric) -> Judgment:
        failures, successes = read_signals(outcome, window_hours=rubric.window_hours)
        decision: Decision
        if failures:
            decision, p = "not_verified", P_FAILURE
            rationale = "failure signals: " + "; ".join(failures)
            if successes:
                rationale += " (outweigh: " + "; ".join(successes) + ")"
        elif successes and outcome.kind == "report":
            # Confirmation and CSAT describe a support conversation, and whoever submits the
            # report can set them; a report's figures are judged against its sources.
            decision, p = "abstain", P_UNDECIDED
            rationale = (
                "success signals (" + "; ".join(successes) + ") do not verify a report: its "
                "numbers and claims are judged against its sources"
            )
        elif successes:
            decision = "verified"
            p = P_CONFIRMED if outcome.signals.customer_confirmed else P_HIGH_CSAT
            rationale = "success signals: " + "; ".join(successes)
        else:
            decision, p = "abstain", P_UNDECIDED
            rationale = "no decisive signal (no confirmation, CSAT, reopen, escalation, recontact)"
        return Judgment(
            judge=self.name,
            model=MODEL,
            kind="signals",
            status="ok",
            decision=decision,
            p_verified=p,
            rationale=rationale,
            cost_usd=0.0,
        )

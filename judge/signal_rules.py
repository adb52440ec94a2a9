"""Rubric signal rules: vetoes, review triggers and the billing tier, from outcome signals.

A rubric's ``signals`` section (see :class:`judge.rubric.SignalRule`) names rules such as
"reopened within 72 h -> not verified", "CSAT <= 3 -> not verified" or "a human touched it -> tier
assisted". :func:`apply_signal_rules` evaluates them against one outcome. It is pure: no I/O, no
clock unless you pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from judge.customer_words import customer_tail, reads_as_failure
from judge.models import Outcome, as_utc
from judge.rubric import Rubric, SignalCondition
from judge.verdict import Tier

DEFAULT_TIER: Tier = "assumed"


@dataclass(frozen=True)
class SignalEffects:
    """What the rubric's signal rules say about one outcome.

    Attributes
    ----------
    veto_reasons
        Reasons of the fired rules whose effect is ``not_verified``; any veto makes the verdict
        ``not_verified`` whatever the judges say.
    abstain_reasons
        Reasons of the fired rules whose effect is ``abstain`` (send to human review).
    tier
        The billing tier if the outcome is verified: ``assumed`` unless a tier rule fired.
    fired
        Ids of every rule that fired, in rubric order.
    """

    veto_reasons: list[str] = field(default_factory=list)
    abstain_reasons: list[str] = field(default_factory=list)
    tier: Tier = DEFAULT_TIER
    fired: list[str] = field(default_factory=list)

    @property
    def vetoed(self) -> bool:
        return bool(self.veto_reasons)


def reference_time(outcome: Outcome) -> datetime | None:
    """When the outcome ended: ``signals.closed_at``, else the last timed agent message.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="agent", text="done", at="2026-03-01T10:05:00Z")])
    >>> reference_time(o).isoformat()
    '2026-03-01T10:05:00+00:00'
    """
    if outcome.signals.closed_at is not None:
        return as_utc(outcome.signals.closed_at)
    times = [as_utc(m.at) for m in outcome.conversation if m.role == "agent" and m.at is not None]
    return max(times) if times else None


def event_within(
    event: datetime | None,
    reference: datetime | None,
    hours: float,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether ``event`` happened within ``hours`` after ``reference``.

    An event that did not happen (``None``) or that lies after ``now`` (not yet known at the time
    of evaluation) is not within. When the reference time is unknown, an event that did happen
    counts as within: a reopen we cannot place in time is still a reopen (fail closed).

    >>> from datetime import datetime, UTC
    >>> closed = datetime(2026, 3, 1, 10, tzinfo=UTC)
    >>> event_within(datetime(2026, 3, 3, 10, tzinfo=UTC), closed, 72)
    True
    >>> event_within(datetime(2026, 3, 5, 10, tzinfo=UTC), closed, 72)
    False
    >>> event_within(datetime(2026, 3, 5, 10, tzinfo=UTC), None, 72)
    True
    >>> event_within(None, closed, 72)
    False
    """
    if event is None:
        return False
    moment = as_utc(event)
    if now is not None and moment > as_utc(now):
        return False
    if reference is None:
        return True
    elapsed_hours = (moment - reference).total_seconds() / 3600.0
    return elapsed_hours <= hours


def human_touched(outcome: Outcome) -> bool:
    """True when a human touched the outcome before it was resolved.

    Routers and automations are not humans. A human touch timed after ``signals.closed_at`` (a
    QA review, say) did not help resolve it; an untimed one, or any when the close time is
    unknown, counts (the tier is then conservatively ``assisted``).
    """
    closed = outcome.signals.closed_at
    return any(
        t.kind == "human" and (closed is None or t.at is None or as_utc(t.at) <= as_utc(closed))
        for t in outcome.touches
    )


def customer_reports_failure(outcome: Outcome) -> bool:
    """True when the customer had the last word and it says the problem is not solved.

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[
    ...     Message(role="agent", text="I resent the link."),
    ...     Message(role="customer", text="Still nothing. Can I talk to a real person?")])
    >>> customer_reports_failure(o)
    True
    """
    tail = customer_tail(outcome)
    return tail is not None and reads_as_failure(tail) is not None


def condition_holds(
    condition: SignalCondition, outcome: Outcome, *, now: datetime | None = None
) -> bool:
    """Whether every predicate given in ``condition`` holds for ``outcome``.

    Predicates (all given ones must hold; a predicate on a signal that is absent does not hold):

    - ``customer_confirmed`` / ``escalated``: the signal equals the given boolean (unknown is
      neither true nor false);
    - ``csat_at_most`` / ``csat_at_least``: CSAT is present and within the bound (inclusive);
    - ``reopened_within_hours`` / ``recontact_within_hours``: the event happened within that many
      hours of ``closed_at`` (or of the last agent message when ``closed_at`` is absent);
    - ``human_touch``: whether any touch has kind ``human`` equals the given boolean;
    - ``customer_reports_failure``: whether the customer's words after the agent's last public
      message read as "not solved" or ask for a person
      (:func:`judge.customer_words.reads_as_failure`) equals the given boolean.

    >>> from judge.models import Message, Outcome, Signals
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...             signals=Signals(csat=2))
    >>> condition_holds(SignalCondition(csat_at_most=3), o)
    True
    >>> condition_holds(SignalCondition(csat_at_most=3, escalated=True), o)
    False
    """
    signals = outcome.signals
    checks: list[bool] = []
    if condition.customer_confirmed is not None:
        checks.append(signals.customer_confirmed is condition.customer_confirmed)
    if condition.escalated is not None:
        checks.append(signals.escalated is condition.escalated)
    if condition.csat_at_most is not None:
        checks.append(signals.csat is not None and signals.csat <= condition.csat_at_most)
    if condition.csat_at_least is not None:
        checks.append(signals.csat is not None and signals.csat >= condition.csat_at_least)
    if condition.reopened_within_hours is not None or condition.recontact_within_hours is not None:
        reference = reference_time(outcome)
        if condition.reopened_within_hours is not None:
            checks.append(
                event_within(
                    signals.reopened_at, reference, condition.reopened_within_hours, now=now
                )
            )
        if condition.recontact_within_hours is not None:
            checks.append(
                event_within(
                    signals.recontact_at, reference, condition.recontact_within_hours, now=now
                )
            )
    if condition.human_touch is not None:
        checks.append(human_touched(outcome) is condition.human_touch)
    if condition.customer_reports_failure is not None:
        checks.append(customer_reports_failure(outcome) is condition.customer_reports_failure)
    return bool(checks) and all(checks)


def apply_signal_rules(
    outcome: Outcome, rubric: Rubric, *, now: datetime | None = None
) -> SignalEffects:
    """Evaluate the rubric's signal rules against one outcome.

    Parameters
    ----------
    outcome
        The outcome whose ``signals`` and ``touches`` are tested.
    rubric
        Its ``signals`` rules are evaluated in file order.
    now
        Evaluate "as of" this moment: events timestamped later are ignored (not yet known).
        ``None`` (the default) uses every recorded event.

    Returns
    -------
    SignalEffects
        ``not_verified`` rules that fired become ``veto_reasons``, ``abstain`` rules become
        ``abstain_reasons`` (a rule's ``reason``, or its id when it has none). The tier starts
        at ``assumed``; ``tier`` rules that fire apply in file order, except that once a rule has
        set ``assisted`` (a human touched it) no later rule can replace it, so ``assisted``
        always wins over ``confirmed``.

    Examples
    --------
    >>> from judge.models import Message, Outcome, Signals, Touch
    >>> from judge.rubric import Criterion, Rubric, SignalRule
    >>> rubric = Rubric(name="r", kind="support_ticket",
    ...     criteria=[Criterion(id="ok", question="Resolved?")],
    ...     signals=[
    ...         SignalRule(id="low_csat", when={"csat_at_most": 3}, effect="not_verified",
    ...                    reason="CSAT 3 or below"),
    ...         SignalRule(id="human", when={"human_touch": True}, effect="tier", tier="assisted"),
    ...         SignalRule(id="confirmed", when={"customer_confirmed": True}, effect="tier",
    ...                    tier="confirmed"),
    ...     ])
    >>> o = Outcome(id="t", kind="support_ticket", conversation=[Message(role="customer")],
    ...             signals=Signals(customer_confirmed=True, csat=5),
    ...             touches=[Touch(actor="alice", kind="human")])
    >>> effects = apply_signal_rules(o, rubric)
    >>> effects.tier, effects.fired, effects.veto_reasons
    ('assisted', ['human', 'confirmed'], [])
    >>> o.signals.csat = 2
    >>> apply_signal_rules(o, rubric).veto_reasons
    ['CSAT 3 or below']
    """
    vetoes: list[str] = []
    abstains: list[str] = []
    fired: list[str] = []
    tier: Tier = DEFAULT_TIER
    for rule in rubric.signals:
        if not condition_holds(rule.when, outcome, now=now):
            continue
        fired.append(rule.id)
        reason = rule.reason or rule.id
        if rule.effect == "not_verified":
            vetoes.append(reason)
        elif rule.effect == "abstain":
            abstains.append(reason)
        elif rule.tier is not None and tier != "assisted":
            tier = rule.tier
    return SignalEffects(veto_reasons=vetoes, abstain_reasons=abstains, tier=tier, fired=fired)

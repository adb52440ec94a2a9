"""Cost per verified outcome from the ledger: numerator, denominator and parts, per group.

Read-only over the ledger tables; `judge cost report` prints what :func:`cost_report` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["GROUP_DIMENSIONS", "NO_VERIFIED", "STATUSES", "cost_report"]

#: ``agent`` is the credited AI actor (ledger.attribution); ``agent_version`` is ``name@version``.
GROUP_DIMENSIONS = ("agent", "agent_version", "model_path", "tier")
NO_VERIFIED = "no verified outcomes in this group: cost per verified outcome is undefined"
STATUSES = ("provisional", "final")


def cost_report(
    engine: Engine,
    tenant: str,
    *,
    dims: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    window_hours: float = 72.0,
    grace_hours: float = 24.0,
) -> dict[str, Any]:
    """Cost per verified outcome per group, with numerator, denominator and parts.

    Each outcome counts once, by its latest verdict recorded in ``[since, until)``; its agent cost
    is that of the judged revision; judge costs are every judge call (failed attempts and retries
    included, cache hits cost 0) made for it in the same window. Calls for outcomes without a
    verdict in the window are reported as ``unattributed_judge_cost_usd``. Human review time is
    not recorded in the ledger yet and so is not part of the numerator.

    Every group is split by status: ``provisional`` while the judged revision's verification
    window (``window_hours`` after its last customer message, see
    :func:`ledger.windows.verification_status`) plus ``grace_hours`` has not passed at ``now``
    (default: the current time), else ``final``; ``provisional`` and ``final`` hold the total of
    each. The ``agent`` dimension is the credited AI actor (:func:`ledger.attribution.attribute`
    of the judged revision), not the outcome's ``agent.name@version``.
    """
    from decimal import Decimal

    import sqlalchemy as sa
    from sqlmodel import col, select

    from judge.models import Outcome
    from ledger.attribution import attribute
    from ledger.db import session
    from ledger.tables import JudgeCallRow, OutcomeRow, VerdictRow
    from ledger.windows import check_hours, verification_status

    window_hours, grace_hours = check_hours(window_hours=window_hours, grace_hours=grace_hours)
    at = datetime.now(UTC) if now is None else now

    verdict_q = (
        select(
            VerdictRow.outcome_id, VerdictRow.outcome_revision, VerdictRow.decision, VerdictRow.tier
        )
        .where(VerdictRow.tenant == tenant)
        .order_by(col(VerdictRow.pk))
    )
    call_q = select(JudgeCallRow.outcome_id, col(JudgeCallRow.cost_usd)).where(
        JudgeCallRow.tenant == tenant
    )
    if since is not None:
        verdict_q = verdict_q.where(col(VerdictRow.created_at) >= since)
        call_q = call_q.where(col(JudgeCallRow.at) >= since)
    if until is not None:
        verdict_q = verdict_q.where(col(VerdictRow.created_at) < until)
        call_q = call_q.where(col(JudgeCallRow.at) < until)
    outcome_q = sa.select(
        col(OutcomeRow.outcome_id),
        col(OutcomeRow.revision),
        col(OutcomeRow.model_path),
        col(OutcomeRow.agent_cost_usd),
        col(OutcomeRow.payload),
    ).where(col(OutcomeRow.tenant) == tenant)
    with session(engine, readonly=True) as db:
        latest = {oid: (rev, dec, tier) for oid, rev, dec, tier in db.exec(verdict_q).all()}
        outcomes = {(r[0], r[1]): r[2:] for r in db.connection().execute(outcome_q).all()}
        calls = db.exec(call_q).all()

    judge_cost: dict[str, Decimal] = {}
    judge_calls: dict[str, int] = {}
    unattributed, unattributed_calls = Decimal(0), 0
    for oid, cost in calls:
        if oid in latest:
            judge_cost[oid] = judge_cost.get(oid, Decimal(0)) + cost
            judge_calls[oid] = judge_calls.get(oid, 0) + 1
        else:
            unattributed += cost
            unattributed_calls += 1

    groups: dict[tuple[str, tuple[str | None, ...]], dict[str, Any]] = {}
    for oid, (rev, decision, tier) in latest.items():
        path, agent_cost, payload = outcomes[(oid, rev)]
        outcome = Outcome.model_validate(payload)
        status = verification_status(
            outcome, window_hours=window_hours, grace_hours=grace_hours, now=at
        ).status
        values = {"model_path": path, "tier": tier}
        if "agent" in dims:
            values["agent"] = attribute(outcome)
        if "agent_version" in dims:
            name, version = outcome.agent.name, outcome.agent.version
            values["agent_version"] = None if name is None else f"{name}@{version or '?'}"
        key = (status, tuple(values[d] for d in dims))
        g = groups.setdefault(key, _empty_group())
        g["outcomes"] += 1
        g["verified"] += decision == "verified"
        if agent_cost is None:
            g["agent_cost_missing"] += 1
        else:
            g["agent_cost"] += agent_cost
        g["judge_cost"] += judge_cost.get(oid, Decimal(0))
        g["judge_calls"] += judge_calls.get(oid, 0)

    total = _empty_group()
    by_status = {status: _empty_group() for status in STATUSES}
    rows = []
    order = {status: i for i, status in enumerate(STATUSES)}
    for state, dim_key in sorted(
        groups, key=lambda k: (order[k[0]], tuple((v is None, v or "") for v in k[1]))
    ):
        g = groups[(state, dim_key)]
        for field in total:
            total[field] += g[field]
            by_status[state][field] += g[field]
        group = dict(zip(dims, dim_key, strict=True))
        rows.append({"group": group, "status": state, **_finish_group(g)})
    return {
        "tenant": tenant,
        "from": None if since is None else since.isoformat(),
        "to": None if until is None else until.isoformat(),
        "group_by": dims,
        "now": at.isoformat(),
        "window_hours": window_hours,
        "grace_hours": grace_hours,
        "groups": rows,
        "provisional": _finish_group(by_status["provisional"]),
        "final": _finish_group(by_status["final"]),
        "total": _finish_group(total),
        "unattributed_judge_cost_usd": float(unattributed),
        "unattributed_judge_calls": unattributed_calls,
        "human_review_usd": None,
        "human_review_note": "human review time is not recorded in the ledger yet; not included",
    }


def _empty_group() -> dict[str, Any]:
    from decimal import Decimal

    return {
        "outcomes": 0,
        "verified": 0,
        "agent_cost": Decimal(0),
        "agent_cost_missing": 0,
        "judge_cost": Decimal(0),
        "judge_calls": 0,
    }


def _finish_group(g: dict[str, Any]) -> dict[str, Any]:
    numerator = g["agent_cost"] + g["judge_cost"]
    verified = g["verified"]
    return {
        "outcomes": g["outcomes"],
        "verified": verified,
        "agent_cost_usd": float(g["agent_cost"]),
        "agent_cost_missing": g["agent_cost_missing"],
        "judge_cost_usd": float(g["judge_cost"]),
        "judge_calls": g["judge_calls"],
        "numerator_usd": float(numerator),
        "denominator": verified,
        "cost_per_verified_usd": float(numerator / verified) if verified else None,
        "reason": None if verified else NO_VERIFIED,
    }

"""Cost per verified outcome from the ledger: numerator, denominator and parts, per group.

Read-only over the ledger tables; `judge cost report` prints what :func:`cost_report` returns,
and :func:`ledger.cost_report_html.render_cost_html` draws it as one self-contained HTML page
(``--html``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger.cost_figures import CostReport
from ledger.dimensions import parse_group_by
from ledger.report_periods import PERIODS, Period, period_bounds, period_label

if TYPE_CHECKING:
    from collections.abc import Iterator
    from decimal import Decimal

    from sqlalchemy.engine import Engine

__all__ = [
    "GROUP_DIMENSIONS",
    "NO_VERIFIED",
    "PERIODS",
    "STATUSES",
    "Period",
    "check_labor_rate",
    "cost_report",
    "period_bounds",
    "period_label",
    "report_notes",
]

#: ``agent`` is the credited AI actor (ledger.attribution); ``agent_version`` is ``name@version``;
#: ``period`` is the UTC day or month of the outcome's window anchor (its last customer message).
GROUP_DIMENSIONS = ("agent", "agent_version", "model_path", "tier", "period")
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
    window_hours: float | None = None,
    grace_hours: float = 24.0,
    period: Period = "month",
    labor_rate: float | None = None,
) -> CostReport:
    """Cost per verified outcome per group, with numerator, denominator and parts.

    Each outcome counts once, by its latest verdict recorded in ``[since, until)`` that could
    count: a verdict recorded after the outcome was already final (its fact frozen, see
    :mod:`ledger.facts`) changed nothing the meters bill, so it is left out here too, and the
    verified count agrees with the meters (a later reopen or overturn is a revocation).

    Its agent cost is that of the judged revision; judge costs are every judge call (failed
    attempts and retries included, cache hits cost 0) made for it in the same window to verify
    it. Calls for outcomes without a verdict in the window are reported as
    ``unattributed_judge_cost_usd``; calls made for another purpose (``judge bias``, ``judge
    canary``) are paid but are no cost of verifying an outcome: ``judge_calls_by_purpose``
    counts every call of the window by purpose.

    Human review time is the minutes of every review (:func:`ledger.cost_entries.record_review`)
    made of the outcome in the same window, priced at ``labor_rate`` (USD per hour):
    ``minutes / 60 x labor_rate`` is the ``human_review_usd`` part of the numerator. Without
    ``labor_rate`` a group with reviews has ``human_review_usd`` None and a
    ``human_review_reason`` (its numerator then leaves them out); a group without reviews has 0.

    Every group is split by status: ``provisional`` while the judged revision's verification
    window (``window_hours`` after its last customer message, see
    :func:`ledger.windows.verification_status`) plus ``grace_hours`` has not passed at ``now``
    (default: the current time), else ``final``; ``provisional`` and ``final`` hold the total of
    each. The ``agent`` dimension is the credited AI actor (:func:`ledger.attribution.attribute`
    of the judged revision), not the outcome's ``agent.name@version``.

    The ``period`` dimension is the UTC ``period`` (``"day"`` or ``"month"``) holding the judged
    revision's window anchor (:func:`ledger.windows.window_anchor`: its last customer message,
    else ``signals.closed_at``, else its last timed message), as a label (``2026-03`` or
    ``2026-03-14``; None for an outcome without any timestamp); with it each row also carries
    ``period_start`` and ``period_end`` (ISO 8601, half-open ``[start, end)``, or None).

    ``window_hours=None`` (the default, as in ``judge cost``, ``GET /v1/cost`` and the web cost
    page) takes each verdict's window from the rubric that judged it; a number overrides it for
    every verdict. Revocations give ``revoked``, ``verified_net`` and
    ``cost_per_verified_net_usd``: see :mod:`ledger.cost_report_revocations`.
    """
    from decimal import Decimal

    from sqlmodel import col, select

    from judge.input_rules import FROM_LEDGER
    from judge.models import Outcome
    from ledger.attribution import attribute
    from ledger.cost_entries import review_minutes
    from ledger.cost_report_revocations import net_revocations
    from ledger.counted import counted_verdicts
    from ledger.db import session
    from ledger.facts import rubric_windows, stored_window_hours
    from ledger.tables import CALL_PURPOSES, JudgeCallRow
    from ledger.windows import check_hours, verification_status, window_anchor

    hours = check_hours(
        window_hours=72 if window_hours is None else window_hours, grace_hours=grace_hours
    )
    window_hours, grace_hours = None if window_hours is None else hours[0], hours[1]
    rate = check_labor_rate(labor_rate)
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    dims = parse_group_by(dims, GROUP_DIMENSIONS)
    at = datetime.now(UTC) if now is None else now

    verdict_q = counted_verdicts(_VERDICT_COLUMNS, tenant, since=since, until=until)
    call_q = select(
        JudgeCallRow.outcome_id, col(JudgeCallRow.cost_usd), col(JudgeCallRow.purpose)
    ).where(JudgeCallRow.tenant == tenant)
    if since is not None:
        call_q = call_q.where(col(JudgeCallRow.at) >= since)
    if until is not None:
        call_q = call_q.where(col(JudgeCallRow.at) < until)
    with session(engine, readonly=True) as db:
        judged = {oid: rest for oid, *rest in db.connection().execute(verdict_q).all()}
        latest = {oid: (rev, dec, tier) for oid, (rev, dec, tier, _, _) in judged.items()}
        calls = db.exec(call_q).all()
    reviews = review_minutes(engine, tenant=tenant, since=since, until=until)
    unattributed_minutes = sum(
        (m for oid, m in reviews.items() if oid not in latest), start=Decimal(0)
    )

    judge_cost: dict[str, Decimal] = {}
    judge_calls: dict[str, int] = {}
    unattributed, unattributed_calls = Decimal(0), 0
    calls_by_purpose = dict.fromkeys(CALL_PURPOSES, 0)
    cost_by_purpose = dict.fromkeys(CALL_PURPOSES, Decimal(0))
    for oid, cost, purpose in calls:
        calls_by_purpose[purpose] = calls_by_purpose.get(purpose, 0) + 1
        cost_by_purpose[purpose] = cost_by_purpose.get(purpose, Decimal(0)) + cost
        if purpose != "verify":
            # Paid (and in the daily budget), but not a cost of verifying this outcome.
            continue
        if oid in latest:
            judge_cost[oid] = judge_cost.get(oid, Decimal(0)) + cost
            judge_calls[oid] = judge_calls.get(oid, 0) + 1
        else:
            unattributed += cost
            unattributed_calls += 1

    groups: dict[tuple[str, tuple[str | None, ...]], dict[str, Any]] = {}
    bounds: dict[str, tuple[str, str]] = {}
    with session(engine, readonly=True) as db:
        conn = db.connection()
        windows, window_hours, window_note = rubric_windows(
            (v[4] for v in judged.values()),
            window_hours=window_hours,
            lookup=lambda ref: stored_window_hours(conn, tenant, ref),
        )
    verified: dict[str, tuple[int, tuple[str, dict[str, Any]]]] = {}
    for oid, path, agent_cost, payload in _judged_revisions(engine, tenant, latest):
        decision, tier = latest[oid][1:]
        outcome = Outcome.model_validate(payload, context=FROM_LEDGER)
        window = windows[judged[oid][4]]
        status = verification_status(
            outcome, window_hours=window, grace_hours=grace_hours, now=at
        ).status
        values = {"model_path": path, "tier": tier}
        if "agent" in dims:
            values["agent"] = attribute(outcome)
        if "agent_version" in dims:
            name, version = outcome.agent.name, outcome.agent.version
            values["agent_version"] = None if name is None else f"{name}@{version or '?'}"
        if "period" in dims:
            anchored = window_anchor(outcome)
            if anchored is None:
                values["period"] = None
            else:
                start, end = period_bounds(anchored[0], period=period)
                values["period"] = period_label(start, period=period)
                bounds[values["period"]] = (start.isoformat(), end.isoformat())
        key = (status, tuple(values[d] for d in dims))
        if decision == "verified":
            verified[oid] = (judged[oid][3], (status, values))
        g = groups.setdefault(key, _empty_group())
        g["outcomes"] += 1
        g["verified"] += decision == "verified"
        if agent_cost is None:
            g["agent_cost_missing"] += 1
        else:
            g["agent_cost"] += agent_cost
        g["judge_cost"] += judge_cost.get(oid, Decimal(0))
        g["judge_calls"] += judge_calls.get(oid, 0)
        g["review_minutes"] += reviews.get(oid, Decimal(0))

    revoked = net_revocations(
        engine, tenant, verified=verified, dims=dims, period=period, since=since,
        until=until, groups=groups, bounds=bounds, new_group=_empty_group,
    )  # fmt: skip
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
        row = {"group": group, "status": state, **_finish_group(g, rate)}
        if "period" in dims:
            label = group["period"]
            row["period_start"], row["period_end"] = (
                (None, None) if label is None else bounds[label]
            )
        rows.append(row)
    finished_total = _finish_group(total, rate)
    data = {
        "tenant": tenant,
        "from": None if since is None else since.isoformat(),
        "to": None if until is None else until.isoformat(),
        "group_by": dims,
        "period": period if "period" in dims else None,
        "now": at.isoformat(),
        "window_hours": window_hours,
        "window_hours_by_rubric": dict(sorted(windows.items())),
        "window_note": window_note,
        "grace_hours": grace_hours,
        "groups": rows,
        "provisional": _finish_group(by_status["provisional"], rate),
        "final": _finish_group(by_status["final"], rate),
        "total": finished_total,
        "unattributed_judge_cost_usd": float(unattributed),
        "unattributed_judge_calls": unattributed_calls,
        "judge_calls_by_purpose": {
            purpose: {"calls": n, "cost_usd": float(cost_by_purpose[purpose])}
            for purpose, n in calls_by_purpose.items()
        },
        "labor_rate_usd_per_hour": None if rate is None else float(rate),
        "human_review_minutes": finished_total["human_review_minutes"],
        "human_review_usd": finished_total["human_review_usd"],
        "human_review_note": _review_note(finished_total, rate),
        "unattributed_human_review_minutes": float(unattributed_minutes),
        "revoked_outcomes": revoked,
        "meter_adjustments": meter_adjustments(engine, tenant, since=since, until=until),
        **unsettled_calls(engine, tenant, since=since, until=until),
    }
    return CostReport.model_validate(data)


#: Judged revisions read per query: what a report holds at once is one chunk's payloads.
_CHUNK = 500


def _judged_revisions(
    engine: Engine, tenant: str, latest: dict[str, tuple[int, str, str | None]]
) -> Iterator[tuple[str, str | None, Decimal | None, dict[str, Any]]]:
    """``(outcome id, model path, agent cost, payload)`` of each judged revision in ``latest``
    (outcome id -> (revision, ...)), in its order, read :data:`_CHUNK` at a time.

    Only the revisions the report prices are read, never the tenant's whole history: the
    report's memory follows the outcomes judged in its range, one chunk of payloads at a time.
    (Revisions are written once and never changed, so reading them after the verdicts, in
    another transaction, reads what the verdicts judged.)
    """
    import sqlalchemy as sa

    from ledger.db import chunked, session
    from ledger.tables import OutcomeRow

    table = OutcomeRow.__table__  # type: ignore[attr-defined]
    columns = (table.c.outcome_id, table.c.model_path, table.c.agent_cost_usd, table.c.payload)
    with session(engine, readonly=True) as db:
        conn = db.connection()
        for chunk in chunked(list(latest), _CHUNK):
            pairs = [(oid, latest[oid][0]) for oid in chunk]
            query = sa.select(*columns).where(
                table.c.tenant == tenant,
                sa.tuple_(table.c.outcome_id, table.c.revision).in_(pairs),
            )
            found = {row[0]: row for row in conn.execute(query)}
            for oid in chunk:
                _, path, cost, payload = found[oid]
                yield oid, path, cost, payload


def unsettled_calls(
    engine: Engine, tenant: str, *, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """Judge calls made in ``[since, until)`` without a known outcome.

    ``unknown_calls`` (and ``unknown_calls_usd``): calls whose process died before the reply,
    settled at their estimated cost (prompt tokens at the model's price), which the judge cost
    above includes; ``pending_calls``: calls in flight (or left by a process that died less than
    their timeout ago), not yet in the judge cost (``ledger.callstore.settle_pending``).
    """
    import sqlalchemy as sa

    from ledger.db import session
    from ledger.tables import JudgeCallRow

    calls = JudgeCallRow.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(calls.c.status, sa.func.count(), sa.func.sum(calls.c.cost_usd))
        .where(calls.c.tenant == tenant, calls.c.status.in_(["unknown", "pending"]))
        .group_by(calls.c.status)
    )
    if since is not None:
        query = query.where(calls.c.at >= since)
    if until is not None:
        query = query.where(calls.c.at < until)
    with session(engine, readonly=True) as db:
        found = {status: (n, cost) for status, n, cost in db.connection().execute(query).all()}
    unknown = found.get("unknown", (0, 0))
    return {
        "unknown_calls": int(unknown[0]),
        "unknown_calls_usd": float(unknown[1] or 0),
        "pending_calls": int(found.get("pending", (0, 0))[0]),
    }


def meter_adjustments(
    engine: Engine, tenant: str, *, since: datetime | None, until: datetime | None
) -> dict[str, int]:
    """Signed meter entries booked in ``[since, until)`` other than on-time verifications.

    By reason (``late_arrival``, ``moved``, ``withdrawn``, revocation reasons): what the meters
    booked at the current moment because an outcome's own window was already final or closed
    (:mod:`ledger.bookings`). Empty when every outcome counted on time.
    """
    import sqlalchemy as sa

    from ledger.bookings import VERIFIED
    from ledger.db import session
    from ledger.service_tables import MeterEntryRow

    entries = MeterEntryRow.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(entries.c.reason, sa.func.sum(entries.c.delta))
        .where(entries.c.tenant == tenant, entries.c.reason != VERIFIED)
        .group_by(entries.c.reason)
        .order_by(entries.c.reason)
    )
    if since is not None:
        query = query.where(entries.c.booked_at >= since)
    if until is not None:
        query = query.where(entries.c.booked_at < until)
    with session(engine, readonly=True) as db:
        return {reason: int(n) for reason, n in db.connection().execute(query).all()}


_VERDICT_COLUMNS = ("outcome_id", "outcome_revision", "decision", "tier", "pk", "rubric")


def _empty_group() -> dict[str, Any]:
    from decimal import Decimal

    return {
        "outcomes": 0,
        "verified": 0,
        "agent_cost": Decimal(0),
        "agent_cost_missing": 0,
        "judge_cost": Decimal(0),
        "judge_calls": 0,
        "review_minutes": Decimal(0),
        "revoked": 0,
    }


def check_labor_rate(labor_rate: float | None) -> Decimal | None:
    """The labour rate (USD per hour) as a Decimal; ValueError unless finite and >= 0.

    >>> check_labor_rate(42.5)
    Decimal('42.5')
    >>> check_labor_rate(None) is None
    True
    """
    from decimal import Decimal

    if labor_rate is None:
        return None
    if (
        isinstance(labor_rate, bool)
        or not isinstance(labor_rate, int | float)
        or not math.isfinite(labor_rate)
        or labor_rate < 0
    ):
        raise ValueError(
            f"labor_rate must be a finite number of USD per hour >= 0, got {labor_rate!r}"
        )
    return Decimal(repr(float(labor_rate)))


def _review_note(total: dict[str, Any], rate: Decimal | None) -> str:
    minutes = total["human_review_minutes"]
    if not minutes:
        return "no human review time recorded for these outcomes (judge cost review): 0"
    if rate is None:
        return str(total["human_review_reason"])
    return (
        f"human review: {minutes:g} min x ${float(rate):g}/h = ${total['human_review_usd']:.6f}, "
        "included in the numerator"
    )


def _finish_group(g: dict[str, Any], rate: Decimal | None = None) -> dict[str, Any]:
    from ledger.cost_report_revocations import net_fields
    from ledger.tables import to_money

    minutes = g["review_minutes"]
    human: Any = None
    reason = None
    if not minutes:
        human = to_money(0)
    elif rate is None:
        reason = (
            f"{minutes.normalize():f} minutes of human review recorded but no labour rate given; "
            "not in the numerator: pass --labor-rate USD_PER_HOUR to include them"
        )
    else:
        human = to_money(minutes * rate / 60)
    numerator = g["agent_cost"] + g["judge_cost"] + (human or 0)
    verified = g["verified"]
    return {
        "outcomes": g["outcomes"],
        "verified": verified,
        "agent_cost_usd": float(g["agent_cost"]),
        "agent_cost_missing": g["agent_cost_missing"],
        "judge_cost_usd": float(g["judge_cost"]),
        "judge_calls": g["judge_calls"],
        "human_review_minutes": float(minutes),
        "human_review_usd": None if human is None else float(human),
        "human_review_reason": reason,
        "numerator_usd": float(numerator),
        "denominator": verified,
        "cost_per_verified_usd": float(numerator / verified) if verified else None,
        "reason": None if verified else NO_VERIFIED,
        **net_fields(numerator, verified, g["revoked"]),
    }


def report_notes(report: CostReport) -> list[str]:
    """What a reader of a cost report must know besides the table (text and HTML alike)."""
    total = report.total
    notes = [
        f"status as of {report.now}: final once {report.window_hours:g} h after the last "
        f"customer message plus {report.grace_hours:g} h grace have passed, else provisional",
        report.human_review_note,
    ]
    if report.window_note:
        notes.append(report.window_note)
    if report.revoked_outcomes:
        net = total.cost_per_verified_net_usd
        notes.append(
            f"{report.revoked_outcomes} verified outcome(s) revoked: "
            f"{total.verified_net} verified net, "
            f"{'n/a' if net is None else f'{net:.6f}'} USD per net verified outcome"
        )
    if report.meter_adjustments:
        listed = ", ".join(f"{reason} {n:+d}" for reason, n in report.meter_adjustments.items())
        notes.append(
            f"meter adjustments booked in this range: {listed} (outcomes verified or taken back "
            "after their own window was final or its month closed; they count in the meters "
            "when booked, never in the final window: see GET /v1/meters/verified-outcomes)"
        )
    if report.unknown_calls:
        notes.append(
            f"{report.unknown_calls} judge call(s) of unknown outcome (the process stopped "
            f"before the reply) are in the judge cost at an estimated "
            f"${report.unknown_calls_usd:.6f} (prompt tokens at the model's price)"
        )
    if report.pending_calls:
        notes.append(
            f"{report.pending_calls} judge call(s) are still in flight (or were left by a "
            "process that stopped less than their timeout ago): not in the judge cost yet"
        )
    if total.agent_cost_missing:
        notes.append(
            f"{total.agent_cost_missing} outcome(s) record no agent cost; counted as outcomes, "
            "not costs"
        )
    if report.unattributed_judge_calls:
        notes.append(
            f"{report.unattributed_judge_calls} judge call(s) costing "
            f"${report.unattributed_judge_cost_usd:.6f} belong to outcomes without a verdict "
            "in the window (not in the table)"
        )
    others = {
        purpose: part
        for purpose, part in report.judge_calls_by_purpose.items()
        if purpose != "verify" and part.calls
    }
    if others:
        listed = ", ".join(
            f"{part.calls} {purpose} call(s) costing ${part.cost_usd:.6f}"
            for purpose, part in others.items()
        )
        notes.append(f"not in the cost per verified outcome (another purpose): {listed}")
    return [n for n in notes if n]

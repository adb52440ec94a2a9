"""Verification jobs: creating them, reading their progress, and the tenants' daily budgets.

A job (``jobs``) is a set of outcomes to verify with one panel under one rubric per outcome kind;
each outcome is an item (``job_items``). Workers claim, judge and finish the items through
:mod:`ledger.job_queue`, which keeps each job's progress (counts, cost, status) on its row.

The daily judge budget (``tenants.daily_budget_usd``, compared with
:func:`ledger.spend.spent_today`): once a tenant has spent it, its queued and running jobs wait
(status ``waiting`` with the reason) and are not claimed; they resume when the UTC day turns or
the budget is raised (:func:`refresh_budgets`). A worker finishes the batch it holds, so the
overshoot is at most one batch per worker.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ledger.db import chunked, session
from ledger.service_tables import JobItemRow, JobRow
from ledger.spend import spent_today
from ledger.tables import OutcomeRow, TenantRow, VerdictRow, to_money, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "MAX_JOB_OUTCOMES",
    "JobError",
    "JobFilter",
    "JobInfo",
    "UnknownOutcomesError",
    "create_job",
    "get_job",
    "list_jobs",
    "queue_depth",
    "refresh_budgets",
    "select_outcomes",
]

#: Outcomes one job may hold (a larger selection is refused: split it, or narrow the filter).
MAX_JOB_OUTCOMES = 100_000
#: Statuses of a job that is not finished.
ACTIVE = ("queued", "running", "waiting")
#: The decisions a job counts (``jobs.counts``), here and in :mod:`ledger.job_queue`.
DECISIONS = ("verified", "not_verified", "abstain")
# Ids per IN (...) list: far below SQLite's 32,766 bound variables.
_CHUNK = 5000

_items = JobItemRow.__table__  # type: ignore[attr-defined]
_jobs = JobRow.__table__  # type: ignore[attr-defined]
_outcomes = OutcomeRow.__table__  # type: ignore[attr-defined]
_verdicts = VerdictRow.__table__  # type: ignore[attr-defined]
_tenants = TenantRow.__table__  # type: ignore[attr-defined]


class JobError(ValueError):
    """A job cannot be created as asked; the message says what to change."""


class UnknownOutcomesError(JobError):
    """Outcome ids the tenant has not stored (``missing`` lists them, in request order)."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(repr(m) for m in self.missing[:10])
        more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        super().__init__(
            f"{len(self.missing)} outcome id(s) are not stored for this tenant: {shown}{more}; "
            "send them first (POST /v1/outcomes) or leave them out"
        )


@dataclass(frozen=True)
class JobFilter:
    """Which of a tenant's outcomes a job verifies (conditions on each outcome's latest revision).

    ``received_from``/``received_to`` are the half-open span ``[from, to)`` of when that revision
    was received; ``unverified_only`` keeps outcomes with no verdict on their current content.
    """

    kind: str | None = None
    agent: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    unverified_only: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agent": self.agent,
            "received_from": _iso(self.received_from),
            "received_to": _iso(self.received_to),
            "unverified_only": self.unverified_only,
        }


@dataclass(frozen=True)
class Selection:
    """The outcomes a job will hold, in order, and how many there are of each kind."""

    outcome_ids: list[str]
    kinds: Counter[str]


@dataclass(frozen=True)
class JobInfo:
    """A job as the API shows it: progress, decisions so far, cost so far."""

    job_id: str
    tenant: str
    status: str
    rubrics: dict[str, str]
    panel: str
    selection: dict[str, Any]
    total: int
    completed: int
    failed: int
    counts: dict[str, int]
    cost_usd: Decimal
    error: str | None
    waiting_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: Calls made for the job whose process died before their reply (booked at an estimate).
    unknown_calls: int = 0

    @property
    def pending(self) -> int:
        return max(self.total - self.completed - self.failed, 0)

    @property
    def fraction(self) -> float:
        """Share of items finished (done or failed); 1.0 for an empty job."""
        return 1.0 if self.total == 0 else round((self.completed + self.failed) / self.total, 6)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _usd(amount: Decimal) -> str:
    text = f"{amount.normalize():f}"
    return text if "." in text else f"{text}.00"


# -- creating jobs ------------------------------------------------------------------------------


def _latest_revisions(tenant: str) -> Any:
    """(outcome_id, latest revision) of every outcome of ``tenant``, as a subquery."""
    return (
        sa.select(_outcomes.c.outcome_id, sa.func.max(_outcomes.c.revision).label("revision"))
        .where(_outcomes.c.tenant == tenant)
        .group_by(_outcomes.c.outcome_id)
        .subquery("latest")
    )


def _select_ids(conn: Connection, tenant: str, outcome_ids: Sequence[str]) -> Selection:
    wanted = list(dict.fromkeys(outcome_ids))  # a repeated id is one item
    if len(wanted) > MAX_JOB_OUTCOMES:
        raise JobError(
            f"a job holds at most {MAX_JOB_OUTCOMES:,} outcomes, got {len(wanted):,}; split it"
        )
    kind_of: dict[str, str] = {}
    for chunk in chunked(wanted, _CHUNK):
        rows = conn.execute(
            sa.select(_outcomes.c.outcome_id, _outcomes.c.kind)
            .where(_outcomes.c.tenant == tenant, _outcomes.c.outcome_id.in_(list(chunk)))
            .order_by(_outcomes.c.revision)
        ).all()
        for outcome_id, kind in rows:  # later revisions overwrite earlier ones
            kind_of[outcome_id] = kind
    missing = [o for o in wanted if o not in kind_of]
    if missing:
        raise UnknownOutcomesError(missing)
    return Selection(wanted, Counter(kind_of[o] for o in wanted))


def _select_filter(conn: Connection, tenant: str, flt: JobFilter) -> Selection:
    latest = _latest_revisions(tenant)
    o = _outcomes
    query = (
        sa.select(o.c.outcome_id, o.c.kind)
        .join(
            latest,
            sa.and_(o.c.outcome_id == latest.c.outcome_id, o.c.revision == latest.c.revision),
        )
        .where(o.c.tenant == tenant)
    )
    if flt.kind is not None:
        query = query.where(o.c.kind == flt.kind)
    if flt.agent is not None:
        query = query.where(o.c.agent_name == flt.agent)
    if flt.received_from is not None:
        query = query.where(o.c.received_at >= flt.received_from)
    if flt.received_to is not None:
        query = query.where(o.c.received_at < flt.received_to)
    if flt.unverified_only:
        verdict = (
            sa.select(_verdicts.c.pk)
            .where(
                _verdicts.c.tenant == tenant,
                _verdicts.c.outcome_id == o.c.outcome_id,
                _verdicts.c.content_hash == o.c.content_hash,
            )
            .exists()
        )
        query = query.where(~verdict)
    rows = conn.execute(query.order_by(o.c.outcome_id).limit(MAX_JOB_OUTCOMES + 1)).all()
    if len(rows) > MAX_JOB_OUTCOMES:
        raise JobError(
            f"the filter selects more than {MAX_JOB_OUTCOMES:,} outcomes; narrow it (kind, agent, "
            "received_from/received_to) or split the work into several jobs"
        )
    return Selection([r[0] for r in rows], Counter(r[1] for r in rows))


def select_outcomes(
    engine: Engine,
    tenant: str,
    *,
    outcome_ids: Sequence[str] | None = None,
    filter: JobFilter | None = None,
) -> Selection:
    """The outcomes ``outcome_ids`` or ``filter`` selects (exactly one of them).

    Raises
    ------
    UnknownOutcomesError
        Ids the tenant has not stored (another tenant's ids count as unknown).
    JobError
        More than :data:`MAX_JOB_OUTCOMES`, or neither/both of ``outcome_ids`` and ``filter``.
    """
    with session(engine, readonly=True) as db:
        return _selection(db.connection(), tenant, outcome_ids, filter)


def _selection(
    conn: Connection, tenant: str, outcome_ids: Sequence[str] | None, flt: JobFilter | None
) -> Selection:
    if (outcome_ids is None) == (flt is None):
        raise JobError("give either outcome_ids or filter (exactly one)")
    if outcome_ids is not None:
        return _select_ids(conn, tenant, outcome_ids)
    assert flt is not None
    return _select_filter(conn, tenant, flt)


def _budget_reason(budget: Decimal, spent: Decimal, resets_at: datetime) -> str:
    return (
        f"daily judge budget of ${_usd(budget)} reached (${_usd(spent)} spent today); resumes at "
        f"{resets_at:%Y-%m-%dT%H:%M:%SZ} or when the budget is raised"
    )


def _over_budget(engine: Engine, tenant: str, now: datetime) -> str | None:
    """The waiting reason when ``tenant`` has spent its daily judge budget, else None."""
    with session(engine, readonly=True) as db:
        budget = (
            db.connection()
            .execute(sa.select(_tenants.c.daily_budget_usd).where(_tenants.c.name == tenant))
            .scalar_one_or_none()
        )
    if budget is None:
        return None
    spent, resets_at = spent_today(engine, tenant, now=now)
    return _budget_reason(budget, spent, resets_at) if spent >= budget else None


def create_job(
    engine: Engine,
    tenant: str,
    *,
    rubrics: Mapping[str, str],
    panel: str,
    outcome_ids: Sequence[str] | None = None,
    filter: JobFilter | None = None,
    now: datetime | None = None,
) -> JobInfo:
    """Queue a job over the tenant's outcomes, in one transaction (nothing written on error).

    Parameters
    ----------
    rubrics
        Outcome kind -> rubric name (``name`` or ``name@version``); every kind the selection
        holds needs one. Names are stored as given: resolve and pin them first (the API does).
    panel
        The panel name the worker resolves (:func:`ledger.documents.resolve_panel`).
    outcome_ids, filter
        Exactly one: the ids (each must be stored for the tenant; repeats count once), or a
        :class:`JobFilter` resolved to ids now (outcomes received later are not included).

    Raises
    ------
    UnknownOutcomesError
        With every unknown id.
    JobError
        A kind without a rubric, too many outcomes, or neither/both selections given.
    """
    now = now or utcnow()
    waiting_reason = _over_budget(engine, tenant, now)
    with session(engine) as db:
        conn = db.connection()
        chosen = _selection(conn, tenant, outcome_ids, filter)
        uncovered = sorted(k for k in chosen.kinds if k not in rubrics)
        if uncovered:
            parts = ", ".join(f"{chosen.kinds[k]} {k}" for k in uncovered)
            raise JobError(
                f"the job selects {parts} outcome(s) but names no rubric for "
                f"{', '.join(uncovered)}; add it to 'rubrics' ({{kind: rubric name}})"
            )
        total = len(chosen.outcome_ids)
        selection: dict[str, Any] = (
            {"outcome_ids": total} if filter is None else {"filter": filter.as_json()}
        )
        status = "done" if total == 0 else ("waiting" if waiting_reason else "queued")
        job = JobRow(
            tenant=tenant,
            job_id=f"job_{secrets.token_hex(12)}",
            status=status,
            rubrics=dict(rubrics),
            panel=panel,
            selection=selection,
            total=total,
            counts={d: 0 for d in DECISIONS},
            waiting_reason=waiting_reason if status == "waiting" else None,
            created_at=now,
            finished_at=now if total == 0 else None,
        )
        db.add(job)
        db.flush()
        assert job.pk is not None
        for chunk in chunked(chosen.outcome_ids, _CHUNK):
            conn.execute(
                sa.insert(_items),
                [
                    {
                        "job_pk": job.pk,
                        "tenant": tenant,
                        "outcome_id": outcome_id,
                        "status": "pending",
                        "attempts": 0,
                    }
                    for outcome_id in chunk
                ],
            )
        return _info_from_row(job)


# -- reading jobs -------------------------------------------------------------------------------


def _with_call_costs(query: Any) -> Any:
    """``query`` over jobs plus each job's cost and unknown calls, summed from ``judge_calls``.

    A job costs what the ledger recorded for it: every call its workers made (retries, failed
    attempts, calls of a worker that died before its verdict, and ``unknown`` calls at their
    estimate), not the verdicts' own sums, which miss the calls a killed worker paid for.
    """
    from ledger.tables import JudgeCallRow

    calls = JudgeCallRow.__table__  # type: ignore[attr-defined]
    cost = (
        sa.select(sa.func.coalesce(sa.func.sum(calls.c.cost_usd), 0))
        .where(calls.c.job_pk == _jobs.c.pk)
        .scalar_subquery()
    )
    unknown = (
        sa.select(sa.func.count())
        .where(calls.c.job_pk == _jobs.c.pk, calls.c.status == "unknown")
        .scalar_subquery()
    )
    return query.add_columns(cost.label("calls_cost_usd"), unknown.label("unknown_calls"))


def _info_from_row(row: Any) -> JobInfo:
    mapping = getattr(row, "_mapping", {})  # a Row with the calls' sums, or a JobRow
    return JobInfo(
        job_id=row.job_id,
        tenant=row.tenant,
        status=row.status,
        rubrics=dict(row.rubrics or {}),
        panel=row.panel,
        selection=dict(row.selection or {}),
        total=row.total,
        completed=row.completed,
        failed=row.failed,
        counts={d: int((row.counts or {}).get(d, 0)) for d in DECISIONS},
        cost_usd=to_money(mapping.get("calls_cost_usd", row.cost_usd) or 0),
        error=row.error,
        waiting_reason=row.waiting_reason,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        unknown_calls=int(mapping.get("unknown_calls", 0) or 0),
    )


def get_job(engine: Engine, tenant: str, job_id: str) -> JobInfo | None:
    """The tenant's job ``job_id`` (one row: progress is kept on it), or None."""
    with session(engine, readonly=True) as db:
        row = (
            db.connection()
            .execute(
                _with_call_costs(sa.select(_jobs)).where(
                    _jobs.c.tenant == tenant, _jobs.c.job_id == job_id
                )
            )
            .first()
        )
    return None if row is None else _info_from_row(row)


def list_jobs(engine: Engine, tenant: str, *, limit: int = 20) -> list[JobInfo]:
    """The tenant's most recent jobs, newest first."""
    with session(engine, readonly=True) as db:
        rows = (
            db.connection()
            .execute(
                _with_call_costs(sa.select(_jobs))
                .where(_jobs.c.tenant == tenant)
                .order_by(_jobs.c.created_at.desc(), _jobs.c.pk.desc())
                .limit(limit)
            )
            .all()
        )
    return [_info_from_row(r) for r in rows]


def queue_depth(engine: Engine) -> int:
    """Items of unfinished jobs still to do, over every tenant (for ``/metrics``)."""
    query = sa.select(
        sa.func.coalesce(sa.func.sum(_jobs.c.total - _jobs.c.completed - _jobs.c.failed), 0)
    ).where(_jobs.c.status.in_(ACTIVE))
    with session(engine, readonly=True) as db:
        return int(db.connection().execute(query).scalar_one())


# -- the budget ---------------------------------------------------------------------------------


def refresh_budgets(engine: Engine, *, now: datetime | None = None) -> dict[str, str | None]:
    """Put jobs of tenants over their daily budget to ``waiting``; resume the others.

    Returns ``{tenant: waiting reason or None}`` for every tenant with unfinished jobs. Writes
    only when a job's status or reason changes.
    """
    now = now or utcnow()
    with session(engine, readonly=True) as db:
        rows = (
            db.connection()
            .execute(
                sa.select(_jobs.c.tenant, _jobs.c.status, _jobs.c.waiting_reason)
                .where(_jobs.c.status.in_(ACTIVE))
                .distinct()
            )
            .all()
        )
    states: dict[str, set[tuple[str, str | None]]] = {}
    for tenant, status, reason in rows:
        states.setdefault(tenant, set()).add((status, reason))
    out: dict[str, str | None] = {}
    for tenant, seen in states.items():
        reason = _over_budget(engine, tenant, now)
        out[tenant] = reason
        if reason is not None:
            if any(s != "waiting" or r != reason for s, r in seen):
                _set_waiting(engine, tenant, reason)
        elif any(s == "waiting" for s, _ in seen):
            _resume(engine, tenant)
    return out


def _set_waiting(engine: Engine, tenant: str, reason: str) -> None:
    with session(engine) as db:
        db.connection().execute(
            sa.update(_jobs)
            .where(_jobs.c.tenant == tenant, _jobs.c.status.in_(ACTIVE))
            .values(status="waiting", waiting_reason=reason)
        )


def _resume(engine: Engine, tenant: str) -> None:
    with session(engine) as db:
        db.connection().execute(
            sa.update(_jobs)
            .where(_jobs.c.tenant == tenant, _jobs.c.status == "waiting")
            .values(
                status=sa.case((_jobs.c.started_at.is_(None), "queued"), else_="running"),
                waiting_reason=None,
            )
        )

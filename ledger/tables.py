"""The ledger's tables: the system of record for outcomes, verdicts, judge calls and labels.

Conventions (every table, every future migration):

- Rows are append-only history. An outcome that changes gets a new ``revision`` row; verdicts,
  judge calls and labels are inserted, never updated in place.
- Every row carries its ``tenant`` (a foreign key to ``tenants.name``); every query filters on it.
- Timestamps are stored in UTC (:class:`UTCDateTime`) and always read back timezone-aware.
- Money is stored as ``NUMERIC(20, 12)`` (:class:`Money`): exact on PostgreSQL, a double on SQLite
  (exact to 1e-12 USD for amounts below ~$1,000, ~15 significant digits beyond). Values are
  rounded half-even to 12 decimal places when written and read back as :class:`~decimal.Decimal`;
  :mod:`ledger.store` converts to ``float`` at the engine boundary (``JudgeCall``, ``Verdict``).
- JSON columns are ``JSON`` (SQLite) / ``JSONB`` (PostgreSQL): see :data:`JSONType`.
- Every constraint and index has an explicit name, so SQLite batch migrations can address it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Re-exported: callers import the column types and helpers from here too.
from ledger.columns import (  # noqa: F401
    _MONEY_QUANTUM,
    MONEY_PRECISION,
    MONEY_SCALE,
    BigPK,
    JSONType,
    Money,
    UTCDateTime,
    _json_column,
    _money_column,
    _now_column,
    _pk_column,
    _tenant_column,
    _tenant_fk,
    to_money,
    utcnow,
)


class TenantRow(SQLModel, table=True):
    """A tenant: every other row belongs to exactly one. Its API keys are in ``api_keys``."""

    __tablename__ = "tenants"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_tenants_name"),)

    id: int | None = Field(default=None, sa_column=sa.Column("id", sa.Integer, primary_key=True))
    name: str = Field(sa_column=sa.Column("name", sa.String(100), nullable=False))
    created_at: datetime = _now_column("created_at")
    #: Judge spend (USD) per UTC day after which the tenant's jobs wait; None = no cap.
    daily_budget_usd: Decimal | None = _money_column("daily_budget_usd", nullable=True)
    #: API requests per minute before 429; None = the service default.
    requests_per_minute: int | None = Field(
        default=None, sa_column=sa.Column("requests_per_minute", sa.Integer, nullable=True)
    )
    #: Meter windows ending at or before this moment have been published as final (a meter read
    #: said so): nothing is booked before it again (see ledger.bookings). None: none published.
    meter_final_through: datetime | None = Field(
        default=None, sa_column=sa.Column("meter_final_through", UTCDateTime(), nullable=True)
    )


class OutcomeRow(SQLModel, table=True):
    """One revision of one outcome. A changed payload adds revision + 1; nothing is overwritten.

    ``content_hash`` is what a judge sees (:meth:`judge.models.Outcome.content_hash`);
    ``payload_hash`` covers the whole payload (labels, costs and metadata included) and decides
    whether a re-ingested outcome is new.
    """

    __tablename__ = "outcomes"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "outcome_id", "revision", name="uq_outcomes_revision"),
        sa.Index("ix_outcomes_tenant_outcome", "tenant", "outcome_id"),
        _tenant_fk("outcomes"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    revision: int = Field(sa_column=sa.Column("revision", sa.Integer, nullable=False))
    content_hash: str = Field(sa_column=sa.Column("content_hash", sa.String(64), nullable=False))
    payload_hash: str = Field(sa_column=sa.Column("payload_hash", sa.String(64), nullable=False))
    kind: str = Field(sa_column=sa.Column("kind", sa.String(32), nullable=False))
    payload: dict[str, Any] = _json_column("payload")
    agent_name: str | None = Field(
        default=None, sa_column=sa.Column("agent_name", sa.String(200), nullable=True)
    )
    agent_version: str | None = Field(
        default=None, sa_column=sa.Column("agent_version", sa.String(100), nullable=True)
    )
    model_path: str | None = Field(
        default=None, sa_column=sa.Column("model_path", sa.String(200), nullable=True)
    )
    agent_cost_usd: Decimal | None = _money_column("agent_cost_usd", nullable=True)
    received_at: datetime = _now_column("received_at")


class VerdictRow(SQLModel, table=True):
    """One verdict on one outcome revision; ``payload`` is the whole :class:`Verdict` as JSON."""

    __tablename__ = "verdicts"
    __table_args__ = (
        # pk last: the latest verdict of an outcome is the last entry (migration 0017).
        sa.Index("ix_verdicts_tenant_outcome_pk", "tenant", "outcome_id", "pk"),
        sa.Index("ix_verdicts_tenant_created", "tenant", "created_at"),
        sa.ForeignKeyConstraint(
            ["tenant", "outcome_id", "outcome_revision"],
            ["outcomes.tenant", "outcomes.outcome_id", "outcomes.revision"],
            name="fk_verdicts_outcome_revision",
        ),
        _tenant_fk("verdicts"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    outcome_revision: int = Field(
        sa_column=sa.Column("outcome_revision", sa.Integer, nullable=False)
    )
    content_hash: str = Field(sa_column=sa.Column("content_hash", sa.String(64), nullable=False))
    decision: str = Field(sa_column=sa.Column("decision", sa.String(16), nullable=False))
    confidence: float = Field(sa_column=sa.Column("confidence", sa.Float, nullable=False))
    tier: str | None = Field(default=None, sa_column=sa.Column("tier", sa.String(16)))
    rubric: str = Field(sa_column=sa.Column("rubric", sa.String, nullable=False))
    panel: str = Field(sa_column=sa.Column("panel", sa.String, nullable=False))
    flags: list[str] = _json_column("flags")
    payload: dict[str, Any] = _json_column("payload")
    cost_usd: Decimal = _money_column("cost_usd")
    created_at: datetime = _now_column("created_at")


#: Why a judge call was made. Only ``verify`` calls are served again as a cache hit, and only they
#: count in the cost per verified outcome; ``bias`` and ``canary`` calls are paid and recorded too.
CALL_PURPOSES = ("verify", "bias", "canary")


class JudgeCallRow(SQLModel, table=True):
    """One attempt at one model (:class:`judge.verdict.JudgeCall`), failed attempts included."""

    __tablename__ = "judge_calls"
    __table_args__ = (
        # In the order of a look-up of the latest call of a key (migration 0017).
        sa.Index("ix_judge_calls_tenant_key", "tenant", "cache_key", "at", "pk"),
        sa.Index("ix_judge_calls_tenant_outcome", "tenant", "outcome_id"),
        sa.Index("ix_judge_calls_tenant_at", "tenant", "at"),
        sa.Index("ix_judge_calls_call_id", "call_id"),
        sa.Index("ix_judge_calls_pending", "status", "expires_at"),
        sa.Index("ix_judge_calls_job", "job_pk"),
        _tenant_fk("judge_calls"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    judge: str = Field(sa_column=sa.Column("judge", sa.String, nullable=False))
    model: str = Field(sa_column=sa.Column("model", sa.String, nullable=False))
    sample: int = Field(sa_column=sa.Column("sample", sa.Integer, nullable=False))
    attempt: int = Field(sa_column=sa.Column("attempt", sa.Integer, nullable=False))
    cache_key: str = Field(sa_column=sa.Column("cache_key", sa.String, nullable=False))
    prompt_digest: str = Field(sa_column=sa.Column("prompt_digest", sa.String, nullable=False))
    prompt: list[dict[str, Any]] = _json_column("prompt")
    reply: str | None = Field(default=None, sa_column=sa.Column("reply", sa.Text))
    status: str = Field(sa_column=sa.Column("status", sa.String(16), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column("error", sa.Text))
    tokens_in: int = Field(default=0, sa_column=sa.Column("tokens_in", sa.Integer, nullable=False))
    tokens_out: int = Field(
        default=0, sa_column=sa.Column("tokens_out", sa.Integer, nullable=False)
    )
    cost_usd: Decimal = _money_column("cost_usd")
    latency_ms: int = Field(
        default=0, sa_column=sa.Column("latency_ms", sa.Integer, nullable=False)
    )
    cached: bool = Field(default=False, sa_column=sa.Column("cached", sa.Boolean, nullable=False))
    at: datetime = _now_column("at")
    #: The attempt's own id: the write-ahead (``pending``) row is completed by it.
    call_id: str | None = Field(default=None, sa_column=sa.Column("call_id", sa.String(32)))
    #: Prompt tokens at the model's price: what an ``unknown`` call is booked at.
    estimated_cost_usd: Decimal | None = _money_column("estimated_cost_usd", nullable=True)
    #: When a ``pending`` call must have ended (sent + timeout + grace); later it is ``unknown``.
    expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column("expires_at", UTCDateTime(), nullable=True)
    )
    #: The verification job the call was made for (None outside jobs).
    job_pk: int | None = Field(default=None, sa_column=sa.Column("job_pk", BigPK, nullable=True))
    #: ``host:pid`` of the process that made the call (its pending calls die with it).
    owner: str | None = Field(default=None, sa_column=sa.Column("owner", sa.String(200)))
    #: Why the call was made: ``verify`` (the only calls served again as a cache), ``bias`` or
    #: ``canary`` (see :data:`CALL_PURPOSES`).
    purpose: str = Field(
        default="verify",
        sa_column=sa.Column("purpose", sa.String(16), nullable=False, server_default="verify"),
    )


class LabelRow(SQLModel, table=True):
    """A human judgement of an outcome (ground truth for calibration).

    ``digest`` covers the label's content and source, so the same label recorded twice (an
    outcome re-ingested with its embedded label) is stored once.
    """

    __tablename__ = "labels"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "outcome_id", "digest", name="uq_labels_digest"),
        sa.Index("ix_labels_tenant_outcome", "tenant", "outcome_id"),
        _tenant_fk("labels"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    resolved: bool = Field(sa_column=sa.Column("resolved", sa.Boolean, nullable=False))
    by: str | None = Field(default=None, sa_column=sa.Column("by", sa.String(200)))
    at: datetime | None = Field(default=None, sa_column=sa.Column("at", UTCDateTime()))
    criteria: dict[str, bool] = _json_column("criteria")
    note: str | None = Field(default=None, sa_column=sa.Column("note", sa.Text))
    source: str = Field(sa_column=sa.Column("source", sa.String(50), nullable=False))
    digest: str = Field(sa_column=sa.Column("digest", sa.String(64), nullable=False))
    created_at: datetime = _now_column("created_at")


class BillingPeriodRow(SQLModel, table=True):
    """A tenant's billing period ``[start, end)`` (a UTC month); ``closed`` periods are frozen.

    Nothing is ever booked into a closed period: a late revocation goes to the current open one
    (:mod:`ledger.periods`). Closing is one-way (``closed_at`` records when).
    """

    __tablename__ = "billing_periods"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "start", name="uq_billing_periods_start"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_billing_periods_status"),
        sa.CheckConstraint('"end" > start', name="ck_billing_periods_span"),
        _tenant_fk("billing_periods"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    start: datetime = Field(sa_column=sa.Column("start", UTCDateTime(), nullable=False))
    end: datetime = Field(sa_column=sa.Column("end", UTCDateTime(), nullable=False))
    status: str = Field(sa_column=sa.Column("status", sa.String(16), nullable=False))
    closed_at: datetime | None = Field(
        default=None, sa_column=sa.Column("closed_at", UTCDateTime(), nullable=True)
    )


class RevocationRow(SQLModel, table=True):
    """A verdict taken back after the fact (a reopen, a late low CSAT, a human overturn).

    Booked in the open period it was recorded in (``booked_period_start``); ``occurred_at`` is
    when the revoking event happened, which may lie in an earlier, closed period. One row per
    (tenant, outcome id, revoked verdict, reason).
    """

    __tablename__ = "revocations"
    __table_args__ = (
        sa.UniqueConstraint(
            "tenant", "outcome_id", "verdict_pk", "reason", name="uq_revocations_identity"
        ),
        sa.Index("ix_revocations_tenant_outcome", "tenant", "outcome_id"),
        sa.Index("ix_revocations_tenant_period", "tenant", "booked_period_start"),
        sa.ForeignKeyConstraint(["verdict_pk"], ["verdicts.pk"], name="fk_revocations_verdict"),
        sa.ForeignKeyConstraint(
            ["tenant", "booked_period_start"],
            ["billing_periods.tenant", "billing_periods.start"],
            name="fk_revocations_booked_period",
        ),
        _tenant_fk("revocations"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    verdict_pk: int = Field(sa_column=sa.Column("verdict_pk", BigPK, nullable=False))
    reason: str = Field(sa_column=sa.Column("reason", sa.String(32), nullable=False))
    detail: str | None = Field(default=None, sa_column=sa.Column("detail", sa.Text))
    booked_period_start: datetime = Field(
        sa_column=sa.Column("booked_period_start", UTCDateTime(), nullable=False)
    )
    occurred_at: datetime = Field(sa_column=sa.Column("occurred_at", UTCDateTime(), nullable=False))
    created_at: datetime = _now_column("created_at")
    #: The moment the revocation counts in the meters (its meter entry's ``booked_at``); None for
    #: revocations booked before migration 0006 (they count at their booking moment).
    booked_at: datetime | None = Field(
        default=None, sa_column=sa.Column("booked_at", UTCDateTime(), nullable=True)
    )


#: The kinds of cost entry the ledger accepts (``ck_cost_entries_kind`` lists the same).
COST_ENTRY_KINDS = ("human_review",)
MINUTES_PRECISION = 12
MINUTES_SCALE = 4


class CostEntryRow(SQLModel, table=True):
    """A cost booked against one outcome besides inference and judging (append-only).

    ``kind`` is ``"human_review"`` for now: ``minutes`` of a person's time on the outcome, priced
    at report time (``judge cost report --labor-rate``). ``amount_usd`` and
    ``labour_rate_usd_per_hour`` are for entries that carry their own price.
    """

    __tablename__ = "cost_entries"
    __table_args__ = (
        sa.Index("ix_cost_entries_tenant_outcome", "tenant", "outcome_id"),
        sa.CheckConstraint("kind IN ('human_review')", name="ck_cost_entries_kind"),
        sa.CheckConstraint("minutes IS NULL OR minutes >= 0", name="ck_cost_entries_minutes"),
        sa.CheckConstraint("amount_usd IS NULL OR amount_usd >= 0", name="ck_cost_entries_amount"),
        sa.CheckConstraint(
            "labour_rate_usd_per_hour IS NULL OR labour_rate_usd_per_hour >= 0",
            name="ck_cost_entries_labour_rate",
        ),
        _tenant_fk("cost_entries"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    kind: str = Field(sa_column=sa.Column("kind", sa.String(32), nullable=False))
    minutes: Decimal | None = Field(
        default=None,
        sa_column=sa.Column("minutes", sa.Numeric(MINUTES_PRECISION, MINUTES_SCALE), nullable=True),
    )
    amount_usd: Decimal | None = _money_column("amount_usd", nullable=True)
    labour_rate_usd_per_hour: Decimal | None = _money_column(
        "labour_rate_usd_per_hour", nullable=True
    )
    by: str | None = Field(default=None, sa_column=sa.Column("by", sa.String(200)))
    note: str | None = Field(default=None, sa_column=sa.Column("note", sa.Text))
    at: datetime = Field(sa_column=sa.Column("at", UTCDateTime(), nullable=False))
    created_at: datetime = _now_column("created_at")


#: The kinds of touch the ledger accepts (``ck_touches_kind`` lists the same; they mirror
#: :data:`judge.models.TouchKind`).
TOUCH_KINDS = ("ai", "human", "router", "automation")


class TouchRow(SQLModel, table=True):
    """One touch of one outcome revision: who acted on it (``actor``), as what (``kind``), when.

    Written with the revision it belongs to (``seq`` is its position in that revision's
    ``touches`` list) and never changed; a re-ingest of the same payload writes none. The
    ``(tenant, actor)`` index serves per-actor questions (attribution, human review load).
    """

    __tablename__ = "touches"
    __table_args__ = (
        sa.UniqueConstraint(
            "tenant", "outcome_id", "outcome_revision", "seq", name="uq_touches_position"
        ),
        sa.Index("ix_touches_tenant_actor", "tenant", "actor"),
        sa.CheckConstraint(
            "kind IN ('ai', 'human', 'router', 'automation')", name="ck_touches_kind"
        ),
        sa.CheckConstraint("seq >= 0", name="ck_touches_seq"),
        sa.ForeignKeyConstraint(
            ["tenant", "outcome_id", "outcome_revision"],
            ["outcomes.tenant", "outcomes.outcome_id", "outcomes.revision"],
            name="fk_touches_outcome_revision",
        ),
        _tenant_fk("touches"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    outcome_revision: int = Field(
        sa_column=sa.Column("outcome_revision", sa.Integer, nullable=False)
    )
    seq: int = Field(sa_column=sa.Column("seq", sa.Integer, nullable=False))
    actor: str = Field(sa_column=sa.Column("actor", sa.String(200), nullable=False))
    kind: str = Field(sa_column=sa.Column("kind", sa.String(16), nullable=False))
    at: datetime | None = Field(
        default=None, sa_column=sa.Column("at", UTCDateTime(), nullable=True)
    )


ALL_TABLES: tuple[type[SQLModel], ...] = (
    TenantRow,
    OutcomeRow,
    VerdictRow,
    JudgeCallRow,
    LabelRow,
    BillingPeriodRow,
    RevocationRow,
    CostEntryRow,
    TouchRow,
)

# The service's tables live in their own modules; importing them registers them on the metadata.
# (ALL_TABLES above lists the core tables; ledger.service_tables.SERVICE_TABLES and
# ledger.shared_state_tables.SHARED_STATE_TABLES and ledger.attested_tables.ATTESTED_TABLES
# list those.)
from ledger import attested_tables as _attested_tables  # noqa: E402, F401
from ledger import service_tables as _service_tables  # noqa: E402, F401
from ledger import shared_state_tables as _shared_state_tables  # noqa: E402, F401

"""The service's tables: API keys, verification jobs and their items, stored rubrics and panels,
the per-outcome billing facts that the meters count, and ended web sessions.

Registered on ``SQLModel.metadata`` together with :mod:`ledger.tables` (which imports this module
at its end). The conventions of :mod:`ledger.tables` hold here too; two tables here are the
exception to "append-only": ``jobs``/``job_items`` are a work queue (their status moves forward),
and ``outcome_facts`` holds one current row per billable outcome (the meter's index), which is
frozen once the outcome is final (see :mod:`ledger.facts`). ``web_session_revocations`` drops
rows once the session they name has expired (a signed cookie past its expiry is refused anyway).
Stored audits (``audits``) are append-only like the ledger.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.columns import (
    BigPK,
    UTCDateTime,
    _json_column,
    _money_column,
    _now_column,
    _pk_column,
    _tenant_column,
    _tenant_fk,
)

#: The states of a verification job (``ck_jobs_status`` lists the same).
JOB_STATUSES = ("queued", "running", "waiting", "done", "failed", "cancelled")
#: The states of one outcome inside a job.
JOB_ITEM_STATUSES = ("pending", "done", "failed")
#: What a stored document is.
DOCUMENT_KINDS = ("rubric", "panel")


class ApiKeyRow(SQLModel, table=True):
    """An API key of a tenant. Only a SHA-256 of the key is stored; ``key_id`` is its public part.

    Keys are 32 random bytes, so a plain (unsalted) SHA-256 is enough: there is nothing to
    brute-force. ``revoked_at`` set means the key no longer authenticates. ``scopes`` limits
    what the key may change (:data:`ledger.tenants.KEY_SCOPES`).
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
        sa.Index("ix_api_keys_tenant", "tenant"),
        _tenant_fk("api_keys"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    key_id: str = Field(sa_column=sa.Column("key_id", sa.String(32), nullable=False))
    key_hash: str = Field(sa_column=sa.Column("key_hash", sa.String(64), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column("name", sa.String(200)))
    #: Comma-separated :data:`ledger.tenants.KEY_SCOPES`; NULL: every scope.
    scopes: str | None = Field(default=None, sa_column=sa.Column("scopes", sa.String(64)))
    created_at: datetime = _now_column("created_at")
    revoked_at: datetime | None = Field(
        default=None, sa_column=sa.Column("revoked_at", UTCDateTime(), nullable=True)
    )


class JobRow(SQLModel, table=True):
    """A verification job: a set of outcomes to verify with one panel under given rubrics.

    ``rubrics`` maps outcome kind to a rubric name; ``panel`` is a panel name (stored or
    ``default``). ``counts`` holds the decisions so far; ``waiting_reason`` says why a job that
    could run does not (a tenant's daily judge budget is spent).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("job_id", name="uq_jobs_job_id"),
        sa.Index("ix_jobs_tenant_created", "tenant", "created_at"),
        sa.Index("ix_jobs_status", "status"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'waiting', 'done', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        _tenant_fk("jobs"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    job_id: str = Field(sa_column=sa.Column("job_id", sa.String(40), nullable=False))
    status: str = Field(sa_column=sa.Column("status", sa.String(16), nullable=False))
    rubrics: dict[str, str] = _json_column("rubrics")
    panel: str = Field(sa_column=sa.Column("panel", sa.String(200), nullable=False))
    selection: dict[str, Any] = _json_column("selection")
    total: int = Field(default=0, sa_column=sa.Column("total", sa.Integer, nullable=False))
    completed: int = Field(default=0, sa_column=sa.Column("completed", sa.Integer, nullable=False))
    failed: int = Field(default=0, sa_column=sa.Column("failed", sa.Integer, nullable=False))
    counts: dict[str, int] = _json_column("counts")
    cost_usd: Decimal = _money_column("cost_usd")
    error: str | None = Field(default=None, sa_column=sa.Column("error", sa.Text))
    waiting_reason: str | None = Field(default=None, sa_column=sa.Column("waiting_reason", sa.Text))
    created_at: datetime = _now_column("created_at")
    started_at: datetime | None = Field(
        default=None, sa_column=sa.Column("started_at", UTCDateTime(), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=sa.Column("finished_at", UTCDateTime(), nullable=True)
    )


class JobItemRow(SQLModel, table=True):
    """One outcome of one job. Workers claim pending items in small batches under a lease.

    A claim sets ``lease_owner`` and ``lease_expires_at``; an item whose lease has expired (its
    worker died) can be claimed again. ``attempts`` counts claims.
    """

    __tablename__ = "job_items"
    __table_args__ = (
        sa.UniqueConstraint("job_pk", "outcome_id", name="uq_job_items_outcome"),
        sa.Index("ix_job_items_claim", "status", "lease_expires_at"),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], name="fk_job_items_job"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_job_items_status"),
    )

    pk: int | None = _pk_column()
    job_pk: int = Field(sa_column=sa.Column("job_pk", BigPK, nullable=False))
    tenant: str = Field(sa_column=sa.Column("tenant", sa.String(100), nullable=False))
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    status: str = Field(sa_column=sa.Column("status", sa.String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=sa.Column("attempts", sa.Integer, nullable=False))
    lease_owner: str | None = Field(
        default=None, sa_column=sa.Column("lease_owner", sa.String(100))
    )
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column("lease_expires_at", UTCDateTime(), nullable=True)
    )
    decision: str | None = Field(default=None, sa_column=sa.Column("decision", sa.String(16)))
    verdict_pk: int | None = Field(default=None, sa_column=sa.Column("verdict_pk", BigPK))
    error: str | None = Field(default=None, sa_column=sa.Column("error", sa.Text))
    finished_at: datetime | None = Field(
        default=None, sa_column=sa.Column("finished_at", UTCDateTime(), nullable=True)
    )


class StoredDocumentRow(SQLModel, table=True):
    """A rubric or panel YAML a tenant stored through the API (versioned by content hash)."""

    __tablename__ = "documents"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "kind", "name", "version", name="uq_documents_version"),
        sa.Index("ix_documents_tenant_kind_name", "tenant", "kind", "name"),
        sa.CheckConstraint("kind IN ('rubric', 'panel')", name="ck_documents_kind"),
        _tenant_fk("documents"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    kind: str = Field(sa_column=sa.Column("kind", sa.String(16), nullable=False))
    name: str = Field(sa_column=sa.Column("name", sa.String(200), nullable=False))
    version: str = Field(sa_column=sa.Column("version", sa.String(64), nullable=False))
    text: str = Field(sa_column=sa.Column("text", sa.Text, nullable=False))
    created_at: datetime = _now_column("created_at")


class OutcomeFactRow(SQLModel, table=True):
    """The current billable state of one outcome (one row per outcome; see :mod:`ledger.facts`).

    ``anchor_at`` is its verification window's anchor (else when it was received); ``final_at``
    is when it becomes final (anchor + the judging rubric's window + grace), after which later
    verdicts no longer change it. Where it counts in the meters is ``booked_at``: the meters read
    :class:`MeterEntryRow`, whose +1 entry ``booked_entry_pk`` is the outcome's current count.
    ``agent`` is the credited AI actor; ``agent_version`` is ``name@version`` (as in the cost
    report). Maintained by :mod:`ledger.facts`.
    """

    __tablename__ = "outcome_facts"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "outcome_id", name="uq_outcome_facts_outcome"),
        # The upsert's conflict target on both layouts: a partitioned table (ledger.partitions)
        # only has unique keys that contain its partition key, ``outcome_month``.
        sa.UniqueConstraint("tenant", "outcome_id", "outcome_month", name="uq_outcome_facts_month"),
        _tenant_fk("outcome_facts"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    outcome_revision: int = Field(
        sa_column=sa.Column("outcome_revision", sa.Integer, nullable=False)
    )
    verdict_pk: int = Field(sa_column=sa.Column("verdict_pk", BigPK, nullable=False))
    decision: str = Field(sa_column=sa.Column("decision", sa.String(16), nullable=False))
    tier: str | None = Field(default=None, sa_column=sa.Column("tier", sa.String(16)))
    agent: str | None = Field(default=None, sa_column=sa.Column("agent", sa.String(200)))
    agent_version: str | None = Field(
        default=None, sa_column=sa.Column("agent_version", sa.String(310))
    )
    model_path: str | None = Field(default=None, sa_column=sa.Column("model_path", sa.String(200)))
    anchor_at: datetime = Field(sa_column=sa.Column("anchor_at", UTCDateTime(), nullable=False))
    final_at: datetime = Field(sa_column=sa.Column("final_at", UTCDateTime(), nullable=False))
    updated_at: datetime = _now_column("updated_at")
    #: Where the outcome's current count is booked (``meter_entries.booked_at`` of
    #: ``booked_entry_pk``); None while it does not count (not verified, or revoked).
    booked_at: datetime | None = Field(
        default=None, sa_column=sa.Column("booked_at", UTCDateTime(), nullable=True)
    )
    booked_entry_pk: int | None = Field(
        default=None, sa_column=sa.Column("booked_entry_pk", BigPK, nullable=True)
    )
    #: The reason of the outcome's last meter entry (``verified``, ``late_arrival``, ``moved``,
    #: ``withdrawn`` or a revocation reason); None before it ever counted.
    booking_reason: str | None = Field(
        default=None, sa_column=sa.Column("booking_reason", sa.String(32), nullable=True)
    )
    #: The first instant (UTC) of the month the ledger received revision 1 of the outcome: never
    #: changes, so PostgreSQL can partition the facts by it (:mod:`ledger.partitions`).
    outcome_month: datetime = Field(
        sa_column=sa.Column("outcome_month", UTCDateTime(), nullable=False)
    )


#: The columns a meter entry carries for grouping and status (the meter index includes them).
METER_ENTRY_COLUMNS = (
    "delta", "reason", "final_at", "agent", "tier", "agent_version", "model_path",
)  # fmt: skip


class MeterEntryRow(SQLModel, table=True):
    """One signed count in the verified-outcomes meter (append-only, see :mod:`ledger.bookings`).

    ``delta`` is +1 (the outcome counts: ``verified`` at its anchor, ``late_arrival`` or
    ``moved`` when its anchor's window was already final or closed) or -1 (``withdrawn`` when a
    newer verdict takes back a count whose window is final, or a revocation reason:
    ``reopened``, ``csat_low``, ``human_overturn``, ``came_back``). ``booked_at`` places it in
    a meter window; an entry is never booked into a window that was final or closed when it was
    written, so a final meter value never changes. A provisional +1 replaced while its window is
    still open is deleted (it was never final); nothing else is ever deleted or updated.
    """

    __tablename__ = "meter_entries"
    __table_args__ = (
        sa.CheckConstraint("delta IN (-1, 1)", name="ck_meter_entries_delta"),
        # The meter's index: a range scan of one tenant's entries by booking moment; on
        # PostgreSQL it covers every column the meter reads (an index-only scan).
        sa.Index(
            "ix_meter_entries_meter",
            "tenant",
            "booked_at",
            postgresql_include=list(METER_ENTRY_COLUMNS),
        ),
        sa.Index("ix_meter_entries_outcome", "tenant", "outcome_id"),
        _tenant_fk("meter_entries"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    verdict_pk: int = Field(sa_column=sa.Column("verdict_pk", BigPK, nullable=False))
    delta: int = Field(sa_column=sa.Column("delta", sa.SmallInteger, nullable=False))
    reason: str = Field(sa_column=sa.Column("reason", sa.String(32), nullable=False))
    booked_at: datetime = Field(sa_column=sa.Column("booked_at", UTCDateTime(), nullable=False))
    anchor_at: datetime = Field(sa_column=sa.Column("anchor_at", UTCDateTime(), nullable=False))
    final_at: datetime = Field(sa_column=sa.Column("final_at", UTCDateTime(), nullable=False))
    tier: str | None = Field(default=None, sa_column=sa.Column("tier", sa.String(16)))
    agent: str | None = Field(default=None, sa_column=sa.Column("agent", sa.String(200)))
    agent_version: str | None = Field(
        default=None, sa_column=sa.Column("agent_version", sa.String(310))
    )
    model_path: str | None = Field(default=None, sa_column=sa.Column("model_path", sa.String(200)))
    revocation_pk: int | None = Field(
        default=None, sa_column=sa.Column("revocation_pk", BigPK, nullable=True)
    )
    created_at: datetime = _now_column("created_at")


class WebSessionRevocationRow(SQLModel, table=True):
    """A web-interface session that was logged out before its cookie expired.

    The session cookie is signed, not stored, so logging out must be remembered here for as long
    as the cookie would still verify: every page checks that its session is not listed, in every
    API process that shares the database. ``session_id`` is the cookie's random nonce (useless
    without the server's signature); ``expires_at`` is the cookie's own expiry, after which the
    row can go.
    """

    __tablename__ = "web_session_revocations"
    __table_args__ = (
        sa.UniqueConstraint("session_id", name="uq_web_session_revocations_session"),
        sa.Index("ix_web_session_revocations_expires", "expires_at"),
        _tenant_fk("web_session_revocations"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    session_id: str = Field(sa_column=sa.Column("session_id", sa.String(64), nullable=False))
    key_id: str = Field(sa_column=sa.Column("key_id", sa.String(32), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column("expires_at", UTCDateTime(), nullable=False))
    revoked_at: datetime = _now_column("revoked_at")


class PullCursorRow(SQLModel, table=True):
    """Where ``judge pull`` stopped for one help-desk account, so the next run resumes there.

    One current row per (tenant, source, account), overwritten after every page that was durably
    written to the pull's output (an exception to "append-only": a cursor is a position, not a
    fact). ``cursor`` is the vendor's own position (JSON text: a Zendesk export cursor, or an
    Intercom ``updated_at`` watermark and page cursor); never a credential.
    """

    __tablename__ = "pull_cursors"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "source", "account", name="uq_pull_cursors_account"),
        _tenant_fk("pull_cursors"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    source: str = Field(sa_column=sa.Column("source", sa.String(20), nullable=False))
    account: str = Field(sa_column=sa.Column("account", sa.String(200), nullable=False))
    cursor: str = Field(sa_column=sa.Column("cursor", sa.Text(), nullable=False))
    pages: int = Field(default=0, sa_column=sa.Column("pages", sa.Integer(), nullable=False))
    records: int = Field(default=0, sa_column=sa.Column("records", sa.Integer(), nullable=False))
    updated_at: datetime = _now_column("updated_at")


class AuditRecordRow(SQLModel, table=True):
    """One stored audit of a vendor's claims (``POST /v1/audits``): the whole report as JSON.

    Append-only: an audit is a statement made at ``created_at`` about the ledger as it was then;
    auditing again makes a new row.
    """

    __tablename__ = "audits"
    __table_args__ = (sa.Index("ix_audits_tenant", "tenant", "pk"), _tenant_fk("audits"))

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    created_at: datetime = _now_column("created_at")
    period_from: datetime | None = Field(
        default=None, sa_column=sa.Column("period_from", UTCDateTime(), nullable=True)
    )
    period_to: datetime | None = Field(
        default=None, sa_column=sa.Column("period_to", UTCDateTime(), nullable=True)
    )
    claimed: int = Field(sa_column=sa.Column("claimed", sa.Integer(), nullable=False))
    # The listing's figures, copied from the report: a listing reads these, never the reports
    # (one of 50,000 claims is megabytes of JSON).
    billed_usd: float = Field(sa_column=sa.Column("billed_usd", sa.Double(), nullable=False))
    disputed_usd: float = Field(sa_column=sa.Column("disputed_usd", sa.Double(), nullable=False))
    disputes: int = Field(sa_column=sa.Column("disputes", sa.Integer(), nullable=False))
    report: dict[str, Any] = _json_column("report")


#: The columns a meter rollup carries besides its key (the rollup index includes them).
METER_ROLLUP_COLUMNS = (
    "agent", "tier", "agent_version", "model_path", "reason", "value", "last_final",
)  # fmt: skip


class MeterRollupRow(SQLModel, table=True):
    """The meter entries of one tenant's final UTC day, summed per group and reason, for each
    grouping a meter can ask for.

    ``group_mask`` says which dimensions the row is grouped by (a bit each, see
    :data:`ledger.meter_rollups.GROUPING_BITS`; the others are None): for each of the 16 subsets
    of agent, tier, agent_version and model_path, one row per (``day``, values of those
    dimensions, ``reason``) that has entries. ``value`` is their net count (may be 0),
    ``last_final`` their latest ``final_at``. Written once, when the day becomes final
    (:mod:`ledger.meter_rollups`): no entry is ever booked into a final day, so a rollup row
    never changes. A meter reads the rows of its own grouping for final days (as many as it
    returns) and counts the rest from :class:`MeterEntryRow`.
    """

    __tablename__ = "meter_rollups"
    __table_args__ = (
        # One tenant's days of one grouping in order; on PostgreSQL it covers every column the
        # meter reads (an index-only scan).
        sa.Index(
            "ix_meter_rollups_meter",
            "tenant",
            "group_mask",
            "day",
            postgresql_include=list(METER_ROLLUP_COLUMNS),
        ),
        _tenant_fk("meter_rollups"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    group_mask: int = Field(sa_column=sa.Column("group_mask", sa.SmallInteger, nullable=False))
    day: datetime = Field(sa_column=sa.Column("day", UTCDateTime(), nullable=False))
    tier: str | None = Field(default=None, sa_column=sa.Column("tier", sa.String(16)))
    agent: str | None = Field(default=None, sa_column=sa.Column("agent", sa.String(200)))
    agent_version: str | None = Field(
        default=None, sa_column=sa.Column("agent_version", sa.String(310))
    )
    model_path: str | None = Field(default=None, sa_column=sa.Column("model_path", sa.String(200)))
    reason: str = Field(sa_column=sa.Column("reason", sa.String(32), nullable=False))
    value: int = Field(sa_column=sa.Column("value", sa.Integer, nullable=False))
    last_final: datetime = Field(sa_column=sa.Column("last_final", UTCDateTime(), nullable=False))


#: Where verified counts are exported (``judge export meter --to``), and verdicts (``otlp``).
EXPORT_TARGETS = ("cloudevents", "openmeter", "lago", "stripe", "otlp")
#: What one exported event does: count an outcome, take a count back with a negative value,
#: cancel an earlier event (Stripe, within its 24 hours), or report a verdict (``evaluation``,
#: whose ``entry_pk`` is the verdict's).
EXPORT_KINDS = ("usage", "negative", "cancel", "evaluation")


class MeterExportRow(SQLModel, table=True):
    """One event sent (or being sent) to a billing system for one meter entry, or to a tracing
    system for one verdict (target ``otlp``, kind ``evaluation``).

    Written ``pending`` before the request and ``sent`` after the target accepted it, so a run
    that dies in between re-sends the same idempotency ``key`` (the target drops the repeat).
    ``destination`` is the endpoint without credentials; ``corrects`` is the key of the usage
    event a ``negative`` or ``cancel`` takes back.
    """

    __tablename__ = "meter_exports"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "target", "destination", "key", name="uq_meter_exports_key"),
        sa.Index("ix_meter_exports_destination", "tenant", "target", "destination"),
        _tenant_fk("meter_exports"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    target: str = Field(sa_column=sa.Column("target", sa.String(20), nullable=False))
    destination: str = Field(sa_column=sa.Column("destination", sa.String(500), nullable=False))
    key: str = Field(sa_column=sa.Column("key", sa.String(300), nullable=False))
    kind: str = Field(sa_column=sa.Column("kind", sa.String(16), nullable=False))
    entry_pk: int = Field(sa_column=sa.Column("entry_pk", BigPK, nullable=False))
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    value: int = Field(sa_column=sa.Column("value", sa.SmallInteger, nullable=False))
    corrects: str | None = Field(default=None, sa_column=sa.Column("corrects", sa.String(300)))
    status: str = Field(sa_column=sa.Column("status", sa.String(16), nullable=False))
    created_at: datetime = _now_column("created_at")
    sent_at: datetime | None = Field(
        default=None, sa_column=sa.Column("sent_at", UTCDateTime(), nullable=True)
    )


class ReviewQueueRow(SQLModel, table=True):
    """One outcome waiting for a human label (the review queue, kept as verdicts and labels are
    written; see :mod:`ledger.review_index`): its latest verdict abstained, is flagged, or is a
    verified one sampled for audit, and it has no label. ``sort_at`` is the outcome's window
    anchor, else when the verdict was recorded: the queue is read oldest first from the index.
    A row is replaced by the outcome's next verdict and deleted by its first label.
    """

    __tablename__ = "review_queue"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "outcome_id", name="uq_review_queue_outcome"),
        sa.Index("ix_review_queue_order", "tenant", "sort_at", "verdict_at", "outcome_id"),
        _tenant_fk("review_queue"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    outcome_id: str = Field(sa_column=sa.Column("outcome_id", sa.String(200), nullable=False))
    reason: str = Field(sa_column=sa.Column("reason", sa.String(16), nullable=False))
    sort_at: datetime = Field(sa_column=sa.Column("sort_at", UTCDateTime(), nullable=False))
    anchor_at: datetime | None = Field(
        default=None, sa_column=sa.Column("anchor_at", UTCDateTime(), nullable=True)
    )
    verdict_at: datetime = Field(sa_column=sa.Column("verdict_at", UTCDateTime(), nullable=False))
    verdict_pk: int = Field(sa_column=sa.Column("verdict_pk", BigPK, nullable=False))
    decision: str = Field(sa_column=sa.Column("decision", sa.String(16), nullable=False))
    confidence: float = Field(sa_column=sa.Column("confidence", sa.Float, nullable=False))
    flags: list[str] = _json_column("flags")
    rubric: str = Field(sa_column=sa.Column("rubric", sa.String, nullable=False))
    panel: str = Field(sa_column=sa.Column("panel", sa.String, nullable=False))
    kind: str = Field(sa_column=sa.Column("kind", sa.String(32), nullable=False))


SERVICE_TABLES: tuple[type[SQLModel], ...] = (
    ApiKeyRow,
    JobRow,
    JobItemRow,
    StoredDocumentRow,
    OutcomeFactRow,
    MeterEntryRow,
    WebSessionRevocationRow,
    PullCursorRow,
    AuditRecordRow,
    MeterExportRow,
    ReviewQueueRow,
    MeterRollupRow,
)

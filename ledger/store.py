"""The ledger store: what the CLI and the engine write outcomes, verdicts, calls and labels into.

Every write is one transaction (all or nothing) and idempotent where the data has an identity:

- an outcome is identified by (tenant, outcome id): the same payload again stores nothing; a
  changed payload becomes revision + 1 and the earlier revisions stay (never overwritten);
- a label is identified by (tenant, outcome id, content): recorded once however often it arrives;
- verdicts and judge calls are events: each one recorded is a new row (history).

:class:`Ledger` is synchronous (the CLI, the API in a thread); the async
:class:`judge.protocols.CallStore` the engine records every model attempt into is
:class:`ledger.callstore.DbCallStore`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from judge.models import Label, Outcome, as_utc, digest_of
from judge.verdict import CallStatus, JudgeCall, Verdict
from ledger.db import make_engine, session
from ledger.facts import record_facts
from ledger.integrity import DEFAULT_FUTURE_TOLERANCE, check_timestamps
from ledger.outcome_locks import LedgerConflictError, lock_outcomes, outcome_lock_key
from ledger.reads import LedgerReads
from ledger.records import (
    EMBEDDED_LABEL_SOURCE,
    OutcomeRef,
    RecordedResult,
    by_a_person,
)
from ledger.review_index import drop_review_rows, refresh_review_rows
from ledger.rewrites import hold_rewrites
from ledger.schema import migrate
from ledger.tables import (
    JudgeCallRow,
    LabelRow,
    OutcomeRow,
    TenantRow,
    TouchRow,
    VerdictRow,
    to_money,
    utcnow,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_TENANT = "default"
_RACE_RETRIES = 5
_MAX_TENANT_CHARS = 100


class TenantMismatchError(ValueError):
    """An outcome names a tenant other than the one this ledger writes for."""


class UnknownOutcomeError(LookupError):
    """A label (or another record about an outcome) names an outcome this tenant does not have."""


def check_tenant_name(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant.strip():
        raise ValueError("tenant must be a non-empty string, e.g. tenant='acme'")
    if len(tenant) > _MAX_TENANT_CHARS:
        raise ValueError(f"tenant must be at most {_MAX_TENANT_CHARS} characters: {tenant[:40]!r}…")
    return tenant


def label_digest(label: Label) -> str:
    """The identity of a label's content: the same judgement arriving twice is stored once."""
    return digest_of(label.model_dump(mode="json"))


def _insert_ignore(
    db: Session, model: Any, values: dict[str, Any], conflict: Sequence[str]
) -> bool:
    """INSERT the row unless it collides on ``conflict`` (empty: on any unique key); True when a
    row was written."""
    dialect = db.get_bind().dialect
    returning = bool(dialect.insert_returning)  # SQLite >= 3.35 and PostgreSQL
    stmt = _insert_ignore_statement(dialect.name, model, tuple(conflict), returning)
    # The values go in as parameters, not into the statement: one compiled statement serves
    # every row, which is most of the cost of a batch.
    result: Any = db.execute(stmt, values)
    # psycopg reports no rowcount for this statement; a returned key means the row was written.
    return result.first() is not None if returning else bool(result.rowcount == 1)


@lru_cache(maxsize=32)
def _insert_ignore_statement(
    dialect: str, model: Any, conflict: tuple[str, ...], returning: bool
) -> Any:
    table = model.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).on_conflict_do_nothing(index_elements=list(conflict) or None)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict) or None)
    return stmt.returning(next(iter(table.primary_key.columns))) if returning else stmt


def _set_based(outcome_ids: Sequence[str]) -> bool:
    """Whether a batch of verdicts is written set-based (:mod:`ledger.verdict_batch`): when
    its outcomes are distinct. An outcome twice is written row by row, each verdict on the
    revision written just before it."""
    return len(set(outcome_ids)) == len(outcome_ids)


def ensure_tenant(engine: Engine, tenant: str) -> None:
    """Create the tenant row if it does not exist (safe to call concurrently)."""
    with session(engine) as db:
        _insert_ignore(db, TenantRow, {"name": tenant, "created_at": utcnow()}, ["name"])


def call_values(
    tenant: str,
    call: JudgeCall,
    *,
    job_pk: int | None = None,
    owner: str | None = None,
    purpose: str = "verify",
) -> dict[str, Any]:
    """The ``judge_calls`` column values of ``call`` (for a Core INSERT: no ORM object)."""
    data = call.model_dump(mode="json")
    estimate = call.estimated_cost_usd
    data.update(
        tenant=tenant,
        purpose=purpose,
        at=call.at,
        cost_usd=to_money(call.cost_usd),
        estimated_cost_usd=None if estimate is None else to_money(estimate),
        expires_at=call.expires_at,
        job_pk=job_pk,
        owner=owner,
    )
    return data


def call_row(
    tenant: str, call: JudgeCall, *, job_pk: int | None = None, owner: str | None = None
) -> JudgeCallRow:
    return JudgeCallRow(**call_values(tenant, call, job_pk=job_pk, owner=owner))


def row_to_call(row: JudgeCallRow) -> JudgeCall:
    status: CallStatus = "error"
    if row.status in ("ok", "pending", "unknown"):
        status = row.status  # type: ignore[assignment]
    estimate = row.estimated_cost_usd
    return JudgeCall(
        outcome_id=row.outcome_id,
        judge=row.judge,
        model=row.model,
        sample=row.sample,
        attempt=row.attempt,
        cache_key=row.cache_key,
        prompt_digest=row.prompt_digest,
        prompt=row.prompt,
        reply=row.reply,
        status=status,
        error=row.error,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
        cost_usd=float(row.cost_usd),
        latency_ms=row.latency_ms,
        cached=row.cached,
        at=row.at,
        call_id=row.call_id or uuid.uuid4().hex,
        estimated_cost_usd=None if estimate is None else float(estimate),
        expires_at=row.expires_at,
    )


class Ledger(LedgerReads):
    """The ledger of one tenant over one database.

    Parameters
    ----------
    engine
        From :func:`ledger.db.make_engine`, already migrated (:func:`ledger.schema.migrate`), or use
        :meth:`Ledger.open`, which does both.
    tenant
        Every row written and read belongs to this tenant. An outcome that names another tenant
        is refused (:class:`TenantMismatchError`), never silently re-filed.
    future_tolerance
        How far after now an outcome's timestamps may lie (clock skew); later ones are refused
        before anything is written (:class:`FutureTimestampError`, see :func:`check_timestamps`).

    Examples
    --------
    >>> from judge.models import Outcome
    >>> ledger = Ledger.open("sqlite://", tenant="acme")
    >>> ticket = Outcome(id="T-1", kind="support_ticket",
    ...                  conversation=[{"role": "customer", "text": "refund please"}])
    >>> ledger.record_outcome(ticket).revision, ledger.record_outcome(ticket).created
    (1, False)
    >>> ledger.counts()["outcomes"]
    1
    >>> ledger.close()
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tenant: str = DEFAULT_TENANT,
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    ) -> None:
        if not isinstance(future_tolerance, timedelta) or future_tolerance < timedelta(0):
            raise ValueError(
                f"future_tolerance must be a timedelta >= 0, e.g. timedelta(minutes=5); got "
                f"{future_tolerance!r}"
            )
        self.engine = engine
        self.tenant = check_tenant_name(tenant)
        self.future_tolerance = future_tolerance
        self._tenant_ready = False
        self._owns_engine = False

    @classmethod
    def open(
        cls,
        url: str,
        *,
        tenant: str = DEFAULT_TENANT,
        upgrade: bool = True,
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    ) -> Ledger:
        """Connect to ``url``, bring the schema up to date (``upgrade``) and return the ledger.

        Raises :class:`ledger.db.LedgerDatabaseError` with the fix when the database is unusable.
        """
        tenant = check_tenant_name(tenant)
        engine = make_engine(url)
        try:
            if upgrade:
                migrate(engine)
            ledger = cls(engine, tenant=tenant, future_tolerance=future_tolerance)
        except BaseException:
            engine.dispose()
            raise
        ledger._owns_engine = True
        return ledger

    def close(self) -> None:
        """Release the connections (only those of an engine this ledger opened itself)."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def _ready(self) -> None:
        if not self._tenant_ready:
            ensure_tenant(self.engine, self.tenant)
            self._tenant_ready = True

    def _check_outcome(self, outcome: Outcome) -> None:
        if not isinstance(outcome, Outcome):
            raise TypeError(f"expected a judge.models.Outcome, got {type(outcome).__name__}")
        if outcome.tenant is not None and outcome.tenant != self.tenant:
            raise TenantMismatchError(
                f"outcome {outcome.id!r} belongs to tenant {outcome.tenant!r} but this ledger "
                f"writes for tenant {self.tenant!r}: open the ledger for {outcome.tenant!r} "
                "(CLI: --tenant) or remove the outcome's 'tenant' field"
            )
        check_timestamps(outcome, now=utcnow(), tolerance=self.future_tolerance)

    def record_outcome(self, outcome: Outcome) -> OutcomeRef:
        """Store the outcome unless its latest revision already has exactly this payload.

        A changed payload (conversation, signals, label, cost, metadata: anything) is stored as
        revision + 1; earlier revisions are kept.
        """
        self._check_outcome(outcome)
        self._ready()
        with session(self.engine) as db:
            return self._write_outcome(db, outcome)

    def record_result(
        self,
        outcome: Outcome,
        verdict: Verdict,
        *,
        calls: Sequence[JudgeCall] = (),
        windows: Mapping[str, float] | None = None,
        now: datetime | None = None,
    ) -> RecordedResult:
        """Store the outcome (idempotently), its verdict, its embedded label (once) and ``calls``.

        One transaction: if anything fails, nothing of it is written. ``windows`` and ``now``
        as in :meth:`record_results`.
        """
        return self.record_results([(outcome, verdict)], calls=calls, windows=windows, now=now)[0]

    def record_results(
        self,
        results: Sequence[tuple[Outcome, Verdict]],
        *,
        calls: Sequence[JudgeCall] = (),
        windows: Mapping[str, float] | None = None,
        now: datetime | None = None,
        embedded_labels: bool = True,
    ) -> list[RecordedResult]:
        """Store many (outcome, verdict) pairs like :meth:`record_result`, in ONE transaction.

        Batching is what keeps a long ``judge verify`` run from waiting on one commit per
        outcome; if anything in the batch fails, nothing of the batch is written.

        ``windows`` maps rubric refs (``name@version``) to the ``window_hours`` of the rubrics
        that judged (what makes an outcome final; resolved from the ledger when not given).
        ``now`` is the write time (default: the clock): it decides which facts are frozen and
        where late meter entries go (see :mod:`ledger.bookings`). ``embedded_labels=False``
        stores no label from the outcomes: a worker judges outcomes read back from the ledger,
        whose labels were stored at ingest with the source the sender's key allowed (written
        again here, a ``submitted`` label would come back as a human one).
        """
        from ledger.bookings import lock_clock

        checked = [self._checked_result(outcome, verdict) for outcome, verdict in results]
        rows = [call_row(self.tenant, call) for call in calls]
        moment = utcnow() if now is None else as_utc(now)
        self._ready()
        ids = [outcome.id for outcome, _, _ in checked]
        with session(self.engine) as db:
            # The tenant row first (FOR SHARE), then the outcomes: the lock order every writer of
            # meter entries follows (see ledger.bookings).
            lock_clock(db.connection(), self.tenant, moment)
            # A verified ticket whose conversation lost messages of its stored revisions is held
            # for review here, where every verdict is written (judge verify and workers alike).
            checked = hold_rewrites(db.connection(), self.tenant, checked)
            written: Sequence[tuple[OutcomeRef, Any, bool]]
            if _set_based(ids):
                from ledger.verdict_batch import write_results

                # Set-based: the outcomes' locks, look-ups and rows, then the verdicts, each in
                # one statement for the batch.
                written = write_results(
                    db.connection(), self.tenant, checked, embedded_labels=embedded_labels
                )
            else:  # an outcome twice: each verdict on the revision written just before it
                self._lock_outcomes(db, ids)
                # Verdict rows are inserted together at the end (one executemany), not one by
                # one before each outcome look-up; outcome and label rows as they come.
                with db.no_autoflush:
                    written = [
                        self._write_result(db, o, v, h, embedded_labels=embedded_labels)
                        for o, v, h in checked
                    ]
            db.add_all(rows)
            db.flush()
            recorded = []
            for (_, verdict, _), (ref, row, label_added) in zip(checked, written, strict=True):
                assert row.pk is not None
                recorded.append(
                    RecordedResult(
                        outcome=ref, verdict_pk=row.pk, label_added=label_added, verdict=verdict
                    )
                )
            # The meters' facts and entries commit with the verdicts (both or neither).
            record_facts(
                db.connection(),
                self.tenant,
                [
                    (o, ref.revision, row.pk, row.decision, row.tier, row.rubric)
                    for (o, _, _), (ref, row, _) in zip(checked, written, strict=True)
                    if row.pk is not None
                ],
                now=moment,
                windows=windows,
            )
            refresh_review_rows(
                db.connection(),
                self.tenant,
                [(o, row) for (o, _, _), (_, row, _) in zip(checked, written, strict=True)],
            )
        return recorded

    def _checked_result(self, outcome: Outcome, verdict: Verdict) -> tuple[Outcome, Verdict, str]:
        self._check_outcome(outcome)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"expected a judge.verdict.Verdict, got {type(verdict).__name__}")
        if verdict.outcome_id != outcome.id:
            raise ValueError(
                f"verdict is for outcome {verdict.outcome_id!r}, not {outcome.id!r}: pass the "
                "outcome the verdict was made for"
            )
        content_hash = outcome.content_hash()
        if verdict.content_hash is not None and verdict.content_hash != content_hash:
            raise ValueError(
                f"verdict for {outcome.id!r} was made on different content (content hash "
                f"{verdict.content_hash[:12]}…, outcome has {content_hash[:12]}…): re-verify it"
            )
        if verdict.content_hash is None:
            verdict = verdict.model_copy(update={"content_hash": content_hash})
        return outcome, verdict, content_hash

    def _write_result(
        self,
        db: Session,
        outcome: Outcome,
        verdict: Verdict,
        content_hash: str,
        *,
        embedded_labels: bool = True,
    ) -> tuple[OutcomeRef, VerdictRow, bool]:
        ref = self._write_outcome(db, outcome)
        row = VerdictRow(
            tenant=self.tenant,
            outcome_id=outcome.id,
            outcome_revision=ref.revision,
            content_hash=content_hash,
            decision=verdict.decision,
            confidence=verdict.confidence,
            tier=verdict.tier,
            rubric=verdict.rubric,
            panel=verdict.panel,
            flags=list(verdict.flags),
            payload=verdict.model_dump(mode="json"),
            cost_usd=to_money(verdict.cost_usd),
        )
        db.add(row)
        label_added = False
        if outcome.label is not None and embedded_labels:
            label_added = self._write_label(db, outcome.id, outcome.label, EMBEDDED_LABEL_SOURCE)
        return ref, row, label_added

    def record_label(self, outcome_id: str, label: Label, *, source: str = "api") -> bool:
        """Store a human label; False when the same label content is already recorded.

        Raises
        ------
        UnknownOutcomeError
            This tenant has no outcome ``outcome_id`` (a label of nothing would count in no
            calibration and could later attach to another tenant's way of spelling the id).
        """
        if not outcome_id:
            raise ValueError("outcome_id must be a non-empty string")
        if not isinstance(label, Label):
            raise TypeError(f"expected a judge.models.Label, got {type(label).__name__}")
        self._ready()
        with session(self.engine) as db:
            known = db.exec(
                select(OutcomeRow.pk)
                .where(OutcomeRow.tenant == self.tenant, OutcomeRow.outcome_id == outcome_id)
                .limit(1)
            ).first()
            if known is None:
                raise UnknownOutcomeError(
                    f"tenant {self.tenant!r} has no outcome {outcome_id!r}: record the outcome "
                    "before labelling it"
                )
            added = self._write_label(db, outcome_id, label, source)
            if by_a_person(source):  # a person's label: no longer queued
                drop_review_rows(db.connection(), self.tenant, [outcome_id])
            return added

    def record_calls(self, calls: Sequence[JudgeCall]) -> int:
        """Store judge calls (every attempt, failures included) in one transaction.

        Returns how many were stored.
        """
        rows = [call_row(self.tenant, call) for call in calls]
        if not rows:
            return 0
        self._ready()
        with session(self.engine) as db:
            db.add_all(rows)
        return len(rows)

    def _lock_key(self, outcome_id: str) -> str:
        return outcome_lock_key(self.tenant, outcome_id)

    def _lock_outcomes(self, db: Session, outcome_ids: Sequence[str]) -> None:
        """PostgreSQL: take the batch's outcome locks up front, in one order for every writer.

        Taken one by one as the batch is written, two batches holding the same ids in different
        orders would each wait for a lock the other holds (a deadlock, one batch aborted).
        """
        if len(outcome_ids) >= 2:
            lock_outcomes(db.connection(), self.tenant, outcome_ids)

    def _write_outcome(self, db: Session, outcome: Outcome) -> OutcomeRef:
        payload = outcome.model_dump(mode="json")
        payload_hash = digest_of(payload)
        content_hash = outcome.content_hash()
        if db.get_bind().dialect.name == "postgresql":
            # Writers of the same outcome take turns (until commit), so read-then-insert is exact.
            db.connection().execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": self._lock_key(outcome.id)},
            )
        for _ in range(_RACE_RETRIES):
            latest = db.exec(
                select(OutcomeRow.revision, OutcomeRow.payload_hash, OutcomeRow.content_hash)
                .where(OutcomeRow.tenant == self.tenant, OutcomeRow.outcome_id == outcome.id)
                .order_by(col(OutcomeRow.revision).desc())
                .limit(1)
            ).first()
            if latest is not None and latest[1] == payload_hash:
                return OutcomeRef(self.tenant, outcome.id, latest[0], latest[2], created=False)
            revision = 1 if latest is None else latest[0] + 1
            values = {
                "tenant": self.tenant,
                "outcome_id": outcome.id,
                "revision": revision,
                "content_hash": content_hash,
                "payload_hash": payload_hash,
                "kind": outcome.kind,
                "payload": payload,
                "agent_name": outcome.agent.name,
                "agent_version": outcome.agent.version,
                "model_path": outcome.agent.model_path,
                "agent_cost_usd": to_money(outcome.agent.cost_usd),
                "received_at": utcnow(),
            }
            # (SQLite: BEGIN IMMEDIATE serialises writers.) Should a writer outside this lock take
            # the revision first, read again and decide again.
            # No conflict target: the revision is the table's only unique key, and on a
            # partitioned ledger that key also holds received_at (ledger.partitions).
            if _insert_ignore(db, OutcomeRow, values, []):
                self._write_touches(db, outcome, revision)
                return OutcomeRef(self.tenant, outcome.id, revision, content_hash, created=True)
        raise LedgerConflictError(
            f"outcome {outcome.id!r} was changed concurrently {_RACE_RETRIES} times while being "
            "recorded; retry the ingest"
        )

    def _write_touches(self, db: Session, outcome: Outcome, revision: int) -> None:
        """A new revision's touches, one row each (``seq`` = list position), same transaction."""
        rows = [
            {
                "tenant": self.tenant,
                "outcome_id": outcome.id,
                "outcome_revision": revision,
                "seq": seq,
                "actor": touch.actor,
                "kind": touch.kind,
                "at": touch.at,
            }
            for seq, touch in enumerate(outcome.touches)
        ]
        if rows:
            db.execute(sa.insert(TouchRow), rows)

    def _write_label(self, db: Session, outcome_id: str, label: Label, source: str) -> bool:
        values = {
            "tenant": self.tenant,
            "outcome_id": outcome_id,
            "resolved": label.resolved,
            "by": label.by,
            "at": label.at,
            "criteria": dict(label.criteria),
            "note": label.note,
            "source": source,
            "digest": label_digest(label),
            "created_at": utcnow(),
        }
        # The caller takes labelled outcomes out of the review queue, once per batch.
        return _insert_ignore(db, LabelRow, values, ["tenant", "outcome_id", "digest"])

    # -- reading -----------------------------------------------------------------------------

"""The write of one ingest batch, set-based: what :func:`ledger.ingest.record_outcomes` does
inside its one transaction (and what :mod:`ledger.verdict_batch` does with a batch of verdicts'
outcomes).

Per batch, not per outcome (each look-up in chunks of 500 ids, the IN list every driver takes):

1. the tenant's row, if missing (INSERT .. ON CONFLICT DO NOTHING);
2. PostgreSQL: every outcome's advisory lock, sorted, in one statement
   (:func:`ledger.store.lock_outcomes`; SQLite's ``BEGIN IMMEDIATE`` already serialises writers);
3. one look-up of every id's latest stored revision (revision, payload hash, content hash);
4. only when an already stored outcome carries a label: one look-up of its stored labels;
5. the new revisions' rows and their touches: COPY on PostgreSQL, one executemany on SQLite;
6. only for labels not stored yet: one INSERT .. ON CONFLICT DO NOTHING, and one DELETE of
   their outcomes from the review queue (a labelled outcome waits for no label).

The rules are :meth:`ledger.store.Ledger.record_outcome`'s: the same payload again writes nothing
(``unchanged``), a changed one is revision + 1 (``revised``), a new id is revision 1
(``created``); a label is stored once per content. An unchanged outcome's embedded label is
checked too (4), so a label its revision was once stored without is added, as before.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from judge.models import Outcome, as_utc, canonical_json, content_hash_of, digest_of, text_digest
from ledger.db import among, chunked, insert_for
from ledger.outcome_locks import lock_outcomes
from ledger.records import EMBEDDED_LABEL_SOURCE, by_a_person
from ledger.review_index import drop_review_rows
from ledger.tables import LabelRow, OutcomeRow, TenantRow, TouchRow, to_money, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "IngestConflictError",
    "IngestStatus",
    "Prepared",
    "is_unique_violation",
    "prepare",
    "write_batch",
]

IngestStatus = Literal["created", "revised", "unchanged"]
_OUTCOME_COLUMNS = (
    "tenant",
    "outcome_id",
    "revision",
    "content_hash",
    "payload_hash",
    "kind",
    "payload",
    "agent_name",
    "agent_version",
    "model_path",
    "agent_cost_usd",
    "received_at",
)
_TOUCH_COLUMNS = ("tenant", "outcome_id", "outcome_revision", "seq", "actor", "kind", "at")


class IngestConflictError(Exception):
    """The batch conflicts with itself or with what is stored (HTTP 409): nothing written.

    ``details`` lists ``{"id", "reason", ...}`` per conflicting outcome.
    """

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class Prepared:
    """An outcome with what deciding whether it is new needs, computed once: its JSON dump and
    text, the hash of that text and its embedded label's digest (the content hash is taken only
    for the revisions written)."""

    outcome: Outcome
    payload: dict[str, Any]
    payload_text: str
    payload_hash: str
    label_digest: str | None


def prepare(outcome: Outcome) -> Prepared:
    """Dump ``outcome`` and hash it (the text is what COPY stores)."""
    payload = outcome.model_dump(mode="json")
    text = canonical_json(payload)
    label = payload.get("label")
    # The label's dump inside the outcome's is label.model_dump(mode="json"): label_digest().
    digest = None if label is None else digest_of(label)
    return Prepared(outcome, payload, text, text_digest(text), digest)


@dataclass(frozen=True, slots=True)
class _Latest:
    revision: int
    payload_hash: str


def write_batch(
    conn: Connection,
    tenant: str,
    outcomes: Sequence[Outcome],
    bases: Mapping[str, int],
    ready: Mapping[str, Prepared] | None = None,
    *,
    added_labels: set[str] | None = None,
    label_source: str | None = EMBEDDED_LABEL_SOURCE,
) -> dict[str, tuple[int, IngestStatus]]:
    """Store ``outcomes`` (distinct ids) on ``conn``, inside the caller's transaction.

    ``ready``: outcomes the caller has already prepared, by id (the others are prepared here,
    once each). ``added_labels``: filled with the ids whose embedded label was stored now.
    ``label_source``: what embedded labels are stored as (None: none is stored); an
    :data:`~ledger.records.UNREVIEWED_LABEL_SOURCE` label leaves its outcome in the review queue.
    Returns ``{outcome id: (revision, status)}``. Raises :class:`IngestConflictError` when a
    ``bases`` entry is not the latest stored revision (nothing is written then).
    """
    ids = [outcome.id for outcome in outcomes]
    tenants = TenantRow.__table__  # type: ignore[attr-defined]
    conn.execute(
        insert_for(conn.dialect.name, tenants).on_conflict_do_nothing(index_elements=["name"]),
        {"name": tenant, "created_at": utcnow()},
    )
    lock_outcomes(conn, tenant, ids)
    latest = _latest(conn, tenant, ids)
    _check_bases(bases, latest)
    stored_labels = _stored_labels(
        conn, tenant, [o.id for o in outcomes if o.label is not None and o.id in latest]
    )
    postgres = conn.dialect.name == "postgresql"
    now = utcnow()
    results: dict[str, tuple[int, IngestStatus]] = {}
    touch_rows: list[tuple[Any, ...]] = []
    label_rows: list[tuple[Any, ...]] = []

    def new_rows() -> Iterator[tuple[Any, ...]]:
        # Prepared as the insert consumes them: on PostgreSQL the COPY streams, so the database
        # stores the rows already sent while this process dumps and hashes the next ones (two
        # processes, two cores) instead of one waiting for the other.
        for outcome in outcomes:
            item = (ready or {}).get(outcome.id) or prepare(outcome)
            before = latest.get(outcome.id)
            digest = None if label_source is None else _label_key(item.label_digest, label_source)
            if digest is not None and (outcome.id, digest) not in stored_labels:
                label_rows.append(_label_row(item, digest))
            if before is not None and before.payload_hash == item.payload_hash:
                results[outcome.id] = (before.revision, "unchanged")
                continue
            revision = 1 if before is None else before.revision + 1
            results[outcome.id] = (revision, "created" if revision == 1 else "revised")
            touch_rows.extend(_touch_rows(tenant, outcome, revision))
            yield _outcome_row(tenant, item, revision, now, postgres)

    _insert(conn, OutcomeRow, _OUTCOME_COLUMNS, new_rows())
    _insert(conn, TouchRow, _TOUCH_COLUMNS, iter(touch_rows))
    if label_rows and label_source is not None:
        _insert_labels(conn, tenant, label_rows, now, label_source)
        if added_labels is not None:
            added_labels.update(row[0] for row in label_rows)
        if by_a_person(label_source):
            # Only an outcome stored before this batch can have a verdict, hence a queue row
            # (and no verdict can arrive meanwhile: writers of verdicts take the same locks).
            drop_review_rows(conn, tenant, [row[0] for row in label_rows if row[0] in latest])
    return results


def _latest(conn: Connection, tenant: str, ids: Sequence[str]) -> dict[str, _Latest]:
    """Each stored id's latest revision and payload hash.

    Every revision of the ids is read (one index range each; outcomes have few) and the latest
    kept here: a single-table look-up whose plan cannot go wrong. Joined to the ids' maximum
    revision in SQL, the statement, once PostgreSQL cached a generic plan for it, scanned the
    tenant's outcomes in full on every batch (seen: 2.5 CPU-ms an outcome in the database).
    """
    o = OutcomeRow.__table__  # type: ignore[attr-defined]
    out: dict[str, _Latest] = {}
    for chunk in chunked(ids):
        rows = conn.execute(
            sa.select(o.c.outcome_id, o.c.revision, o.c.payload_hash).where(
                o.c.tenant == tenant, among(conn, o.c.outcome_id, chunk)
            )
        )
        for outcome_id, revision, payload_hash in rows:
            known = out.get(outcome_id)
            if known is None or revision > known.revision:
                out[outcome_id] = _Latest(int(revision), payload_hash)
    return out


def _check_bases(bases: Mapping[str, int], latest: Mapping[str, _Latest]) -> None:
    def stored(outcome_id: str) -> int:
        found = latest.get(outcome_id)
        return 0 if found is None else found.revision

    stale = [
        {
            "id": outcome_id,
            "reason": "stale_base_revision",
            "base_revision": base,
            "latest_revision": stored(outcome_id),
        }
        for outcome_id, base in bases.items()
        if stored(outcome_id) != base
    ]
    if stale:
        s = stale[0]
        raise IngestConflictError(
            f"outcome {s['id']!r}: base revision {s['base_revision']} is not the latest stored "
            f"revision ({s['latest_revision']}); read it again (GET /v1/outcomes/{{id}}) and "
            "resend your change on top of it",
            stale,
        )


def _stored_labels(conn: Connection, tenant: str, ids: Sequence[str]) -> set[tuple[str, str]]:
    labels = LabelRow.__table__  # type: ignore[attr-defined]
    found: set[tuple[str, str]] = set()
    for chunk in chunked(ids):
        rows = conn.execute(
            sa.select(labels.c.outcome_id, labels.c.digest).where(
                labels.c.tenant == tenant, among(conn, labels.c.outcome_id, chunk)
            )
        )
        found.update((row[0], row[1]) for row in rows)
    return found


def _outcome_row(
    tenant: str, item: Prepared, revision: int, now: datetime, postgres: bool
) -> tuple[Any, ...]:
    outcome, agent = item.outcome, item.outcome.agent
    return (
        tenant,
        outcome.id,
        revision,
        content_hash_of(item.payload),
        item.payload_hash,
        outcome.kind,
        # COPY takes the JSON text (already encoded for the hash); SQLAlchemy encodes the dict.
        item.payload_text if postgres else item.payload,
        agent.name,
        agent.version,
        agent.model_path,
        to_money(agent.cost_usd),
        now,
    )


def _touch_rows(tenant: str, outcome: Outcome, revision: int) -> list[tuple[Any, ...]]:
    # seq = the touch's position in the revision's list; times in UTC (COPY bypasses the
    # column type that would take a naive time as UTC).
    return [
        (
            tenant,
            outcome.id,
            revision,
            seq,
            touch.actor,
            touch.kind,
            None if touch.at is None else as_utc(touch.at),
        )
        for seq, touch in enumerate(outcome.touches)
    ]


def _label_key(digest: str | None, source: str) -> str | None:
    """The stored digest of a label from ``source``: an unreviewed copy of a label is kept
    apart, so that the same label sent later with a key that may label is still stored."""
    if digest is None or by_a_person(source):
        return digest
    return text_digest(f"{source}:{digest}")


def _label_row(item: Prepared, digest: str) -> tuple[Any, ...]:
    label = item.outcome.label
    assert label is not None
    at = None if label.at is None else as_utc(label.at)
    return (
        item.outcome.id,
        label.resolved,
        label.by,
        at,
        label.criteria,
        label.note,
        digest,
    )


_LABEL_COLUMNS = ("outcome_id", "resolved", "by", "at", "criteria", "note", "digest")
#: PostgreSQL: the batch's labels in one statement and one JSON parameter (psycopg would escape
#: every element of seven text arrays with a regular expression, ~10 ms a batch).
_PG_LABELS = sa.text(
    'INSERT INTO labels (tenant, outcome_id, resolved, "by", at, criteria, note, source, '
    "digest, created_at) SELECT :tenant, u.i, u.r, u.b, u.a, u.c, u.n, :source, u.d, :now "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
    "AS u(i text, r boolean, b text, a timestamptz, c jsonb, n text, d text) "
    "ON CONFLICT (tenant, outcome_id, digest) DO NOTHING"
)


def _insert_labels(
    conn: Connection, tenant: str, rows: list[tuple[Any, ...]], now: datetime, source: str
) -> None:
    """INSERT .. ON CONFLICT DO NOTHING: a label another writer stored meanwhile stays once."""
    if conn.dialect.name == "postgresql":
        records = [
            {"i": i, "r": r, "b": b, "a": None if a is None else a.isoformat(), "c": c, "n": n}
            | {"d": d}
            for i, r, b, a, c, n, d in rows
        ]
        conn.execute(
            _PG_LABELS,
            {"tenant": tenant, "source": source, "now": now} | {"rows": json.dumps(records)},
        )
        return
    labels = LabelRow.__table__  # type: ignore[attr-defined]
    extra = {"tenant": tenant, "source": source, "created_at": now}
    conn.execute(
        insert_for("sqlite", labels).on_conflict_do_nothing(
            index_elements=["tenant", "outcome_id", "digest"]
        ),
        [dict(zip(_LABEL_COLUMNS, row, strict=True)) | extra for row in rows],
    )


def _insert(
    conn: Connection, model: Any, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
) -> None:
    """Append ``rows`` (consumed once) to ``model``'s table: COPY on PostgreSQL, one
    executemany on SQLite; nothing is sent when there is no row."""
    first = next(rows, None)
    if first is None:
        return
    table = model.__table__
    if conn.dialect.name != "postgresql":
        conn.execute(
            sa.insert(table),
            [dict(zip(columns, row, strict=True)) for row in itertools.chain([first], rows)],
        )
        return
    # The psycopg connection under SQLAlchemy's, in the same transaction. COPY is the fastest
    # way into PostgreSQL; its rows are plain values (the column types' conversions are done
    # above: money rounded, times in UTC, the payload as JSON text).
    raw: Any = conn.connection.driver_connection
    names = ", ".join(f'"{name}"' for name in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        copy.write_row(first)
        for row in rows:
            copy.write_row(row)


#: On a partitioned ledger a revision stored twice (with another received_at) fails the outcome
#: row's key in ``outcome_revisions`` (ledger.partitions) rather than a unique index.
_REVISION_KEY = "fk_outcomes_revision_key"


def is_unique_violation(exc: BaseException) -> bool:
    """A duplicate revision: SQLAlchemy wraps the driver's error; COPY's (psycopg's) comes bare."""
    cause = exc.orig if isinstance(exc, sa.exc.IntegrityError) else exc
    state = getattr(cause, "sqlstate", None)
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
    return (
        state == "23505"
        or (state == "23503" and constraint == _REVISION_KEY)
        or (isinstance(exc, sa.exc.IntegrityError) and "UNIQUE constraint failed" in str(cause))
    )

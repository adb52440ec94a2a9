"""The ingest baseline: what storing a batch of outcomes costs written directly with psycopg.

The same work as ``POST /v1/outcomes`` on PostgreSQL, with nothing else: for a batch of outcome
dicts (the items the HTTP path posts, already parsed), one transaction holding

- one statement taking every outcome's advisory lock, sorted (the ledger's lock keys);
- one look-up of every id's latest stored revision and payload hash;
- for the new or changed outcomes only: COPY into ``outcomes`` and ``touches``, and one
  ``INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING`` for their embedded labels.

Each payload is encoded and hashed once (payload hash, content hash, label digest), as the
ledger needs them. No validation, no ORM, no HTTP: the floor the ledger's path is compared to.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

CONTENT_FIELDS = ("kind", "conversation", "report", "signals", "touches")
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_OUTCOME_COLUMNS = (
    "tenant, outcome_id, revision, content_hash, payload_hash, kind, payload, agent_name, "
    "agent_version, model_path, agent_cost_usd, received_at"
)
_TOUCH_COLUMNS = "tenant, outcome_id, outcome_revision, seq, actor, kind, at"
_LATEST = (
    "SELECT DISTINCT ON (outcome_id) outcome_id, revision, payload_hash FROM outcomes "
    "WHERE tenant = %s AND outcome_id = ANY(%s) ORDER BY outcome_id, revision DESC"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(%s AS text[])) AS k"
_LABELS = (
    'INSERT INTO labels (tenant, outcome_id, resolved, "by", at, criteria, note, source, digest, '
    "created_at) SELECT %s, u.i, u.r, u.b, u.a, u.c, u.n, 'outcome', u.d, %s "
    "FROM unnest(CAST(%s AS text[]), CAST(%s AS bool[]), CAST(%s AS text[]), "
    "CAST(%s AS timestamptz[]), CAST(%s AS jsonb[]), CAST(%s AS text[]), CAST(%s AS text[])) "
    "AS u(i, r, b, a, c, n, d) ON CONFLICT (tenant, outcome_id, digest) DO NOTHING"
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensure_tenant(conn: Any, tenant: str) -> None:
    """The tenant row the baseline's rows belong to (its own tenant, like every path's)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO tenants (name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (tenant, datetime.now(UTC)),
        )


def write_batch(conn: Any, tenant: str, items: list[dict[str, Any]]) -> tuple[int, int]:
    """Store ``items`` in one transaction on the psycopg connection ``conn``; returns
    ``(outcomes written, unchanged)``."""
    hashed = []
    for item in items:
        text = _ENCODER.encode(item)
        content = _ENCODER.encode({k: item.get(k) for k in CONTENT_FIELDS})
        hashed.append((item, text, _sha(text), _sha(content)))
    ids = [item["id"] for item in items]
    now = datetime.now(UTC)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK, (sorted(f"outcome:{tenant}:{i}" for i in ids),))
        cur.execute(_LATEST, (tenant, ids))
        latest = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        new: list[tuple[dict[str, Any], str, str, str, int]] = []
        for item, text, payload_hash, content_hash in hashed:
            before = latest.get(item["id"])
            if before is None or before[1] != payload_hash:
                revision = 1 if before is None else before[0] + 1
                new.append((item, text, payload_hash, content_hash, revision))
        if new:
            with cur.copy(f"COPY outcomes ({_OUTCOME_COLUMNS}) FROM STDIN") as copy:
                for item, text, payload_hash, content_hash, revision in new:
                    agent = item.get("agent") or {}
                    copy.write_row(
                        (
                            tenant,
                            item["id"],
                            revision,
                            content_hash,
                            payload_hash,
                            item["kind"],
                            text,
                            agent.get("name"),
                            agent.get("version"),
                            agent.get("model_path"),
                            agent.get("cost_usd"),
                            now,
                        )
                    )
            with cur.copy(f"COPY touches ({_TOUCH_COLUMNS}) FROM STDIN") as copy:
                for item, _, _, _, revision in new:
                    for seq, touch in enumerate(item.get("touches") or []):
                        copy.write_row(
                            (tenant, item["id"], revision, seq, touch["actor"], touch["kind"],
                             touch.get("at"))
                        )  # fmt: skip
            labelled = [(item, item["label"]) for item, *_ in new if item.get("label")]
            if labelled:
                columns: list[list[Any]] = [[] for _ in range(7)]
                for item, label in labelled:
                    values = (
                        item["id"],
                        label["resolved"],
                        label.get("by"),
                        label.get("at"),
                        _ENCODER.encode(label.get("criteria") or {}),
                        label.get("note"),
                        _sha(_ENCODER.encode(label)),
                    )
                    for column, value in zip(columns, values, strict=True):
                        column.append(value)
                cur.execute(_LABELS, (tenant, now, *columns))
    return len(new), len(items) - len(new)

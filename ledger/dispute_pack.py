"""What a disputed conversation shows the vendor: transcript, judges, evidence, signals.

For each disputed claim of ``judge audit`` the dispute pack holds the end of the transcript (the
revision the verdict judged), the verdict's criteria and reasons, each judge's decision, scores,
rationale and the evidence it cited (message number and verbatim quote, read from the judge's
recorded reply), the platform signals (reopen, CSAT, escalation ...) and the rubric version.
Everything here is the vendor's or the customer's text: renderers must escape it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col

from judge.models import as_utc
from ledger.db import chunked, session
from ledger.tables import JudgeCallRow, OutcomeRow, VerdictRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["Citation", "DisputeDetail", "ExcerptMessage", "JudgeView", "dispute_details"]

#: The transcript excerpt: the last messages of the judged revision, each cut to this length.
EXCERPT_MESSAGES = 12
EXCERPT_CHARS = 1_000
_MAX_CITATIONS = 5
_QUOTE_CHARS = 300


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExcerptMessage(_Frozen):
    index: int
    role: str
    author: str | None = None
    at: str | None = None
    text: str
    truncated: bool = False


class Citation(_Frozen):
    message: int
    quote: str


class JudgeView(_Frozen):
    """One judge's part in the verdict (from the verdict) and its evidence (from its reply)."""

    judge: str
    model: str
    kind: str
    status: str
    decision: str | None
    p_verified: float | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    rationale: str = ""
    reason: str | None = None
    evidence: dict[str, list[Citation]] = Field(default_factory=dict)


class DisputeDetail(_Frozen):
    """Everything a person needs to judge the dispute of one conversation."""

    outcome_revision: int | None
    messages_total: int
    excerpt: list[ExcerptMessage]
    signals: dict[str, Any]
    criteria: dict[str, dict[str, Any]]
    reasons: list[str]
    judges: list[JudgeView]


def _excerpt(payload: dict[str, Any]) -> tuple[int, list[ExcerptMessage]]:
    conversation = payload.get("conversation") or []
    start = max(0, len(conversation) - EXCERPT_MESSAGES)
    out = []
    for index, message in enumerate(conversation[start:], start=start):
        text = str(message.get("text") or "")
        out.append(
            ExcerptMessage(
                index=index,
                role=str(message.get("role") or ""),
                author=message.get("author"),
                at=message.get("at"),
                text=text[:EXCERPT_CHARS],
                truncated=len(text) > EXCERPT_CHARS,
            )
        )
    return len(conversation), out


def _citations(reply: str | None) -> dict[str, list[Citation]]:
    """The evidence a judge's JSON reply cited per criterion (display only: the engine checked
    each quote against its message when the verdict was made)."""
    if not reply:
        return {}
    try:
        data = json.loads(reply)
    except ValueError:
        return {}
    criteria = data.get("criteria") if isinstance(data, dict) else None
    if not isinstance(criteria, dict):
        return {}
    out: dict[str, list[Citation]] = {}
    for name, entry in criteria.items():
        items = entry.get("evidence") if isinstance(entry, dict) else None
        if not isinstance(items, list):
            continue
        cited = [
            Citation(message=item["message"], quote=item["quote"][:_QUOTE_CHARS])
            for item in items[:_MAX_CITATIONS]
            if isinstance(item, dict)
            and isinstance(item.get("message"), int)
            and isinstance(item.get("quote"), str)
        ]
        if cited:
            out[str(name)] = cited
    return out


Calls = dict[tuple[str, str], list[tuple[datetime, str | None]]]


def _detail(
    revision: int,
    payload: dict[str, Any],
    verdict: dict[str, Any],
    calls: Calls,
    outcome_id: str,
    made: datetime,
) -> DisputeDetail:
    def reply_of(judge: str) -> str | None:
        """The judge's last successful reply recorded before the verdict."""
        before = [r for at, r in calls.get((outcome_id, judge), []) if at <= made]
        return before[-1] if before else None

    total, excerpt = _excerpt(payload)
    return DisputeDetail(
        outcome_revision=revision,
        messages_total=total,
        excerpt=excerpt,
        signals={k: v for k, v in (payload.get("signals") or {}).items() if v is not None},
        criteria=dict(verdict.get("criteria") or {}),
        reasons=list(verdict.get("reasons") or []),
        judges=[
            JudgeView(
                judge=j["judge"],
                model=j.get("model", ""),
                kind=j.get("kind", "llm"),
                status=j.get("status", "ok"),
                decision=j.get("decision"),
                p_verified=j.get("p_verified"),
                scores=dict(j.get("scores") or {}),
                rationale=j.get("rationale") or "",
                reason=j.get("reason"),
                evidence=_citations(reply_of(j["judge"])),
            )
            for j in verdict.get("judges") or []
        ],
    )


def dispute_details(
    engine: Engine, tenant: str, verdict_pks: Iterable[int]
) -> dict[int, DisputeDetail]:
    """The dispute detail of each verdict (keyed by its pk), read in a few queries per chunk."""
    pks = sorted(set(verdict_pks))
    details: dict[int, DisputeDetail] = {}
    with session(engine, readonly=True) as db:
        conn = db.connection()
        for chunk in chunked(pks):
            verdicts = conn.execute(
                sa.select(
                    col(VerdictRow.pk),
                    col(VerdictRow.outcome_id),
                    col(VerdictRow.outcome_revision),
                    col(VerdictRow.payload),
                    col(VerdictRow.created_at),
                ).where(col(VerdictRow.tenant) == tenant, col(VerdictRow.pk).in_(chunk))
            ).all()
            wanted = {(oid, rev) for _, oid, rev, _, _ in verdicts}
            outcomes = {
                (oid, rev): payload
                for oid, rev, payload in conn.execute(
                    sa.select(
                        col(OutcomeRow.outcome_id),
                        col(OutcomeRow.revision),
                        col(OutcomeRow.payload),
                    ).where(
                        col(OutcomeRow.tenant) == tenant,
                        col(OutcomeRow.outcome_id).in_({oid for oid, _ in wanted}),
                    )
                )
                if (oid, rev) in wanted
            }
            calls: Calls = {}
            for oid, judge, at, reply in conn.execute(
                sa.select(
                    col(JudgeCallRow.outcome_id),
                    col(JudgeCallRow.judge),
                    col(JudgeCallRow.at),
                    col(JudgeCallRow.reply),
                )
                .where(
                    col(JudgeCallRow.tenant) == tenant,
                    col(JudgeCallRow.outcome_id).in_({oid for oid, _ in wanted}),
                    col(JudgeCallRow.purpose) == "verify",
                    col(JudgeCallRow.status) == "ok",
                )
                .order_by(col(JudgeCallRow.pk))
            ):
                calls.setdefault((oid, judge), []).append((as_utc(at), reply))
            for pk, oid, rev, verdict, created_at in verdicts:
                details[pk] = _detail(
                    rev, outcomes.get((oid, rev)) or {}, verdict, calls, oid, as_utc(created_at)
                )
    return details

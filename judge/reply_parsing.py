"""Reading a judge's reply: JSON first (also fenced or wrapped in prose), prose second.

Prose is read criterion by criterion with the scale-aware parser: the score is the last number
inside the criterion's scale in the part of the reply about that criterion. A criterion with no
such number is missing; a reply missing any criterion is unscored by the caller, never a pass.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from judge.parsing import parse_scale_score
from judge.rubric import Criterion, Rubric

__all__ = ["MAX_RATIONALE_CHARS", "Citation", "ParsedReply", "parse_reply"]

MAX_RATIONALE_CHARS = 4000


@dataclass(frozen=True)
class Citation:
    """One piece of evidence a judge cited: a message number (0: the signals) and a quote."""

    message: int
    quote: str


@dataclass
class ParsedReply:
    """Scores found in one reply (in-scale only), its rationale, and why others are missing.

    ``evidence`` holds, per criterion, the citations the reply gave (JSON replies only; checked
    by :mod:`judge.evidence` when a passing judgment needs them).
    """

    scores: dict[str, float] = field(default_factory=dict)
    rationale: str = ""
    problems: list[str] = field(default_factory=list)
    format: str = "none"  # "json", "text" or "none"
    evidence: dict[str, list[Citation]] = field(default_factory=dict)


_MAX_CITATIONS = 20
_NUMBER = re.compile(r"[0-9]{1,9}")


def _citations(raw: Any) -> list[Citation]:
    """The well-formed citations of a criterion entry (anything else is ignored, not trusted)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("evidence"), list):
        return []
    out: list[Citation] = []
    for item in raw["evidence"][:_MAX_CITATIONS]:
        if not isinstance(item, dict):
            continue
        message, quote = item.get("message"), item.get("quote")
        # ASCII digits only, and few: str.isdigit() accepts "²" (which int() refuses) and a
        # reply may carry a number too long to convert; either made the parse raise.
        if isinstance(message, str) and _NUMBER.fullmatch(message.strip()):
            message = int(message.strip())
        if isinstance(message, int) and not isinstance(message, bool) and isinstance(quote, str):
            out.append(Citation(message, quote[:1000]))
    return out


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _json_objects(text: str) -> list[dict[str, Any]]:
    candidates: list[dict[str, Any]] = []
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
        if isinstance(whole, dict):
            return [whole]
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            obj = json.loads(block.strip())
        except ValueError:
            continue
        if isinstance(obj, dict):
            candidates.append(obj)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            candidates.append(obj)
    return candidates


def _score_value(raw: Any, criterion: Criterion) -> float | None:
    lo, hi = criterion.bounds
    if isinstance(raw, dict):
        raw = raw.get("score")
    if isinstance(raw, bool):
        return float(raw) if criterion.scale == "binary" else None
    if isinstance(raw, int | float):
        value = float(raw)
        return value if math.isfinite(value) and lo <= value <= hi else None
    if isinstance(raw, str):
        word = raw.strip().lower()
        if criterion.scale == "binary" and word in ("yes", "pass", "passed", "true"):
            return 1.0
        if criterion.scale == "binary" and word in ("no", "fail", "failed", "false"):
            return 0.0
        return parse_scale_score(raw, lo, hi)
    return None


def _from_json(obj: dict[str, Any], rubric: Rubric) -> ParsedReply | None:
    table = obj.get("criteria", obj.get("scores"))
    if not isinstance(table, dict):
        table = obj
    if not any(c.id in table for c in rubric.criteria):
        return None
    parsed = ParsedReply(format="json")
    rationale = obj.get("rationale")
    parsed.rationale = rationale if isinstance(rationale, str) else ""
    for c in rubric.criteria:
        if c.id not in table:
            parsed.problems.append(f"no score for criterion '{c.id}'")
            continue
        value = _score_value(table[c.id], c)
        cited = _citations(table[c.id])
        if cited:
            parsed.evidence[c.id] = cited
        if value is None:
            lo, hi = c.bounds
            parsed.problems.append(
                f"criterion '{c.id}': {json.dumps(table[c.id])[:80]} is not a score in "
                f"[{lo:g}, {hi:g}]"
            )
        else:
            parsed.scores[c.id] = value
    return parsed


def _mention_pattern(criterion_id: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in criterion_id.split("_") if w]
    return re.compile(r"(?<![A-Za-z0-9])" + r"[\s_-]*".join(words) + r"(?![A-Za-z0-9])", re.I)


def _from_text(text: str, rubric: Rubric) -> ParsedReply:
    parsed = ParsedReply(format="text", rationale=text.strip()[:MAX_RATIONALE_CHARS])
    mentions: list[tuple[int, int, str]] = []
    for c in rubric.criteria:
        mentions += [(m.start(), m.end(), c.id) for m in _mention_pattern(c.id).finditer(text)]
    mentions.sort()
    for c in rubric.criteria:
        lo, hi = c.bounds
        value: float | None = None
        own = [(s, e) for s, e, cid in mentions if cid == c.id]
        for _start, end in own:
            nxt = [s for s, _, cid in mentions if s >= end and cid != c.id]
            section = text[end : min(nxt) if nxt else len(text)]
            found = parse_scale_score(section, lo, hi)
            if found is not None:
                value = found
        if value is None and not own and len(rubric.criteria) == 1:
            value = parse_scale_score(text, lo, hi)
        if value is None:
            where = "in its section of the reply" if own else "(the reply never mentions it)"
            parsed.problems.append(f"no score in [{lo:g}, {hi:g}] for criterion '{c.id}' {where}")
        else:
            parsed.scores[c.id] = value
    return parsed


def parse_reply(text: str | None, rubric: Rubric) -> ParsedReply:
    """Read criterion scores out of a judge reply: JSON first, else prose criterion by criterion.

    JSON may be the whole reply, inside a code fence, or surrounded by text. Without JSON, each
    criterion's score is :func:`judge.parsing.parse_scale_score` over the part of the reply about
    that criterion (from its mention to the next criterion's). Out-of-scale numbers are ignored.

    Examples
    --------
    >>> from judge.rubric import Criterion, Rubric
    >>> r = Rubric(name="demo", kind="report", criteria=[
    ...     Criterion(id="accurate", question="Accurate?"),
    ...     Criterion(id="clarity", question="How clear?", scale={"min": 1, "max": 5})])
    >>> parse_reply('Sure! ```json\\n{"criteria": {"accurate": {"score": 1}, "clarity": 4}}```',
    ...             r).scores
    {'accurate': 1.0, 'clarity': 4.0}
    >>> parse_reply("Accurate: yes, 1. Clarity: 9 out of 10... I'd say 4.", r).scores
    {'accurate': 1.0, 'clarity': 4.0}
    >>> parse_reply("Looks fine to me.", r).problems[0]
    "no score in [0, 1] for criterion 'accurate' (the reply never mentions it)"
    """
    if not text or not text.strip():
        return ParsedReply(problems=["the reply is empty"])
    for obj in _json_objects(text):
        parsed = _from_json(obj, rubric)
        if parsed is not None:
            return parsed
    return _from_text(text, rubric)

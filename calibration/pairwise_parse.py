"""How a pairwise reply parser agrees with the parse recorded beside the reply (LLMBar's own).

The parser is passed in (the CLI passes :func:`judge.pairwise.parse_preference`, the one the live
position probe uses): it reads a reply and returns ``"A"`` (the output shown first), ``"B"``,
``"tie"`` or ``None``. In the swapped order the output shown first is output 2, so ``"A"`` maps
to 2 there. A tie or no choice is no verdict (``None``), as LLMBar's null.

Disagreements are put in the first category that fits:

- ``verdict_then_discussion``: both parsed, differently, and the reply states "Output (x) is
  better" for the recorded choice: the verdict came first and a later mention of the other
  output in the explanation is what a last-mention parser read.
- ``truncated``: no recorded choice and the reply was cut off (``finish_reason`` ``length``, or
  it stops mid-sentence, e.g. a last line "Therefore, Output (b)"), yet the parser found a
  mention.
- ``neither_or_both``: no recorded choice, the reply says neither or both outputs are good, and
  the parser read one of the names in that sentence.
- ``no_stated_verdict``: no recorded choice, the reply discusses the outputs without a verdict,
  and the parser took a mention for one.
- ``recorded_only``: a recorded choice, and the parser found none.
- ``other``: anything else (listed with examples).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from calibration.pairwise_replay import Choice, PairwiseJudgment

__all__ = ["CATEGORIES", "compare_parses", "to_original"]

CATEGORIES = (
    "verdict_then_discussion",
    "truncated",
    "neither_or_both",
    "no_stated_verdict",
    "recorded_only",
    "other",
)

_STATED = re.compile(r"output\s*\(?([ab])\)?\s+is\s+(?:the\s+)?better", re.IGNORECASE)
_NEITHER_BOTH = re.compile(r"\b(neither|both)\b[^.]*\boutput", re.IGNORECASE)


def to_original(preference: str | None, *, swapped: bool) -> Choice:
    """A parsed preference (A = shown first) in the original numbering (1 or 2), else None.

    Examples
    --------
    >>> to_original("A", swapped=False), to_original("A", swapped=True), to_original("tie",
    ...     swapped=True)
    (1, 2, None)
    """
    if preference == "A":
        return 2 if swapped else 1
    if preference == "B":
        return 1 if swapped else 2
    return None


def _category(ours: Choice, theirs: Choice, raw: str, finish: str | None, swapped: bool) -> str:
    if ours is not None and theirs is not None:
        stated = {to_original(m.upper(), swapped=swapped) for m in _STATED.findall(raw)}
        return "verdict_then_discussion" if theirs in stated else "other"
    if ours is None:
        return "recorded_only"
    text = raw.rstrip()
    last_line = text.rsplit("\n", 1)[-1].strip().lower()
    if (
        finish == "length"
        or (text and text[-1] not in ".!?)\"'")
        or (last_line.startswith("therefore") and text.endswith(")"))  # "Therefore, Output (b)"
    ):
        return "truncated"
    if _NEITHER_BOTH.search(text.rsplit("\n", 1)[-1]):
        return "neither_or_both"
    return "no_stated_verdict" if not _STATED.search(raw) else "other"


def compare_parses(
    rows: Sequence[PairwiseJudgment],
    parse: Callable[[str | None], str | None],
    *,
    examples: int = 2,
) -> dict[str, Any]:
    """Re-parse every recorded reply and count agreement with the recorded choice.

    Returns
    -------
    dict
        ``replies``, ``agree``, ``agreement`` (share), ``disagree`` per category, ``by_strategy``
        (disagreements per strategy), ``gold_when_both_parsed`` (of the disagreements where both
        found a choice, how often each side equals the gold label) and ``examples`` (up to
        ``examples`` per category: judge, item, order and the reply's last 160 characters).

    Examples
    --------
    >>> row = PairwiseJudgment("i", "Natural", "J", "CoT", 2, (2, 2),
    ...     raw=("Output (b) is better. Output (a) lacks detail.", "Output (a) is better."))
    >>> def last_mention(text):
    ...     return None if text is None else text.split("Output (")[-1][0].upper()
    >>> out = compare_parses([row], last_mention)
    >>> out["agree"], out["disagree"]["verdict_then_discussion"]
    (1, 1)
    """
    counts: Counter[str] = Counter()
    by_strategy: Counter[str] = Counter()
    gold = Counter({"recorded": 0, "parser": 0})
    shown: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    agree = total = 0
    for row in rows:
        for order in (0, 1):
            swapped = order == 1
            raw = row.raw[order]
            ours = to_original(parse(raw), swapped=swapped)
            theirs = row.choices[order]
            total += 1
            if ours == theirs:
                agree += 1
                continue
            category = _category(ours, theirs, raw, row.finish_reason[order], swapped)
            counts[category] += 1
            by_strategy[row.strategy] += 1
            if ours is not None and theirs is not None:
                gold["recorded"] += theirs == row.label
                gold["parser"] += ours == row.label
            if len(shown[category]) < examples:
                shown[category].append(
                    {
                        "judge": row.judge,
                        "strategy": row.strategy,
                        "item_id": row.item_id,
                        "order": "swapped" if swapped else "original",
                        "recorded": theirs,
                        "parser": ours,
                        "reply_end": raw[-160:],
                    }
                )
    return {
        "replies": total,
        "agree": agree,
        "agreement": agree / total if total else float("nan"),
        "disagree": {c: counts[c] for c in CATEGORIES},
        "by_strategy": dict(sorted(by_strategy.items())),
        "gold_when_both_parsed": dict(gold),
        "examples": {c: v for c, v in shown.items() if v},
    }

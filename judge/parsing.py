"""The scale-aware score parser shared by LLM judges and by replay of recorded judge outputs.

Rule: the score is the *last* number in the reply that lies inside the criterion's scale.
Denominators ("2/3", "2 out of 3"), restatements of the scale itself ("1-3", "1 to 3", "1, 2,
or 3") and numbered-list markers ("3. Evaluate the response") are not scores. No such number
means the reply is unscored: ``None``, never 0 and never a pass.
"""

from __future__ import annotations

import re

_NUMBER = r"\d+(?:\.\d+)?"
_FRACTION = re.compile(rf"({_NUMBER})\s*(?:/|out\s+of)\s*({_NUMBER})", re.IGNORECASE)
_RANGE = re.compile(rf"({_NUMBER})\s*(?:-|–|—|to)\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w])")
# "3. Evaluate the response" inside a numbered list: a marker, not a score.
_LIST_MARKER = re.compile(r"^[ \t]*\d+[.)][ \t]+(?=[^\W\d_])", re.MULTILINE)
# "1, 2, or 3" / "0 or 1": a list of the allowed values, not a score.
_ENUMERATION = re.compile(
    rf"(?<![\w.])({_NUMBER}(?:\s*,\s*{_NUMBER})*)\s*,?\s*\b(?:or|and)\s+({_NUMBER})(?![\w])",
    re.IGNORECASE,
)


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_scale_score(text: str | None, low: float, high: float) -> float | None:
    """Return the last number in ``text`` inside ``[low, high]``, or ``None``.

    Parameters
    ----------
    text : str or None
        A judge's raw reply.
    low, high : float
        The criterion's scale bounds (inclusive).

    Returns
    -------
    float or None
        The score, or ``None`` when the reply holds no number inside the scale.

    Examples
    --------
    >>> parse_scale_score("1. Coherence: 3", 1, 3)
    3.0
    >>> parse_scale_score("- Groundedness: 1", 0, 1)
    1.0
    >>> parse_scale_score("I'd give it 2/3.", 1, 3)
    2.0
    >>> parse_scale_score("Score 2 (on a scale of 1-3)", 1, 3)
    2.0
    >>> parse_scale_score("Assign a rating score of 1, 2, or 3.", 1, 3) is None
    True
    >>> parse_scale_score("1. Read the dialogue.\\n2. Rate it.\\n3. Explain.", 1, 3) is None
    True
    >>> parse_scale_score("2. Somewhat", 1, 3)
    2.0
    >>> parse_scale_score("Answer 0 or 1. Answer: 1", 0, 1)
    1.0
    >>> parse_scale_score("Rating: 7", 1, 5) is None
    True
    >>> parse_scale_score("no idea", 1, 5) is None
    True
    """
    if not text:
        return None
    if low > high:
        raise ValueError(f"scale low ({low}) must not exceed high ({high})")
    cleaned = text
    lo_s, hi_s = _format(low), _format(high)

    def drop_denominator(match: re.Match[str]) -> str:
        return match.group(1) if float(match.group(2)) == float(high) else match.group(0)

    def drop_scale_range(match: re.Match[str]) -> str:
        a, b = match.group(1), match.group(2)
        same = {_format(float(a)), _format(float(b))} == {lo_s, hi_s}
        return " " if same and float(a) < float(b) else match.group(0)

    def drop_enumeration(match: re.Match[str]) -> str:
        listed = [float(v) for v in re.findall(_NUMBER, match.group(0))]
        every_point = {float(v) for v in range(int(low), int(high) + 1)}
        return " " if float(low).is_integer() and set(listed) == every_point else match.group(0)

    # One "2. Somewhat" line is a score; two or more numbered lines are a list.
    if len(_LIST_MARKER.findall(cleaned)) >= 2:
        cleaned = _LIST_MARKER.sub(" ", cleaned)
    cleaned = _ENUMERATION.sub(drop_enumeration, cleaned)
    cleaned = _FRACTION.sub(drop_denominator, cleaned)
    cleaned = _RANGE.sub(drop_scale_range, cleaned)
    for raw in reversed(_ANY_NUMBER.findall(cleaned)):
        value = float(raw)
        if low <= value <= high:
            return value
    return None

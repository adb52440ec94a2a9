"""Replay recorded judge replies: parse, aggregate and correlate with human scores at zero cost.

A recorded item holds several sampled judge replies (``all_responses``) and the human scores
(``scores``), like ``../shared/datasets/topical_chat_judgments``. Every reply goes through the
same scale-aware parser the live LLM judges use (:func:`judge.parsing.parse_scale_score`): the
score is the last number inside the scale, and a reply without one is *unparseable*: it is left
out of the item's mean (never scored 0). An item's score is the mean of its parsed samples.

Two sampling policies can be replayed on the same recordings:

``fixed``
    Take the first ``K`` replies of every item (all of them when ``samples`` is not given).
``adaptive``
    Take replies one at a time and stop once the running mean is settled
    (:class:`AdaptivePolicy`), so that agreeing replies cost fewer calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from judge.parsing import parse_scale_score

Parser = Callable[[str | None, float, float], float | None]
PolicyName = Literal["fixed", "adaptive"]

#: Correlation keys reported for every replay (dataset level and averaged per group).
CORRELATION_KEYS = (
    "pearson",
    "spearman",
    "kendall",
    "group_pearson",
    "group_spearman",
    "group_kendall",
)


class ReplayInputError(ValueError):
    """A recordings file or item that cannot be replayed; the message says where and why."""


@dataclass(frozen=True)
class AdaptivePolicy:
    """Stop sampling an item once the standard error of its running mean is small.

    After each reply the policy looks at the ``n`` replies parsed so far. Once
    ``n >= min_samples`` it stops when ``sqrt(v / n) <= tolerance * (high - low)``, where

    ``v = (SS + prior_weight * (high - low)**2 / 4) / (n - 1 + prior_weight)``

    is the sample variance (``SS`` = sum of squared deviations from the running mean) shrunk
    towards the largest variance a score on the scale can have, ``(high - low)**2 / 4``, with the
    weight of ``prior_weight`` pseudo-replies. Without that prior, three identical replies would
    give a variance of 0 and stop at once; with it, unanimous replies stop after
    ``ceil(1 / (2 * tolerance))`` samples (5 with the defaults) and replies that disagree keep
    sampling until their mean is pinned down (or the recorded replies run out).
    Unparseable replies are paid for (they count in ``samples_used``) but carry no score.

    Parameters
    ----------
    min_samples : int
        Parsed replies needed before the policy may stop (>= 1).
    tolerance : float
        Target standard error of the item mean as a fraction of the scale width (0 < t < 1).
    prior_weight : float
        Weight, in replies, of the maximum-variance prior (>= 0).

    Examples
    --------
    >>> policy = AdaptivePolicy()
    >>> policy.samples_needed([3.0] * 20, low=1, high=3)
    5
    >>> policy.samples_needed([3.0, 1.0] * 10, low=1, high=3)
    20
    """

    min_samples: int = 3
    tolerance: float = 0.1
    prior_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int):
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")
        if not 0.0 < float(self.tolerance) < 1.0:
            raise ValueError(
                f"tolerance must be a fraction of the scale width in (0, 1), e.g. 0.1; "
                f"got {self.tolerance!r}"
            )
        if float(self.prior_weight) < 0.0:
            raise ValueError(f"prior_weight must be >= 0, got {self.prior_weight!r}")

    def settled(self, parsed: Sequence[float], *, low: float, high: float) -> bool:
        """Whether the running mean of ``parsed`` (the scores so far) is settled."""
        n = len(parsed)
        if n < self.min_samples:
            return False
        width = float(high) - float(low)
        if width <= 0:
            return True
        mean = sum(parsed) / n
        ss = sum((x - mean) ** 2 for x in parsed)
        dof = n - 1 + self.prior_weight
        if dof <= 0:
            return False
        variance = (ss + self.prior_weight * width * width / 4.0) / dof
        return math.sqrt(variance / n) <= self.tolerance * width

    def samples_needed(
        self, scores: Sequence[float | None], *, low: float, high: float, limit: int | None = None
    ) -> int:
        """Replies consumed before stopping, given the parsed ``scores`` in recorded order.

        ``None`` entries are unparseable replies: they are consumed but carry no score.
        ``limit`` caps the replies available (default: all of ``scores``).
        """
        available = len(scores) if limit is None else min(limit, len(scores))
        parsed: list[float] = []
        for used, score in enumerate(scores[:available], start=1):
            if score is not None:
                parsed.append(score)
                if self.settled(parsed, low=low, high=high):
                    return used
        return available


@dataclass(frozen=True)
class ItemScore:
    """One replayed item: its aggregated judge score, human score and sampling cost."""

    index: int
    score: float | None
    human: float | None
    group: str | None
    samples_used: int
    parsed: int
    unparseable: int


@dataclass
class ReplayResult:
    """Outcome of one replay run; :meth:`to_dict` gives the CLI's JSON."""

    dimension: str
    low: float
    high: float
    policy: str
    samples: int | None
    group_by: str | None
    items: list[ItemScore]
    correlations: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> list[ItemScore]:
        """Items with both a judge score and a human score (those that enter correlations)."""
        return [i for i in self.items if i.score is not None and i.human is not None]

    @property
    def samples_used(self) -> int:
        return sum(i.samples_used for i in self.items)

    @property
    def unparseable(self) -> int:
        return sum(i.unparseable for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the keys of ``judge replay --json``)."""
        out: dict[str, Any] = {"n_items": len(self.scored)}
        for key in CORRELATION_KEYS:
            out[key] = self.correlations.get(key)
        out["groups_used"] = self.correlations.get("groups_used")
        out["samples_used"] = self.samples_used
        out["unparseable"] = self.unparseable
        out.update(
            {
                "groups_total": self.correlations.get("groups_total"),
                "dimension": self.dimension,
                "scale": [self.low, self.high],
                "policy": self.policy,
                "samples": self.samples,
                "group_by": self.group_by,
                "items_total": len(self.items),
                "items_without_score": sum(1 for i in self.items if i.score is None),
                "items_without_human": sum(1 for i in self.items if i.human is None),
                "samples_per_item": (self.samples_used / len(self.items)) if self.items else 0.0,
            }
        )
        out.update(self.extra)
        return out


def parse_scale(text: str) -> tuple[float, float]:
    """Parse a ``MIN:MAX`` scale such as ``1:3`` or ``0:1``.

    Examples
    --------
    >>> parse_scale("1:3")
    (1.0, 3.0)
    >>> parse_scale("0:0.5")
    (0.0, 0.5)
    """
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 2:
        raise ValueError(f"scale must look like MIN:MAX (for example 1:3 or 0:1), got {text!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"scale bounds must be numbers, as in 1:3 or 0:1; got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"scale MIN must be below MAX (for example 1:3), got {text!r}")
    return low, high


def load_recordings(path: str | Path) -> list[dict[str, Any]]:
    """Read recorded judge outputs: a JSON array of items, or JSON Lines (one item per line).

    Raises
    ------
    ReplayInputError
        When the file is missing, is not JSON (the message gives the line), or holds no items.
    """
    p = Path(path)
    if not p.is_file():
        raise ReplayInputError(f"recordings file not found: {p}")
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReplayInputError(
                f"{p}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})"
            ) from None
        items = data
    else:
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ReplayInputError(
                    f"{p}: line {lineno}: invalid JSON ({exc.msg}); expected one JSON object per "
                    "line or a JSON array of items"
                ) from None
    if not items:
        raise ReplayInputError(f"{p}: no items; expected objects with all_responses and scores")
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ReplayInputError(f"{p}: item {number} is not a JSON object")
    return items


def resolve_dimension(items: Sequence[Mapping[str, Any]], dimension: str) -> str:
    """The human-score key for ``dimension``: an exact key of ``scores`` or a unique prefix.

    Examples
    --------
    >>> resolve_dimension([{"scores": {"coherence": 2.0, "naturalness": 3.0}}], "coh")
    'coherence'
    """
    names: set[str] = set()
    for item in items:
        scores = item.get("scores")
        if isinstance(scores, Mapping):
            names.update(str(k) for k in scores)
    if dimension in names:
        return dimension
    matches = sorted(n for n in names if n.startswith(dimension)) if dimension else []
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(names)) or "none"
    raise ReplayInputError(
        f"dimension {dimension!r} is not a key of the items' human 'scores'; known: {known}"
    )


def _responses(item: Mapping[str, Any], number: int) -> list[str | None]:
    raw = item.get("all_responses")
    if not isinstance(raw, list):
        raise ReplayInputError(
            f"item {number}: 'all_responses' must be a list of recorded judge replies, "
            f"got {type(raw).__name__}"
        )
    return [r if isinstance(r, str) else None for r in raw]


def _human(item: Mapping[str, Any], dimension: str, number: int) -> float | None:
    scores = item.get("scores")
    if not isinstance(scores, Mapping):
        raise ReplayInputError(f"item {number}: 'scores' must be an object of human scores")
    value = scores.get(dimension)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReplayInputError(
            f"item {number}: human score scores.{dimension} must be a number, got {value!r}"
        )
    return float(value) if math.isfinite(value) else None


def score_item(
    responses: Sequence[str | None],
    *,
    low: float,
    high: float,
    samples: int | None = None,
    policy: PolicyName | AdaptivePolicy = "fixed",
    parser: Parser = parse_scale_score,
) -> tuple[float | None, int, int, int]:
    """Aggregate one item's replies: ``(mean, samples_used, parsed, unparseable)``.

    Examples
    --------
    >>> score_item(["Coherence: 3", "2", "no idea"], low=1, high=3)
    (2.5, 3, 2, 1)
    >>> score_item(["3", "1", "1"], low=1, high=3, samples=1)
    (3.0, 1, 1, 0)
    """
    limit = len(responses) if samples is None else min(samples, len(responses))
    parsed_all = [parser(r, low, high) for r in responses[:limit]]
    if policy == "fixed":
        used = limit
    else:
        chosen = AdaptivePolicy() if policy == "adaptive" else policy
        if not isinstance(chosen, AdaptivePolicy):
            raise ValueError(f"policy must be 'fixed', 'adaptive' or an AdaptivePolicy: {policy!r}")
        used = chosen.samples_needed(parsed_all, low=low, high=high)
    values = [v for v in parsed_all[:used] if v is not None]
    mean = sum(values) / len(values) if values else None
    return mean, used, len(values), used - len(values)


def replay(
    items: Iterable[Mapping[str, Any]],
    *,
    dimension: str,
    low: float,
    high: float,
    group_by: str | None = None,
    samples: int | None = None,
    policy: PolicyName | AdaptivePolicy = "fixed",
    parser: Parser = parse_scale_score,
) -> ReplayResult:
    """Replay recorded replies for one dimension and correlate them with the human scores.

    Parameters
    ----------
    items : iterable of mappings
        Recorded items with ``all_responses`` (list of reply strings) and ``scores``.
    dimension : str
        Key of the human score in each item's ``scores`` (a unique prefix is accepted).
    low, high : float
        The judge's scale; replies are parsed inside it.
    group_by : str, optional
        Item field to group by for per-group correlations (e.g. ``source``).
    samples : int, optional
        Use at most the first ``samples`` replies of every item (all by default).
    policy : {"fixed", "adaptive"} or AdaptivePolicy
        ``fixed`` consumes every available reply; ``adaptive`` stops once the mean is settled.
    parser : callable
        ``parser(text, low, high) -> float | None``; the scale-aware parser by default (other
        parsers exist only to measure what the scale-aware one buys).

    Returns
    -------
    ReplayResult
        Per-item scores and the correlations (see :meth:`ReplayResult.to_dict`).
    """
    from calibration.correlation import correlations

    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"scale low ({low}) must be below high ({high})")
    if samples is not None and (isinstance(samples, bool) or samples < 1):
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if isinstance(policy, str) and policy not in ("fixed", "adaptive"):
        raise ValueError(f"policy must be 'fixed' or 'adaptive', got {policy!r}")
    rows = list(items)
    if not rows:
        raise ReplayInputError("no items to replay")
    key = resolve_dimension(rows, dimension)
    scored: list[ItemScore] = []
    for number, item in enumerate(rows, start=1):
        group: str | None = None
        if group_by is not None:
            if group_by not in item:
                raise ReplayInputError(
                    f"item {number} has no field {group_by!r} to group by; "
                    f"fields: {', '.join(sorted(map(str, item)))}"
                )
            group = str(item[group_by])
        mean, used, parsed, unparseable = score_item(
            _responses(item, number),
            low=low,
            high=high,
            samples=samples,
            policy=policy,
            parser=parser,
        )
        scored.append(
            ItemScore(number - 1, mean, _human(item, key, number), group, used, parsed, unparseable)
        )
    usable = [i for i in scored if i.score is not None and i.human is not None]
    if len(usable) < 3:
        raise ReplayInputError(
            f"only {len(usable)} item(s) have both a parsed judge score and a human "
            f"{key!r} score; correlations need at least 3"
        )
    groups = [str(i.group) for i in usable] if group_by is not None else None
    corr = correlations(
        [float(i.score) for i in usable if i.score is not None],
        [float(i.human) for i in usable if i.human is not None],
        groups=groups,
    )
    policy_name = policy if isinstance(policy, str) else "adaptive"
    extra: dict[str, Any] = {}
    if isinstance(policy, AdaptivePolicy) or policy == "adaptive":
        chosen = policy if isinstance(policy, AdaptivePolicy) else AdaptivePolicy()
        extra["adaptive"] = {
            "min_samples": chosen.min_samples,
            "tolerance": chosen.tolerance,
            "prior_weight": chosen.prior_weight,
        }
    return ReplayResult(
        dimension=key,
        low=float(low),
        high=float(high),
        policy=policy_name,
        samples=samples,
        group_by=group_by,
        items=scored,
        correlations=dict(corr),
        extra=extra,
    )


def compare_policies(
    items: Iterable[Mapping[str, Any]],
    *,
    dimension: str,
    low: float,
    high: float,
    group_by: str | None = None,
    samples: int | None = None,
    adaptive: AdaptivePolicy | None = None,
    parser: Parser = parse_scale_score,
) -> dict[str, Any]:
    """Replay the adaptive policy and the fixed one on the same items and compare them.

    Returns the adaptive summary (:meth:`ReplayResult.to_dict`) plus ``fixed`` (the fixed
    policy's summary), ``samples_saved`` (fraction of the fixed policy's replies not needed) and
    ``delta`` (adaptive minus fixed, per correlation key).
    """
    rows = list(items)
    common: dict[str, Any] = {
        "dimension": dimension,
        "low": low,
        "high": high,
        "group_by": group_by,
        "samples": samples,
        "parser": parser,
    }
    fixed = replay(rows, policy="fixed", **common).to_dict()
    result = replay(rows, policy=adaptive or AdaptivePolicy(), **common).to_dict()
    delta: dict[str, float | None] = {}
    for key in CORRELATION_KEYS:
        a, f = result.get(key), fixed.get(key)
        delta[key] = None if a is None or f is None else float(a) - float(f)
    saved = 1.0 - result["samples_used"] / fixed["samples_used"] if fixed["samples_used"] else 0.0
    result["fixed"] = fixed
    result["samples_saved"] = saved
    result["delta"] = delta
    return result

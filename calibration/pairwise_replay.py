"""Replay of recorded *pairwise* judgments: which of two outputs is better, asked in both orders.

The input is LLMBar's recorded judge outputs (``../shared/datasets/judge_outputs``): per judge,
prompting strategy and item, the reply and the parsed choice with the two outputs shown in the
original order and swapped; ``choice`` is already in the original numbering (1 or 2) in both
orders, ``None`` where the reply could not be parsed. Everything here is pure arithmetic over
those rows; prices come in as numbers (the CLI prices them: :mod:`app.cli._pairwise_costs`).

Rules
-----
- **Judge accuracy** is LLMBar's: the share of the ``2 x items`` verdicts (both orders) equal to
  the gold label; an unparsed verdict counts as not correct. Its 95% interval resamples items
  (both orders of an item stay together).
- **Cohen's kappa** is between the judge's parsed verdicts (both orders pooled) and the gold
  label; ``nan`` when undefined (one category on both sides).
- **Order-flip rate** is the share of items, among those parsed in both orders, whose two verdicts
  differ (position bias); ``first_position_rate`` is the share of parsed verdicts that chose
  whichever output was shown first (0.5 is position-blind).
- **Policies** produce, per item, a decision (1, 2 or ``None`` = abstain: the item goes to a
  person) for each *presentation*. A single call and the jury are asked in one order and scored
  over both orders (the expected result for a random order); swap-and-agree and the cascade use
  both orders in one presentation. ``accuracy`` is correct / decided (``nan`` when nothing was
  decided), ``abstain_rate`` is 1 - decided / presentations, ``correct_rate`` is correct /
  presentations (an abstention counts as not correct, as if nobody looked at it).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GROUPS",
    "PairwiseInputError",
    "PairwiseJudgment",
    "PolicyOutcome",
    "cascade",
    "judge_table",
    "jury",
    "load_judgments",
    "policy_summary",
    "policy_table",
    "single",
    "subset_group",
    "swap_and_agree",
]

#: Subset groups reported, in this order (LLMBar's Adversarial has four sub-subsets).
GROUPS = ("Natural", "Adversarial", "MT-Bench")

Choice = int | None


class PairwiseInputError(ValueError):
    """A judgments file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class PairwiseJudgment:
    """One judge's verdicts on one item in both answer orders.

    ``choices`` and ``raw`` are (original order, swapped order); ``cost_usd`` is the price of one
    call in each order and ``aux_cost_usd`` the price of calls made once per item before the
    verdicts (Metrics_Reference writes metrics and a reference answer first); ``nan`` when not
    priced.
    """

    item_id: str
    subset: str
    judge: str
    strategy: str
    label: int
    choices: tuple[Choice, Choice]
    raw: tuple[str, str] = ("", "")
    finish_reason: tuple[str | None, str | None] = (None, None)
    aux: tuple[str, ...] = ()
    cost_usd: tuple[float, float] = (math.nan, math.nan)
    aux_cost_usd: float = math.nan

    @property
    def group(self) -> str:
        return subset_group(self.subset)


def subset_group(subset: str) -> str:
    """The reported group of a subset: ``Adversarial/Neighbor`` -> ``Adversarial``.

    Examples
    --------
    >>> subset_group("Adversarial/GPTInst"), subset_group("Natural")
    ('Adversarial', 'Natural')
    """
    return subset.split("/", 1)[0]


def _choice(value: Any, where: str) -> Choice:
    if value is None:
        return None
    if isinstance(value, bool) or value not in (1, 2):
        raise PairwiseInputError(f"{where}: choice must be 1, 2 or null, got {value!r}")
    return int(value)


def _order(row: Mapping[str, Any], key: str, where: str) -> tuple[Choice, str, str | None]:
    block = row.get(key)
    if not isinstance(block, Mapping):
        raise PairwiseInputError(
            f"{where}: field {key!r} must be an object {{raw_output, finish_reason, choice}}"
        )
    raw = block.get("raw_output")
    return (
        _choice(block.get("choice"), f"{where}: field '{key}.choice'"),
        raw if isinstance(raw, str) else "",
        block.get("finish_reason"),
    )


def to_judgment(row: Mapping[str, Any], *, where: str = "record") -> PairwiseJudgment:
    """Validate one recorded row (the ``llmbar_judgments.jsonl`` fields)."""
    for name in ("item_id", "subset", "judge", "strategy"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise PairwiseInputError(f"{where}: field {name!r} must be a non-empty string")
    label = row.get("label")
    if isinstance(label, bool) or label not in (1, 2):
        raise PairwiseInputError(f"{where}: field 'label' must be 1 or 2, got {label!r}")
    c1, r1, f1 = _order(row, "order_original", where)
    c2, r2, f2 = _order(row, "order_swapped", where)
    aux = row.get("aux_generations") or ()
    return PairwiseJudgment(
        item_id=row["item_id"],
        subset=row["subset"],
        judge=row["judge"],
        strategy=row["strategy"],
        label=int(label),
        choices=(c1, c2),
        raw=(r1, r2),
        finish_reason=(f1, f2),
        aux=tuple(str(a) for a in aux),
    )


def load_judgments(path: str | Path) -> list[PairwiseJudgment]:
    """Read a JSONL file of recorded pairwise judgments.

    Raises
    ------
    PairwiseInputError
        Missing file, a line that is not a JSON object, a missing or invalid field, or the same
        (judge, strategy, item) twice; the message names the line.
    """
    p = Path(path)
    if not p.is_file():
        raise PairwiseInputError(f"file not found: {p}")
    rows: list[PairwiseJudgment] = []
    seen: set[tuple[str, str, str]] = set()
    with p.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{p}: line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairwiseInputError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise PairwiseInputError(f"{where}: expected a JSON object")
            judgment = to_judgment(obj, where=where)
            key = (judgment.judge, judgment.strategy, judgment.item_id)
            if key in seen:
                raise PairwiseInputError(f"{where}: {key} appears twice; keep one row per key")
            seen.add(key)
            rows.append(judgment)
    if not rows:
        raise PairwiseInputError(f"{p}: no judgments found")
    return rows


def _accuracy_interval(
    scores: Sequence[float], *, n_boot: int, seed: int | None
) -> tuple[float, float]:
    from calibration.bootstrap import DegenerateBootstrapError, bootstrap_ci

    if not scores:
        return (math.nan, math.nan)
    try:
        return bootstrap_ci(np.mean, np.asarray(scores, dtype=float), n=n_boot, seed=seed)
    except DegenerateBootstrapError:
        return (math.nan, math.nan)


def _grouped(
    rows: Iterable[PairwiseJudgment], key: Callable[[PairwiseJudgment], tuple[str, ...]]
) -> dict[tuple[str, ...], list[PairwiseJudgment]]:
    out: dict[tuple[str, ...], list[PairwiseJudgment]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def _group_order(key: tuple[str, ...]) -> tuple[Any, ...]:
    group = key[0]
    return (GROUPS.index(group) if group in GROUPS else len(GROUPS), *key)


def judge_stats(
    rows: Sequence[PairwiseJudgment], *, n_boot: int = 1000, seed: int | None = None
) -> dict[str, Any]:
    """Accuracy (with interval), kappa, flips and cost of one judge on a set of items.

    Examples
    --------
    >>> rows = [PairwiseJudgment(f"i{k}", "Natural", "J", "Vanilla", 1 + k % 2,
    ...                          (1 + k % 2, 1)) for k in range(4)]
    >>> s = judge_stats(rows, n_boot=200, seed=0)
    >>> s["accuracy"], s["flip_rate"], s["first_position_rate"]
    (0.75, 0.5, 0.25)
    """
    from calibration.agreement import cohen_kappa

    per_item = [sum(c == r.label for c in r.choices) / 2 for r in rows]
    decided = [(c, r.label) for r in rows for c in r.choices if c is not None]
    both = [r for r in rows if None not in r.choices]
    first = [c == 1 for r in rows for c in r.choices[:1] if c is not None]
    first += [c == 2 for r in rows for c in r.choices[1:] if c is not None]
    kappa = cohen_kappa([c for c, _ in decided], [g for _, g in decided]) if decided else math.nan
    return {
        "n_items": len(rows),
        "accuracy": float(np.mean(per_item)) if per_item else math.nan,
        "accuracy_ci": list(_accuracy_interval(per_item, n_boot=n_boot, seed=seed)),
        "cohen_kappa": kappa,
        "flip_rate": (
            sum(r.choices[0] != r.choices[1] for r in both) / len(both) if both else math.nan
        ),
        "first_position_rate": sum(first) / len(first) if first else math.nan,
        "unparsed": sum(c is None for r in rows for c in r.choices),
        "cost_per_call_usd": _mean(
            [c for r in rows for c in r.cost_usd], extra=[r.aux_cost_usd for r in rows]
        ),
    }


def _mean(values: Sequence[float], *, extra: Sequence[float] = ()) -> float:
    """Mean cost of one call, with once-per-item costs spread over one call per item."""
    if not values:
        return math.nan
    calls = float(np.mean(values))
    return calls + (float(np.mean(extra)) if extra else 0.0)


def judge_table(
    rows: Sequence[PairwiseJudgment], *, n_boot: int = 1000, seed: int | None = None
) -> list[dict[str, Any]]:
    """:func:`judge_stats` per (group, judge, strategy), groups in :data:`GROUPS` order."""
    table = []
    for key, members in sorted(
        _grouped(rows, lambda r: (r.group, r.judge, r.strategy)).items(),
        key=lambda kv: _group_order(kv[0]),
    ):
        table.append(
            {"group": key[0], "judge": key[1], "strategy": key[2]}
            | judge_stats(members, n_boot=n_boot, seed=seed)
        )
    return table


@dataclass(frozen=True)
class PolicyOutcome:
    """What a policy did on one item: decisions per presentation and what the calls cost."""

    item_id: str
    label: int
    decisions: tuple[Choice, ...]
    cost_usd: float
    calls: float

    @property
    def correct(self) -> int:
        return sum(d == self.label for d in self.decisions)

    @property
    def decided(self) -> int:
        return sum(d is not None for d in self.decisions)


def single(row: PairwiseJudgment) -> PolicyOutcome:
    """One call in one order, scored over both orders (a random order's expected result)."""
    return PolicyOutcome(
        row.item_id, row.label, row.choices, float(np.mean(row.cost_usd)) + row.aux_cost_usd, 1.0
    )


def swap_and_agree(row: PairwiseJudgment) -> PolicyOutcome:
    """Ask in both orders; decide only when both verdicts agree, else abstain.

    Examples
    --------
    >>> row = PairwiseJudgment("i", "Natural", "J", "Vanilla", 1, (1, 2), cost_usd=(1.0, 1.0),
    ...                        aux_cost_usd=0.0)
    >>> swap_and_agree(row).decisions, swap_and_agree(row).cost_usd
    ((None,), 2.0)
    """
    first, second = row.choices
    decision = first if first is not None and first == second else None
    return PolicyOutcome(
        row.item_id, row.label, (decision,), sum(row.cost_usd) + row.aux_cost_usd, 2.0
    )


def _vote(votes: Sequence[tuple[Choice, float]]) -> Choice:
    tally = {1: 0.0, 2: 0.0}
    for choice, weight in votes:
        if choice is not None:
            tally[choice] += weight
    if math.isclose(tally[1], tally[2], rel_tol=0.0, abs_tol=1e-12):
        return None
    return 1 if tally[1] > tally[2] else 2


def jury(
    members: Sequence[PairwiseJudgment], *, weights: Mapping[str, float] | None = None
) -> PolicyOutcome:
    """Each judge asked once (in one order); the (weighted) majority decides, a tie abstains.

    Scored over both orders: the jury of the original-order verdicts and the jury of the
    swapped-order verdicts are two presentations. Unparsed votes are left out.

    Examples
    --------
    >>> rows = [PairwiseJudgment("i", "Natural", j, "Vanilla", 1, c, cost_usd=(1.0, 1.0),
    ...                          aux_cost_usd=0.0)
    ...         for j, c in (("A", (1, 1)), ("B", (2, 1)), ("C", (2, 2)))]
    >>> jury(rows).decisions
    (2, 1)
    >>> jury(rows, weights={"A": 0.9, "B": 0.3, "C": 0.3}).decisions
    (1, 1)
    """
    _same_item(members)
    w = weights or {}
    decisions = tuple(
        _vote([(m.choices[order], w.get(m.judge, 1.0)) for m in members]) for order in (0, 1)
    )
    cost = sum(float(np.mean(m.cost_usd)) + m.aux_cost_usd for m in members)
    return PolicyOutcome(members[0].item_id, members[0].label, decisions, cost, len(members))


def cascade(stages: Sequence[PairwiseJudgment]) -> PolicyOutcome:
    """Cheapest judge first, in both orders; the next judge only where it flips or abstains.

    After the last stage an item still undecided is abstained on (it goes to a person).

    Examples
    --------
    >>> rows = [PairwiseJudgment("i", "Natural", j, "Vanilla", 1, c, cost_usd=(p, p),
    ...                          aux_cost_usd=0.0)
    ...         for j, c, p in (("cheap", (1, 2), 1.0), ("dear", (1, 1), 10.0))]
    >>> out = cascade(rows)
    >>> out.decisions, out.cost_usd, out.calls
    ((1,), 22.0, 4.0)
    """
    _same_item(stages)
    cost = 0.0
    calls = 0.0
    for stage in stages:
        cost += sum(stage.cost_usd) + stage.aux_cost_usd
        calls += 2
        first, second = stage.choices
        if first is not None and first == second:
            return PolicyOutcome(stage.item_id, stage.label, (first,), cost, calls)
    return PolicyOutcome(stages[0].item_id, stages[0].label, (None,), cost, calls)


def _same_item(members: Sequence[PairwiseJudgment]) -> None:
    if not members:
        raise ValueError("a jury or cascade needs at least one judge")
    if len({(m.item_id, m.label) for m in members}) != 1:
        raise ValueError("a jury or cascade combines verdicts on one and the same item")


def policy_summary(
    outcomes: Sequence[PolicyOutcome], *, n_boot: int = 1000, seed: int | None = None
) -> dict[str, Any]:
    """Accuracy on decided items (interval over items), abstain rate, correct rate and cost.

    Examples
    --------
    >>> outs = [PolicyOutcome("a", 1, (1,), 2.0, 2), PolicyOutcome("b", 1, (None,), 2.0, 2),
    ...         PolicyOutcome("c", 2, (1,), 2.0, 2), PolicyOutcome("d", 2, (2,), 2.0, 2)]
    >>> s = policy_summary(outs, n_boot=200, seed=0)
    >>> round(s["accuracy"], 3), s["abstain_rate"], s["correct_rate"], s["cost_per_item_usd"]
    (0.667, 0.25, 0.5, 2.0)
    """
    from calibration.bootstrap import DegenerateBootstrapError, bootstrap_ci

    correct = np.asarray([o.correct for o in outcomes], dtype=float)
    decided = np.asarray([o.decided for o in outcomes], dtype=float)
    shown = np.asarray([len(o.decisions) for o in outcomes], dtype=float)

    def ratio(c: np.ndarray, d: np.ndarray) -> float:
        total = d.sum()
        return float(c.sum() / total) if total else math.nan

    accuracy = ratio(correct, decided)
    interval: tuple[float, float] = (math.nan, math.nan)
    if decided.sum():
        with contextlib.suppress(DegenerateBootstrapError):
            interval = bootstrap_ci(ratio, correct, decided, n=n_boot, seed=seed)
    return {
        "n_items": len(outcomes),
        "accuracy": accuracy,
        "accuracy_ci": list(interval),
        "abstain_rate": float(1.0 - decided.sum() / shown.sum()) if shown.sum() else math.nan,
        "correct_rate": float(correct.sum() / shown.sum()) if shown.sum() else math.nan,
        "cost_per_item_usd": float(np.mean([o.cost_usd for o in outcomes])),
        "calls_per_item": float(np.mean([o.calls for o in outcomes])),
    }


def _half(item_id: str) -> int:
    """Cross-fitting fold of an item: the parity of its index (``Natural#7`` -> 1)."""
    tail = item_id.rsplit("#", 1)[-1]
    return int(tail) % 2 if tail.isdigit() else sum(map(ord, item_id)) % 2


def cross_fitted_weights(
    members: Sequence[PairwiseJudgment],
) -> dict[int, dict[str, float]]:
    """Each judge's accuracy measured on the *other* half of the items, per half.

    Items are split by the parity of their index; the weights applied to half 0 are measured on
    half 1 and vice versa, so no item is judged with weights that saw its own label.
    """
    weights: dict[int, dict[str, float]] = {0: {}, 1: {}}
    for fold in (0, 1):
        other = [m for m in members if _half(m.item_id) != fold]
        for judge, rows in _grouped(other, lambda r: (r.judge,)).items():
            weights[fold][judge[0]] = judge_stats(rows, n_boot=1)["accuracy"]
    return weights


def policy_table(
    rows: Sequence[PairwiseJudgment], *, n_boot: int = 1000, seed: int | None = None
) -> list[dict[str, Any]]:
    """Every policy per (group, strategy) over the judges recorded for it.

    Policies: ``single`` and ``swap_agree`` per judge, ``jury_majority``, ``jury_weighted``
    (weights from :func:`cross_fitted_weights`) and ``cascade`` (judges by ascending mean cost
    per call). Jury and cascade use only items that every judge of the strategy judged.
    """
    table: list[dict[str, Any]] = []
    for key, members in sorted(
        _grouped(rows, lambda r: (r.group, r.strategy)).items(),
        key=lambda kv: _group_order(kv[0]),
    ):
        group, strategy = key
        by_judge = _grouped(members, lambda r: (r.judge,))
        judges = sorted(j for (j,) in by_judge)
        cost = {j: judge_stats(by_judge[(j,)], n_boot=1)["cost_per_call_usd"] for j in judges}
        order = sorted(judges, key=lambda j: (cost[j] if math.isfinite(cost[j]) else 0.0, j))

        runs: list[tuple[str, str, list[PolicyOutcome]]] = []
        for j in judges:
            runs.append(("single", j, [single(r) for r in by_judge[(j,)]]))
            runs.append(("swap_agree", j, [swap_and_agree(r) for r in by_judge[(j,)]]))
        items = _grouped(members, lambda r: (r.item_id,))
        complete = [
            sorted(v, key=lambda r: order.index(r.judge))
            for v in items.values()
            if len(v) == len(judges)
        ]
        if len(judges) >= 2 and complete:
            weights = cross_fitted_weights([r for v in complete for r in v])
            everyone = "+".join(judges)
            runs.append(("jury_majority", everyone, [jury(v) for v in complete]))
            weighted = [jury(v, weights=weights[_half(v[0].item_id)]) for v in complete]
            runs.append(("jury_weighted", everyone, weighted))
            runs.append(("cascade", " > ".join(order), [cascade(v) for v in complete]))
        for policy, who, outcomes in runs:
            table.append(
                {"group": group, "strategy": strategy, "policy": policy, "judges": who}
                | policy_summary(outcomes, n_boot=n_boot, seed=seed)
            )
    return table

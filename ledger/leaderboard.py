"""A leaderboard of agents or model paths: resolved rate, cost per resolved task, TCO.

Rows come from a results CSV (one row per agent, a resolved rate and a cost per attempt; e.g.
the tau2-bench leaderboard) or from the ledger (:func:`ledger.counted.judged_rows`, one row
per model path). Everything is priced with :mod:`ledger.economics`.

Rules
-----
- Ranked by resolved rate, highest first; equal rates by lower cost per attempt, then name.
- Cost per resolved task = cost per attempt / resolved rate; undefined (``None``, with a reason)
  when nothing was resolved or no cost is known. A reported cost of 0 is kept as reported and
  flagged (``cost_note``): leaderboards write 0 for costs they did not measure.
- The resolved rate's 95% interval is Wilson's score interval over ``attempts``; from a CSV that
  gives a rate, ``attempts`` is the number of tasks it was measured on (``--tasks``; repeated
  trials of one task are not independent, so tasks, not trials); unknown -> no interval.
- TCO at labour cost ``L`` = cost per attempt + (1 - resolved rate) x L
  (:func:`~ledger.economics.tco`).
- Break-even with the next row down (the next lower rate): the labour cost above which this row
  is cheaper per finished task (:func:`~ledger.economics.breakeven`), or the rule that applies
  when no labour cost flips the order.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.economics import breakeven, path_stats, tco

__all__ = ["Entry", "LeaderboardInputError", "entries_from_csv", "entries_from_paths", "rank"]


class LeaderboardInputError(ValueError):
    """A results file or option that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class Entry:
    """One agent (or model path) as measured: a resolved rate and what an attempt cost."""

    name: str
    rate: float
    cost_per_attempt: float | None
    attempts: int | None = None
    details: Mapping[str, str] = field(default_factory=dict)


def _wilson(rate: float, attempts: int | None) -> tuple[float, float]:
    from scipy.stats import binomtest

    if not attempts:
        return (math.nan, math.nan)
    k = min(attempts, max(0, round(rate * attempts)))
    ci = binomtest(k, attempts).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def rank(entries: Sequence[Entry], *, labor: float) -> list[dict[str, Any]]:
    """Rank entries and price them at labour cost ``labor`` (USD per failed task).

    Examples
    --------
    >>> rows = rank([Entry("cheap", 0.5, 0.01, 100), Entry("dear", 0.8, 0.20, 100)], labor=5.0)
    >>> [(r["rank"], r["name"], round(r["cost_per_resolved"], 4), round(r["tco"], 3))
    ...  for r in rows]
    [(1, 'dear', 0.25, 1.2), (2, 'cheap', 0.02, 2.51)]
    >>> round(rows[0]["breakeven_next"]["flip_labor"], 4), rows[0]["breakeven_next"]["flip_rule"]
    (0.6333, 'flips')
    """
    if not entries:
        raise LeaderboardInputError("no rows to rank")
    for e in entries:
        if not (0.0 <= e.rate <= 1.0) or not math.isfinite(e.rate):
            raise LeaderboardInputError(f"{e.name}: resolved rate {e.rate!r} is not in [0, 1]")
    ordered = sorted(
        entries,
        key=lambda e: (
            -e.rate,
            e.cost_per_attempt if e.cost_per_attempt is not None else math.inf,
            e.name,
        ),
    )
    out: list[dict[str, Any]] = []
    for i, e in enumerate(ordered):
        low, high = _wilson(e.rate, e.attempts)
        row: dict[str, Any] = {
            "rank": i + 1,
            "name": e.name,
            "resolved_rate": e.rate,
            "resolved_rate_ci": [low, high],
            "attempts": e.attempts,
            "cost_per_attempt": e.cost_per_attempt,
            "cost_per_resolved": None,
            "tco": None,
            "labor": labor,
            "details": dict(e.details),
        }
        if e.cost_per_attempt == 0:
            row["cost_note"] = "reported as $0 (not measured, or self-hosted)"
        if e.cost_per_attempt is None:
            row["cost_reason"] = "no cost reported"
        elif e.rate == 0:
            row["cost_reason"] = "undefined: nothing resolved"
        else:
            row["cost_per_resolved"] = e.cost_per_attempt / e.rate
        if e.cost_per_attempt is not None:
            row["tco"] = tco(token_cost=e.cost_per_attempt, p_fail=1.0 - e.rate, labor=labor)
        row["breakeven_next"] = (
            _breakeven(e, ordered[i + 1], labor) if i + 1 < len(ordered) else None
        )
        out.append(row)
    return out


def _breakeven(this: Entry, below: Entry, labor: float) -> dict[str, Any] | None:
    if this.cost_per_attempt is None or below.cost_per_attempt is None or labor <= 0:
        return None
    result = breakeven(
        cost_a=below.cost_per_attempt,
        cost_b=this.cost_per_attempt,
        labor=labor,
        p_fail_a=1.0 - below.rate,
        p_fail_b=1.0 - this.rate,
    )
    return {
        "versus": below.name,
        "flip_labor": result.flip_labor,
        "flip_rule": result.flip_rule,
        "cheaper_at_labor": {"a": below.name, "b": this.name}.get(str(result.cheaper), "tie"),
    }


def _number(raw: str | None, *, where: str, column: str) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise LeaderboardInputError(
            f"{where}: column {column!r} is not a number: {raw!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise LeaderboardInputError(f"{where}: column {column!r} must be finite and >= 0: {raw!r}")
    return value


def entries_from_csv(
    path: str | Path,
    *,
    name_columns: Sequence[str],
    rate_column: str,
    cost_column: str,
    percent: bool = True,
    where: Mapping[str, str] | None = None,
    tasks: int | None = None,
    detail_columns: Sequence[str] = (),
) -> tuple[list[Entry], dict[str, int]]:
    """Entries from a results CSV, and counts of the rows used and left out.

    ``name_columns`` are joined (non-empty values, `` · ``) into the row's name; ``percent``
    says the rate column is in percent; ``where`` keeps rows whose columns equal the values;
    rows without a rate or without a cost are left out and counted.
    """
    p = Path(path)
    if not p.is_file():
        raise LeaderboardInputError(f"file not found: {p}")
    with p.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        needed = [*name_columns, rate_column, cost_column, *(where or {}), *detail_columns]
        missing = [c for c in needed if c not in header]
        if missing:
            raise LeaderboardInputError(
                f"{p}: no column {missing[0]!r}; the columns are {', '.join(header)}"
            )
        entries: list[Entry] = []
        counts = {"rows": 0, "filtered_out": 0, "no_rate": 0, "no_cost": 0, "used": 0}
        for row in reader:
            counts["rows"] += 1
            line = f"{p}: line {reader.line_num}"
            if any(row.get(k, "") != v for k, v in (where or {}).items()):
                counts["filtered_out"] += 1
                continue
            rate = _number(row[rate_column], where=line, column=rate_column)
            cost = _number(row[cost_column], where=line, column=cost_column)
            if rate is None:
                counts["no_rate"] += 1
                continue
            if cost is None:
                counts["no_cost"] += 1
                continue
            rate = rate / 100.0 if percent else rate
            if rate > 1.0:
                raise LeaderboardInputError(
                    f"{line}: rate {row[rate_column]!r} is above 100%; pass --fraction if the "
                    "column holds fractions, or check the column"
                )
            name = " · ".join(row[c].strip() for c in name_columns if row[c].strip())
            details = {c: row[c] for c in detail_columns}
            entries.append(Entry(name or f"row {reader.line_num}", rate, cost, tasks, details))
            counts["used"] += 1
    if not entries:
        raise LeaderboardInputError(f"{p}: no row has both a rate and a cost ({counts})")
    return entries, counts


def entries_from_paths(
    grouped: Mapping[str | None, Sequence[tuple[str, float | None]]],
) -> list[Entry]:
    """Entries from :func:`ledger.counted.judged_rows`: one per model path (verified rate)."""
    entries = []
    for path, rows in grouped.items():
        stats = path_stats(rows, model_path=path or "(no model path)")
        entries.append(
            Entry(
                stats.model_path,
                stats.verified / stats.attempts,
                stats.token_cost,
                stats.attempts,
                {"costed": str(stats.costed)},
            )
        )
    return entries

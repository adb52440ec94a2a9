"""Group-by dimensions: one parser and one set of rules for every report that groups.

The meters (:mod:`ledger.meters`), the cost report (:mod:`ledger.cost_report`), ``GET /v1/meters``
and ``GET /v1/metrics/cost-per-verified-outcome``, and ``judge cost report --group-by`` all read
their ``group_by`` through :func:`parse_group_by`, so a dimension is accepted or refused, with
the same words, wherever it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["GroupByError", "parse_group_by"]


class GroupByError(ValueError):
    """A ``group_by`` that names an unknown dimension, or one twice (``field`` is ``group_by``).

    ``unknown`` lists the names that are no dimension; ``repeated`` the ones named twice; both
    empty for a value of the wrong type or an empty grouping where one is required.
    """

    field = "group_by"

    def __init__(
        self, message: str, *, unknown: Sequence[str] = (), repeated: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.unknown = list(unknown)
        self.repeated = list(repeated)


def parse_group_by(
    value: str | Sequence[str] | None, allowed: Sequence[str], *, required: bool = False
) -> list[str]:
    """The dimensions of ``value`` (a comma-separated string or a list), checked.

    Parameters
    ----------
    value
        ``"agent,tier"``, ``["agent", "tier"]``, or None / ``""`` for no grouping.
    allowed
        The dimensions the report knows, in the order to list them in messages.
    required
        Refuse an empty grouping (a command whose option was given with nothing in it).

    Raises
    ------
    GroupByError
        Naming the unknown or repeated dimension and the allowed ones.

    Examples
    --------
    >>> parse_group_by(" agent, tier ", ("agent", "tier", "model_path"))
    ['agent', 'tier']
    >>> parse_group_by(None, ("agent",))
    []
    >>> parse_group_by("agent,color", ("agent", "tier"))
    Traceback (most recent call last):
    ...
    ledger.dimensions.GroupByError: group_by: unknown dimension(s) color; use any of agent, tier
    """
    if value is None:
        dims: list[str] = []
    elif isinstance(value, str):
        dims = [d.strip() for d in value.split(",") if d.strip()]
    elif isinstance(value, Sequence) and all(isinstance(d, str) for d in value):
        dims = list(value)
    else:
        raise GroupByError(f"group_by must be a list of {', '.join(allowed)}")
    unknown = [d for d in dims if d not in allowed]
    if unknown:
        raise GroupByError(
            f"group_by: unknown dimension(s) {', '.join(unknown)}; use any of {', '.join(allowed)}",
            unknown=unknown,
        )
    if required and not dims:
        raise GroupByError(f"group_by: nothing given; use any of {', '.join(allowed)}")
    repeated = sorted({d for d in dims if dims.count(d) > 1})
    if repeated:
        raise GroupByError(
            f"group_by names a dimension twice: {', '.join(dims)}; name each once",
            repeated=repeated,
        )
    return dims

"""Up-front argument checks shared by the statistics functions.

Every check raises :class:`ValueError` whose message names the argument, says what is wrong and
how to fix it. These helpers are private: the public functions call them before doing any work.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Sized = Collection[Any] | npt.NDArray[Any]

#: Marker for "this value is missing" inside rating data: ``None`` or a float NaN.
MISSING_HINT = "use None or float('nan') for a missing rating"


def is_missing(value: object) -> bool:
    """True for ``None`` and float NaN (including numpy floating NaN)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    return False


def as_1d(name: str, values: object) -> npt.NDArray[Any]:
    """Return ``values`` as a non-empty 1-D numpy array, or raise naming ``name``."""
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a sequence of values, not a single string {values!r}")
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged input and the like
        raise ValueError(f"{name} must be a 1-D sequence of values: {exc}") from exc
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a 1-D sequence of values, got a scalar {values!r}")
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one value per item), got an array of shape {arr.shape}; "
            "flatten it or pass one column"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    return arr


def check_same_length(**arrays: Sized) -> int:
    """Raise unless every argument has the same length; return that length."""
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(
            f"arguments must have one entry per item and the same length: {shown}; "
            "pair the values up item by item before calling"
        )
    return next(iter(lengths.values()))


def as_float_1d(name: str, values: object) -> npt.NDArray[np.float64]:
    """Non-empty 1-D float array without NaN/inf, or raise naming ``name``."""
    arr = as_1d(name, values)
    if arr.dtype.kind not in "biuf":
        items = arr.tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[call-overload]
        numbers = arr.dtype.kind == "O" and all(
            v is None or isinstance(v, int | float | np.number) for v in items
        )
        if not numbers:
            odd = next(v for v in items if not isinstance(v, int | float | np.number | None))
            raise ValueError(
                f"{name} must hold numbers; found {type(odd).__name__} values such as {odd!r} "
                "(convert them to numbers first; strings are never parsed silently)"
            )
        arr = np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64)
    out = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/infinite value(s) (first at index {first}); "
            "drop those items from every argument or impute them before calling"
        )
    return out


def check_no_missing_labels(name: str, arr: npt.NDArray[Any]) -> None:
    """Raise if a label array contains None or NaN (labels must all be present)."""
    if arr.dtype.kind == "f":
        bad = np.isnan(arr)
    elif arr.dtype.kind == "O":
        bad = np.fromiter((is_missing(v) for v in arr), dtype=bool, count=arr.size)
    else:
        return
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} missing label(s) (None/NaN, first at index "
            f"{first}); drop the unlabelled items from both arguments before calling"
        )


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name}={value!r}; use one of {shown}")


def check_level(level: object) -> float:
    """Confidence level strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, int | float):
        raise ValueError(f"level must be a number in (0, 1) such as 0.95, got {level!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1) such as 0.95, got {level!r}")
    return float(level)


def check_draws(n: object) -> int:
    """Number of bootstrap draws: a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 1:
        raise ValueError(f"n (number of bootstrap draws) must be a positive integer, got {n!r}")
    return int(n)


def check_fraction(name: str, value: object) -> float:
    """A fraction in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def rng_from(seed: object) -> np.random.Generator:
    """A numpy Generator from None, an int or an existing Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool) and int(seed) >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(
        f"seed must be None, a non-negative int or a numpy.random.Generator, got {seed!r}"
    )


def describe_values(values: Sequence[object], limit: int = 10) -> str:
    """Short, stable listing of offending values for error messages."""
    shown = sorted({repr(v) for v in values})
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


_PEEL_LIMIT = 64


def distinct_values(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Sorted distinct values of a label array, fast for the few-categories case.

    Sorting a million strings (``np.unique``) is slow; categorical labels have few distinct
    values, so string arrays are "peeled" one value at a time (one vectorised comparison per
    category) and fall back to ``np.unique`` past ``_PEEL_LIMIT`` categories.
    """
    if arr.dtype.kind in "US":
        found: list[Any] = []
        rest = arr
        while rest.size and len(found) < _PEEL_LIMIT:
            value = rest[0]
            found.append(value)
            rest = rest[rest != value]
        values = np.asarray(found, dtype=arr.dtype)
        if rest.size:
            values = np.concatenate([values, np.unique(rest)])
        return np.sort(values)
    if arr.dtype.kind == "O":
        try:
            return np.asarray(sorted(set(arr.tolist())), dtype=object)
        except TypeError as exc:
            kinds = sorted({type(v).__name__ for v in arr.tolist()})
            raise ValueError(
                f"labels mix types that cannot be ordered ({', '.join(kinds)}); "
                "use one type for every label (all strings, or all numbers)"
            ) from exc
    return np.unique(arr)


def labels_1d(name: str, values: object) -> npt.NDArray[Any]:
    """Non-empty 1-D array of categorical labels with nothing missing."""
    arr = as_1d(name, values)
    if arr.dtype.kind not in "biufUSO":
        raise ValueError(f"{name} must hold labels (strings, booleans or numbers), got {arr.dtype}")
    if arr.dtype.kind in "US" and not isinstance(values, np.ndarray):
        # np.asarray([1, "a"]) silently turns 1 into "1"; refuse to coerce.
        seq = values if isinstance(values, Sequence) else list(arr)
        if not all(isinstance(v, str) for v in seq):
            kinds = sorted({type(v).__name__ for v in seq})
            raise ValueError(
                f"{name} mixes label types ({', '.join(kinds)}); use one type for every label"
            )
    check_no_missing_labels(name, arr)
    return arr


def _label_family(arr: npt.NDArray[Any]) -> str:
    kind = arr.dtype.kind
    if kind in "biuf":
        return "numeric"
    if kind in "US":
        return "string"
    return "object"


def encode_label_pair(
    a: object, b: object, labels: object = None, *, names: tuple[str, str] = ("a", "b")
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[Any]]:
    """Validate two paired label sequences and encode them as codes into one label list.

    Returns ``(codes_a, codes_b, label_values)`` where ``label_values[codes_a[i]]`` is ``a[i]``.
    Without ``labels`` the label list is the sorted union of observed labels; with ``labels`` it
    is exactly that list in that order, and observed labels missing from it are an error (they
    are never silently dropped).
    """
    name_a, name_b = names
    arr_a = labels_1d(name_a, a)
    arr_b = labels_1d(name_b, b)
    check_same_length(**{name_a: arr_a, name_b: arr_b})
    fam_a, fam_b = _label_family(arr_a), _label_family(arr_b)
    if "object" not in (fam_a, fam_b) and fam_a != fam_b:
        raise ValueError(
            f"{name_a} holds {fam_a} labels but {name_b} holds {fam_b} labels; "
            "use the same label type on both sides (e.g. map booleans to strings first)"
        )
    if fam_a != fam_b:  # one side is an object array: compare as Python objects
        arr_a, arr_b = arr_a.astype(object), arr_b.astype(object)
    observed = distinct_values(np.concatenate([distinct_values(arr_a), distinct_values(arr_b)]))
    if labels is None:
        values = observed
    else:
        values = labels_1d("labels", labels)
        if len(distinct_values(values)) != len(values):
            raise ValueError("labels contains duplicates; list every category exactly once")
        unknown = [v for v in observed.tolist() if v not in set(values.tolist())]
        if unknown:
            raise ValueError(
                f"{name_a}/{name_b} contain label(s) not in labels: {describe_values(unknown)}; "
                "add them to labels or drop those items"
            )
    if values.dtype.kind == "O" or arr_a.dtype.kind == "O" or arr_b.dtype.kind == "O":
        index = {v: i for i, v in enumerate(values.tolist())}
        codes_a = np.fromiter((index[v] for v in arr_a.tolist()), dtype=np.intp, count=arr_a.size)
        codes_b = np.fromiter((index[v] for v in arr_b.tolist()), dtype=np.intp, count=arr_b.size)
        return codes_a, codes_b, values
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    codes_a = order[np.searchsorted(sorted_values, arr_a)].astype(np.intp, copy=False)
    codes_b = order[np.searchsorted(sorted_values, arr_b)].astype(np.intp, copy=False)
    return codes_a, codes_b, values

"""Text rules every client string obeys: no NUL character.

PostgreSQL cannot store ``\\u0000`` in ``text`` or ``jsonb``; refusing it at the boundary (422
naming the field) keeps SQLite and PostgreSQL answering the same, never with a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000); remove it"


def no_nul(value: str) -> str:
    """Pydantic validator: refuse strings containing NUL."""
    if NUL in value:
        raise ValueError(NUL_MESSAGE)
    return value


SafeStr = Annotated[str, AfterValidator(no_nul)]


def nul_location(value: Any, loc: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where the first NUL sits in parsed JSON (a key or a string value), else None.

    >>> nul_location({"a": [1, "x\\x00"]})
    ('a', 1)
    >>> nul_location({"ok": True}) is None
    True
    """
    if isinstance(value, str):
        return loc if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return (*loc, key)
            found = nul_location(item, (*loc, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_location(item, (*loc, index))
            if found is not None:
                return found
    return None

"""Rules for text, ids and times that every input boundary shares (API, CLI, importers).

- **Text** must be valid Unicode: a lone UTF-16 surrogate (JSON ``"\\ud800"``) cannot be
  encoded as UTF-8, so it could not be stored, written to a verdict file or echoed in an error;
  it is refused, naming the field, instead of failing later or being replaced by U+FFFD.
- **Outcome ids** are normalised to NFC (so the composed and decomposed spellings of one id are
  one outcome) and must be visible text: not blank, no control characters, and no invisible
  format characters such as the bidirectional overrides, which can make one id look like another.
- **Times** are ISO 8601 strings (the JSON contract says ``date-time``). Pydantic's lax mode
  would read a number, or a numeric string, as Unix seconds; that silently turns ``0`` or
  ``"-1"`` into 1970 or 1969, so it is refused.

What a ledger stored was checked on the way in, its ids under the rules of their day; reading
it back passes ``context=FROM_LEDGER`` to ``model_validate``, so that it is taken as stored:
never renamed, refused or walked again on the way out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

#: Pass as ``model_validate(..., context=FROM_LEDGER)`` when reading what the ledger stored.
FROM_LEDGER: Final[Mapping[str, bool]] = {"from_ledger": True}
#: Pass as ``model_validate(..., context=TEXT_CHECKED)`` when the caller has already made sure
#: the input holds no lone surrogate (e.g. its raw JSON has no escape or bytes that make one):
#: every other rule still applies, only the walk looking for surrogates is skipped.
TEXT_CHECKED: Final[Mapping[str, bool]] = {"text_checked": True}
MAX_ID_CHARS = 200

_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_MESSAGE = (
    "contains a lone UTF-16 surrogate ({char}), which is not valid Unicode text; send the "
    "character itself, or both halves of a surrogate pair (e.g. \\ud83d\\ude00)"
)
#: The bidirectional controls that can reorder how text is displayed (Trojan Source).
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: Unicode categories an id may not contain: controls, invisible format characters,
#: surrogates, and the line and paragraph separators.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: An ISO 8601 date-time starts with a four-digit year and a dash; a number never does.
_ISO_START = re.compile(r"\d{4}-")
TIME_FORMAT_HINT = "an ISO 8601 string such as 2026-03-01T10:00:00Z"


def from_ledger(info: ValidationInfo | None) -> bool:
    """Whether the value is being read back from the ledger (see :data:`FROM_LEDGER`)."""
    context = None if info is None else info.context
    return isinstance(context, Mapping) and bool(context.get("from_ledger"))


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\uXXXX`` escape (printable, encodable).

    >>> escape_surrogates("a\\ud800b")
    'a\\\\ud800b'
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def surrogate_message(text: str) -> str | None:
    """The problem with a string holding a lone surrogate, else None.

    >>> surrogate_message("fine") is None
    True
    >>> surrogate_message("x\\udc00").startswith("contains a lone UTF-16 surrogate (\\\\udc00)")
    True
    """
    found = _SURROGATE.search(text)
    return None if found is None else SURROGATE_MESSAGE.format(char=escape_surrogates(found[0]))


def surrogate_location(value: Any) -> tuple[tuple[str | int, ...], str] | None:
    """Where the first lone surrogate sits in parsed JSON (a key or a string), and the problem.

    Iterative, so any nesting depth is safe. A bad key is named by its escaped spelling.

    >>> surrogate_location({"metadata": {"k": ["ok", "\\ud800"]}})[0]
    ('metadata', 'k', 1)
    >>> surrogate_location({"metadata": {"\\ud800": 1}})[0]
    ('metadata', '\\\\ud800')
    >>> surrogate_location({"text": "plain"}) is None
    True
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, str):
            message = surrogate_message(node)
            if message is not None:
                return loc, message
        elif isinstance(node, Mapping):
            for key, item in reversed(list(node.items())):
                if isinstance(key, str) and (message := surrogate_message(key)) is not None:
                    return (*loc, escape_surrogates(key)), f"the key {message}"
                stack.append((item, (*loc, key if isinstance(key, str | int) else str(key))))
        elif isinstance(node, list | tuple):
            stack.extend((item, (*loc, i)) for i, item in reversed(list(enumerate(node))))
    return None


def refuse_surrogates(data: Any, title: str, info: ValidationInfo | None = None) -> Any:
    """Raise a ``ValidationError`` located at the first lone surrogate in ``data``.

    Used by ``mode="before"`` model validators: pydantic nests the location under the model's
    own, so the error names the exact field (``conversation.0.text``, ``metadata.k``). What the
    ledger stored was checked on the way in; reading it back (:data:`FROM_LEDGER`) skips the walk,
    as does input its caller has already checked (:data:`TEXT_CHECKED`).
    """
    context = None if info is None else info.context
    if from_ledger(info) or (isinstance(context, Mapping) and context.get("text_checked")):
        return data
    found = surrogate_location(data)
    if found is not None:
        loc, message = found
        error = PydanticCustomError("lone_surrogate", message)
        detail = InitErrorDetails(type=error, loc=loc, input=None)
        raise ValidationError.from_exception_data(title, [detail])
    return data


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name}".strip()


def check_id(value: str, what: str = "id") -> str:
    """``value`` normalised to NFC, or ``ValueError`` saying what is wrong and how to fix it.

    >>> check_id("cafe\\u0301") == "caf\\u00e9"
    True
    >>> check_id("T-1001")
    'T-1001'
    >>> check_id("   ")
    Traceback (most recent call last):
    ...
    ValueError: id is blank (only whitespace); send a visible id such as T-1001
    >>> check_id(" T-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: id ' T-1' starts or ends with whitespace, ...; remove the whitespace
    >>> check_id("a\\u202eb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: id contains the invisible bidirectional control U+202E RIGHT-TO-LEFT OVERRIDE...
    """
    message = surrogate_message(value)
    if message is not None:
        raise ValueError(f"{what} {message}")
    normal = unicodedata.normalize("NFC", value)
    if not normal.strip():
        raise ValueError(f"{what} is blank (only whitespace); send a visible id such as T-1001")
    for char in normal:
        if char in BIDI_CONTROLS:
            raise ValueError(
                f"{what} contains the invisible bidirectional control {_describe(char)}, which "
                "can make one id display as another; remove it"
            )
        category = unicodedata.category(char)
        if category in _INVISIBLE_CATEGORIES:
            kind = "invisible format character" if category == "Cf" else "control character"
            raise ValueError(
                f"{what} contains the {kind} {_describe(char)}; ids must be visible text: remove it"
            )
    if normal != normal.strip():
        # " T-1" and "T-1" would be two outcomes that look the same in every listing.
        raise ValueError(
            f"{what} {normal!r} starts or ends with whitespace, which would make it a different "
            f"outcome from {normal.strip()!r}; remove the whitespace"
        )
    if len(normal) > MAX_ID_CHARS:
        raise ValueError(f"{what} is longer than {MAX_ID_CHARS} characters once normalised to NFC")
    return normal


def outcome_id_rule(value: str, info: ValidationInfo) -> str:
    """Pydantic after-validator of an outcome id: :func:`check_id`, except for stored ids."""
    if from_ledger(info):
        return value
    return check_id(value)


def iso_time_only(value: Any) -> Any:
    """Pydantic before-validator: a time must be a ``datetime`` or an ISO 8601 string.

    >>> iso_time_only("2026-03-01T10:00:00Z")
    '2026-03-01T10:00:00Z'
    >>> iso_time_only(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: a number is not a valid datetime (Unix times are not accepted); send an ISO ...
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"a number is not a valid datetime (Unix times are not accepted); send "
            f"{TIME_FORMAT_HINT}"
        )
    if isinstance(value, str):
        if not _ISO_START.match(value):
            raise ValueError(
                f"not a valid datetime: send {TIME_FORMAT_HINT}, starting with the date "
                "(YYYY-MM-DD); numbers and Unix times are not accepted"
            )
        return value
    raise ValueError(f"not a valid datetime: send {TIME_FORMAT_HINT}")


def utc_representable(value: datetime) -> datetime:
    """Refuse an aware time that has no UTC equivalent (e.g. 0001-01-01T00:00+10:00)."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                "out of range once converted to UTC (years 1-9999); send a UTC time"
            ) from None
    return value

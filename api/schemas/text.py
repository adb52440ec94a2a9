"""Text rules every client string obeys: no NUL character, no lone surrogate.

PostgreSQL cannot store ``\\u0000`` in ``text`` or ``jsonb``; refusing it at the boundary (422
naming the field) keeps SQLite and PostgreSQL answering the same, never with a 500. A lone
UTF-16 surrogate (JSON ``"\\ud800"``) is not valid Unicode: no database or response can encode
it (:mod:`judge.input_rules`), so it is refused the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, model_validator

from judge.input_rules import check_id, refuse_surrogates, surrogate_location, surrogate_message

NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000); remove it"


def no_nul(value: str) -> str:
    """Pydantic validator: refuse strings containing NUL or a lone surrogate."""
    if NUL in value:
        raise ValueError(NUL_MESSAGE)
    message = surrogate_message(value)
    if message is not None:
        raise ValueError(message)
    return value


SafeStr = Annotated[str, AfterValidator(no_nul)]
#: An outcome id in a request: NFC-normalised visible text (:func:`judge.input_rules.check_id`).
OutcomeId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_id)]


class UnicodeInput(BaseModel):
    """A request body model that refuses lone surrogates anywhere in it, naming the field.

    Pydantic's own message for one ("unable to parse raw data as a unicode string") names
    neither the problem nor the fix, and for a dict key it names the field with U+FFFD.
    """

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any, info: ValidationInfo) -> Any:
        return refuse_surrogates(data, cls.__name__, info)


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


#: What a JSON text needs to hold for its parsed value to contain a NUL or a lone surrogate: the
#: escape \u0000, a surrogate escape (\ud800-\udfff), the UTF-8 bytes of a surrogate (Python's
#: JSON reader lets them through) or a NUL byte (UTF-16 and UTF-32 bodies, which hold NUL bytes
#: for every ASCII character, are therefore always walked).
_SUSPECT_BYTES = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|\xed[\xa0-\xbf]|\x00")


def raw_text_clean(raw: bytes) -> bool:
    r"""True when the JSON text ``raw`` cannot parse to a NUL or a lone surrogate anywhere, so the
    walks of :func:`text_problem` and the models' surrogate check (``TEXT_CHECKED``) can be
    skipped. False means "maybe" (a valid surrogate pair written as escapes looks the same):
    walk then.

    >>> raw_text_clean(b'{"text": "caf\\u00e9 \xc3\xa9"}'), raw_text_clean(b'{"a": "\\ud800"}')
    (True, False)
    >>> raw_text_clean(b'{"a": "x\\u0000"}'), raw_text_clean('{"a": 1}'.encode("utf-16"))
    (False, False)
    """
    return _SUSPECT_BYTES.search(raw) is None


def text_problem(value: Any) -> tuple[tuple[Any, ...], str] | None:
    """Where parsed JSON holds text no ledger can store, and why: a NUL, else a lone surrogate.

    >>> text_problem({"a": ["x\\x00"]})[0]
    ('a', 0)
    >>> text_problem({"a": {"\\ud800": 1}})[0]
    ('a', '\\\\ud800')
    """
    where = nul_location(value)
    if where is not None:
        return where, NUL_MESSAGE
    return surrogate_location(value)

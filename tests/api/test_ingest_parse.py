"""The ingest route's shortcuts decide as the full checks would, for any JSON: the raw-bytes
check that lets a body skip the NUL and surrogate walks never lets a NUL or a lone surrogate
through, and the level-by-level depth is the nesting depth."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.routers.outcomes import MAX_DEPTH, _depth
from api.schemas.text import raw_text_clean, text_problem

# Text with the characters that matter: NUL, lone and paired surrogates, other escapes.
_chars = st.sampled_from(["a", "é", "\x00", "\ud800", "\udfff", "\ud83d\ude00", "😀", "\\", '"'])
_text = st.lists(_chars, max_size=4).map("".join) | st.text(max_size=6)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)


def _encodings(value: Any) -> list[bytes]:
    """The ways a client can send ``value``: escaped ASCII, raw UTF-8 (lone surrogates as the
    bytes Python's reader lets through), UTF-16."""
    plain = json.dumps(value, ensure_ascii=False)
    return [
        json.dumps(value).encode(),
        plain.encode("utf-8", "surrogatepass"),
        plain.encode("utf-16", "surrogatepass"),
    ]


@settings(max_examples=400)
@given(_json)
def test_a_clean_raw_body_parses_to_text_every_ledger_can_store(value: Any) -> None:
    for raw in _encodings(value):
        parsed = json.loads(raw)
        if raw_text_clean(raw):
            assert text_problem(parsed) is None, raw
    clean = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if text_problem(value) is None and b"\\u" not in clean:
        assert raw_text_clean(clean)  # storable text sent as UTF-8 takes the fast path


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 1


@settings(max_examples=300)
@given(_json, st.integers(0, MAX_DEPTH + 3))
def test_depth_is_the_nesting_depth(value: Any, wrap: int) -> None:
    for _ in range(wrap):  # deep enough to cross the limit
        value = [value]
    expected = _reference_depth(value)
    if expected <= MAX_DEPTH:
        assert _depth(value) == expected
    else:
        assert _depth(value) > MAX_DEPTH

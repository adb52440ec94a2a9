"""The untrusted fields of an outcome, as the judge's prompt shows them (scanned one by one).

Tool-call arguments usually arrive as JSON-encoded strings, whose escapes (``\\u0456``, ``\\n``)
would hide look-alikes and line-anchored fake lines from the rules though a model reads through
them: every string holding JSON is decoded first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["MAX_DECODE_DEPTH", "string_leaves", "tool_calls_text"]

#: How deep tool-call arguments and metadata are walked (JSON decoded inside strings included).
MAX_DECODE_DEPTH = 32


def tool_calls_text(tool_calls: list[dict[str, Any]]) -> str:
    """The text of an agent's tool calls, as a reader of the judge's prompt would read it.

    Arguments usually arrive as a JSON-encoded string (OpenAI's ``function.arguments``), whose
    escapes (``\\u0456``, ``\\n``) would hide homoglyphs, fullwidth or mathematical letters and
    line-anchored fake role or delimiter lines from the rules, though a model decodes them
    as it reads. So every string that holds a JSON object or array is decoded first, the calls
    are dumped without ASCII escapes, and each string spanning several lines is added as it is
    (a line of it can pose as a role or a delimiter, as in a message's text).
    """
    decoded = _decode_json_strings(tool_calls, depth=MAX_DECODE_DEPTH)
    lines = [json.dumps(decoded, ensure_ascii=False)]
    lines += [leaf for leaf in string_leaves(decoded, depth=MAX_DECODE_DEPTH) if "\n" in leaf]
    return "\n".join(lines)


def _decode_json_strings(value: Any, *, depth: int) -> Any:
    """``value`` with each string that is a JSON object or array replaced by what it encodes."""
    if depth <= 0:
        return value
    if isinstance(value, dict):
        return {k: _decode_json_strings(v, depth=depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json_strings(v, depth=depth - 1) for v in value]
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            inner = json.loads(value)
        except (ValueError, RecursionError):
            return value
        if isinstance(inner, dict | list):
            return _decode_json_strings(inner, depth=depth - 1)
    return value


def string_leaves(value: Any, *, depth: int) -> Iterator[str]:
    """Every string in ``value`` (dict keys included), depth-first."""
    if depth <= 0:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from string_leaves(v, depth=depth - 1)
    elif isinstance(value, list):
        for v in value:
            yield from string_leaves(v, depth=depth - 1)

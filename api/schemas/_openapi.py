"""OpenAPI helpers for routes that parse their body themselves (several content types)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import TypeAdapter


def _deref(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _deref({**target, **rest}, defs)
        return {k: _deref(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_deref(item, defs) for item in node]
    return node


def inline_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of ``tp`` with every ``$ref`` replaced by its definition.

    A route's ``openapi_extra`` request body cannot point into ``#/components`` for models the
    app does not otherwise register, and ``#/$defs`` would resolve against the whole OpenAPI
    document; the models here are not recursive, so inlining is exact.
    """
    schema = TypeAdapter(tp).json_schema(mode="validation")
    defs = schema.get("$defs", {})
    inlined: dict[str, Any] = _deref(schema, defs)
    return inlined

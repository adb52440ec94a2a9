"""Agent token usage per conversation, read from OpenTelemetry GenAI traces (OTLP JSON).

The input is what an OTLP/HTTP exporter POSTs to ``/v1/traces`` (an ``ExportTraceServiceRequest``:
``resourceSpans`` -> ``scopeSpans`` -> ``spans``), one per file or one per line (the Collector's
file exporter writes JSON Lines). Rules, from the GenAI semantic conventions:

- only **inference** spans count (``gen_ai.operation.name`` ``chat``, ``text_completion``,
  ``generate_content``, ``embeddings``): ``invoke_agent`` spans repeat their children's usage and
  would count it twice, and tool and HTTP spans have none;
- spans are grouped by ``gen_ai.conversation.id`` (one conversation may span many traces);
  inference spans without one are counted apart as unattributed, never dropped silently;
- the model is ``gen_ai.response.model`` (the one that answered), else ``gen_ai.request.model``;
  the provider ``gen_ai.provider.name``, else the deprecated ``gen_ai.system``;
- tokens are ``gen_ai.usage.input_tokens`` / ``output_tokens`` (else the deprecated
  ``prompt_tokens`` / ``completion_tokens``); ``cache_read.input_tokens`` is part of the input,
  kept apart only to price it at its own rate; a failed call without usage counts 0.

Pure: no pricing here (that is :func:`judge.model_client.usage_cost`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "INFERENCE_OPERATIONS",
    "ConversationUsage",
    "ModelUsage",
    "TraceInputError",
    "TraceUsage",
    "read_trace_usage",
]

INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
#: A traces file larger than this is refused (export one day at a time).
MAX_TRACE_BYTES = 1024 * 1024 * 1024
_MAX_ID = 200


class TraceInputError(ValueError):
    """The traces file cannot be read; the message names the line and the problem."""


@dataclass
class ModelUsage:
    """Tokens one model used in one conversation."""

    model: str
    provider: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    calls: int = 0


@dataclass
class ConversationUsage:
    """Every model call of one conversation, and the span to link a verdict to (the last one)."""

    conversation_id: str
    models: dict[str, ModelUsage] = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    last_end: int = -1

    @property
    def tokens_in(self) -> int:
        return sum(m.tokens_in for m in self.models.values())

    @property
    def tokens_out(self) -> int:
        return sum(m.tokens_out for m in self.models.values())


@dataclass
class TraceUsage:
    """All conversations of a traces file, and what was left out and why."""

    conversations: dict[str, ConversationUsage] = field(default_factory=dict)
    unattributed: dict[str, ModelUsage] = field(default_factory=dict)
    spans: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _value(any_value: Any) -> Any:
    """A Python value from an OTLP JSON ``AnyValue`` (``intValue`` may be a string)."""
    if not isinstance(any_value, dict):
        return None
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:
        try:
            return int(any_value["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in any_value:
        return any_value["doubleValue"]
    if "boolValue" in any_value:
        return any_value["boolValue"]
    if "arrayValue" in any_value:
        values = (any_value["arrayValue"] or {}).get("values") or []
        return [_value(v) for v in values]
    return None


def _attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, list):
        return {}
    return {
        item["key"]: _value(item.get("value"))
        for item in raw
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def _tokens(attrs: dict[str, Any], *names: str) -> int:
    for name in names:
        value = attrs.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _requests(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TraceInputError(f"{path}: cannot read ({exc.strerror})") from None
    if size > MAX_TRACE_BYTES:
        raise TraceInputError(f"{path}: {size:,} bytes is over the limit; split it by day")
    with path.open(encoding="utf-8") as handle:
        first = handle.read(1)
        handle.seek(0)
        text_is_one_document = first == "{" and path.suffix.lower() == ".json"
        if text_is_one_document:
            try:
                yield 1, json.load(handle)
            except json.JSONDecodeError as exc:
                raise TraceInputError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceInputError(f"{path}: line {number}: not JSON ({exc.msg})") from None


def _spans(document: Any, where: str) -> Iterable[dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("resourceSpans"), list):
        raise TraceInputError(
            f"{where}: not an OTLP JSON trace export (no resourceSpans); export traces with "
            "the OTLP/HTTP JSON encoding or the Collector's file exporter"
        )
    for resource in document["resourceSpans"]:
        for scope in (resource or {}).get("scopeSpans") or []:
            for span in (scope or {}).get("spans") or []:
                if isinstance(span, dict):
                    yield span


def read_trace_usage(path: Path) -> TraceUsage:
    """Token usage per conversation of every inference span in ``path`` (see the module doc)."""
    usage = TraceUsage()
    for number, document in _requests(path):
        for span in _spans(document, f"{path}: line {number}"):
            usage.spans += 1
            _add_span(usage, span)
    return usage


def _add_span(usage: TraceUsage, span: dict[str, Any]) -> None:
    attrs = _attributes(span.get("attributes"))
    operation = attrs.get("gen_ai.operation.name")
    if operation is None:
        usage.skipped["not a GenAI span"] += 1
        return
    if operation not in INFERENCE_OPERATIONS:
        usage.skipped[f"{operation} (not an inference span)"] += 1
        return
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if not isinstance(model, str) or not model:
        usage.skipped["inference span without a model"] += 1
        return
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    conversation = attrs.get("gen_ai.conversation.id")
    if isinstance(conversation, str) and 0 < len(conversation) <= _MAX_ID:
        entry = usage.conversations.setdefault(conversation, ConversationUsage(conversation))
        models = entry.models
        end = _nanos(span.get("endTimeUnixNano"))
        if end >= entry.last_end:
            entry.last_end = end
            entry.trace_id = _hex(span.get("traceId"), 32)
            entry.span_id = _hex(span.get("spanId"), 16)
    else:
        models = usage.unattributed
    counted = models.setdefault(
        model, ModelUsage(model, provider if isinstance(provider, str) else None)
    )
    counted.calls += 1
    counted.tokens_in += _tokens(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    counted.tokens_out += _tokens(
        attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
    )
    counted.cache_read += _tokens(attrs, "gen_ai.usage.cache_read.input_tokens")


def _nanos(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1


def _hex(raw: Any, digits: int) -> str | None:
    if isinstance(raw, str) and len(raw) == digits:
        try:
            int(raw, 16)
        except ValueError:
            return None
        return raw.lower()
    return None

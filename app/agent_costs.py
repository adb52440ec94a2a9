"""Agent cost from OpenTelemetry GenAI traces, priced and put on the outcomes it belongs to.

"Instrument the attempt, the model path and its cost" without hand-written cost fields: the
usage per conversation (:mod:`judge.importers.otel_traces`) is priced with litellm's bundled map
(:func:`judge.model_client.usage_cost`) and set on each outcome whose id, or whose
``metadata.conversation_id``, is the trace's ``gen_ai.conversation.id``: ``agent.cost_usd``,
``tokens_in``, ``tokens_out`` and ``model_path`` (the models that answered, in the order first
used, joined by ``+``). A conversation with a model the map does not price gets its tokens and
model path but no cost (``cost_usd`` stays unknown rather than understated), and is reported.
The span it ended on is kept in ``metadata.otel`` so a verdict can be linked back to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judge.importers.otel_traces import ConversationUsage, TraceUsage
    from judge.models import Outcome

__all__ = ["AgentCost", "AgentCosts", "load_agent_costs"]


@dataclass(frozen=True, slots=True)
class AgentCost:
    """The priced agent usage of one conversation (``cost_usd`` None: a model is unpriced)."""

    conversation_id: str
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    model_path: str
    unpriced: tuple[str, ...]
    trace_id: str | None
    span_id: str | None


@dataclass
class AgentCosts:
    """Costs per conversation, and what the traces held that no outcome took."""

    by_conversation: dict[str, AgentCost]
    usage: TraceUsage
    applied: set[str] = field(default_factory=set)

    def apply(self, outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
        """Each outcome with its agent cost from the traces (unchanged when it has none)."""
        for outcome in outcomes:
            key = outcome.id
            if key not in self.by_conversation:
                meta = outcome.metadata.get("conversation_id")
                key = meta if isinstance(meta, str) else key
            cost = self.by_conversation.get(key)
            if cost is None:
                yield outcome
                continue
            self.applied.add(cost.conversation_id)
            agent = outcome.agent.model_copy(
                update={
                    "cost_usd": None if cost.cost_usd is None else round(cost.cost_usd, 12),
                    "tokens_in": cost.tokens_in,
                    "tokens_out": cost.tokens_out,
                    "model_path": cost.model_path[:200],
                }
            )
            metadata = {
                **outcome.metadata,
                "otel": {"trace_id": cost.trace_id, "span_id": cost.span_id},
            }
            yield outcome.model_copy(update={"agent": agent, "metadata": metadata})

    def report(self) -> dict[str, Any]:
        """What was read, priced, applied, and left out (for the command's report)."""
        usage = self.usage
        return {
            "spans": usage.spans,
            "conversations": len(self.by_conversation),
            "applied": len(self.applied),
            "not_matched": sorted(set(self.by_conversation) - self.applied),
            "unpriced": {
                c.conversation_id: list(c.unpriced)
                for c in self.by_conversation.values()
                if c.unpriced
            },
            "unattributed_calls": sum(m.calls for m in usage.unattributed.values()),
            "skipped_spans": dict(usage.skipped),
        }


def _priced(conversation: ConversationUsage) -> AgentCost:
    from judge.model_client import usage_cost

    total = 0.0
    unpriced = []
    for m in conversation.models.values():
        cost = usage_cost(
            m.model,
            provider=m.provider,
            tokens_in=m.tokens_in,
            tokens_out=m.tokens_out,
            cache_read=m.cache_read,
        )
        if cost is None:
            unpriced.append(m.model)
        else:
            total += cost
    return AgentCost(
        conversation_id=conversation.conversation_id,
        cost_usd=None if unpriced else total,
        tokens_in=conversation.tokens_in,
        tokens_out=conversation.tokens_out,
        model_path="+".join(conversation.models),
        unpriced=tuple(unpriced),
        trace_id=conversation.trace_id,
        span_id=conversation.span_id,
    )


def load_agent_costs(path: Path) -> AgentCosts:
    """Read and price ``path`` (raises :class:`judge.importers.otel_traces.TraceInputError`)."""
    from judge.importers.otel_traces import read_trace_usage

    usage = read_trace_usage(path)
    return AgentCosts({cid: _priced(c) for cid, c in usage.conversations.items()}, usage)

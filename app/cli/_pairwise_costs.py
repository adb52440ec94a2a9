"""Price recorded pairwise judgments: tokens of the recorded texts at litellm's per-token prices.

No call is made. Each call's input is the instruction and both outputs of the item (counted
exactly) plus a fixed overhead for the prompt template, which the recordings do not include;
each call's output is the recorded reply. Metrics_Reference first generates question-specific
metrics and a reference answer (``aux_generations``): two extra calls per item, shared by both
orders, whose texts are also fed to the verdict call.

Tokens are counted by :func:`judge.limits.count_tokens` (OpenAI's cl100k tokenizer, bundled with
litellm): exact for GPT-4 and ChatGPT, an approximation for LLaMA-2 (its own tokenizer is not
installed and would have to be downloaded; it usually gives somewhat more tokens on English).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from calibration.pairwise_replay import PairwiseInputError, PairwiseJudgment
from judge.model_client import count_tokens, token_prices

__all__ = [
    "AUX_PROMPT_TOKENS",
    "PRICED_AS",
    "PROMPT_TOKENS",
    "load_items",
    "price_rows",
    "pricing_notes",
]

#: The litellm model id each recorded judge is priced as (LLMBar's judges: GPT-4 and ChatGPT
#: through OpenAI's API in 2023, LLaMA-2-70B-Chat; litellm's map has no price for the dated
#: gpt-3.5-turbo-0613, so the current gpt-3.5-turbo price stands in for ChatGPT).
PRICED_AS = {
    "GPT-4": "gpt-4-0613",
    "ChatGPT": "gpt-3.5-turbo",
    "LLaMA2": "replicate/meta/llama-2-70b-chat",
}

#: Approximate tokens of the prompt template around the item (system prompt, rules, headings),
#: per strategy: Vanilla and CoT carry LLMBar's evaluation rules, Vanilla_NoRules does not,
#: Metrics_Reference adds instructions for using the generated metrics and reference.
PROMPT_TOKENS = {"Vanilla": 260, "CoT": 290, "Vanilla_NoRules": 120, "Metrics_Reference": 320}
#: Approximate template tokens of each extra generation call (besides the instruction).
AUX_PROMPT_TOKENS = 80


def load_items(path: str | Path) -> dict[str, dict[str, Any]]:
    """Items by ``item_id`` from ``llmbar_items.jsonl`` (``input``, ``output_1``, ``output_2``).

    Raises
    ------
    PairwiseInputError
        Missing file, invalid JSON or a row without ``item_id`` and the three texts.
    """
    p = Path(path)
    if not p.is_file():
        raise PairwiseInputError(f"file not found: {p}")
    items: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PairwiseInputError(f"{p}: line {lineno}: invalid JSON ({exc.msg})") from None
        missing = [
            k
            for k in ("item_id", "input", "output_1", "output_2")
            if not isinstance(obj.get(k) if isinstance(obj, dict) else None, str)
        ]
        if missing:
            raise PairwiseInputError(f"{p}: line {lineno}: field {missing[0]!r} must be a string")
        items[obj["item_id"]] = obj
    return items


@cache
def _tokens(text: str) -> int:
    return count_tokens(text)


def price_rows(
    rows: Sequence[PairwiseJudgment],
    items: Mapping[str, Mapping[str, Any]],
    *,
    priced_as: Mapping[str, str] = PRICED_AS,
) -> list[PairwiseJudgment]:
    """The rows with ``cost_usd`` (per call, each order) and ``aux_cost_usd`` filled in.

    Raises
    ------
    ValueError
        A judge with no model id in ``priced_as``, a model without a price in litellm's map, or
        a judged item missing from ``items`` (the message names it).
    """
    prices: dict[str, tuple[float, float]] = {}
    priced: list[PairwiseJudgment] = []
    for row in rows:
        model = priced_as.get(row.judge)
        if model is None:
            raise ValueError(
                f"no model id to price judge {row.judge!r}; known: {', '.join(priced_as)}"
            )
        if model not in prices:
            prices[model] = token_prices(model)
        price_in, price_out = prices[model]
        item = items.get(row.item_id)
        if item is None:
            raise ValueError(f"item {row.item_id!r} is judged but not in the items file")
        body = _tokens(item["input"]) + _tokens(item["output_1"]) + _tokens(item["output_2"])
        aux_out = sum(_tokens(text) for text in row.aux)
        aux_in = len(row.aux) * (AUX_PROMPT_TOKENS + _tokens(item["input"]))
        tokens_in = PROMPT_TOKENS.get(row.strategy, PROMPT_TOKENS["Vanilla"]) + body + aux_out
        costs = tuple(tokens_in * price_in + _tokens(raw) * price_out for raw in row.raw)
        priced.append(
            dataclasses.replace(
                row,
                cost_usd=(costs[0], costs[1]),
                aux_cost_usd=aux_in * price_in + aux_out * price_out,
            )
        )
    return priced


def pricing_notes(priced_as: Mapping[str, str] = PRICED_AS) -> dict[str, Any]:
    """What the costs assume: model ids, USD per million tokens, template overheads."""
    return {
        "priced_as": {
            judge: {
                "model": model,
                "usd_per_million_input": round(token_prices(model)[0] * 1e6, 4),
                "usd_per_million_output": round(token_prices(model)[1] * 1e6, 4),
            }
            for judge, model in priced_as.items()
        },
        "tokenizer": "cl100k (litellm token_counter); approximate for LLaMA-2",
        "prompt_template_tokens": dict(PROMPT_TOKENS),
        "aux_call_template_tokens": AUX_PROMPT_TOKENS,
    }

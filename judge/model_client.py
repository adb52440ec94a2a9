"""The one door to model providers: the only module that imports litellm.

Everything the project asks of litellm goes through here: the completion call, which of its
errors are worth a retry, what a reply cost, what a prompt would cost, which provider a model
string names, token counts and prices from the bundled price map. Keeping litellm behind one
module keeps its import cost (seconds) in one place (:func:`warm_up`), makes the boundary a
contract a test can check (``tests/test_architecture.py``), and keeps provider-specific
knowledge out of the engine.

``judge/__init__.py`` sets ``LITELLM_LOCAL_MODEL_COST_MAP`` before anything can import litellm,
so the price map is the bundled one and nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any

__all__ = [
    "TOKENIZER_MODEL",
    "acompletion",
    "count_tokens",
    "is_lost_connection",
    "is_transient",
    "known_provider",
    "litellm_acompletion",
    "prompt_cost",
    "prompt_tokens",
    "reply_cost",
    "stand_in_installed",
    "supports_response_schema",
    "token_prices",
    "using",
    "warm_up",
]

#: Tokenizer used for counts and estimates: OpenAI's cl100k (bundled with litellm, so nothing is
#: fetched). For other model families it is an approximation (LLaMA-2's SentencePiece tokenizer
#: would be downloaded from a hub, which this project never does).
TOKENIZER_MODEL = "gpt-4"


@cache
def _litellm() -> Any:
    import litellm

    litellm.suppress_debug_info = True  # an unknown model must not print litellm's banner
    return litellm


def warm_up() -> None:
    """Import litellm and load its tokenizer now (seconds, and the tokenizer's loading holds
    the GIL): before a progress bar or a job's clock starts, and off the event loop."""
    _litellm()
    count_tokens("warm up")


Completion = Callable[..., Awaitable[Any]]
_stand_in: ContextVar[Completion | None] = ContextVar("model_client_stand_in", default=None)


@contextmanager
def using(completion: Completion) -> Iterator[None]:
    """Send every completion made in this context (and in the tasks it starts) to
    ``completion`` instead of a provider: an in-process fake model for unit tests
    (``tests/fakes/fake_model.py``). Integration tests use litellm's real HTTP path instead."""
    token = _stand_in.set(completion)
    try:
        yield
    finally:
        _stand_in.reset(token)


def stand_in_installed() -> bool:
    """Whether :func:`using` sent this context's completions somewhere (a test's fake model): a
    call process must not take them back to a provider."""
    return _stand_in.get() is not None


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` with ``kwargs`` as given (the caller sets retries and timeouts),
    or the stand-in :func:`using` installed."""
    stand_in = _stand_in.get()
    if stand_in is not None:
        return await stand_in(**kwargs)
    return await litellm_acompletion(**kwargs)


async def litellm_acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` itself, whatever stand-in is installed: what a stand-in that
    forwards calls (:mod:`judge.call_process`) makes when it cannot forward."""
    return await _litellm().acompletion(**kwargs)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a timeout, a lost connection or a rate limit: as litellm classes it,
    or a bare one litellm let through unwrapped."""
    if getattr(exc, "transient", None) is True:  # classed so in the call process
        return True
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    litellm = _litellm()
    return isinstance(exc, litellm.Timeout | litellm.APIConnectionError | litellm.RateLimitError)


def is_lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a failure to reach the provider (litellm wraps
    httpx's and aiohttp's errors several deep)."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return False
        if isinstance(cause, ConnectionError) or type(cause).__name__ in (
            "ConnectError",
            "APIConnectionError",
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def reply_cost(response: Any) -> float:
    """USD of one completion: litellm's ``response_cost``, else its price map; 0 when the model
    has no price (recorded as unknown, never guessed)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = _litellm().completion_cost(completion_response=response)
        except Exception:  # a model missing from the price map costs "unknown", recorded as 0
            cost = 0.0
    return float(cost or 0.0)


def prompt_cost(model: str, messages: Sequence[dict[str, Any]]) -> float:
    """The prompt's tokens (:func:`prompt_tokens`) at ``model``'s input price; 0 without one."""
    try:
        tokens = prompt_tokens(messages)
        if tokens <= _LINEAR_PRICE_TOKENS:
            return tokens * _input_price(model)
        return float(_litellm().cost_per_token(model=model, prompt_tokens=tokens)[0])
    except Exception:  # a model missing from the price map: the estimate is unknown (0)
        return 0.0


#: Prompts up to this many tokens are priced per token (price tiers start at 128k tokens).
_LINEAR_PRICE_TOKENS = 32_000


@cache
def _input_price(model: str) -> float:
    """USD per prompt token of ``model`` below any price tier (litellm's ``cost_per_token``
    takes a third of a millisecond a call: asked once per model)."""
    return float(_litellm().cost_per_token(model=model, prompt_tokens=1000)[0]) / 1000


#: Tokens litellm's counter adds to every chat prompt without tools (the reply primer).
_REPLY_PRIMER_TOKENS = 3


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Tokens of a chat prompt by :data:`TOKENIZER_MODEL`'s tokenizer, as litellm counts them.

    litellm counts a prompt without tools as the sum over its messages plus a reply primer, so
    each message is counted once and remembered: every prompt of a rubric shares its system
    message, which is most of the tokens and was re-encoded for every attempt.

    Examples
    --------
    >>> msgs = [{"role": "system", "content": "Grade it."}, {"role": "user", "content": "Hi"}]
    >>> prompt_tokens(msgs) == _litellm().token_counter(model=TOKENIZER_MODEL, messages=msgs)
    True
    """
    total = _REPLY_PRIMER_TOKENS
    for message in messages:
        if all(isinstance(v, str) for v in message.values()):
            total += _message_tokens(tuple(message.items()))
        else:  # structured content: counted as litellm does, not remembered
            total += _count_messages([dict(message)])
    return total


@lru_cache(maxsize=256)
def _message_tokens(items: tuple[tuple[str, str], ...]) -> int:
    return _count_messages([dict(items)])


def _count_messages(messages: list[dict[str, Any]]) -> int:
    counted = int(_litellm().token_counter(model=TOKENIZER_MODEL, messages=messages))
    return counted - _REPLY_PRIMER_TOKENS


@cache
def supports_response_schema(model: str) -> bool:
    """Whether litellm says ``model`` takes a JSON schema as ``response_format``."""
    try:
        return bool(_litellm().supports_response_schema(model=model))
    except Exception:
        return False


def known_provider(model: str) -> str | None:
    """The provider litellm routes ``model`` to (``litellm.get_llm_provider``), else None.

    Examples
    --------
    >>> known_provider("ollama/llama3"), known_provider("gpt-4o-mini"), known_provider("x")
    ('ollama', 'openai', None)
    """
    if not model:
        return None
    try:
        provider = _litellm().get_llm_provider(model)[1]
    except Exception:
        return None
    return str(provider) if provider else None


def count_tokens(text: str) -> int:
    """Tokens of ``text`` by litellm's token counter with :data:`TOKENIZER_MODEL`'s tokenizer.

    Examples
    --------
    >>> count_tokens("Output (a)")
    4
    >>> count_tokens("")
    0
    """
    if not text:
        return 0
    return int(_litellm().token_counter(model=TOKENIZER_MODEL, text=text))


def token_prices(model: str) -> tuple[float, float]:
    """USD per input token and per output token of ``model`` in litellm's bundled price map.

    Raises
    ------
    ValueError
        When the map has no price for ``model`` (the message says to pick a listed model id).

    Examples
    --------
    >>> token_prices("gpt-4-0613")
    (3e-05, 6e-05)
    """
    entry = _litellm().model_cost.get(model) or {}
    price_in = entry.get("input_cost_per_token")
    price_out = entry.get("output_cost_per_token")
    if price_in is None or price_out is None:
        raise ValueError(
            f"litellm's price map has no per-token price for {model!r}; pick a model id it lists "
            "(e.g. gpt-4-0613, gpt-3.5-turbo, replicate/meta/llama-2-70b-chat)"
        )
    return float(price_in), float(price_out)


def usage_cost(
    model: str,
    *,
    provider: str | None = None,
    tokens_in: int,
    tokens_out: int,
    cache_read: int = 0,
) -> float | None:
    """USD of ``tokens_in``/``tokens_out`` at ``model``'s price in litellm's bundled map, the
    ``cache_read`` part of the input at the cache-read price where the map has one; None when the
    map has no price for the model (tried as given, then as ``provider/model``): never guessed.

    Examples
    --------
    >>> round(usage_cost("gpt-4o-mini-2024-07-18", tokens_in=1000, tokens_out=100), 8)
    0.00021
    >>> usage_cost("acme-support-ft", tokens_in=10, tokens_out=1) is None
    True
    """
    table = _litellm().model_cost
    entry = table.get(model) or (table.get(f"{provider}/{model}") if provider else None) or {}
    price_in = entry.get("input_cost_per_token")
    price_out = entry.get("output_cost_per_token")
    if price_in is None or price_out is None:
        return None
    cached = min(max(cache_read, 0), tokens_in)
    price_cached = entry.get("cache_read_input_token_cost")
    if price_cached is None:
        price_cached, cached = price_in, 0
    return float((tokens_in - cached) * price_in + cached * price_cached + tokens_out * price_out)

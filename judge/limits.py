"""Bounded concurrency per model provider, so a batch never floods one endpoint.

A provider is what litellm routes to (``openai``, ``anthropic``, ``ollama``...), qualified by the
``api_base`` when one is given: two local servers are two providers. Semaphores are created
lazily per running event loop (an asyncio semaphore belongs to one loop).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, lru_cache

from judge.model_client import known_provider

__all__ = ["ProviderLimiter", "process_limiter", "provider_of"]


@lru_cache(maxsize=1024)
def provider_of(model: str, *, api_base: str | None = None) -> str:
    """The provider key for ``model``: litellm's provider name, else the model prefix.

    Examples
    --------
    >>> provider_of("openai/gpt-4o-mini")
    'openai'
    >>> provider_of("openai/llama3", api_base="http://127.0.0.1:8000/v1")
    'openai@http://127.0.0.1:8000/v1'
    """
    if not model:
        raise ValueError("model must be a non-empty litellm model string")
    provider = known_provider(model)
    if not provider:  # unknown to litellm: fall back to the prefix
        provider = model.split("/", 1)[0] if "/" in model else "default"
    return f"{provider}@{api_base.rstrip('/')}" if api_base else provider


class ProviderLimiter:
    """At most ``limit`` requests in flight per provider (per judge when it sets its own limit).

    Parameters
    ----------
    default : int, optional
        Concurrent requests per provider; ``settings.provider_concurrency`` when omitted.
    share : int, optional
        How many processes share the limits (``judge verify --processes N``): each holds its
        part, ``ceil(limit / share)``, so together they keep about the limit a panel sets.

    Examples
    --------
    >>> import asyncio
    >>> limiter = ProviderLimiter(default=2)
    >>> async def one() -> str:
    ...     async with limiter.slot("openai") as key:
    ...         return key
    >>> asyncio.run(one())
    'openai'
    """

    def __init__(self, *, default: int | None = None, share: int = 1) -> None:
        if default is None:
            from config.settings import get_settings

            default = get_settings().provider_concurrency
        if default < 1:
            raise ValueError(f"provider concurrency must be >= 1, got {default}")
        if share < 1:
            raise ValueError(f"share must be >= 1, got {share}")
        self.default = default
        self.share = share
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str | None], asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()

    def limit_for(self, limit: int | None) -> int:
        """This process's part of ``limit`` (the default when None).

        Examples
        --------
        >>> shared = ProviderLimiter(default=16, share=3)
        >>> ProviderLimiter(default=16).limit_for(None), shared.limit_for(64), shared.limit_for(1)
        (16, 22, 1)
        """
        whole = self.default if limit is None else limit
        return -(-whole // self.share)

    def _semaphore(self, provider: str, limit: int | None, scope: str | None) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        table = self._by_loop.setdefault(loop, {})
        # A judge with its own limit gets its own semaphore; others share the provider's.
        key = (provider, None) if limit is None else (provider, f"{scope}:{limit}")
        sem = table.get(key)
        if sem is None:
            sem = table[key] = asyncio.Semaphore(self.limit_for(limit))
        return sem

    @asynccontextmanager
    async def slot(
        self, provider: str, *, limit: int | None = None, scope: str | None = None
    ) -> AsyncIterator[str]:
        """Hold one request slot for ``provider`` (a key from :func:`provider_of`).

        Parameters
        ----------
        provider : str
            The provider key.
        limit : int, optional
            A judge's own ``max_concurrency``; replaces the provider default for that judge.
        scope : str, optional
            Who owns the override (the judge name), so two judges do not share it.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {limit}")
        async with self._semaphore(provider, limit, scope):
            yield provider


@cache
def process_limiter() -> ProviderLimiter:
    """The process's one limiter, which every engine built without its own shares.

    A worker holds one engine per (tenant, rubrics, panel): with a limiter each, the
    per-provider cap held per engine and a process could send many times the cap. The cap comes
    from the settings read at the first call.
    """
    return ProviderLimiter()

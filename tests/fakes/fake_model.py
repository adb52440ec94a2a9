"""An in-process fake model with a reply queue: the standard fixture for unit tests of judges.

Installed with :func:`judge.model_client.using` (the ``fake_model`` fixture does it), it answers
every completion from its queue, in order, and records each request. A queued exception is
raised instead of answered (give it a ``status_code`` of 429 or 5xx and the judge retries it).
With the queue empty it answers ``default``, or fails the test loudly when there is none.
Integration tests keep the HTTP fake server (``tests/fakes/openai_server.py``), which exercises
litellm's real HTTP path.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from types import SimpleNamespace
from typing import Any

__all__ = ["FakeModel", "ProviderError"]


class ProviderError(Exception):
    """A provider's HTTP error, as litellm raises one (``status_code`` decides retries)."""

    def __init__(self, status_code: int, message: str = "provider error") -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code


class FakeModel:
    """Replies from a queue; records every request (the keyword arguments of the call).

    Parameters
    ----------
    replies : str, dict or Exception
        Queued in order: a string is the reply text, a dict is sent as its JSON, an exception
        is raised.
    default : str or dict, optional
        The reply once the queue is empty.
    cost_usd : float
        What each reply costs (litellm's ``response_cost``).
    latency : float
        Seconds each reply takes (``max_in_flight`` tells how many overlapped).

    Examples
    --------
    >>> import asyncio
    >>> model = FakeModel("hello", default="again")
    >>> reply = asyncio.run(model(model="fake/m", messages=[{"role": "user", "content": "hi"}]))
    >>> reply.choices[0].message.content, model.requests[0]["model"]
    ('hello', 'fake/m')
    """

    def __init__(
        self,
        *replies: str | dict[str, Any] | Exception,
        default: str | dict[str, Any] | None = None,
        cost_usd: float = 0.0001,
        latency: float = 0.0,
    ) -> None:
        self.queue: deque[str | dict[str, Any] | Exception] = deque(replies)
        self.default = default
        self.cost_usd = cost_usd
        self.latency = latency
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def enqueue(self, *replies: str | dict[str, Any] | Exception) -> None:
        self.queue.extend(replies)

    async def __call__(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        if self.queue:
            reply = self.queue.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise AssertionError(
                f"the fake model's queue is empty (request {len(self.requests)}); enqueue a reply "
                "or give it a default"
            )
        if isinstance(reply, Exception):
            raise reply
        text = reply if isinstance(reply, str) else json.dumps(reply)
        prompt = sum(len(str(m.get("content", ""))) for m in kwargs.get("messages", []))
        return SimpleNamespace(
            choices=[SimpleNamespace(message=SimpleNamespace(content=text))],
            usage=SimpleNamespace(
                prompt_tokens=max(1, prompt // 4), completion_tokens=len(text) // 4
            ),
            _hidden_params={"response_cost": self.cost_usd},
        )

"""The LLM judge: one rubric-driven judgment per outcome through ``litellm.acompletion``.

Per sample: a cache lookup (re-verifying costs nothing), then the judge's model with retries
(exponential backoff with jitter, ``retry-after`` honoured) on 429, 5xx, timeouts and connection
errors, then each fallback model in order. Every attempt is recorded with its prompt, digest, raw
reply, tokens, cost (litellm's own price map) and latency. Replies are parsed as JSON first and as
prose second (:func:`parse_reply`); a reply without a score is *unscored*, never a pass or a 0.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from judge import model_client
from judge.evidence import evidence_problems
from judge.limits import ProviderLimiter, provider_of
from judge.models import Outcome
from judge.panel import LLMJudgeSpec
from judge.prompts import PROMPT_VERSION, build_messages, json_schema_for, prompt_digest
from judge.protocols import CallStore
from judge.reply_parsing import MAX_RATIONALE_CHARS, ParsedReply, parse_reply
from judge.rubric import Rubric
from judge.scoring import RubricScore, score_rubric
from judge.verdict import JudgeCall, Judgment, utcnow

__all__ = [
    "BACKOFF",
    "Backoff",
    "LLMJudge",
    "MissingKeyError",
    "ParsedReply",
    "cache_key",
    "parse_reply",
    "provider_kwargs",
    "public_reason",
    "retry_policy",
]


@dataclass(frozen=True)
class Backoff:
    """Retry waits: exponential from ``initial`` up to ``maximum`` seconds plus random jitter.

    A ``retry-after`` header from the provider replaces the computed wait, capped at
    ``retry_after_cap`` seconds.
    """

    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "jitter", "retry_after_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"Backoff.{name} must be >= 0")


BACKOFF = Backoff()
"""The default used when an :class:`LLMJudge` is built without ``backoff`` (tests shrink it)."""


def cache_key(
    *, model: str, rubric_version: str, content_hash: str, sample: int, variant: str = ""
) -> str:
    """SHA-256 of (model, rubric version, prompt version, outcome content hash, sample index),
    plus ``variant`` when the prompt has one (``spotlight``, a guard's prompt).

    Examples
    --------
    >>> len(cache_key(model="openai/gpt-4o-mini", rubric_version="3f2a9c1",
    ...               content_hash="ab" * 32, sample=0))
    64
    """
    parts: list[object] = [model, rubric_version, PROMPT_VERSION, content_hash, sample]
    if variant:
        parts.append(variant)
    payload = json.dumps(parts)
    return hashlib.sha256(payload.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------
class _CallFailed(Exception):
    """No reply from any model for one sample (the last error is the message)."""


@dataclass
class _Sample:
    index: int
    calls: list[JudgeCall] = field(default_factory=list)
    reply: str | None = None
    model: str | None = None
    cached: bool = False
    error: str | None = None
    parsed: ParsedReply | None = None
    score: RubricScore | None = None
    answers: dict[str, bool] | None = None  # a guard judge's yes/no answers
    note: str = ""  # a guard judge's quote and rationale


@dataclass(frozen=True)
class _Request:
    """What every sample of one judgment shares."""

    outcome_id: str
    content_hash: str
    messages: list[dict[str, str]]
    digest: str
    response_format: dict[str, Any]
    outcome: Outcome | None = None
    variant: str = ""


def _retryable(exc: BaseException) -> bool:
    if model_client.is_transient(exc):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 429) or status >= 500
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    if exc is None:
        return None
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    raw = headers.get("retry-after-ms")
    if raw is not None:
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        if parsed is None:
            return None
        return max(0.0, (parsed - utcnow()).total_seconds())


#: Seconds after its timeout that an attempt still counts as in flight; a ``pending`` call older
#: than ``timeout`` + this was left by a process that died (it is settled as ``unknown``).
PENDING_GRACE_SECONDS = 30.0

_ESTIMATES: dict[tuple[str, str], float] = {}


def _estimated_cost(model: str, request: _Request) -> float:
    """The prompt's tokens at ``model``'s input price (litellm's map); 0 when it has no price.

    What an attempt costs at least if the provider received it: a call whose process died before
    the reply is booked at this (:func:`judge.model_client.prompt_cost`). Memoised per (model,
    prompt digest): samples and retries share a prompt.
    """
    key = (model, request.digest)
    found = _ESTIMATES.get(key)
    if found is None:
        found = model_client.prompt_cost(model, request.messages)
        if len(_ESTIMATES) > 4096:
            _ESTIMATES.clear()
        _ESTIMATES[key] = found
    return found


def describe_error(spec: LLMJudgeSpec, exc: BaseException) -> str:
    """One line about a failed attempt, with the judge's API key (if it shows) masked."""
    text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())[:500]
    if spec.api_key_env:
        secret = os.environ.get(spec.api_key_env)
        if secret:
            text = text.replace(secret, "***")
    return text


def retry_policy(*, max_retries: int, backoff: Backoff | None = None) -> AsyncRetrying:
    """Retry 429/5xx/timeouts/connection errors with ``backoff`` (``retry-after`` honoured)."""
    chosen = backoff or BACKOFF

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = _retry_after(exc)
        if after is not None:
            return min(after, chosen.retry_after_cap)
        step = chosen.initial * 2 ** max(0, state.attempt_number - 1)
        return min(chosen.maximum, step) + random.uniform(0, chosen.jitter)

    return AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=wait,
        retry=retry_if_exception(_retryable),
        reraise=True,
    )


class MissingKeyError(RuntimeError):
    """The variable a judge's ``api_key_env`` names is not set (our message: safe to show)."""


def public_reason(exc: BaseException) -> str:
    """A short reason for a failed call that is safe to show to whoever reads the verdict.

    What a provider (or anything listening at an ``api_base``) answered is not: an error body
    can carry another party's text, internal addresses or echoed headers. The verdict's
    ``reason`` therefore holds only the error's class and HTTP status; the full text (secrets
    scrubbed) stays in the call's ``error`` in the ledger, for the operator.

    Examples
    --------
    >>> public_reason(TimeoutError())
    'TimeoutError'
    >>> class Fake(Exception):
    ...     status_code = 502
    >>> public_reason(Fake("<html>internal admin console at 10.0.0.7</html>"))
    'Fake (HTTP 502)'
    >>> try:
    ...     raise RuntimeError("wrapped") from ConnectionRefusedError("[Errno 111] 127.0.0.1:9")
    ... except RuntimeError as wrapped:
    ...     public_reason(wrapped)
    'APIConnectionError: could not connect to the provider'
    >>> public_reason(MissingKeyError("environment variable X is not set"))
    'MissingKeyError: environment variable X is not set'
    """
    if isinstance(exc, MissingKeyError):
        return f"{type(exc).__name__}: {exc}"
    if model_client.is_lost_connection(exc):
        return "APIConnectionError: could not connect to the provider"
    status = getattr(exc, "status_code", None)
    shown = type(exc).__name__
    if isinstance(status, int) and not isinstance(status, bool):
        shown += f" (HTTP {status})"
    return shown


def provider_kwargs(spec: LLMJudgeSpec) -> dict[str, Any]:
    """``api_base`` and the key read from ``spec.api_key_env`` now (RuntimeError when unset)."""
    kwargs: dict[str, Any] = {}
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    if spec.api_key_env:
        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            raise MissingKeyError(
                f"judge '{spec.name}': environment variable {spec.api_key_env} is not set "
                "(api_key_env names the variable that holds the provider key)"
            )
        kwargs["api_key"] = api_key
    return kwargs


def completion_kwargs(
    spec: LLMJudgeSpec,
    *,
    model: str,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``acompletion`` arguments of one attempt by ``spec`` at ``model``.

    Retries are the caller's (each attempt is recorded), so litellm and the SDK below it must not
    retry. ``response_format`` is sent when the model supports it and the panel sets none of its
    own; without one (a pairwise comparison) the panel's is dropped too.
    """
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": spec.temperature,
        "timeout": spec.timeout,
        "num_retries": 0,
        "max_retries": 0,
        **provider_kwargs(spec),
    }
    extra = spec.litellm_extra()
    if response_format is None:
        extra.pop("response_format", None)
    elif "response_format" not in extra and model_client.supports_response_schema(model):
        kwargs["response_format"] = response_format
    kwargs.update(extra)
    return kwargs


async def send_attempt(
    call: JudgeCall,
    kwargs: dict[str, Any],
    *,
    spec: LLMJudgeSpec,
    limiter: ProviderLimiter,
    store: CallStore | None,
    estimate: Callable[[], float],
) -> Any:
    """Send one attempt inside the provider's slot and complete ``call`` with what happened.

    With a ``store`` the attempt is written ahead (``pending``, at ``estimate()``, the prompt's
    price) before the provider can bill it, and recorded once it ends, failed or not. Returns
    the provider's response; re-raises its error.
    """
    started = time.perf_counter()
    try:
        async with limiter.slot(
            provider_of(call.model, api_base=spec.api_base),
            limit=spec.max_concurrency,
            scope=spec.name,
        ):
            if store is not None:
                call.status = "pending"
                call.expires_at = utcnow() + timedelta(seconds=spec.timeout + PENDING_GRACE_SECONDS)
                # The estimate counts the prompt's tokens: the store does it where it writes.
                await store.begin(call, estimate)
            started = time.perf_counter()
            response = await model_client.acompletion(**kwargs)
    except Exception as exc:
        call.status, call.error = "error", describe_error(spec, exc)
        call.latency_ms = int((time.perf_counter() - started) * 1000)
        if store is not None:
            await store.record(call)
        raise
    call.latency_ms = int((time.perf_counter() - started) * 1000)
    call.status = "ok"
    call.reply = response.choices[0].message.content or ""
    usage = getattr(response, "usage", None)
    call.tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    call.tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    call.cost_usd = model_client.reply_cost(response)
    if store is not None:
        await store.record(call)
    return response


class LLMJudge:
    """A :class:`judge.protocols.Judge` backed by an LLM through ``litellm.acompletion``.

    Parameters
    ----------
    spec : LLMJudgeSpec
        The panel entry: model, samples, temperature, retries, fallbacks, timeout, ``api_base``,
        ``api_key_env`` (read at call time, never stored) and pass-through litellm keys.
    store : CallStore
        Where every attempt is recorded and successful calls are looked up again (the cache).
    limiter : ProviderLimiter
        Bounds requests in flight per provider (``spec.max_concurrency`` overrides per judge).
    backoff : Backoff, optional
        Retry waits; else the panel's ``backoff`` for this judge, else :data:`BACKOFF`.
    """

    kind = "llm"

    def __init__(
        self,
        spec: LLMJudgeSpec,
        *,
        store: CallStore,
        limiter: ProviderLimiter,
        backoff: Backoff | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.weight = spec.weight
        self.store = store
        self.limiter = limiter
        if backoff is None and spec.backoff is not None:
            backoff = Backoff(**spec.backoff.model_dump())
        self.backoff = backoff
        self._schemas: dict[str, dict[str, Any]] = {}
        reserved = {"model", "messages", "api_key", "num_retries", "max_retries"}
        clash = sorted(reserved & set(spec.litellm_extra()))
        if clash:
            raise ValueError(
                f"judge '{spec.name}': {', '.join(clash)} cannot be set as pass-through keys "
                "(use model, api_key_env and max_retries)"
            )

    async def __call__(self, outcome: Outcome, rubric: Rubric) -> Judgment:
        request = self._request(outcome, rubric)
        samples = await asyncio.gather(
            *(self._sample(i, request, rubric) for i in range(self.spec.samples))
        )
        return self._judgment(list(samples), rubric)

    def _request(self, outcome: Outcome, rubric: Rubric) -> _Request:
        """What every sample of this judgment sends (a subclass may ask something else)."""
        spotlight = bool(getattr(self.spec, "spotlight", False))
        messages = build_messages(outcome, rubric, spotlight=spotlight)
        request = _Request(
            outcome_id=outcome.id,
            content_hash=outcome.content_hash(),
            messages=messages,
            digest=prompt_digest(messages),
            response_format=self._schema(rubric),
            outcome=outcome,
            variant=self._variant(),
        )
        return request

    def _variant(self) -> str:
        """What sets this judge's prompt apart in its cache keys (see :func:`cache_key`)."""
        return "spotlight" if getattr(self.spec, "spotlight", False) else ""

    def cache_keys(self, outcome: Outcome, rubric: Rubric) -> list[str]:
        """The cache keys this judge's samples look up for ``outcome`` (one per sample).

        A worker looks up a whole claimed batch's keys in one query before judging it.
        """
        content_hash = outcome.content_hash()
        return [
            cache_key(
                model=self.spec.model,
                rubric_version=rubric.version,
                content_hash=content_hash,
                sample=index,
                variant=self._variant(),
            )
            for index in range(self.spec.samples)
        ]

    def _schema(self, rubric: Rubric) -> dict[str, Any]:
        """The rubric's reply schema, built once per rubric version (litellm only reads it)."""
        schema = self._schemas.get(rubric.ref)
        if schema is None:
            schema = self._schemas[rubric.ref] = json_schema_for(rubric)
        return schema

    # -- one sample ---------------------------------------------------------------------------
    async def _sample(self, index: int, request: _Request, rubric: Rubric) -> _Sample:
        sample = _Sample(index=index)
        key = cache_key(
            model=self.spec.model,
            rubric_version=rubric.version,
            content_hash=request.content_hash,
            sample=index,
            variant=request.variant,
        )
        hit = await self.store.lookup(key)
        if hit is not None and hit.reply is not None:
            call = hit.model_copy(
                update={
                    "outcome_id": request.outcome_id,
                    "judge": self.name,
                    "cached": True,
                    "cost_usd": 0.0,
                    "tokens_in": 0,
                    "tokens_out": 0,
                    "latency_ms": 0,
                    "at": utcnow(),
                }
            )
            await self.store.record(call)
            sample.calls.append(call)
            sample.reply, sample.model, sample.cached = hit.reply, hit.model, True
        else:
            errors: list[str] = []
            for model in [self.spec.model, *self.spec.fallbacks]:
                try:
                    sample.reply = await self._with_retries(model, key, request, sample)
                    sample.model = model
                    break
                except _CallFailed as exc:
                    errors.append(f"{model}: {exc}")
            if sample.reply is None:
                sample.error = "; ".join(errors)
                return sample
        self._read(sample, request, rubric)
        return sample

    def _read(self, sample: _Sample, request: _Request, rubric: Rubric) -> None:
        """Parse ``sample.reply`` into scores (a subclass may read other replies)."""
        assert sample.reply is not None
        sample.parsed = parse_reply(sample.reply, rubric)
        if not sample.parsed.problems:
            sample.score = score_rubric(rubric, sample.parsed.scores)
            # To verify, a judgment must cite evidence that holds (judge.evidence).
            if sample.score.verified and request.outcome is not None:
                failing = evidence_problems(sample.parsed, request.outcome, rubric)
                if failing:
                    sample.parsed.problems += [f"evidence: {p}" for p in failing]
                    sample.score = None

    async def _with_retries(self, model: str, key: str, request: _Request, sample: _Sample) -> str:
        retrying = retry_policy(max_retries=self.spec.max_retries, backoff=self.backoff)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(model, key, request, sample)
        except Exception as exc:
            raise _CallFailed(public_reason(exc)) from exc
        raise _CallFailed("no attempt was made")  # pragma: no cover - tenacity always attempts

    async def _attempt(self, model: str, key: str, request: _Request, sample: _Sample) -> str:
        kwargs = completion_kwargs(
            self.spec,
            model=model,
            messages=request.messages,
            response_format=request.response_format,
        )
        call = JudgeCall(
            outcome_id=request.outcome_id,
            judge=self.name,
            model=model,
            sample=sample.index,
            attempt=len(sample.calls) + 1,
            cache_key=key,
            prompt_digest=request.digest,
            prompt=request.messages,
        )
        try:
            await send_attempt(
                call,
                kwargs,
                spec=self.spec,
                limiter=self.limiter,
                store=self.store,
                estimate=lambda: _estimated_cost(model, request),
            )
        except Exception:
            sample.calls.append(call)
            raise
        sample.calls.append(call)
        return call.reply or ""

    # -- combining samples ---------------------------------------------------------------------
    def _judgment(self, samples: Sequence[_Sample], rubric: Rubric) -> Judgment:
        calls = [c for s in samples for c in s.calls]
        answered = [s for s in samples if s.reply is not None]
        parsed = [s for s in answered if s.score is not None]
        models = sorted({s.model for s in answered if s.model})
        base: dict[str, Any] = {
            "judge": self.name,
            "model": models[0] if len(models) == 1 else self.spec.model,
            "kind": "llm",
            "samples": len(parsed),
            "tokens_in": sum(c.tokens_in for c in calls),
            "tokens_out": sum(c.tokens_out for c in calls),
            "cost_usd": sum(c.cost_usd for c in calls),
            "latency_ms": sum(c.latency_ms for c in calls),
            "cached": bool(samples) and all(s.cached for s in samples),
            "calls": calls,
        }
        failed = [f"sample {s.index}: {s.error}" for s in samples if s.reply is None]
        if not answered:
            return Judgment(**base, status="error", reason="no reply: " + "; ".join(failed))
        if not parsed:
            problems = [
                f"sample {s.index}: {', '.join(s.parsed.problems)}"
                for s in answered
                if s.parsed is not None
            ]
            return Judgment(
                **base,
                status="unscored",
                reason="no parsable reply: " + "; ".join(problems + failed),
                rationale=_rationale(answered),
            )
        means = {
            c.id: sum(s.parsed.scores[c.id] for s in parsed if s.parsed) / len(parsed)
            for c in rubric.criteria
        }
        overall = score_rubric(rubric, means)
        verified = sum(1 for s in parsed if s.score is not None and s.score.verified)
        notes = failed + [
            f"sample {s.index} unscored: {', '.join(s.parsed.problems)}"
            for s in answered
            if s.score is None and s.parsed is not None
        ]
        fallbacks = [m for m in models if m != self.spec.model]
        if fallbacks:
            notes.append(f"answered by fallback {', '.join(fallbacks)}")
        return Judgment(
            **base,
            status="ok",
            decision=overall.decision,
            p_verified=verified / len(parsed),
            scores=means,
            rationale=_rationale(parsed),
            reason="; ".join(notes) or None,
        )


def _rationale(samples: Sequence[_Sample]) -> str:
    texts: list[str] = []
    for s in samples:
        text = s.parsed.rationale.strip() if s.parsed else ""
        if text and text not in texts:
            texts.append(text)
    joined = texts[0] if len(texts) == 1 else " | ".join(f"[{i}] {t}" for i, t in enumerate(texts))
    return joined[:MAX_RATIONALE_CHARS]

"""What a panel stored through the API may make the server do (the operator's policy).

A tenant's panel runs on the server, with the server's network and the server's provider keys.
The server's own panel files are trusted; a stored panel is not, so before it is saved and again
every time a job uses it (a tightened policy applies to panels stored before the change):

- **Providers.** Every model (the judge's and each fallback) must route, by litellm's own
  provider detection, to a provider in ``settings.panel_providers`` (default
  :data:`HOSTED_PROVIDERS`: hosted APIs only). A provider whose default endpoint is on the
  server's own machine or network (``ollama``, ``ollama_chat``, ``llamafile``, ``lemonade``,
  ``docker_model_runner``...: anything outside :data:`HOSTED_PROVIDERS`) is refused even when the
  operator allowed it, unless the panel's ``api_base`` is on ``settings.allowed_api_bases``, so
  a stored panel never reaches a default local endpoint.
- **Endpoints.** ``api_base`` only from ``settings.allowed_api_bases``.
- **Keys.** ``api_key_env`` only a variable of ``settings.provider_key_envs``, and only for the
  providers the operator mapped it to (``OPENAI_API_KEY`` -> ``openai``...): the OpenAI key is
  never sent to another provider's endpoint as a bearer token.
- **Options.** Pass-through litellm keys only from :data:`SAFE_LITELLM_KEYS` (no ``base_url``,
  credentials, headers or file paths); ``timeout``, ``max_retries`` and the retry waits within
  the operator's caps (``settings.panel_max_timeout``, ``panel_max_retries``,
  ``panel_max_retry_wait``).
- **Files.** A ``learned`` judge only with the server's ``settings.learned_model_path``.

:func:`panel_policy_problems` lists every violation with its field and the fix; it never raises,
so the caller decides the error type (``ledger.documents.DocumentError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import DEFAULT_PROVIDER_KEY_ENVS
from judge.panel import LearnedJudgeSpec, LLMJudgeSpec, Panel

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "DEFAULT_PROVIDER_KEY_ENVS",
    "HOSTED_PROVIDERS",
    "PROVIDER_KEY_ENVS",
    "SAFE_LITELLM_KEYS",
    "panel_policy_problems",
    "provider_for_policy",
]

#: litellm providers whose default endpoint is a hosted API on the internet. Stored panels may use
#: these (when ``settings.panel_providers`` lists them) without an ``api_base``; every other
#: provider defaults to an endpoint on the server's machine or needs one, so it needs an
#: ``api_base`` from the operator's allowlist.
HOSTED_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "azure",
        "gemini",
        "mistral",
        "groq",
        "cohere",
        "cohere_chat",
        "deepseek",
        "together_ai",
        "fireworks_ai",
        "openrouter",
        "xai",
        "perplexity",
    }
)

#: The key variables of the default mapping (``config.settings.DEFAULT_PROVIDER_KEY_ENVS``).
PROVIDER_KEY_ENVS = frozenset(DEFAULT_PROVIDER_KEY_ENVS)

#: Pass-through litellm keys a stored panel may set. Everything else is refused: litellm accepts
#: ``base_url``, credentials, file paths (``vertex_credentials``) and headers as keyword
#: arguments, any of which would let a tenant redirect the server's keys or read its files.
SAFE_LITELLM_KEYS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "reasoning_effort",
    }
)


def provider_for_policy(model: str) -> str | None:
    """The litellm provider ``model`` routes to, or None when litellm does not know it.

    The same detection litellm applies when the call is made (``litellm.get_llm_provider``),
    through :func:`judge.limits.provider_of`, so the policy checks what will really be called.

    >>> provider_for_policy("openai/gpt-4o-mini"), provider_for_policy("ollama_chat/llama3")
    ('openai', 'ollama_chat')
    >>> provider_for_policy("gpt-4o-mini"), provider_for_policy("no-such-model")
    ('openai', None)
    """
    from judge.model_client import known_provider

    return known_provider(model)


def _same_base(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.expanduser().resolve()
    except OSError:
        return False


def _llm_problems(where: str, judge: LLMJudgeSpec, settings: Settings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    allowed_bases = list(settings.allowed_api_bases)
    base_allowed = judge.api_base is not None and any(
        _same_base(judge.api_base, ok) for ok in allowed_bases
    )
    if judge.api_base is not None and not base_allowed:
        shown = ", ".join(allowed_bases) if allowed_bases else "none are allowed"
        problems.append(
            (
                f"{where}.api_base",
                f"api_base {judge.api_base!r} is not allowed on this server (allowed: {shown}); "
                "remove api_base to use the provider's endpoint, or ask the operator to add it "
                "to OUTCOME_JUDGE_ALLOWED_API_BASES",
            )
        )
    allowed_providers = set(settings.panel_providers)
    key_providers = settings.provider_key_envs.get(judge.api_key_env or "", [])
    if judge.api_key_env is not None and judge.api_key_env not in settings.provider_key_envs:
        problems.append(
            (
                f"{where}.api_key_env",
                f"api_key_env {judge.api_key_env!r} is not a provider key variable; use one of "
                f"{', '.join(sorted(settings.provider_key_envs))} or leave it out",
            )
        )
    models = [("model", judge.model)] + [
        (f"fallbacks[{i}]", fallback) for i, fallback in enumerate(judge.fallbacks)
    ]
    for field, model in models:
        provider = provider_for_policy(model)
        if provider is None:
            problems.append(
                (
                    f"{where}.{field}",
                    f"model {model!r} names no provider litellm knows; write it as "
                    "provider/model, e.g. openai/gpt-4o-mini",
                )
            )
            continue
        if provider not in allowed_providers:
            problems.append(
                (
                    f"{where}.{field}",
                    f"provider '{provider}' (model {model!r}) is not allowed for stored panels "
                    f"on this server (allowed: {', '.join(sorted(allowed_providers)) or 'none'}); "
                    "use one of those, or ask the operator to add it to "
                    "OUTCOME_JUDGE_PANEL_PROVIDERS",
                )
            )
        elif provider not in HOSTED_PROVIDERS and not base_allowed:
            problems.append(
                (
                    f"{where}.{field}",
                    f"provider '{provider}' (model {model!r}) has no hosted endpoint: its default "
                    "is on the server's own machine, which stored panels may not reach; set "
                    "api_base to an endpoint on OUTCOME_JUDGE_ALLOWED_API_BASES",
                )
            )
        if (
            judge.api_key_env is not None
            and judge.api_key_env in settings.provider_key_envs
            and provider not in key_providers
        ):
            problems.append(
                (
                    f"{where}.api_key_env",
                    f"{judge.api_key_env} may only be sent to "
                    f"{', '.join(key_providers) or 'no provider'}, not to '{provider}' "
                    f"(model {model!r}); name the key variable of that provider or leave "
                    "api_key_env out",
                )
            )
    for key in sorted(judge.litellm_extra()):
        if key not in SAFE_LITELLM_KEYS:
            problems.append(
                (
                    f"{where}.{key}",
                    f"'{key}' cannot be set in a panel stored through the API; allowed extra "
                    f"keys: {', '.join(sorted(SAFE_LITELLM_KEYS))}",
                )
            )
    if judge.timeout > settings.panel_max_timeout:
        problems.append(
            (
                f"{where}.timeout",
                f"timeout {judge.timeout:g} s is over this server's cap of "
                f"{settings.panel_max_timeout:g} s (OUTCOME_JUDGE_PANEL_MAX_TIMEOUT); lower it",
            )
        )
    if judge.max_retries > settings.panel_max_retries:
        problems.append(
            (
                f"{where}.max_retries",
                f"max_retries {judge.max_retries} is over this server's cap of "
                f"{settings.panel_max_retries} (OUTCOME_JUDGE_PANEL_MAX_RETRIES); lower it",
            )
        )
    if judge.backoff is not None:
        for name in ("initial", "maximum", "retry_after_cap"):
            value = getattr(judge.backoff, name)
            if value > settings.panel_max_retry_wait:
                problems.append(
                    (
                        f"{where}.backoff.{name}",
                        f"backoff.{name} {value:g} s is over this server's cap of "
                        f"{settings.panel_max_retry_wait:g} s "
                        "(OUTCOME_JUDGE_PANEL_MAX_RETRY_WAIT); lower it",
                    )
                )
    return problems


def panel_policy_problems(panel: Panel, settings: Settings) -> list[tuple[str, str]]:
    """Every way ``panel`` breaks the stored-panel policy, as ``(field, message)`` pairs.

    Parameters
    ----------
    panel
        A parsed panel (stored through the API).
    settings
        The server's settings: ``panel_providers``, ``allowed_api_bases``,
        ``provider_key_envs``, the caps and ``learned_model_path``.

    Returns
    -------
    list of (str, str)
        ``(field, message)`` in judge order (``judges[i].model`` ...); empty when allowed. Each
        message names the fix.

    Examples
    --------
    >>> from judge.panel import Panel
    >>> from config.settings import Settings
    >>> panel = Panel.model_validate({"name": "p", "judges": [
    ...     {"name": "local", "model": "ollama_chat/llama3", "api_key_env": "OPENAI_API_KEY"}]})
    >>> [field for field, _ in panel_policy_problems(panel, Settings())]
    ['judges[0].model', 'judges[0].api_key_env']
    >>> ok = Panel.model_validate({"name": "p", "judges": [
    ...     {"name": "mini", "model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"}]})
    >>> panel_policy_problems(ok, Settings())
    []
    """
    problems: list[tuple[str, str]] = []
    for i, judge in enumerate(panel.judges):
        where = f"judges[{i}]"
        if isinstance(judge, LLMJudgeSpec):
            problems.extend(_llm_problems(where, judge, settings))
        elif isinstance(judge, LearnedJudgeSpec) and not _same_path(
            judge.path, settings.learned_model_path
        ):
            problems.append(
                (
                    f"{where}.path",
                    f"a learned judge may only use the server's model "
                    f"({settings.learned_model_path}); set path to it or remove the judge",
                )
            )
    return problems

"""Process-wide settings, read from the environment once through :func:`get_settings`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Providers a panel stored through the API may use by default: hosted APIs only (see
#: ``ledger.panel_policy``). litellm provider names, as ``litellm.get_llm_provider`` gives them.
DEFAULT_PANEL_PROVIDERS: tuple[str, ...] = (
    "anthropic",
    "azure",
    "cohere",
    "cohere_chat",
    "deepseek",
    "fireworks_ai",
    "gemini",
    "groq",
    "mistral",
    "openai",
    "openrouter",
    "perplexity",
    "together_ai",
    "xai",
)

#: Which providers each key variable may be sent to, by default: a key reaches only its own.
DEFAULT_PROVIDER_KEY_ENVS: dict[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("openai",),
    "ANTHROPIC_API_KEY": ("anthropic",),
    "AZURE_API_KEY": ("azure",),
    "GEMINI_API_KEY": ("gemini",),
    "MISTRAL_API_KEY": ("mistral",),
    "GROQ_API_KEY": ("groq",),
    "COHERE_API_KEY": ("cohere", "cohere_chat"),
    "DEEPSEEK_API_KEY": ("deepseek",),
    "TOGETHERAI_API_KEY": ("together_ai",),
    "FIREWORKS_API_KEY": ("fireworks_ai",),
    "OPENROUTER_API_KEY": ("openrouter",),
    "XAI_API_KEY": ("xai",),
    "PERPLEXITYAI_API_KEY": ("perplexity",),
}


class ScheduledExport(BaseModel):
    """One export the service runs on a schedule (``OUTCOME_JUDGE_EXPORTS``, a JSON list): the
    meter to a billing system, or verdicts to an OTLP endpoint (``to: otlp``). Tokens stay in
    the environment: ``token_env`` names the variable (default: the target's usual one; for
    ``otlp``, headers come from ``OTEL_EXPORTER_OTLP_HEADERS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1, max_length=100)
    to: Literal["cloudevents", "openmeter", "lago", "stripe", "otlp"]
    endpoint: str = Field(pattern=r"^https?://", max_length=500)
    token_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=100)
    customer: str | None = Field(default=None, max_length=200)
    subscription: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, max_length=200)
    event_name: str = Field(default="verified_outcomes", max_length=200)
    every_seconds: float = Field(default=300.0, ge=10, le=86_400)


class Settings(BaseSettings):
    """Settings from ``OUTCOME_JUDGE_*`` environment variables (no work at import time)."""

    model_config = SettingsConfigDict(env_prefix="OUTCOME_JUDGE_", extra="ignore")

    db_url: str = Field(
        default="sqlite:///outcome-judge.db",
        description="SQLAlchemy URL of the ledger (default: SQLite file in the working directory).",
    )
    db_pool_size: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="PostgreSQL connections each process keeps open (its pool); every API "
        "process and worker has its own pool.",
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Connections a process may open beyond db_pool_size under load (closed when "
        "returned). A process uses at most db_pool_size + db_max_overflow.",
    )
    model: str | None = Field(
        default=None,
        description="A litellm model string; when set, the default panel adds this LLM judge.",
    )
    api_base: str | None = Field(
        default=None, description="api_base for the default LLM judge (e.g. a local Ollama/vLLM)."
    )
    learned_model_path: Path = Field(
        default=Path("learned-judge.joblib"),
        description="Trained learned-judge file; the default panel uses it when it exists.",
    )
    injection_detector_path: Path | None = Field(
        default=None,
        description="Injection detector model file (JSON, from `judge train-guard`); default: the "
        "shipped judge/data/injection-detector.json. Load only files you trained or trust.",
    )
    injection_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Detector probability at which an outcome is flagged (a panel's "
        "injection_threshold wins); default: the threshold stored in the model file.",
    )
    screen_processes: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Processes that run the injection screen beside a run's event loop "
        "(`judge verify`, `judge worker`); 0 screens on the event loop. Default: 1 on a machine "
        "with more than one core, else 0 (and 0 in each process of `judge verify --processes`).",
    )
    call_process: bool | None = Field(
        default=None,
        description="Make `judge verify`'s model calls in a process of their own beside its event "
        "loop, so that litellm's own CPU (about 4 ms a call) runs on another core. Same calls and "
        "verdicts either way. Default: on a machine with more than one core.",
    )
    concurrency: int = Field(default=16, ge=1, le=1024)
    provider_concurrency: int = Field(default=16, ge=1, le=1024)
    max_line_bytes: int = Field(default=2_000_000, ge=1024)

    # -- the service (`judge serve`, `judge worker`) ------------------------------------------
    max_body_bytes: int = Field(
        default=20_000_000, ge=1024, description="Largest request body the API accepts (413)."
    )
    max_batch: int = Field(default=1000, ge=1, le=100_000, description="Outcomes per POST.")
    requests_per_minute: int = Field(
        default=1200, ge=1, description="Per-tenant API requests per minute before 429."
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed API key attempts per key id, and per client address, within a "
        "minute before further attempts answer 429 (counted over every API process when the "
        "limits are shared).",
    )
    auth_lockout_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="How long such a lock-out lasts."
    )
    shared_limits: bool | None = Field(
        default=None,
        description="Keep the per-tenant rate buckets, the failed-key counters and the /metrics "
        "request counters in the database, shared by every API process on every host. Default: "
        "on for PostgreSQL; SQLite (one API process) keeps them in memory and cannot share them.",
    )
    metrics_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often each API process adds its request counts to the shared counters: "
        "/metrics shows the other processes' requests at most this late.",
    )
    meter_read_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL read replica (or a read-only role) that "
        "GET /v1/meters/verified-outcomes reads from; the final mark is still published on "
        "OUTCOME_JUDGE_DB_URL, and a replica that has not replayed it yet is not used for that "
        "request. Unset: meters read the ledger itself.",
    )
    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a worker's claim on job items lasts."
    )
    worker_batch: int = Field(default=16, ge=1, le=1000, description="Job items per claim.")
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    exports: list[ScheduledExport] = Field(
        default_factory=list,
        description="Exports every worker process runs on a schedule (JSON list of "
        '{"tenant", "to", "endpoint", ...}); one process at a time runs each.',
    )
    embedded_worker: bool | None = Field(
        default=None,
        description="Run a verification worker inside the API process. Default: on for SQLite "
        "(one-process quick start), off for PostgreSQL (run `judge worker`).",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key (32+ characters) of the web interface's session cookies; the "
        "same in every API process. Unset: a random key per process (sessions end on restart).",
    )
    allowed_api_bases: list[str] = Field(
        default_factory=list,
        description="api_base URLs that panels stored through the API may use (JSON list). "
        "Empty: API panels may not set api_base, so a tenant cannot send provider keys elsewhere.",
    )
    panel_providers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PANEL_PROVIDERS),
        description="litellm providers that panels stored through the API may use (JSON list). "
        "A provider without a hosted endpoint (ollama, llamafile...) also needs an api_base "
        "from allowed_api_bases.",
    )
    provider_key_envs: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_PROVIDER_KEY_ENVS.items()},
        description="Key variables a stored panel may name in api_key_env, each with the "
        'providers it may be sent to (JSON object, e.g. {"OPENAI_API_KEY": ["openai"]}).',
    )
    panel_max_timeout: float = Field(
        default=120.0, gt=0, description="Largest per-call timeout (s) a stored panel may set."
    )
    panel_max_retries: int = Field(
        default=6, ge=0, description="Most retries per call a stored panel may set."
    )
    panel_max_retry_wait: float = Field(
        default=60.0, ge=0, description="Longest retry wait (s) a stored panel's backoff may set."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the cached settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()

"""Process-wide settings, read from the environment once through :func:`get_settings`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings from ``OUTCOME_JUDGE_*`` environment variables (no work at import time)."""

    model_config = SettingsConfigDict(env_prefix="OUTCOME_JUDGE_", extra="ignore")

    db_url: str = Field(
        default="sqlite:///outcome-judge.db",
        description="SQLAlchemy URL of the ledger (default: SQLite file in the working directory).",
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
    concurrency: int = Field(default=16, ge=1, le=1024)
    provider_concurrency: int = Field(default=16, ge=1, le=1024)
    max_line_bytes: int = Field(default=2_000_000, ge=1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the cached settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()

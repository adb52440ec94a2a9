"""Suite-wide fixtures: where the public datasets live, and a clean settings cache per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import judge  # noqa: F401  (pins LITELLM_LOCAL_MODEL_COST_MAP before anything imports litellm)
from judge.settings import get_settings

pytest_plugins = ["tests.fakes.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


def shared_dataset(relative: str) -> Path:
    """Path under ../shared/datasets; skip when absent, except under CI where it must exist."""
    path = SHARED_DATASETS / relative
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the public dataset {path}")
        pytest.skip(f"public dataset not present: {path} (see ../shared/datasets/README.md)")
    return path


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Settings are cached per process; tests that change OUTCOME_JUDGE_* must see their own values.
    for key in list(os.environ):
        if key.startswith("OUTCOME_JUDGE_") and key != "OUTCOME_JUDGE_TEST_PG_URL":
            monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()

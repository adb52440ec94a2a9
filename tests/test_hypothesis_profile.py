"""The suite's property tests are reproducible: the same examples on every run and machine."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import HYPOTHESIS_PROFILE_ENV


def _draws() -> list[tuple[float, int]]:
    """The examples one run of a fixed property draws (the same code every call)."""
    seen: list[tuple[float, int]] = []

    @given(x=st.floats(allow_nan=False), n=st.integers())
    def probe(x: float, n: int) -> None:
        seen.append((x, n))

    probe()
    return seen


def test_every_run_draws_the_same_examples() -> None:
    if os.environ.get(HYPOTHESIS_PROFILE_ENV) not in (None, "", "deterministic"):
        pytest.skip(f"{HYPOTHESIS_PROFILE_ENV} chooses another profile on purpose")
    active = hypothesis_settings()
    assert active.derandomize and active.database is None and active.deadline is None
    first = _draws()
    assert len(first) > 10 and first == _draws()

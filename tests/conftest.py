"""Suite-wide fixtures: where the public datasets live, and a clean settings cache per test."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

import judge  # noqa: F401  (pins LITELLM_LOCAL_MODEL_COST_MAP before anything imports litellm)
from config.settings import get_settings
from judge.limits import process_limiter

pytest_plugins = ["tests.fakes.fixtures"]

# Hypothesis profiles. "deterministic" (the default: `make test`, `.ci/run`, plain pytest) draws
# the same examples on every run and every machine (derandomize, so no example database), with
# no deadline and no too-slow health check, which depend on how loaded the machine is: a
# property that fails, fails for everyone. "explore" (HYPOTHESIS_PROFILE=explore) draws fresh
# random examples, ten times as many, and replays the failures it saved in .hypothesis/ first.
HYPOTHESIS_PROFILE_ENV = "HYPOTHESIS_PROFILE"
hypothesis_settings.register_profile(
    "deterministic",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.register_profile("explore", max_examples=1000, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get(HYPOTHESIS_PROFILE_ENV) or "deterministic")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold a lock that every pytest worker on this machine shares (``make test`` runs two):
    for tests that use one thing the machine has once, such as a fixed port or the one hot
    standby's replay. (pytest-xdist's ``xdist_group`` did not keep such tests together here.)"""
    with (Path(tempfile.gettempdir()) / f"outcome-judge-tests-{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
        if key.startswith("OUTCOME_JUDGE_") and not key.startswith("OUTCOME_JUDGE_TEST_"):
            monkeypatch.delenv(key, raising=False)
    # The injection screen runs on the event loop unless a test asks for screening processes
    # (tests/judge/test_screen_pool.py and the tests that pass 1): the same result either way
    # (those tests check it), and hundreds of short runs need not each start a process.
    monkeypatch.setenv("OUTCOME_JUDGE_SCREEN_PROCESSES", "0")
    # Likewise the model calls: in the run's own process unless a test asks for a call process
    # (tests/judge/test_call_process.py, tests/api/test_worker_call_process.py and the tests that
    # pass --call-process); each would import litellm again in a child.
    monkeypatch.setenv("OUTCOME_JUDGE_CALL_PROCESS", "false")
    get_settings.cache_clear()
    process_limiter.cache_clear()  # its cap comes from the settings
    yield
    get_settings.cache_clear()
    process_limiter.cache_clear()


_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address: object) -> None:
    """Refuse any connection that would leave this machine: tests never touch the network."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"tests may not connect to {host}: no network in tests")
    _real_connect(sock, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]

"""The injection screen in screening processes: the same findings and scores as on the event
loop, the same verdicts from the engine, and no outcome left unscreened when a process dies."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.screen_processes import open_screen_pool, screen_process_count
from config.settings import get_settings
from judge.engine import Engine
from judge.guard_model import default_detector
from judge.models import Outcome
from judge.panel import Panel, SignalsJudgeSpec
from judge.rubric_loader import load_rubric
from judge.screen_pool import ScreenPool
from judge.screening import screen
from judge.verdict import FLAG_INJECTION
from tests.fakes.injection_corpus import benign_controls, fresh_attacks
from tests.process_tools import children_of_killed_parent

ROOT = Path(__file__).resolve().parents[2]
CRITERIA = [c.id for c in load_rubric("support-resolution").criteria]
REPORT_RUBRIC = load_rubric("report-accuracy")


def corpus() -> list[Outcome]:
    """Fresh attacks (every style), tricky benign controls and the clean sample tickets."""
    records = fresh_attacks()[::4] + benign_controls()[::4]
    tickets = (ROOT / "datasets" / "tickets.jsonl").read_text(encoding="utf-8").splitlines()
    outcomes = [Outcome.model_validate(r) for r in records]
    return outcomes + [Outcome.model_validate_json(line) for line in tickets[:20] if line]


@pytest.fixture(scope="module")
def pool() -> Iterator[ScreenPool]:
    with ScreenPool(default_detector(), processes=2) as started:
        started.warm_up()
        yield started


def test_the_processes_find_what_the_event_loop_finds(pool: ScreenPool) -> None:
    outcomes = corpus()

    async def in_pool() -> list[object]:
        return list(
            await asyncio.gather(
                *(pool.screen(o, criterion_ids=CRITERIA, threshold=None) for o in outcomes)
            )
        )

    here = [screen(o, criterion_ids=CRITERIA, detector=pool.detector) for o in outcomes]
    there = asyncio.run(in_pool())
    assert there == here
    # The corpus exercises both sides: rule findings, detector flags and clean outcomes.
    assert any(s.by_rules for s in here) and any(not s.flagged for s in here)
    assert any(s.by_detector for s in here)
    assert not pool.broken


def test_a_threshold_passed_per_call_is_applied_in_the_process(pool: ScreenPool) -> None:
    outcome = corpus()[-1]  # a clean sample ticket
    low = asyncio.run(pool.screen(outcome, criterion_ids=CRITERIA, threshold=0.0001))
    assert low.by_detector and low.threshold == 0.0001
    assert low == screen(outcome, criterion_ids=CRITERIA, detector=pool.detector, threshold=0.0001)


def _engine(screen_pool: ScreenPool | None) -> Engine:
    panel = Panel(name="local", judges=[SignalsJudgeSpec(kind="signals", name="signals")])
    return Engine(
        panel,
        {"support_ticket": load_rubric("support-resolution"), "report": REPORT_RUBRIC},
        detector=default_detector(),
        screen_pool=screen_pool,
    )


def test_the_engine_gives_the_same_verdicts_with_a_pool(pool: ScreenPool) -> None:
    outcomes = corpus()

    async def run(engine: Engine) -> list[dict[str, object]]:
        verdicts = await asyncio.gather(*(engine.verify(o) for o in outcomes))
        return [v.model_dump(exclude={"judges"}) for v in verdicts]

    with_pool, on_loop = asyncio.run(run(_engine(pool))), asyncio.run(run(_engine(None)))
    assert with_pool == on_loop
    assert sum(FLAG_INJECTION in v["flags"] for v in with_pool) >= 5  # type: ignore[operator]


def test_a_pool_with_another_detector_is_refused() -> None:
    with ScreenPool(None) as rules_only, pytest.raises(ValueError, match="detector"):
        _engine(rules_only)


def test_a_killed_process_leaves_no_outcome_unscreened(caplog: pytest.LogCaptureFixture) -> None:
    attack = next(o for o in corpus() if o.id.startswith("FA"))
    expected = screen(attack, criterion_ids=CRITERIA, detector=default_detector())
    assert expected.flagged
    with ScreenPool(default_detector()) as doomed:
        doomed.warm_up()
        for pid in list(doomed._pool._processes):
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="judge.screen_pool"):
            found = [
                asyncio.run(doomed.screen(attack, criterion_ids=CRITERIA, threshold=None))
                for _ in range(2)
            ]
        assert found == [expected, expected]
        assert doomed.broken
        assert sum("screening process died" in r.getMessage() for r in caplog.records) == 1


def test_how_many_processes_a_run_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert screen_process_count(configured=0) == 0
    assert screen_process_count(configured=2, share=4) == 2
    assert screen_process_count(share=3) == 0  # one of the processes of --processes 3
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert screen_process_count() == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert screen_process_count() == 1
    # The setting: 0 (the test default) opens none; a count opens that many.
    assert open_screen_pool() is None
    monkeypatch.setenv("OUTCOME_JUDGE_SCREEN_PROCESSES", "2")
    get_settings.cache_clear()
    opened = open_screen_pool()
    assert opened is not None and opened.processes == 2 and opened.detector is default_detector()
    opened.close()
    monkeypatch.setenv("OUTCOME_JUDGE_SCREEN_PROCESSES", "-1")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="screen_processes"):
        get_settings()


def test_screening_processes_end_with_their_parent(tmp_path: Path) -> None:
    """A run killed outright (SIGKILL, the out-of-memory killer) leaves no screening process
    behind: each holds the detector (about 140 MiB) and would otherwise wait for work for ever."""
    script = (
        "import time\n"
        "from judge.screen_pool import ScreenPool\n"
        "pool = ScreenPool(None, processes=2)\n"
        "pool.warm_up()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    before, left = children_of_killed_parent(script, cwd=tmp_path)
    assert len(before) >= 2 and left == []

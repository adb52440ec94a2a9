"""Helpers for the job and worker tests: outcomes in the ledger, an LLM panel on the fake server,
and reading back what the workers wrote."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Outcome


def ticket(n: int, *, agent: str = "fin", confirmed: bool | None = True) -> Outcome:
    """A small support ticket whose text names its id (so a judge request shows whose it is)."""
    oid = f"W-{n:04d}"
    return Outcome.model_validate(
        {
            "id": oid,
            "kind": "support_ticket",
            "conversation": [
                {"role": "customer", "text": f"Order {oid} arrived broken, refund please."},
                {"role": "agent", "author": f"bot:{agent}", "text": f"Refund for {oid} issued."},
            ],
            "signals": {"customer_confirmed": confirmed},
            "agent": {"name": agent, "version": "1", "model_path": "gpt-4o-mini"},
        }
    )


def report(n: int) -> Outcome:
    oid = f"R-{n:04d}"
    return Outcome.model_validate(
        {
            "id": oid,
            "kind": "report",
            "report": {
                "brief": f"Summarise revenue for {oid}.",
                "text": "Revenue was $10.",
                "sources": [{"id": "s1", "text": "Revenue: $10."}],
            },
        }
    )


@contextmanager
def ledger_engine(db_url: str) -> Iterator[Engine]:
    from ledger.db import make_engine
    from ledger.schema import migrate

    engine = make_engine(db_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def store_outcomes(engine: Engine, tenant: str, outcomes: list[Outcome]) -> list[str]:
    """Record outcomes for ``tenant`` (as ingestion would) and return their ids."""
    from ledger.store import Ledger

    ledger = Ledger(engine, tenant=tenant)
    for outcome in outcomes:
        ledger.record_outcome(outcome)
    return [o.id for o in outcomes]


LLM_MODEL = "gpt-4o-mini"


def llm_panel_yaml(base_url: str, *, name: str = "fake-llm") -> str:
    """A one-judge LLM panel on the fake server (one sample: one request per outcome)."""
    return (
        f"name: {name}\n"
        "judges:\n"
        f"  - {{name: mini, model: openai/{LLM_MODEL}, api_base: '{base_url}', "
        "samples: 1, max_retries: 2, timeout: 20}\n"
    )


def allow_api_base_env(base_url: str) -> dict[str, str]:
    """Environment that lets a stored panel point at ``base_url`` (server policy)."""
    return {"OUTCOME_JUDGE_ALLOWED_API_BASES": json.dumps([base_url])}


def save_llm_panel(engine: Engine, tenant: str, base_url: str, *, name: str = "fake-llm") -> str:
    from config.settings import Settings
    from ledger.documents import save_panel

    settings = Settings(allowed_api_bases=[base_url])
    panel = save_panel(engine, tenant, llm_panel_yaml(base_url, name=name), settings=settings)
    return panel.name


def verdict_counts(engine: Engine, tenant: str) -> Counter[str]:
    """Verdicts per outcome id of ``tenant``."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT outcome_id FROM verdicts WHERE tenant = :t"), {"t": tenant}
        ).all()
    return Counter(r[0] for r in rows)


def item_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT job_pk, outcome_id, status, attempts, lease_owner, verdict_pk "
                    "FROM job_items ORDER BY pk"
                )
            ).all()
        )


def judge_call_rows(engine: Engine, tenant: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT outcome_id, sample, status, cached, prompt_digest, at "
                    "FROM judge_calls WHERE tenant = :t ORDER BY pk"
                ),
                {"t": tenant},
            ).all()
        )


def request_outcome(request: Any) -> str | None:
    """The outcome id a fake-server chat request was about (its text names it)."""
    import re

    for message in request.messages:
        found = re.search(r"\b([WR]-\d{4})\b", str(message.get("content", "")))
        if found:
            return found.group(1)
    return None


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

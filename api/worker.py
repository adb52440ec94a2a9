"""(being built) The verification worker."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine


async def run_worker_loop(engine: Engine, *, stop: asyncio.Event) -> None:
    await stop.wait()

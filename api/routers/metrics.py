"""(being built)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


def install(app: object) -> None:
    """(being built: request counters and latencies)"""

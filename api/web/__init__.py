"""The web interface for reviewers (comes with the next commit)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Mount the web pages and their static files on ``app`` (none yet)."""

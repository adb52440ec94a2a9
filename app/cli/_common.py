"""Helpers shared by CLI commands: one error style, one exit code policy, one stderr console."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

stderr = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


def fail(message: str, *, code: int = 2) -> NoReturn:
    """Print ``message`` as an error on stderr and exit non-zero (never 0 after an error)."""
    from rich.markup import escape  # messages quote user text such as "criteria[2]" or "[s1]"

    stderr.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)

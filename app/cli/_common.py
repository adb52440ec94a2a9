"""Helpers shared by CLI commands: one error style, one exit code policy, one stderr console."""

from __future__ import annotations

from typing import Annotated, NoReturn

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


def redact_url(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


#: ``--db`` of the commands that run on the ledger (``judge verify``, ``serve``, ``worker``).
LedgerUrlOpt = Annotated[
    str | None,
    typer.Option("--db", help="Ledger URL. Default: OUTCOME_JUDGE_DB_URL or ./outcome-judge.db"),
]
#: ``--db`` and ``--tenant`` of commands whose model calls are booked but write no verdict
#: (``judge bias``, ``judge canary``): the calls are paid, so they are on the ledger.
CallsDbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Ledger the model calls are recorded in, with this command's purpose. Default: "
        "OUTCOME_JUDGE_DB_URL or ./outcome-judge.db",
    ),
]
CallsTenantOpt = Annotated[
    str, typer.Option("--tenant", help="Tenant the model calls are booked to.")
]

ScreenProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--screen-processes",
        min=0,
        max=64,
        help="Processes that run the injection screen beside the model calls; 0 screens on the "
        "event loop. Same verdicts either way; long conversations go about twice as fast with one. "
        "Default: OUTCOME_JUDGE_SCREEN_PROCESSES, else 1 on a machine with more than one core "
        "(0 in each process of judge verify --processes).",
    ),
]


def use_screen_processes(count: int | None) -> None:
    """Make ``--screen-processes`` the setting of this process and of the processes it starts."""
    import os

    from config.settings import get_settings

    if count is not None:
        os.environ["OUTCOME_JUDGE_SCREEN_PROCESSES"] = str(count)
        get_settings.cache_clear()


CallProcessOpt = Annotated[
    bool | None,
    typer.Option(
        "--call-process/--no-call-process",
        help="Make the model calls in a process of their own beside the event loop (litellm's own "
        "CPU on another core). Same calls and verdicts either way; about 1.2x the outcomes per "
        "second at --concurrency 32. Default: OUTCOME_JUDGE_CALL_PROCESS, else on a machine with "
        "more than one core.",
    ),
]


def use_call_process(wanted: bool | None) -> None:
    """Make ``--call-process`` the setting of this process and of the processes it starts."""
    import os

    from config.settings import get_settings

    if wanted is not None:
        os.environ["OUTCOME_JUDGE_CALL_PROCESS"] = "true" if wanted else "false"
        get_settings.cache_clear()

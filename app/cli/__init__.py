"""The ``judge`` command line: the composition root that wires judge, calibration and ledger.

Each subcommand module exposes ``register(app)`` and imports its heavy dependencies lazily, so
``judge --help`` stays fast.
"""

from __future__ import annotations

import typer

from app.cli import (
    attest,
    audit,
    bias,
    calibrate,
    canary,
    convert,
    cost,
    db,
    drift,
    export,
    leaderboard,
    periods,
    pull,
    replay_pairwise,
    rubrics,
    serve,
    tenants,
    train,
    train_guard,
    verify,
    worker,
)

app = typer.Typer(
    name="judge",
    help="Verify AI support resolutions and generated reports with calibrated judge panels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (
    verify,
    rubrics,
    train,
    train_guard,
    convert,
    pull,
    calibrate,
    replay_pairwise,
    drift,
    canary,
    bias,
    cost,
    leaderboard,
    periods,
    audit,
    attest,
    export,
    serve,
    tenants,
    worker,
    db,
):
    _module.register(app)


def main() -> None:
    app()

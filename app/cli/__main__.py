"""``python -m app.cli`` runs the ``judge`` command (used by tests and benchmarks)."""

from app.cli import main

main()

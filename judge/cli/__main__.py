"""``python -m judge.cli`` runs the ``judge`` command (used by tests and benchmarks)."""

from judge.cli import main

main()

"""The application layer: what a user runs, composed from the packages below it.

``app/cli`` is the ``judge`` command (Typer): each command wires the engine (``judge``), the
statistics (``calibration``), the ledger (``ledger``) and the HTTP service (``api``, for
``judge serve`` and ``judge worker``). Nothing below imports this package (a contract in
``tests/test_architecture.py``), so the engine stays usable without the CLI and the layout
shows which way the layers depend.
"""

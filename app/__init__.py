"""The application layer: what a user runs, composed from the packages below it.

Two levels:

- the application services (``app/verification.py``, ``app/worker.py``, ...) compose the engine
  (``judge``), the statistics (``calibration``) and the ledger (``ledger``) into what the CLI and
  the HTTP service both do: verify outcomes and record them, run queued jobs. They import neither
  ``api`` nor ``app.cli``;
- ``app/cli`` is the ``judge`` command (Typer), the top: it wires those services, and starts the
  HTTP service (``api``) for ``judge serve``.

``api`` may use the services, never the CLI; nothing below imports this package (contracts in
``tests/test_architecture.py``), so the engine stays usable without the CLI and the layout shows
which way the layers depend.
"""

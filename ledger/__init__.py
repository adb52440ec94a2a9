"""System of record (outcomes, verdicts, judge calls, labels) and the economics built on it.

Import what you need from the submodules (nothing heavy happens at ``import ledger``):

- :mod:`ledger.db`: ``make_engine(url)``, ``migrate(engine)``, ``session(engine)``
- :mod:`ledger.tables`: the SQLModel tables
- :mod:`ledger.store`: ``Ledger`` (sync writes and reads)
- :mod:`ledger.callstore`: ``DbCallStore`` (judge calls recorded as they happen; the cache)
"""

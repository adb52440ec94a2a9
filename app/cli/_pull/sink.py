"""Append pulled pages to a JSON Lines file, durably, before their cursor is saved."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class LineSink:
    """Appends one JSON value per line; :meth:`commit` makes the lines durable (fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("a", encoding="utf-8", newline="\n")
        self.lines = 0

    def write(self, value: Any) -> None:
        self.handle.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.lines += 1

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()

"""Synthetic outcomes for the reliability scenarios, shaped like ``datasets/tickets.jsonl``.

Each synthetic ticket is a clean sample ticket (the injection scenarios are left out) with a new
unique id, written into the first customer message as ``case ref <id>`` so the fault-injecting
server can attribute every request to its outcome (the judge prompt carries no id otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TICKETS = ROOT / "datasets" / "tickets.jsonl"


def sample_tickets(*, clean: bool | None = None) -> list[dict[str, Any]]:
    """The sample tickets: ``clean=True`` without the injection scenarios, ``False`` only those."""
    out = []
    for line in TICKETS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        injection = (record.get("metadata") or {}).get("scenario") == "injection"
        if clean is None or injection != clean:
            out.append(record)
    return out


def synthetic_tickets(n: int, *, prefix: str = "SYN", tenant: str = "acme") -> list[dict[str, Any]]:
    """``n`` tickets with unique ids (``SYN-00000``...) cycling over the clean sample tickets."""
    templates = sample_tickets(clean=True)
    out = []
    for i in range(n):
        record = json.loads(json.dumps(templates[i % len(templates)]))
        oid = f"{prefix}-{i:05d}"
        record["id"], record["tenant"] = oid, tenant
        first = next(m for m in record["conversation"] if m["role"] == "customer")
        first["text"] = f"(case ref {oid}) {first['text']}"
        out.append(record)
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path

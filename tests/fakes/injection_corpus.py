"""Injection corpora planted in outcomes: the fresh attack set, benign controls, public data.

- :func:`fresh_attacks` plants each attack of ``datasets/injection/fresh_attacks.jsonl`` in its
  genuinely unresolved base (``unresolved_bases.jsonl``): a correct judge says ``not_verified``.
- :func:`benign_controls` plants each tricky benign control in the clean, resolved sample ticket
  ``T-1001``: a flag is a false flag. ``benign_controls.jsonl`` holds the project's controls;
  ``independent_controls.jsonl`` (``independent=True``) 60 more, written by a session shown
  nothing of the project (no rule, corpus or control), so they measure text nobody tuned on.
- :func:`independent_attacks` plants the 200 rows of ``independent_attacks.jsonl``, written
  the same way (blind): 100 injections, in the customer's message or a tool result of a
  genuinely unresolved ticket, and 100 benign look-alikes in the resolved ``T-1001``.
- :func:`public_rows` reads ``../shared/datasets/injection/*.train.jsonl`` (never copied here);
  :func:`plant_public` places a row in an unresolved ticket the way the issue measures it: in a
  tool result for the indirect corpora (BIPIA, AgentDojo), in the customer's message for the
  direct ones (deepset, giskard).
- :func:`taubench_outcomes` reads the real tau-bench airline conversations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FRESH = ROOT / "datasets" / "injection"
SHARED = Path(os.environ.get("OUTCOME_JUDGE_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
PUBLIC = SHARED / "injection"
PUBLIC_SOURCES = ("bipia", "deepset", "giskard", "agentdojo_ja")
INDIRECT = ("bipia", "agentdojo_ja")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record))


def bases() -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in _jsonl(FRESH / "unresolved_bases.jsonl")}


def attack_rows(split: str | None = None) -> list[dict[str, Any]]:
    rows = _jsonl(FRESH / "fresh_attacks.jsonl")
    return [r for r in rows if split is None or r["split"] == split]


def control_rows(split: str | None = None, *, independent: bool = False) -> list[dict[str, Any]]:
    name = "independent_controls.jsonl" if independent else "benign_controls.jsonl"
    rows = _jsonl(FRESH / name)
    return [r for r in rows if split is None or r["split"] == split]


def _last(conv: list[dict[str, Any]], role: str) -> int:
    return max(i for i, m in enumerate(conv) if m["role"] == role)


def plant(record: dict[str, Any], where: str, text: str, text2: str | None = None) -> None:
    """Put ``text`` (and ``text2`` for split orders) into ``record`` at ``where``, in place."""
    if where.startswith("report_"):
        report = record["report"]
        if where == "report_source":
            report["sources"].append({"id": "s9", "text": text})
        elif where == "report_text":
            report["text"] += "\n\n" + text
        else:
            report["brief"] += " " + text
        return
    conv = record["conversation"]
    if where == "customer":
        conv.append({"role": "customer", "text": text})
    elif where == "agent":
        conv.append({"role": "agent", "author": "bot:fin", "text": text})
    elif where == "tool":
        conv.append({"role": "tool", "name": "lookup", "text": text})
    elif where == "system":
        conv.insert(0, {"role": "system", "text": text})
    elif where == "tool_call":
        conv.append(
            {
                "role": "agent",
                "author": "bot:fin",
                "text": "Updating the case.",
                "tool_calls": [{"name": "add_note", "arguments": {"note": text}}],
            }
        )
    elif where == "author":
        conv[_last(conv, "agent")]["author"] = text
    elif where == "tool_name":
        conv.append({"role": "tool", "name": text, "text": '{"ok": true}'})
    elif where == "metadata":
        record.setdefault("metadata", {})["note"] = text
    elif where.startswith("split_"):
        first, second = (
            where.removeprefix("split_").split("_")
            if where.count("_") == 2
            else (
                where.removeprefix("split_"),
                where.removeprefix("split_"),
            )
        )
        plant(record, first, text)
        plant(record, second, text2 or "")
    else:
        raise ValueError(f"unknown place {where!r}")


def fresh_attacks(split: str | None = None) -> list[dict[str, Any]]:
    """Every fresh attack as an outcome (id = the attack's id, no label)."""
    found = bases()
    out = []
    for row in attack_rows(split):
        record = _copy(found[row["base"]])
        plant(record, row["where"], row["text"], row.get("text2"))
        record["id"] = row["id"]
        record.pop("label", None)
        record["metadata"] = {**record.get("metadata", {}), "style": row["style"]}
        out.append(record)
    return out


def independent_attack_rows() -> list[dict[str, Any]]:
    return _jsonl(FRESH / "independent_attacks.jsonl")


def independent_attacks(label: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The blind set's rows with ``label`` (``injection`` or ``benign``), each planted:
    ``[(row, record), ...]``. An injection goes into an unresolved base (a correct judge says
    ``not_verified``) as the customer's last message or a tool result; a benign row into the
    resolved ``T-1001``, as the controls are (a flag is a false flag)."""
    found = bases()
    resolved = sample_ticket("T-1001")
    out = []
    for n, row in enumerate(r for r in independent_attack_rows() if r["label"] == label):
        if label == "injection":
            record = _copy(found["U-" + str(1 + n % 3)])
            plant(record, row["where"], row["text"])
            record.pop("label", None)
        else:
            record = _control(resolved, row)
        record["id"] = row["id"]
        out.append((row, record))
    return out


def sample_ticket(outcome_id: str) -> dict[str, Any]:
    for line in (ROOT / "datasets" / "tickets.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["id"] == outcome_id:
            return record
    raise KeyError(outcome_id)


def benign_controls(split: str | None = None, *, independent: bool = False) -> list[dict[str, Any]]:
    """Every benign control planted in the resolved sample ticket T-1001 (label resolved)."""
    base = sample_ticket("T-1001")
    out = []
    for row in control_rows(split, independent=independent):
        record = _control(base, row)
        record["id"] = row["id"]
        out.append(record)
    return out


def _control(resolved: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A copy of the resolved ticket with a benign ``row`` in it: a customer's text before the
    customer's last message (which stays the confirmation), anything else where it says."""
    record = _copy(resolved)
    conv = record["conversation"]
    if row["where"] == "customer":
        conv.insert(_last(conv, "customer"), {"role": "customer", "text": row["text"]})
    else:
        plant(record, row["where"], row["text"])
    return record


def public_available() -> bool:
    return all((PUBLIC / f"{s}.train.jsonl").exists() for s in PUBLIC_SOURCES)


def public_rows(source: str | None = None) -> list[dict[str, Any]]:
    """Rows of the public corpora (``source`` added as the corpus name)."""
    out = []
    for name in PUBLIC_SOURCES if source is None else (source,):
        for row in _jsonl(PUBLIC / f"{name}.train.jsonl"):
            out.append({**row, "corpus": name})
    return out


def plant_public(row: dict[str, Any], n: int) -> dict[str, Any]:
    """A public row in an unresolved ticket: a tool result (indirect) or the customer's message."""
    record = _copy(bases()["U-" + str(1 + n % 3)])
    where = "tool" if row["corpus"] in INDIRECT else "customer"
    plant(record, where, row["text"])
    record["id"] = f"PUB-{n:04d}"
    record.pop("label", None)
    return record


def public_held_out(label: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The project's held-out 30 % of the public rows with ``label``, each with its planted
    outcome record: ``[(row, record), ...]`` (the split of :func:`held_out_public`)."""
    from judge.guard_training import held_out_public

    return [
        (row, plant_public(row, n))
        for n, row in enumerate(public_rows())
        if row["label"] == label and held_out_public(row["text"])
    ]


def taubench_outcomes() -> list[Any]:
    """The real tau-bench airline conversations as native outcomes (the project's importer)."""
    from judge.importers import read_outcomes

    path = SHARED / "tau_bench_airline" / "trajectories.json"
    return list(read_outcomes(path, format="taubench"))

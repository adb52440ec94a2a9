"""tau-bench trajectories -> Outcomes.

tau-bench (sierra-research/tau-bench) stores runs as a JSON array of
``{task_id, trial, reward, traj, info}``; ``traj`` is the OpenAI-style message list of the run.
``reward`` 1.0 means the booking database ended in the correct state: ground truth, so it becomes
the outcome's label. A JSON Lines file with one trajectory per line is read the same way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.importers.errors import InputFileError, from_validation_error
from judge.importers.native import Located, iter_json_values, json_type
from judge.models import AgentInfo, Label, Message, Outcome, Touch

AGENT_AUTHOR = "bot:tau-gpt-4o"
AGENT_NAME = "tau-airline"
MODEL_PATH = "gpt-4o"
LABEL_BY = "tau-bench-reward"
_ROLES = {"system": "system", "user": "customer", "assistant": "agent", "tool": "tool"}


def looks_taubench(value: Any) -> bool:
    """True for a tau-bench trajectory object.

    >>> looks_taubench({"task_id": 0, "reward": 1.0, "traj": []})
    True
    """
    return isinstance(value, dict) and "traj" in value and "reward" in value


def _text(path: Path, where: str | None, field: str, content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    raise InputFileError(
        path,
        f"content must be a string or null, got {json_type(content)}",
        record=where,
        field=field,
    )


def _tool_call(raw: Any) -> dict[str, Any]:
    """Normalise an OpenAI tool call to ``{id, name, arguments}`` (arguments parsed when JSON)."""
    if not isinstance(raw, dict):
        return {"name": None, "arguments": raw}
    nested = raw.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else raw
    arguments: Any = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # else keep the raw string the model emitted
            arguments = json.loads(arguments)
    call: dict[str, Any] = {"name": function.get("name"), "arguments": arguments}
    if raw.get("id") is not None:
        call["id"] = raw["id"]
    return call


def _message(path: Path, where: str | None, index: int, raw: Any) -> Message:
    field = f"traj.{index}"
    if not isinstance(raw, dict):
        raise InputFileError(
            path, f"expected a message object, got {json_type(raw)}", record=where, field=field
        )
    role = raw.get("role")
    if role not in _ROLES:
        raise InputFileError(
            path,
            f"unknown role {role!r}; expected 'system', 'user', 'assistant' or 'tool'",
            record=where,
            field=f"{field}.role",
        )
    text = _text(path, where, f"{field}.content", raw.get("content"))
    if role == "assistant":
        calls = raw.get("tool_calls") or []
        if not isinstance(calls, list):
            raise InputFileError(
                path, "tool_calls must be a list", record=where, field=f"{field}.tool_calls"
            )
        return Message(
            role="agent", author=AGENT_AUTHOR, text=text, tool_calls=[_tool_call(c) for c in calls]
        )
    if role == "tool":
        name = raw.get("name")
        return Message(role="tool", name=str(name) if name is not None else None, text=text)
    return Message(role=_ROLES[role], text=text)  # type: ignore[arg-type]


def _outcome(path: Path, where: str | None, item: Any, line: int | None) -> Outcome:
    if not isinstance(item, dict):
        raise InputFileError(
            path, f"expected a trajectory object, got {json_type(item)}", line=line, record=where
        )
    for key in ("task_id", "reward", "traj"):
        if key not in item:
            raise InputFileError(path, "missing required field", line=line, record=where, field=key)
    task_id, trial, reward, traj = (
        item["task_id"],
        item.get("trial", 0),
        item["reward"],
        item["traj"],
    )
    if not isinstance(task_id, (int, str)) or isinstance(task_id, bool):
        raise InputFileError(
            path, "task_id must be an integer or a string", line=line, record=where, field="task_id"
        )
    if not isinstance(trial, int) or isinstance(trial, bool):
        raise InputFileError(
            path, "trial must be an integer", line=line, record=where, field="trial"
        )
    if not isinstance(reward, (int, float)) or isinstance(reward, bool):
        raise InputFileError(
            path,
            f"reward must be a number, got {json_type(reward)}",
            line=line,
            record=where,
            field="reward",
        )
    if not isinstance(traj, list) or not traj:
        raise InputFileError(
            path, "traj must be a non-empty list of messages", line=line, record=where, field="traj"
        )
    try:
        conversation = [_message(path, where, i, m) for i, m in enumerate(traj)]
        return Outcome(
            id=f"tau-airline-{task_id}-{trial}",
            kind="support_ticket",
            conversation=conversation,
            touches=[Touch(actor=AGENT_AUTHOR, kind="ai")],
            agent=AgentInfo(name=AGENT_NAME, model_path=MODEL_PATH),
            label=Label(resolved=float(reward) == 1.0, by=LABEL_BY),
            metadata={
                "source": "tau-bench",
                "task_id": task_id,
                "trial": trial,
                "reward": float(reward),
            },
        )
    except InputFileError as exc:
        raise InputFileError(path, exc.reason, line=line, record=where, field=exc.field) from exc
    except ValidationError as exc:
        raise from_validation_error(path, exc, line=line, record=where) from exc


def iter_taubench(path: Path) -> Iterator[Located]:
    """Yield one support-ticket Outcome per tau-bench trajectory.

    Mapping: ``system`` -> ``system`` (the policy, kept as context), ``user`` -> ``customer``,
    ``assistant`` -> ``agent`` (author ``bot:tau-gpt-4o``, tool calls kept as
    ``{id, name, arguments}``), ``tool`` -> ``tool`` (with its name). ``reward == 1.0`` ->
    ``label.resolved`` true (by ``tau-bench-reward``). ``task_id``, ``trial`` and ``reward`` go to
    ``metadata``.
    """
    for value, line in iter_json_values(path):
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield Located(_outcome(path, str(index), item, line), line, str(index))
        else:
            yield Located(_outcome(path, None, value, line), line, None)

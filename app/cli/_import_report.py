"""What `judge convert` and `judge verify` say about each input file, and their shared options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli._common import stderr

if TYPE_CHECKING:
    from app.agent_costs import AgentCosts
    from judge.importers import FileReport

AiAuthorsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ai-authors",
        help="Authors that are your AI agent, by user id, name or email (comma-separated or "
        "repeated), for exports that do not mark the bot themselves. The channel alone never "
        "makes an author AI.",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Fail (exit 1, nothing written) when a conversation has no customer message or no "
        "reply from an AI or human agent, instead of warning.",
    ),
]


MappingOpt = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        help="Read the input with a declarative mapping: a shipped one by name (freshdesk, "
        "helpscout, gorgias, salesforce, front, hubspot) or the path of your own YAML file.",
    ),
]


def load_mapping_option(value: str | None) -> object:
    """The loaded mapping for ``--mapping`` (``None`` without it); exits 2 on an invalid file."""
    if value is None:
        return None
    from app.cli._common import fail
    from judge.importers.mapping_schema import MappingError, load_mapping

    try:
        return load_mapping(value)
    except MappingError as exc:
        fail(f"--mapping: {exc}")


TracesOpt = Annotated[
    str | None,
    typer.Option(
        "--traces",
        help="OpenTelemetry GenAI traces (OTLP JSON, or JSON Lines of exports): each outcome "
        "whose id (or metadata.conversation_id) is a gen_ai.conversation.id gets its agent "
        "cost, tokens and model path from the inference spans, priced with litellm's map.",
    ),
]


def load_traces_option(value: str | None) -> AgentCosts | None:
    """The priced agent usage of ``--traces`` (None without it); exits 2 on an unreadable file,
    and reports what it read, priced and could not price."""
    if value is None:
        return None
    from pathlib import Path

    from app.agent_costs import load_agent_costs
    from app.cli._common import fail
    from judge.importers.otel_traces import TraceInputError

    try:
        costs = load_agent_costs(Path(value))
    except TraceInputError as exc:
        fail(f"--traces: {exc}")
    report = costs.report()
    stderr.print(
        f"--traces {value}: {report['spans']} spans, {report['conversations']} conversation(s) "
        f"with inference calls, {report['unattributed_calls']} call(s) without a "
        "gen_ai.conversation.id (not attributed)",
        highlight=False,
    )
    for conversation, models in report["unpriced"].items():
        stderr.print(
            f"[yellow]warning:[/yellow] --traces: conversation {conversation}: no price for "
            f"{', '.join(models)} in litellm's map; its agent cost is left unknown",
            highlight=False,
        )
    return costs


def print_traces_applied(costs: AgentCosts | None) -> None:
    """After reading: how many outcomes took a cost, and the conversations no outcome matched."""
    if costs is None:
        return
    missing = sorted(set(costs.by_conversation) - costs.applied)
    stderr.print(
        f"--traces: agent cost set on {len(costs.applied)} outcome(s)"
        + (f"; {len(missing)} traced conversation(s) matched no outcome" if missing else ""),
        highlight=False,
    )


def print_report(report: FileReport) -> None:
    """Counts, unmapped fields and warnings of one input file, on stderr."""
    for line in report.summary_lines():
        stderr.print(line, highlight=False, markup=False)
    for warning in report.warnings():
        stderr.print(f"[yellow]warning:[/yellow] {_escape(warning)}", highlight=False)


def strict_problem(report: FileReport) -> str | None:
    """The ``--strict`` error for a file with degenerate conversations, else ``None``."""
    if not report.degenerate:
        return None
    return (
        f"--strict: {report.path.name} holds {report.degenerate} conversation(s) without a "
        "customer message or an agent reply (listed above); export the missing messages, pass "
        "--ai-authors, or drop --strict to convert them with a warning"
    )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

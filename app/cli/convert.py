"""`judge convert`: turn tau-bench, Zendesk, Intercom or connector exports into native JSONL."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail, stderr
from app.cli._import_report import (
    AiAuthorsOpt,
    MappingOpt,
    StrictOpt,
    TracesOpt,
    load_mapping_option,
    load_traces_option,
    print_report,
    print_traces_applied,
    strict_problem,
)

if TYPE_CHECKING:
    from app.agent_costs import AgentCosts
    from judge.importers import FileReport


class StrictError(Exception):
    """``--strict`` and the file holds degenerate conversations; nothing was written."""

    def __init__(self, report: FileReport) -> None:
        self.report = report
        super().__init__(strict_problem(report))


def convert_file(
    source: Path,
    out: Path,
    *,
    format: str = "auto",
    tenant: str | None = None,
    ai_authors: frozenset[str] = frozenset(),
    mapping: Any = None,
    strict: bool = False,
    agent_costs: AgentCosts | None = None,
) -> tuple[int, str, FileReport]:
    """Convert ``source`` to native JSONL at ``out`` atomically; return (count, format, report).

    The output is written to a temporary file beside ``out`` and renamed into place only after
    every record converted, so an error never leaves a partial file (an existing ``out`` is kept).
    With ``strict``, a conversation without a customer message or an agent reply is an error too.

    Raises
    ------
    judge.importers.InputFileError
        For any problem in the input (file, line or record, field).
    StrictError
        ``strict`` and the report counts degenerate conversations (the report is on the error).
    OSError
        When the output cannot be written.
    """
    from judge.importers import FileReport, read_outcomes, resolve_format

    fmt = resolve_format(source, format, mapping=mapping)
    report = FileReport(path=source)
    outcomes = read_outcomes(
        source, format=fmt, tenant=tenant, ai_authors=ai_authors, mapping=mapping, report=report
    )
    if agent_costs is not None:
        outcomes = agent_costs.apply(outcomes)
    directory = out.parent if str(out.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for outcome in outcomes:
                handle.write(outcome.model_dump_json(exclude_defaults=True))
                handle.write("\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        if strict and report.degenerate:
            raise StrictError(report)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count, fmt, report


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""

    @app.command("convert")
    def convert(
        input: Annotated[
            Path,
            typer.Argument(
                help="Export to convert: tau-bench JSON, a Zendesk or Intercom export, connector "
                "records (Airbyte/Singer), or JSONL."
            ),
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Native Outcome JSONL to write.")],
        format: Annotated[
            str,
            typer.Option(
                "--format",
                "-f",
                help="Input format: auto, native, taubench, zendesk, intercom or connector.",
            ),
        ] = "auto",
        tenant: Annotated[
            str | None, typer.Option("--tenant", help="Tenant to stamp on every outcome.")
        ] = None,
        ai_authors: AiAuthorsOpt = None,
        strict: StrictOpt = False,
        mapping: MappingOpt = None,
        traces: TracesOpt = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the per-file report as JSON on stdout.")
        ] = False,
    ) -> None:
        """Convert an export into native Outcome JSONL (written atomically) and report per file:
        outcomes, messages per outcome, conversations without a customer message or an agent
        reply, and fields not mapped."""
        from judge.importers import InputFileError, parse_ai_authors

        if out.resolve() == input.resolve():
            fail("--out must be a different file from INPUT")
        if not out.parent.is_dir():
            fail(f"output directory {out.parent} does not exist; create it first")
        if tenant is not None and not 1 <= len(tenant) <= 100:
            fail("--tenant must be 1 to 100 characters")
        loaded = load_mapping_option(mapping)
        costs = load_traces_option(traces)
        try:
            count, fmt, report = convert_file(
                input,
                out,
                format=format,
                tenant=tenant,
                ai_authors=parse_ai_authors(ai_authors),
                mapping=loaded,
                strict=strict,
                agent_costs=costs,
            )
        except InputFileError as exc:
            fail(f"{exc} (nothing was written to {out})")
        except StrictError as exc:
            print_report(exc.report)
            fail(f"{exc} (nothing was written to {out})", code=1)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}")
        print_report(report)
        print_traces_applied(costs)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        stderr.print(
            f"converted {count} outcome{'s' if count != 1 else ''} from {fmt} format "
            f"({input.name}) -> {out}",
            highlight=False,
        )

"""`judge verify`: outcomes in, one verdict per outcome out, everything recorded in the ledger."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import (
    CallProcessOpt,
    LedgerUrlOpt,
    ScreenProcessesOpt,
    fail,
    redact_url,
    stderr,
    use_call_process,
    use_screen_processes,
)
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
    from collections.abc import Callable, Iterable

    from app.verification import ReadOptions
    from judge.importers import FileReport
    from judge.models import Outcome
    from judge.panel import Panel
    from judge.rubric import Rubric
    from judge.runner import RunSummary
    from ledger.callstore import SettledCalls


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Outcomes file (native JSONL or an export).")
    ],
    rubric: Annotated[
        list[str] | None,
        typer.Option(
            "--rubric",
            "-r",
            help="Rubric name or YAML path; repeat for mixed files. Default: the shipped rubric "
            "for each outcome kind (support-resolution, report-accuracy).",
        ),
    ] = None,
    panel_path: Annotated[
        Path | None,
        typer.Option("--panel", "-p", help="Panel YAML. Default: OUTCOME_JUDGE_MODEL or local."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Verdict JSONL to write.")] = Path(
        "verdicts.jsonl"
    ),
    input_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="native, taubench, zendesk, intercom, connector or auto."
        ),
    ] = "auto",
    db: LedgerUrlOpt = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant to record under (default: from input).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, max=1024, help="Outcomes at once.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Reuse verdicts already recorded for the same content, rubric and panel.",
        ),
    ] = True,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            "-P",
            min=1,
            max=64,
            help="Processes to judge in, each on its own event loop (use every core); "
            "--concurrency and provider limits are split between them; one output, in input "
            "order.",
        ),
    ] = 1,
    screen_processes: ScreenProcessesOpt = None,
    call_process: CallProcessOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    attested_path: Annotated[
        Path | None,
        typer.Option(
            "--attested",
            metavar="FILE",
            help='Documents the buyer attested, JSON Lines of {"text": ...} or {"sha256": ...}: '
            "under a panel with report_inputs: attested, a report whose brief or a source is not "
            "one of them is never auto-verified.",
        ),
    ] = None,
    ai_authors: AiAuthorsOpt = None,
    strict: StrictOpt = False,
    mapping: MappingOpt = None,
    traces: TracesOpt = None,
) -> None:
    """Verify outcomes with a judge panel under a rubric and write one verdict per outcome.

    The input is read and reported first (outcomes, messages per outcome, conversations without
    a customer message or an agent reply, fields not mapped): nothing is judged silently."""
    from app.attested_documents import AttestedFileError, read_attested_documents
    from app.verification import ReadOptions, check_input, resolve_panel, resolve_rubrics
    from app.verify_processes import ProcessFailed
    from config.settings import get_settings
    from judge.importers import FileReport, InputFileError, parse_ai_authors
    from judge.panel_loader import PanelError
    from judge.rubric_loader import RubricError

    use_screen_processes(screen_processes)
    use_call_process(call_process)
    settings = get_settings()
    started = time.perf_counter()
    reading = ReadOptions(
        ai_authors=parse_ai_authors(ai_authors),
        mapping=load_mapping_option(mapping),
        agent_costs=load_traces_option(traces),
    )
    report = FileReport(path=input_path)
    try:
        checked = check_input(input_path, input_format, tenant, reading=reading, report=report)
        print_report(report)
        print_traces_applied(reading.agent_costs)
        problem = strict_problem(report) if strict else None
        if problem:
            fail(f"{problem}; nothing was judged", code=1)
        rubrics = resolve_rubrics(rubric, checked.kinds)
        panel, explanation = resolve_panel(panel_path)
        given = None if attested_path is None else read_attested_documents(attested_path)
    except (InputFileError, RubricError, PanelError, AttestedFileError, ValueError) as exc:
        fail(str(exc))
    if explanation:
        stderr.print(f"[yellow]{explanation}[/yellow]", highlight=False)

    db_url = db or settings.db_url
    attested = _attested_for_run(
        panel,
        given,
        db_url=db_url,
        tenant=checked.tenant,
        reports=checked.kinds.get("report", 0),
        outcomes=lambda: reading.read(input_path, input_format, tenant),
    )
    options: dict[str, Any] = {
        "input_format": input_format,
        "rubrics": rubrics,
        "panel": panel,
        "out": out,
        "db_url": db_url,
        "tenant": checked.tenant,
        "concurrency": concurrency or settings.concurrency,
        "total": checked.count,
        "resume": resume,
        "reading": reading,
        "attested": attested,
    }
    try:
        summary, settled = _run(input_path, processes=processes, **options)
    except KeyboardInterrupt:
        fail(
            "interrupted: nothing was written to the output; the judge calls already made are "
            "recorded, and running the command again reuses them",
            code=130,
        )
    except (InputFileError, ValueError, OSError, ProcessFailed) as exc:
        fail(str(exc))
    elapsed = time.perf_counter() - started
    _print_summary(
        summary,
        settled=settled,
        out=out,
        db_url=db_url,
        elapsed=elapsed,
        as_json=as_json,
        report=report,
    )


def _run(
    input_path: Path,
    *,
    processes: int,
    input_format: str,
    rubrics: dict[str, Rubric],
    panel: Panel,
    out: Path,
    db_url: str,
    tenant: str,
    concurrency: int,
    total: int,
    resume: bool,
    reading: ReadOptions,
    attested: frozenset[str] | None,
) -> tuple[RunSummary, SettledCalls]:
    """The verification with a progress bar: in this process, or in ``processes``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from app.verification import verify_into_ledger
    from app.verify_processes import verify_in_processes

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    with progress:
        if processes > 1:
            task = progress.add_task(f"verifying ({processes} processes)", total=total)
            run = verify_in_processes(
                input_path,
                input_format=input_format,
                reading=reading,
                tenant=tenant,
                panel=panel,
                rubrics=rubrics,
                out=out,
                db_url=db_url,
                concurrency=concurrency,
                resume=resume,
                processes=processes,
                total=total,
                on_progress=lambda n: progress.advance(task, n),
                attested=attested,
            )
        else:
            task = progress.add_task("verifying", total=total)
            run = asyncio.run(
                verify_into_ledger(
                    reading.read(input_path, input_format, tenant),
                    panel=panel,
                    rubrics=rubrics,
                    out=out,
                    db_url=db_url,
                    tenant=tenant,
                    concurrency=concurrency,
                    resume=resume,
                    on_progress=lambda: progress.advance(task),
                    attested=attested,
                )
            )
    return run.summary, run.settled


def _attested_for_run(
    panel: Panel,
    attested: list[tuple[str, str | None]] | None,
    *,
    db_url: str,
    tenant: str,
    reports: int,
    outcomes: Callable[[], Iterable[Outcome]],
) -> frozenset[str] | None:
    """The attested digests the run reads, for a panel that reads them: those of the input's
    reports that the tenant attested in the ledger, after ``--attested``'s documents are
    attested there (so a verdict that relied on one is explained by the ledger alone, and the
    service's workers read the same). Stops before judging when the tenant attested nothing (a
    forgotten ``--attested``); says so when ``--attested`` is given to a panel that does not
    read it, and then records nothing."""
    from app.attested_documents import ledger_attested
    from ledger.db import LedgerDatabaseError

    if panel.report_inputs != "attested":
        if attested is not None:
            stderr.print(
                f"[yellow]--attested has no effect: panel {panel.ref} takes reports' briefs "
                "and sources as submitted (set report_inputs: attested in the panel to check "
                "them)[/yellow]",
                highlight=False,
            )
        return None
    if not reports:
        return frozenset()
    try:
        found = ledger_attested(db_url, tenant, outcomes(), recording=attested or ())
    except LedgerDatabaseError as exc:
        fail(f"{redact_url(db_url)}: cannot read the attested documents: {exc}")
    if not found.tenant_has_any:
        fail(
            f"panel {panel.ref} asks for attested report inputs (report_inputs: attested), the "
            f"input holds {reports} report(s) and tenant {tenant!r} attested no document in "
            "the ledger: pass --attested FILE with the documents the buyer attested, or attest "
            f"them first (judge attest FILE --tenant {tenant}); nothing was judged"
        )
    recorded = (
        f"{len(attested)} in --attested ({found.recorded} new in the ledger); " if attested else ""
    )
    stderr.print(
        f"attested documents: {recorded}{len(found.digests)} of the input's {found.wanted} "
        f"briefs and sources are attested for tenant {tenant}",
        highlight=False,
    )
    return found.digests


def _print_summary(
    summary: RunSummary,
    *,
    settled: SettledCalls,
    out: Path,
    db_url: str,
    elapsed: float,
    as_json: bool,
    report: FileReport | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    per_verified = summary.cost_per_verified
    if as_json:
        data = summary.to_dict()
        data.update(
            unknown_calls_settled=settled.calls,
            unknown_calls_estimated_cost_usd=float(settled.estimated_cost_usd),
            out=str(out),
            seconds=round(elapsed, 3),
        )
        if report is not None:
            data["input"] = report.to_dict()
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"{summary.outcomes} outcomes verified in {elapsed:.1f}s", show_lines=False)
    table.add_column("")
    table.add_column("count / value", justify="right")
    for decision in ("verified", "not_verified", "abstain"):
        table.add_row(decision, str(summary.decisions[decision]))
    for tier in ("confirmed", "assumed", "assisted"):
        table.add_row(f"  tier {tier}", str(summary.tiers[tier]))
    table.add_row("unscored judge replies", str(summary.unscored_judgments))
    table.add_row("failed judges", str(summary.failed_judgments))
    table.add_row("flagged (possible prompt injection)", str(summary.flagged))
    table.add_row("judge calls served from cache", str(summary.judge_calls_cached))
    table.add_row("resumed from the ledger", str(summary.resumed))
    rate = summary.outcomes_per_second
    table.add_row("outcomes per second", "n/a" if rate is None else f"{rate:.1f}")
    table.add_row("judge cost (USD)", f"{summary.judge_cost_usd:.6f}")
    table.add_row(
        "judge cost per verified outcome (USD)",
        "n/a (nothing verified)" if per_verified is None else f"{per_verified:.6f}",
    )
    Console().print(table)
    if settled.calls:
        stderr.print(
            f"[yellow]{settled.calls} judge call(s) of {settled.outcomes} outcome(s) were left in "
            "flight by a run that stopped before their replies: recorded as unknown at an "
            f"estimated ${float(settled.estimated_cost_usd):.6f} (prompt tokens at the model's "
            "price); the provider may have billed them.[/yellow]",
            highlight=False,
        )
    stderr.print(f"verdicts: {out}   ledger: {redact_url(db_url)}", highlight=False)

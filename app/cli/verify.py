"""`judge verify`: outcomes in, one verdict per outcome out, everything recorded in the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail, stderr
from app.cli._import_report import (
    AiAuthorsOpt,
    MappingOpt,
    StrictOpt,
    load_mapping_option,
    print_report,
    strict_problem,
)

if TYPE_CHECKING:
    from judge.importers import FileReport
    from judge.models import Outcome
    from judge.rubric import Rubric
    from judge.runner import RunSummary
    from ledger.callstore import SettledCalls

LEDGER_BATCH = 64


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
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Ledger URL. Default: OUTCOME_JUDGE_DB_URL or ./outcome-judge.db"
        ),
    ] = None,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ai_authors: AiAuthorsOpt = None,
    strict: StrictOpt = False,
    mapping: MappingOpt = None,
) -> None:
    """Verify outcomes with a judge panel under a rubric and write one verdict per outcome.

    The input is read and reported first (outcomes, messages per outcome, conversations without
    a customer message or an agent reply, fields not mapped): nothing is judged silently."""
    from judge.importers import FileReport, InputFileError, parse_ai_authors
    from judge.panel_loader import PanelError
    from judge.rubric_loader import RubricError
    from judge.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    reading = ReadOptions(
        ai_authors=parse_ai_authors(ai_authors), mapping=load_mapping_option(mapping)
    )
    report = FileReport(path=input_path)
    try:
        kinds, count, run_tenant = _validate_input(
            input_path, input_format, tenant, reading=reading, report=report
        )
        print_report(report)
        problem = strict_problem(report) if strict else None
        if problem:
            fail(f"{problem}; nothing was judged", code=1)
        rubrics = _resolve_rubrics(rubric, kinds)
        panel, explanation = _resolve_panel(panel_path)
    except (InputFileError, RubricError, PanelError, ValueError) as exc:
        fail(str(exc))
    if explanation:
        stderr.print(f"[yellow]{explanation}[/yellow]", highlight=False)

    db_url = db or settings.db_url
    try:
        summary, settled = asyncio.run(
            _run(
                input_path,
                input_format=input_format,
                rubrics=rubrics,
                panel=panel,
                out=out,
                db_url=db_url,
                tenant=run_tenant,
                concurrency=concurrency or settings.concurrency,
                total=count,
                resume=resume,
                reading=reading,
            )
        )
    except (InputFileError, ValueError, OSError) as exc:
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


@dataclass(frozen=True)
class ReadOptions:
    """How the input is read, the same on both passes (``--ai-authors``, ``--mapping``)."""

    ai_authors: frozenset[str] = frozenset()
    mapping: Any = None


def _validate_input(
    path: Path,
    fmt: str,
    tenant: str | None,
    *,
    reading: ReadOptions | None = None,
    report: FileReport | None = None,
) -> tuple[Counter[str], int, str]:
    """First pass: every record must parse before anything is written; fills ``report``."""
    from judge.importers import read_outcomes
    from ledger.integrity import FutureTimestampError, check_timestamps
    from ledger.tables import utcnow

    if not path.exists():
        raise ValueError(f"input file not found: {path}")
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    tenants: set[str] = set()
    now = utcnow()
    reading = reading or ReadOptions()
    outcomes = read_outcomes(
        path,
        format=fmt,
        tenant=tenant,
        ai_authors=reading.ai_authors,
        mapping=reading.mapping,
        report=report,
    )
    for index, outcome in enumerate(outcomes, start=1):
        try:
            # The ledger refuses these too, but only once verdicts are paid for: refuse them now.
            check_timestamps(outcome, now=now)
        except FutureTimestampError as exc:
            raise FutureTimestampError(f"{path}: record {index}: {exc}") from None
        if outcome.id in seen:
            raise ValueError(
                f"{path}: record {index}: duplicate outcome id {outcome.id!r}; each outcome must "
                "appear once per file"
            )
        seen.add(outcome.id)
        kinds[outcome.kind] += 1
        if outcome.tenant:
            tenants.add(outcome.tenant)
    if not seen:
        raise ValueError(f"{path} holds no outcomes")
    if tenant is None and len(tenants) > 1:
        raise ValueError(
            f"{path} mixes tenants ({', '.join(sorted(tenants))}); pass --tenant or split the file"
        )
    run_tenant = tenant or (next(iter(tenants)) if tenants else "default")
    return kinds, len(seen), run_tenant


def _resolve_rubrics(names: list[str] | None, kinds: Counter[str]) -> dict[str, Rubric]:
    from judge.rubric_loader import DEFAULT_RUBRICS, load_rubric

    chosen = [load_rubric(n) for n in names] if names else []
    by_kind: dict[str, Rubric] = {}
    for r in chosen:
        if r.kind in by_kind:
            raise ValueError(f"two rubrics given for {r.kind}: {by_kind[r.kind].name} and {r.name}")
        by_kind[r.kind] = r
    for kind in kinds:
        if kind not in by_kind:
            if names:
                raise ValueError(
                    f"the input holds {kinds[kind]} {kind} outcome(s) but no {kind} rubric was "
                    f"given; add --rubric {DEFAULT_RUBRICS[kind]}"
                )
            by_kind[kind] = load_rubric(DEFAULT_RUBRICS[kind])
    return by_kind


def _resolve_panel(path: Path | None) -> tuple[object, str | None]:
    from judge.panel_loader import default_panel, load_panel
    from judge.settings import get_settings

    if path is not None:
        return load_panel(path), None
    return default_panel(get_settings())


async def _run(
    input_path: Path,
    *,
    input_format: str,
    rubrics: dict[str, Rubric],
    panel: object,
    out: Path,
    db_url: str,
    tenant: str,
    concurrency: int,
    total: int,
    resume: bool,
    reading: ReadOptions | None = None,
) -> tuple[RunSummary, SettledCalls]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from judge.engine import Engine
    from judge.importers import read_outcomes
    from judge.panel import Panel
    from judge.runner import verify_stream
    from judge.verdict import Verdict
    from ledger.callstore import DbCallStore, settle_pending
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.store import Ledger

    assert isinstance(panel, Panel)
    if panel.has_llm:
        # litellm takes seconds to import; pay that before the progress bar and the clock start.
        from judge.model_client import warm_up

        warm_up()
    db_engine = make_engine(db_url)
    migrate(db_engine)
    # Calls a killed run left in flight: booked as unknown at their estimated cost, and said.
    settled = settle_pending(db_engine, tenant=tenant)
    ledger = Ledger(db_engine, tenant=tenant)
    store = DbCallStore(db_engine, tenant=tenant)
    engine = Engine(panel, rubrics, store=store)

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")

    async def lookup(outcome: Outcome) -> Verdict | None:
        rubric = rubrics[outcome.kind]
        return await asyncio.to_thread(
            ledger.verdict_for,
            outcome.id,
            rubric=rubric.ref,
            panel=panel.ref,
            content_hash=outcome.content_hash(),
        )

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    try:
        with tmp.open("w", encoding="utf-8") as fh, progress:
            task = progress.add_task("verifying", total=total)

            # Results reach the ledger in batches, one transaction each: a commit per outcome
            # would make the database, not the judges, the bottleneck of a long run.
            batch: list[tuple[Outcome, Verdict]] = []
            # What makes each outcome final in the meters: the window of the rubric that judged.
            windows = {r.ref: r.window_hours for r in rubrics.values()}

            async def flush() -> None:
                if batch:
                    await asyncio.to_thread(
                        partial(ledger.record_results, windows=windows), list(batch)
                    )
                    batch.clear()

            async def sink(outcome: Outcome, verdict: Verdict, resumed: bool) -> None:
                fh.write(verdict.to_json() + "\n")
                if not resumed:
                    batch.append((outcome, verdict))
                    if len(batch) >= LEDGER_BATCH:
                        await flush()

            summary = await verify_stream(
                engine,
                read_outcomes(
                    input_path,
                    format=input_format,
                    tenant=tenant,
                    ai_authors=(reading or ReadOptions()).ai_authors,
                    mapping=(reading or ReadOptions()).mapping,
                ),
                sink=sink,
                concurrency=concurrency,
                lookup=lookup if resume and await asyncio.to_thread(ledger.has_verdicts) else None,
                on_progress=lambda: progress.advance(task),
            )
            await flush()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        # Judge calls already made are billable: record them even when the run failed.
        await store.aflush()
        db_engine.dispose()
    return summary, settled


def _remove_stale_temp_files(out: Path) -> None:
    """Delete half-written verdict files left by runs that were killed (their pid is gone)."""
    prefix = f".{out.name}."
    for stale in out.parent.glob(f"{prefix}*.tmp"):
        pid = stale.name[len(prefix) : -len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except PermissionError:
            continue  # another user's live process


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
        data = {
            "outcomes": summary.outcomes,
            "decisions": dict(summary.decisions),
            "tiers": dict(summary.tiers),
            "unscored_judgments": summary.unscored_judgments,
            "failed_judgments": summary.failed_judgments,
            "flagged": summary.flagged,
            "judge_cost_usd": round(summary.judge_cost_usd, 8),
            "judge_cost_per_verified_usd": per_verified,
            "judge_calls_cached": summary.judge_calls_cached,
            "resumed": summary.resumed,
            "unknown_calls_settled": settled.calls,
            "unknown_calls_estimated_cost_usd": float(settled.estimated_cost_usd),
            "out": str(out),
            "seconds": round(elapsed, 3),
            "verify_seconds": round(summary.verify_seconds, 3),
            "outcomes_per_second": (
                None
                if summary.outcomes_per_second is None
                else round(summary.outcomes_per_second, 1)
            ),
        }
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
    stderr.print(f"verdicts: {out}   ledger: {_redact(db_url)}", highlight=False)


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


# Public names for the other commands that compose rubrics and panels the same way as `verify`
# (`judge bias`, `judge canary`); same functions, same behaviour.
resolve_rubrics = _resolve_rubrics
resolve_panel = _resolve_panel

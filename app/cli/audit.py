"""`judge audit`: check a vendor's per-resolution bill against the verdicts in the ledger."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli._common import LedgerUrlOpt, fail, stderr
from app.cli._sources import FromOpt, TenantOpt, ToOpt, open_ledger, parse_time

if TYPE_CHECKING:
    from ledger.audit import AuditReport

#: Columns of ``--csv``: one row per disputed claim.
DISPUTE_COLUMNS = (
    "line",
    "outcome_id",
    "claim",
    "claimed_at",
    "price_usd",
    "status",
    "reason",
    "verdict_pk",
    "rubric",
    "panel",
    "confidence",
    "flags",
)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    claims: Annotated[
        Path | None,
        typer.Option(
            "--claims",
            help="The vendor's invoice export, CSV (header row) or JSONL: outcome_id, claimed_at, "
            "claim (confirmed, assumed, automated_resolution ...), price_usd per row. Without "
            "it, the claims imported with the conversations (vendor_claim) at --price.",
        ),
    ] = None,
    price: Annotated[
        float | None,
        typer.Option(
            "--price",
            min=0,
            help="Without --claims: the price in USD of each resolution the vendor claimed in "
            "the imported conversations.",
        ),
    ] = None,
    db: LedgerUrlOpt = None,
    tenant: TenantOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            help="FIELD=COLUMN when the export names a field otherwise, e.g. "
            "outcome_id=conversation_id (repeatable).",
        ),
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the disputed claims as CSV here.")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the audit and its dispute pack (transcripts, each judge's "
            "rationale and evidence) as one self-contained HTML page here.",
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=100, help="Bootstrap replicates of the interval.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
) -> None:
    """Reconcile a vendor's claimed resolutions with the verdicts: supported, disputed, pending.

    Each claim is verified (the ledger counts the outcome), not verified (the panel said no, or a
    reopen, low CSAT or a human overturned it), a duplicate, awaiting review (abstained),
    unjudged, or unknown (no such outcome). Claims outside --from/--to are listed, never counted.
    The verified count is corrected for the panel's measured error, with a 95% interval.
    """
    from app.audit import run_audit
    from config.settings import get_settings
    from ledger.claims import ClaimColumns, ClaimsInputError, read_claims
    from ledger.db import LedgerDatabaseError

    start, end = parse_time(since, "--from"), parse_time(until, "--to")
    if start is not None and end is not None and start >= end:
        fail("--from must be before --to")
    if claims is None and price is None:
        fail(
            "give --claims FILE (the vendor's invoice export), or --price USD to audit the "
            "resolutions the vendor claimed in the imported conversations (vendor_claim)"
        )
    if claims is not None and price is not None:
        fail("--price is for claims read from the ledger; a --claims file has its own prices")
    rows = None
    if claims is not None:
        try:
            rows = read_claims(claims, ClaimColumns.parse(column or []))
        except ClaimsInputError as exc:
            fail(f"--claims: {exc}")
    url = db or get_settings().db_url
    engine, chosen, shown = open_ledger(url, tenant, tables={"outcomes", "outcome_facts"})
    try:
        if rows is None:
            from decimal import Decimal

            from ledger.audit_source import imported_claims

            rows = imported_claims(
                engine, chosen, price_usd=Decimal(repr(price)), since=start, until=end
            )
        report = run_audit(engine, chosen, rows, since=start, until=end, n_boot=n_boot, seed=seed)
    except LedgerDatabaseError as exc:
        fail(f"--db {shown}: {exc}")
    finally:
        engine.dispose()
    from ledger.cost_report_html import write_text_atomic

    if csv_out is not None:
        try:
            write_text_atomic(csv_out, disputes_csv(report))
        except OSError as exc:
            fail(f"--csv: cannot write {csv_out}: {exc.strerror or exc}")
    if html is not None:
        from ledger.audit_html import render_audit_html

        try:
            write_text_atomic(html, render_audit_html(report))
        except OSError as exc:
            fail(f"--html: cannot write {html}: {exc.strerror or exc}")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        _print(report)
    if csv_out is not None:
        stderr.print(f"{len(report.disputes)} disputed claim(s) written to {csv_out}")
    if html is not None:
        stderr.print(f"audit and dispute pack written to {html}")


def disputes_csv(report: AuditReport) -> str:
    """The disputed claims as CSV text (header first; flags joined with ``;``)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(DISPUTE_COLUMNS)
    for d in report.disputes:
        row = d.model_dump()
        row["flags"] = ";".join(d.flags)
        writer.writerow(["" if row[c] is None else row[c] for c in DISPUTE_COLUMNS])
    return buffer.getvalue()


def _print(report: AuditReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"Vendor claims vs verdicts, tenant {report.tenant}",
        caption="n: claims; ok: verified; no: not verified or revoked; dup: billed twice; "
        "pend: abstained or unjudged; unkn: no such outcome; USD",
    )
    for name in ("period", "claim", "n", "ok", "no", "dup", "pend", "unkn", "billed",
                 "disputed"):  # fmt: skip
        if name == "claim":
            table.add_column(name, overflow="fold", min_width=10)
        else:
            table.add_column(name, justify="left" if name == "period" else "right", no_wrap=True)
    for row in [*report.by_period, None]:
        r = row or report
        table.add_row(
            row.period or "" if row else "total",
            row.claim or "" if row else "",
            str(r.claimed),
            str(r.verified),
            str(r.not_verified),
            str(r.duplicate),
            str(r.abstain + r.unjudged),
            str(r.unknown),
            f"{r.billed_usd:,.2f}",
            f"{r.disputed_usd:,.2f}",
        )
    console.print(table)
    cv, cd = report.corrected_verified, report.corrected_disputed_usd
    if cv.value is None:
        console.print(f"corrected for the panel's error: none ({cv.note})", highlight=False)
    else:
        interval = f", 95% CI {cv.ci[0]:.1f} to {cv.ci[1]:.1f}" if cv.ci else ""
        money = f", 95% CI {cd.ci[0]:,.2f} to {cd.ci[1]:,.2f}" if cd.ci else ""
        console.print(
            f"verified, corrected for the panel's measured error: {cv.value:.1f}{interval}; "
            f"disputed ${cd.value:,.2f}{money}",
            highlight=False,
        )
    for kind, items in report.problems.items():
        if items:
            ids = ", ".join(p.outcome_id for p in items[:5]) + (" ..." if len(items) > 5 else "")
            console.print(
                f"{kind.replace('_', ' ')}: {len(items)} claim(s) ({ids})", highlight=False
            )
    unclaimed = report.verified_unclaimed["count"]
    if unclaimed:
        console.print(f"verified but not claimed by the vendor: {unclaimed} outcome(s)")

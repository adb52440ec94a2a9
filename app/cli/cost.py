"""`judge cost`: TCO and break-even between model paths, by hand or measured from the ledger.

``judge cost tco`` and ``judge cost breakeven --cost-a --cost-b`` take the numbers on the command
line. ``judge cost breakeven --db URL --path-a P --path-b Q`` measures them per model path from
the ledger: each outcome counts once, judged by its latest verdict; ``C_token`` is the mean
``outcomes.agent_cost_usd`` of the judged revisions and ``P(fail) = 1 - verified / judged``
(``not_verified`` and ``abstain`` both count as failures: nobody can bill them) with a 95 %
Wilson score interval (:func:`scipy.stats.binomtest`; Wilson rather than a bootstrap because a
path with 0 or all verified still gets an honest, non-degenerate interval).

``judge cost report`` splits every group into ``provisional`` and ``final`` rows
(:func:`ledger.windows.verification_status` as of ``--now``, with ``--window-hours`` and
``--grace-hours``), and its ``agent`` dimension is the credited AI actor
(:func:`ledger.attribution.attribute`), no longer the outcome's ``agent.name@version``; its
``period`` dimension is the UTC day or month (``--period``) of each outcome's last customer
message. ``--html FILE`` also writes the table and plots of cost per verified outcome and verified
counts per model path over time as one self-contained HTML file (written atomically).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from app.cli._common import fail
from app.cli._sources import FromOpt, TenantOpt, ToOpt, open_ledger, parse_time
from ledger.cost_report import (
    GROUP_DIMENSIONS,
    PERIODS,
    STATUSES,
    Period,
    check_labor_rate,
    cost_report,
    report_notes,
)

if TYPE_CHECKING:
    pass


cost_app = typer.Typer(
    name="cost",
    help="TCO and break-even per model path: TCO = C_token + P(fail) x L, dp* = dC / L.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
LaborOpt = Annotated[
    float,
    typer.Option("--labor", help="Labour cost of finishing one failed task by hand, USD."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(cost_app, name="cost")


def _usd(value: float) -> str:
    return f"${value:,.6g}"


@cost_app.command("tco")
def tco_command(
    token_cost: Annotated[
        float, typer.Option("--token-cost", help="Mean agent inference cost per attempt, USD.")
    ],
    p_fail: Annotated[
        float, typer.Option("--p-fail", help="Share of attempts not verified, in [0, 1].")
    ],
    labor: LaborOpt,
    as_json: JsonOpt = False,
) -> None:
    """TCO of one finished task: C_token + P(fail) x L."""
    from ledger.economics import tco

    try:
        value = tco(token_cost=token_cost, p_fail=p_fail, labor=labor)
    except ValueError as exc:
        fail(_option_message(exc))
    if as_json:
        data = {"token_cost": token_cost, "p_fail": p_fail, "labor": labor, "tco": value}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(
        f"TCO per finished task: {_usd(value)} = token cost {_usd(token_cost)} + "
        f"P(fail) {p_fail:g} x labour {_usd(labor)} ({_usd(p_fail * labor)} of expected labour)"
    )


@cost_app.command("breakeven")
def breakeven_command(
    labor: LaborOpt,
    cost_a: Annotated[
        float | None, typer.Option("--cost-a", help="Token cost per attempt of path A, USD.")
    ] = None,
    cost_b: Annotated[
        float | None, typer.Option("--cost-b", help="Token cost per attempt of path B, USD.")
    ] = None,
    p_fail_a: Annotated[
        float | None, typer.Option("--p-fail-a", help="Failure rate of path A, in [0, 1].")
    ] = None,
    p_fail_b: Annotated[
        float | None, typer.Option("--p-fail-b", help="Failure rate of path B, in [0, 1].")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Measure both paths from this ledger (e.g. sqlite:///outcome-judge.db) instead "
            "of --cost-a/--cost-b/--p-fail-a/--p-fail-b.",
        ),
    ] = None,
    tenant: TenantOpt = None,
    path_a: Annotated[
        str | None, typer.Option("--path-a", help="With --db: model path A (outcomes.model_path).")
    ] = None,
    path_b: Annotated[
        str | None, typer.Option("--path-b", help="With --db: model path B (outcomes.model_path).")
    ] = None,
    since: FromOpt = None,
    until: ToOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which path is cheaper per finished task, by how much, and where the decision flips."""
    from ledger.economics import breakeven, explain

    manual = {
        "--cost-a": cost_a,
        "--cost-b": cost_b,
        "--p-fail-a": p_fail_a,
        "--p-fail-b": p_fail_b,
    }
    ledger_only = {"--tenant": tenant, "--path-a": path_a, "--path-b": path_b}
    ledger_only |= {"--from": since, "--to": until}
    if db is None:
        used = [name for name, value in ledger_only.items() if value is not None]
        if used:
            fail(f"{', '.join(used)}: ledger option(s); use them with --db URL")
        if cost_a is None or cost_b is None:
            fail("give --cost-a and --cost-b (USD per attempt), or --db URL --path-a --path-b")
        try:
            result = breakeven(
                cost_a=cost_a, cost_b=cost_b, labor=labor, p_fail_a=p_fail_a, p_fail_b=p_fail_b
            )
        except ValueError as exc:
            fail(_option_message(exc))
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            for line in explain(result):
                typer.echo(line)
        return

    used = [name for name, value in manual.items() if value is not None]
    if used:
        fail(f"{', '.join(used)}: not with --db (the ledger measures both paths); drop them")
    if path_a is None or path_b is None:
        fail("with --db give both --path-a and --path-b (model paths, e.g. gpt-4o-mini)")
    if path_a == path_b:
        fail(f"--path-a and --path-b are both {path_a!r}; compare two different model paths")
    if labor <= 0:
        fail(f"--labor must be > 0 (USD per failed task), got {labor!r}")
    _ledger_breakeven(
        db,
        tenant=tenant,
        paths=(path_a, path_b),
        labor=labor,
        since=parse_time(since, "--from"),
        until=parse_time(until, "--to"),
        as_json=as_json,
    )


def _option_message(exc: ValueError) -> str:
    """Name the CLI option rather than the Python argument (``cost_a`` -> ``--cost-a``)."""
    text = str(exc)
    name, _, rest = text.partition(" ")
    if name in {"token_cost", "p_fail", "labor", "cost_a", "cost_b", "p_fail_a", "p_fail_b"}:
        return f"--{name.replace('_', '-')} {rest}"
    return text


def _ledger_breakeven(
    url: str,
    *,
    tenant: str | None,
    paths: tuple[str, str],
    labor: float,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
) -> None:
    from ledger.economics import (
        CI_LEVEL,
        CI_METHOD,
        PathStats,
        breakeven,
        explain,
        path_stats,
        tco,
    )

    if since is not None and until is not None and since >= until:
        fail(f"--from ({since.isoformat()}) must be before --to ({until.isoformat()})")
    engine, chosen, shown = open_ledger(url, tenant, tables={"verdicts", "outcomes", "tenants"})
    try:
        from ledger.counted import judged_rows

        grouped = judged_rows(engine, chosen, since=since, until=until)
    finally:
        engine.dispose()
    if not grouped:
        window = "" if since is None and until is None else " in the --from/--to window"
        fail(
            f"--db: no verdicts for tenant {chosen!r}{window} in {shown}; check --tenant (and "
            "--from/--to) or run judge verify --db first"
        )
    known = sorted(p for p in grouped if p is not None)
    stats: list[PathStats] = []
    for option, path in zip(("--path-a", "--path-b"), paths, strict=True):
        if path not in grouped:
            fail(
                f"{option}: no judged outcomes with model path {path!r} for tenant {chosen!r} in "
                f"{shown}; model paths there: {', '.join(known) or 'none'}"
            )
        measured = path_stats(grouped[path], model_path=path)
        if measured.token_cost is None:
            fail(
                f"{option}: none of the {measured.attempts} judged outcomes of {path!r} records "
                "an agent cost (agent.cost_usd); record it, or give --cost-a/--cost-b by hand"
            )
        stats.append(measured)
    a, b = stats
    assert a.token_cost is not None and b.token_cost is not None
    result = breakeven(
        cost_a=a.token_cost, cost_b=b.token_cost, labor=labor, p_fail_a=a.p_fail, p_fail_b=b.p_fail
    )
    tco_ci = {
        s.model_path: (
            tco(token_cost=s.token_cost or 0.0, p_fail=s.p_fail_low, labor=labor),
            tco(token_cost=s.token_cost or 0.0, p_fail=s.p_fail_high, labor=labor),
        )
        for s in stats
    }
    overlap = tco_ci[a.model_path][0] <= tco_ci[b.model_path][1] and (
        tco_ci[b.model_path][0] <= tco_ci[a.model_path][1]
    )
    if as_json:
        data: dict[str, Any] = {
            "ledger": shown,
            "tenant": chosen,
            "from": None if since is None else since.isoformat(),
            "to": None if until is None else until.isoformat(),
            "interval": {"method": CI_METHOD, "level": CI_LEVEL},
            "paths": {
                key: asdict(s)
                | {"tco": [result.tco_a, result.tco_b][i], "tco_ci": tco_ci[s.model_path]}
                for i, (key, s) in enumerate(zip(("a", "b"), stats, strict=True))
            },
            "breakeven": result.to_dict(),
            "tco_intervals_overlap": overlap,
        }
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"ledger {shown}, tenant {chosen}")
    for key, s in zip(("A", "B"), stats, strict=True):
        lo, hi = tco_ci[s.model_path]
        typer.echo(
            f"{key} = {s.model_path}: {s.attempts} judged, {s.verified} verified; "
            f"P(fail) {s.p_fail:.4f} (95% Wilson {s.p_fail_low:.4f}-{s.p_fail_high:.4f}); "
            f"C_token {_usd(s.token_cost or 0.0)} (mean of {s.costed}); "
            f"TCO 95% {_usd(lo)}-{_usd(hi)}"
        )
    for line in explain(result, name_a=a.model_path, name_b=b.model_path):
        typer.echo(line)
    if overlap:
        typer.echo(
            "The two TCO intervals overlap: the difference is within the uncertainty of the "
            "measured failure rates; judge more outcomes before switching on it."
        )


@cost_app.command("report")
def report_command(
    db: Annotated[
        str, typer.Option("--db", help="The ledger to report on (e.g. sqlite:///outcome-judge.db).")
    ],
    tenant: TenantOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help="Comma-separated: agent (the credited AI actor), agent_version, model_path, "
            "tier, period (UTC day or month of the last customer message, see --period).",
        ),
    ] = "model_path",
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="day or month (default): the period of --group-by period and of the --html plots.",
        ),
    ] = None,
    window_hours: Annotated[
        float | None,
        typer.Option(
            "--window-hours",
            help="Verification window after the last customer message, hours, for every "
            "outcome. Default: each verdict's rubric's window_hours (72 for a rubric that is "
            "not shipped, with a note).",
        ),
    ] = None,
    grace_hours: Annotated[
        float,
        typer.Option("--grace-hours", help="Grace period after the window, hours."),
    ] = 24.0,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Decide provisional/final as of this ISO 8601 time (default: the current time).",
        ),
    ] = None,
    labor_rate: Annotated[
        float | None,
        typer.Option(
            "--labor-rate",
            help="USD per hour of human review: recorded review minutes / 60 x this rate are "
            "added to the numerator (judge cost review records them).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the table and plots of cost per verified outcome and verified "
            "counts per model path over time to this self-contained HTML file.",
        ),
    ] = None,
) -> None:
    """Cost per verified outcome = (agent + judge calls incl. retries + human review) / verified.

    Each row is provisional (its verification window plus grace has not passed at --now) or
    final; the two are reported separately, with a total for each and an overall total.
    Revoked verified outcomes (booked in [--from, --to)) are counted as revoked (with --group-by
    period: in the period the revocation is booked in); verified_net = verified - revoked.
    """
    from ledger.dimensions import GroupByError, parse_group_by
    from ledger.windows import check_hours

    try:
        dims = parse_group_by(group_by, GROUP_DIMENSIONS, required=True)
    except GroupByError as exc:
        if exc.repeated:
            fail(f"--group-by: {group_by!r} repeats a dimension; name each once")
        fail(
            f"--group-by: {', '.join(exc.unknown) or 'nothing given'}: not a dimension; use a "
            f"comma-separated list of {', '.join(GROUP_DIMENSIONS)}"
        )
    if period is not None and period not in PERIODS:
        fail(f"--period: {period!r} is not a period; use {' or '.join(PERIODS)}")
    if period is not None and "period" not in dims and html is None:
        fail("--period: only with --group-by period or --html (it sets their period); drop it")
    chosen_period = cast(Period, period or "month")
    if html is not None:
        if html.is_dir():
            fail(f"--html: {html} is a folder; give a file name such as {html / 'costs.html'}")
        if not html.parent.is_dir():
            fail(f"--html: folder {html.parent} does not exist; create it or choose another path")
    start, end = parse_time(since, "--from"), parse_time(until, "--to")
    if start is not None and end is not None and start >= end:
        fail(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    at = parse_time(now, "--now") or datetime.now(UTC)
    try:  # validate up front, before opening the ledger
        check_hours(
            window_hours=72 if window_hours is None else window_hours, grace_hours=grace_hours
        )
    except ValueError as exc:
        fail(f"--{str(exc).replace('_', '-', 1)}")
    try:
        check_labor_rate(labor_rate)
    except ValueError as exc:
        fail(f"--labor-rate: {exc}")
    engine, chosen, shown = open_ledger(db, tenant, tables=_REPORT_TABLES)
    options: dict[str, Any] = {
        "since": start,
        "until": end,
        "now": at,
        "window_hours": window_hours,
        "grace_hours": grace_hours,
        "period": chosen_period,
        "labor_rate": labor_rate,
    }
    try:
        report = cost_report(engine, chosen, dims=dims, **options)
        series = None
        if html is not None:
            series = cost_report(engine, chosen, dims=["period", "model_path"], **options)
    finally:
        engine.dispose()
    data = {"ledger": shown, **report.to_dict()}
    if html is not None and series is not None:
        _write_html(html, data, series.to_dict())
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_report(data, dims, notes=report_notes(report))
    if html is not None:
        typer.echo(f"wrote {html}", err=as_json)


_REPORT_TABLES = {"verdicts", "outcomes", "tenants", "cost_entries"}


@cost_app.command("review")
def review_command(
    db: Annotated[str, typer.Option("--db", help="The ledger (e.g. sqlite:///outcome-judge.db).")],
    outcome: Annotated[str, typer.Option("--outcome", help="The reviewed outcome's id.")],
    minutes: Annotated[
        float, typer.Option("--minutes", help="Minutes a person spent reviewing it (>= 0).")
    ],
    by: Annotated[str | None, typer.Option("--by", help="Who reviewed it.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A free-text note.")] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When the review happened, ISO 8601 (default: now)."),
    ] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record human review time of one outcome (priced by judge cost report --labor-rate)."""
    from ledger.cost_entries import UnknownOutcomeError, check_minutes, record_review
    from ledger.integrity import FutureTimestampError

    try:
        check_minutes(minutes)
    except ValueError as exc:
        fail(f"--{exc}")
    when = parse_time(at, "--at") or datetime.now(UTC)
    engine, chosen, shown = open_ledger(db, tenant, tables=_REPORT_TABLES)
    try:
        pk = record_review(
            engine, tenant=chosen, outcome_id=outcome, minutes=minutes, by=by, note=note, at=when
        )
    except FutureTimestampError as exc:
        fail(f"--at: {exc}")
    except UnknownOutcomeError as exc:
        fail(f"--outcome: {exc} in {shown}")
    except ValueError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    if as_json:
        data = {
            "ledger": shown,
            "tenant": chosen,
            "entry": pk,
            "outcome_id": outcome,
            "kind": "human_review",
            "minutes": minutes,
            "by": by,
            "at": when.isoformat(),
        }
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(
            f"recorded {minutes:g} min of human review of {outcome} (tenant {chosen}) in {shown}"
        )


def _write_html(path: Path, data: dict[str, Any], series: dict[str, Any]) -> None:
    from ledger.cost_report_html import render_cost_html, write_text_atomic

    page = render_cost_html(data, series, title=f"Cost per verified outcome: {data['tenant']}")
    try:
        write_text_atomic(path, page)
    except OSError as exc:
        fail(f"--html: cannot write {path}: {exc.strerror or exc}; check the path and permissions")


def _print_report(data: dict[str, Any], dims: list[str], *, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Cost per verified outcome: {data['ledger']}, tenant {data['tenant']}")
    for dim in dims:
        table.add_column(dim)
    table.add_column("status")
    for column in (
        "outcomes",
        "verified",
        "agent USD",
        "judge USD",
        "human USD",
        "numerator USD",
        "per verified",
    ):
        table.add_column(column, justify="right")
    entries = [(row["group"], row["status"], row) for row in data["groups"]]
    entries += [({dim: "TOTAL" for dim in dims}, s, data[s]) for s in STATUSES]
    entries.append(({dim: "TOTAL" for dim in dims}, "all", data["total"]))
    for group, status, row in entries:
        per = row["cost_per_verified_usd"]
        table.add_row(
            *[str(group[d]) if group[d] is not None else "-" for d in dims],
            status,
            str(row["outcomes"]),
            str(row["verified"]),
            f"{row['agent_cost_usd']:.6f}",
            f"{row['judge_cost_usd']:.6f}",
            "n/a" if row["human_review_usd"] is None else f"{row['human_review_usd']:.6f}",
            f"{row['numerator_usd']:.6f}",
            "n/a (0 verified)" if per is None else f"{per:.6f}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    console.print(table)
    for note in notes:
        typer.echo(f"note: {note}")

"""`judge calibrate` (judge vs human agreement report) and `judge replay` (recorded judge outputs).

Both read files (calibrate also reads the ledger with ``--db``), call the pure cores in
:mod:`calibration.report` and :mod:`calibration.replay`, and print JSON (``--json``) or a table.
Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail, stderr
from app.cli._sources import (
    DbOpt,
    FromOpt,
    PanelFilterOpt,
    RubricFilterOpt,
    TenantOpt,
    ToOpt,
    load_rows,
)

if TYPE_CHECKING:
    from calibration.report_figures import AgreementBlock, CalibrationReport


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""
    app.command("calibrate")(calibrate)
    app.command("replay")(replay)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def calibrate(
    verdicts: Annotated[
        Path | None,
        typer.Option("--verdicts", "-v", help="Verdict JSONL (one verdict per outcome)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            "-l",
            help="Human labels JSONL: {outcome_id, resolved, by, at, criteria} records, or "
            "outcomes with an embedded 'label'.",
        ),
    ] = None,
    db: DbOpt = None,
    tenant: TenantOpt = None,
    rubric: RubricFilterOpt = None,
    panel: PanelFilterOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    by: Annotated[
        str,
        typer.Option(
            "--by", help="Comma-separated groupings for the 'by' section: judge, criterion."
        ),
    ] = "judge,criterion",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Bootstrap seed (reproducible intervals).")
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Bootstrap draws for kappa intervals.")
    ] = 1000,
    id_column: Annotated[
        str, typer.Option("--id-column", help="Verdicts file: the outcome id column.")
    ] = "outcome_id",
    decision_column: Annotated[
        str | None,
        typer.Option(
            "--decision-column",
            help="Verdicts file: the decision column (default: decision, verified or resolved).",
        ),
    ] = None,
    score_column: Annotated[
        str, typer.Option("--score-column", help="Verdicts file: a score column (--threshold).")
    ] = "score",
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="A score >= this counts as verified (with a score)."),
    ] = None,
) -> None:
    """Measure how well verdicts agree with human labels (kappa with CI, alpha, F1, ...).

    Reads --verdicts and --labels files (JSONL, or CSV by the .csv suffix), or (exactly one of
    the two) the ledger with --db, optionally narrowed to one --rubric, one --panel and verdicts
    recorded in [--from, --to). Verdicts may come from any tool: an outcome id and a decision
    (or a verified/resolved boolean, or a score with --threshold) are enough.
    """
    from calibration.join import CalibrationInputError
    from calibration.report import GROUPINGS
    from calibration.report import calibrate as run_calibration
    from calibration.tool_verdicts import VerdictColumns

    groupings = [g.strip() for g in by.split(",") if g.strip()]
    bad = [g for g in groupings if g not in GROUPINGS]
    if bad:
        fail(
            f"--by: unknown grouping {', '.join(bad)}; use a comma-separated subset of "
            f"{','.join(GROUPINGS)}"
        )
    if threshold is not None and not math.isfinite(threshold):
        fail(f"--threshold must be a finite number, got {threshold}")
    verdict_rows, label_rows, source, unlabelled = load_rows(
        verdicts=verdicts,
        labels=labels,
        db=db,
        tenant=tenant,
        rubric=rubric,
        panel=panel,
        since=since,
        until=until,
        columns=VerdictColumns(
            outcome_id=id_column,
            decision=decision_column,
            score=score_column,
            threshold=threshold,
        ),
        every_verdict=False,
    )
    try:
        report = run_calibration(
            verdict_rows,
            label_rows,
            by=groupings,
            seed=seed,
            n_boot=n_boot,
            unlabelled=unlabelled,
        )
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    if html is not None:
        from calibration.html import render_html

        try:
            html.write_text(
                render_html(report.to_dict(), title=_title(verdicts, labels, source)),
                encoding="utf-8",
            )
        except OSError as exc:
            fail(f"cannot write the HTML report to {html}: {exc}")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        _print_calibration(report)
    if html is not None:
        stderr.print(f"HTML report written to {html}", highlight=False)


def _title(verdicts: Path | None, labels: Path | None, source: str) -> str:
    if verdicts is not None and labels is not None:
        return f"Calibration: {verdicts.name} vs {labels.name}"
    return f"Calibration: {source}"


def _print_calibration(report: CalibrationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = report.counts
    table = Table(title="Judge vs human agreement")
    table.add_column("group", overflow="fold")
    for column in ("n", "acc", "f1", "kappa", "95% CI", "alpha", "abstain"):
        table.add_column(column, justify="right", no_wrap=True)

    def row(name: str, block: AgreementBlock) -> None:
        lo, hi = block.cohen_kappa_ci
        table.add_row(
            name,
            str(block.n),
            _fmt(block.accuracy),
            _fmt(block.f1),
            _fmt(block.cohen_kappa),
            f"{_fmt(lo, 2)}..{_fmt(hi, 2)}",
            _fmt(block.krippendorff_alpha),
            _fmt(block.abstain_rate, 2),
        )

    row("panel", report.panel)
    for grouping, groups in report.by.items():
        for name, group in groups.items():
            row(f"{grouping}:{name}", group.agreement)
    console.print(table)
    ceiling = report.human_ceiling
    if ceiling is not None:
        console.print(
            f"human ceiling: alpha {_fmt(ceiling.krippendorff_alpha)}, kappa "
            f"{_fmt(ceiling.cohen_kappa)} on {ceiling.n_units} outcomes with 2+ labellers"
        )
    if report.reliability.note:
        console.print(f"reliability diagram: {report.reliability.note}", highlight=False)
    console.print(
        f"joined {counts['joined']} of {counts['outcomes_with_verdict']} outcomes with verdicts; "
        f"{counts['verdicts_without_label']} without label, {counts['labels_without_verdict']} "
        f"labelled without verdict, {counts['tied_labels']} tied labels, "
        f"{counts['duplicate_verdicts']} duplicate verdicts",
        highlight=False,
    )


def replay(
    file: Annotated[Path, typer.Argument(help="Recorded judge outputs (JSON array or JSONL).")],
    dimension: Annotated[
        str, typer.Option("--dimension", "-d", help="Human score key in each item's 'scores'.")
    ],
    scale: Annotated[str, typer.Option("--scale", help="Judge scale MIN:MAX, e.g. 1:3 or 0:1.")],
    group_by: Annotated[
        str | None,
        typer.Option("--group-by", help="Item field for per-group correlations (e.g. source)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-k", min=1, help="Use the first K replies per item.")
    ] = None,
    policy: Annotated[
        str, typer.Option("--policy", help="fixed (all/K replies) or adaptive (stop when settled).")
    ] = "fixed",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Replay recorded judge replies with the scale-aware parser and correlate with humans."""
    from calibration.replay import (
        ReplayInputError,
        compare_policies,
        load_recordings,
        parse_scale,
    )
    from calibration.replay import replay as run_replay
    from calibration.report import clean

    if policy not in ("fixed", "adaptive"):
        fail(f"--policy must be 'fixed' or 'adaptive', got {policy!r}")
    try:
        low, high = parse_scale(scale)
    except ValueError as exc:
        fail(f"--scale: {exc}")
    try:
        items = load_recordings(file)
        options: dict[str, Any] = {
            "dimension": dimension,
            "low": low,
            "high": high,
            "group_by": group_by,
            "samples": samples,
        }
        if policy == "adaptive":
            result = compare_policies(items, **options)
        else:
            result = run_replay(items, policy="fixed", **options).to_dict()
    except (ReplayInputError, ValueError) as exc:
        fail(str(exc))
    result = clean(result)
    if as_json:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
        return
    _print_replay(result, file)


def _print_replay(result: dict[str, Any], file: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from calibration.replay import CORRELATION_KEYS

    console = Console()
    table = Table(title=f"Replay of {file.name}: {result['dimension']} ({result['policy']})")
    table.add_column("statistic")
    table.add_column(result["policy"], justify="right")
    fixed = result.get("fixed")
    if fixed:
        table.add_column("fixed", justify="right")
        table.add_column("change", justify="right")
    for key in CORRELATION_KEYS:
        cells = [key, _fmt(result.get(key))]
        if fixed:
            cells += [_fmt(fixed.get(key)), _fmt(result["delta"].get(key), 4)]
        table.add_row(*cells)
    for key in ("n_items", "groups_used", "samples_used", "unparseable"):
        cells = [key, _fmt(result.get(key))]
        if fixed:
            cells += [_fmt(fixed.get(key)), ""]
        table.add_row(*cells)
    console.print(table)
    if fixed:
        console.print(f"adaptive saved {result['samples_saved']:.1%} of the samples")

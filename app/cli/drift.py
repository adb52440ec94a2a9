"""`judge drift`, `judge gate` and `judge correct`: is the panel still calibrated, are its
verdicts final, and how many outcomes were truly verified.

All three read a verdict JSONL and a labels JSONL (label records ``{outcome_id, resolved, by,
at}`` or outcomes with an embedded ``label``), joined by :mod:`calibration.join`; drift and gate
can read both from the ledger instead (``--db``, see :mod:`app.cli._sources`). Drift and the
gate work in label time: each label needs ``at``. The Verdict contract has no timestamp, so
here the decision mix (PSI) is measured on labelled outcomes only; the library function
:func:`calibration.drift.drift_report` also takes unlabelled verdicts with times.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail
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
    from calibration.drift import DriftReport, LabelledRecord
    from judge.verdict import Verdict

VerdictsOpt = Annotated[
    Path, typer.Option("--verdicts", "-v", help="Verdict JSONL (one verdict per outcome).")
]
LabelsOpt = Annotated[
    Path,
    typer.Option(
        "--labels",
        "-l",
        help="Human labels JSONL: {outcome_id, resolved, by, at} records, or outcomes with an "
        "embedded 'label'.",
    ),
]
# drift and gate also read the ledger (--db), so their files are optional (exactly one source).
OptVerdictsOpt = Annotated[
    Path | None, typer.Option("--verdicts", "-v", help="Verdict JSONL (one verdict per outcome).")
]
OptLabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        "-l",
        help="Human labels JSONL: {outcome_id, resolved, by, at} records, or outcomes with an "
        "embedded 'label'.",
    ),
]
# gate's --panel is the panel YAML with the thresholds, so its ledger filter is --panel-ref.
PanelRefOpt = Annotated[
    str | None,
    typer.Option(
        "--panel-ref", help="With --db: only verdicts of this panel (name or name@version)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WindowOpt = Annotated[
    int | None,
    typer.Option("--window", "-w", min=2, help="Labelled outcomes per window (default 50)."),
]
DaysOpt = Annotated[
    float | None,
    typer.Option("--days", min=0.001, help="Window length in days (instead of --window)."),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        "--alpha", min=1e-9, max=0.5, help="Significance level = false-alarm rate of one check."
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("drift")(drift)
    app.command("gate")(gate)
    app.command("correct")(correct)


# --------------------------------------------------------------------------- loading


def _load(
    verdicts: Path | None,
    labels: Path | None,
    *,
    need_times: bool = True,
    **ledger: Any,
) -> tuple[list[Verdict], list[LabelledRecord]]:
    """Deduplicated verdicts (last wins) and one LabelledRecord per labelled outcome.

    From the files, or from the ledger when ``ledger`` holds ``db`` (and its filters: tenant,
    rubric, panel, since, until; see :func:`app.cli._sources.load_rows`). Outcomes whose
    labellers tie have no reference label and are left out (as in calibrate). Without
    ``need_times`` a label lacking ``at`` is allowed (it is dated 1970-01-01).
    """
    from calibration.drift import LabelledRecord
    from calibration.join import CalibrationInputError, join

    # Drift windows count every latest verdict, labelled or not: all of them are read.
    verdict_rows, label_rows, source, _ = load_rows(
        verdicts=verdicts, labels=labels, db=ledger.pop("db", None), every_verdict=True, **ledger
    )
    try:
        joined = join(verdict_rows, label_rows)
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    latest: dict[str, Verdict] = {}
    for v in verdict_rows:
        latest.pop(v.outcome_id, None)
        latest[v.outcome_id] = v
    records: list[LabelledRecord] = []
    for unit in joined.compared:
        at = unit.label_at
        if at is None and not need_times:
            at = datetime(1970, 1, 1, tzinfo=UTC)
        if at is None:
            fail(
                f"{source}: the label for outcome {unit.outcome_id!r} has no 'at' time; drift and "
                'the gate window on label time, so give every label one, e.g. "at": '
                '"2026-03-01T10:00:00Z"'
            )
        records.append(LabelledRecord.of_unit(unit, at=at))
    return list(latest.values()), records


def _drift(
    records: list[LabelledRecord],
    window: int | None,
    days: float | None,
    alpha: float,
    *,
    decrease_only: bool = False,
) -> DriftReport:
    from calibration.drift import drift_report

    if window is not None and days is not None:
        fail("give --window (labels per window) or --days (window length), not both")
    try:
        return drift_report(
            records,
            window=window,
            days=days,
            alpha=alpha,
            alternative="decrease" if decrease_only else "two-sided",
        )
    except ValueError as exc:
        fail(str(exc))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, allow_nan=False, default=str))


# --------------------------------------------------------------------------- drift


def drift(
    verdicts: OptVerdictsOpt = None,
    labels: OptLabelsOpt = None,
    db: DbOpt = None,
    tenant: TenantOpt = None,
    rubric: RubricFilterOpt = None,
    panel: PanelFilterOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    window: WindowOpt = None,
    days: DaysOpt = None,
    alpha: AlphaOpt = 0.01,
    decrease_only: Annotated[
        bool, typer.Option("--decrease-only", help="Alert only when agreement falls.")
    ] = False,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help="Exit with status 1 when an alert fires.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Judge-human agreement over time windows, a change test, and verdict-mix shift (PSI).

    Reads --verdicts and --labels files, or the ledger with --db (filters as in calibrate).
    """
    if window is not None and days is not None:
        fail("give --window (labels per window) or --days (window length), not both")
    _, records = _load(
        verdicts,
        labels,
        db=db,
        tenant=tenant,
        rubric=rubric,
        panel=panel,
        since=since,
        until=until,
    )
    report = _drift(records, window, days, alpha, decrease_only=decrease_only)
    if as_json:
        _echo_json(report.to_dict())
    else:
        _print_drift(report)
    if report.alert and fail_on_alert:
        raise typer.Exit(1)


def _print_drift(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Judge-human agreement by window")
    for column in ("window", "from", "to", "n", "acc.", "kappa", "abst.", "verif."):
        table.add_column(column, justify="left" if column in ("from", "to") else "right")
    for w in report.windows:
        total = sum(w.verdicts.values())
        role = {report.reference: " ref", report.latest: " new"}.get(w.index, "")
        table.add_row(
            f"{w.index}{role}",
            w.start.strftime("%Y-%m-%d"),
            w.end.strftime("%Y-%m-%d"),
            str(w.n),
            _fmt(w.accuracy),
            _fmt(w.kappa),
            str(w.n_abstain),
            _fmt(w.verdicts.get("verified", 0) / total if total else None, 2),
        )
    console.print(table)
    console.print(
        "acc. = judge-human agreement, abst. = labelled outcomes the judge abstained on, "
        "verif. = share of verdicts that are verified; ref = reference window, new = latest",
        style="dim",
        highlight=False,
    )
    if report.p_value is not None:
        console.print(
            f"{report.method}: z={_fmt(report.statistic, 2)}, p={report.p_value:.3g} "
            f"(alpha {report.alpha}, {report.alternative}); PSI {_fmt(report.psi)}",
            highlight=False,
        )
    for message in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
    if report.alert:
        for message in report.reasons:
            console.print(f"[bold red]ALERT:[/bold red] {message}", highlight=False)
    else:
        console.print("no drift alert", highlight=False)


# --------------------------------------------------------------------------- gate


def gate(
    verdicts: OptVerdictsOpt = None,
    labels: OptLabelsOpt = None,
    db: DbOpt = None,
    tenant: TenantOpt = None,
    rubric: RubricFilterOpt = None,
    panel_ref: PanelRefOpt = None,
    since: FromOpt = None,
    recorded_before: ToOpt = None,
    panel: Annotated[
        Path | None,
        typer.Option("--panel", "-p", help="Panel YAML whose 'gate' section sets the thresholds."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Evaluation time, ISO 8601 (default: the current time)."),
    ] = None,
    window: WindowOpt = None,
    days: DaysOpt = None,
    alpha: AlphaOpt = 0.01,
    as_json: JsonOpt = False,
) -> None:
    """Whether the panel's verdicts count as final or stay provisional, and why.

    Reads --verdicts and --labels files, or the ledger with --db (filters as in calibrate, but
    the panel filter is --panel-ref: --panel is the YAML whose gate section sets thresholds).
    """
    from calibration.gate import evaluate_gate
    from judge.panel import GateSpec

    spec = GateSpec()
    if panel is not None:
        from judge.panel_loader import PanelError, load_panel

        try:
            spec = load_panel(panel, check_files=False).gate
        except PanelError as exc:
            fail(str(exc))
    when = _parse_now(now)
    _, records = _load(
        verdicts,
        labels,
        db=db,
        tenant=tenant,
        rubric=rubric,
        panel=panel_ref,
        since=since,
        until=recorded_before,
    )
    until = [r for r in records if (r.labelled_at or r.at) <= when]
    report = _drift(until, window, days, alpha)
    try:
        state = evaluate_gate(until, spec=spec, now=when, drift_alert=report.alert)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        data = state.to_dict()
        data["drift_alert_reasons"] = report.reasons
        _echo_json(data)
        return
    from rich.console import Console

    console = Console()
    colour = "green" if state.final else "yellow"
    ci = state.kappa_ci
    console.print(
        f"[bold {colour}]{state.status}[/bold {colour}]: {state.n_labels} labels in the last "
        f"{spec.window_days} days, kappa {_fmt(state.kappa)} "
        f"(95% CI {_fmt(ci[0]) if ci else '-'} to {_fmt(ci[1]) if ci else '-'})",
        highlight=False,
    )
    for reason in state.reasons:
        console.print(f"  - {reason}", highlight=False)
    for reason in report.reasons:
        console.print(f"    drift: {reason}", highlight=False)


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now: {value!r} is not an ISO 8601 time; use e.g. 2026-03-31T00:00:00Z")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


# --------------------------------------------------------------------------- correct


def correct(
    verdicts: OptVerdictsOpt = None,
    labels: OptLabelsOpt = None,
    db: DbOpt = None,
    tenant: TenantOpt = None,
    rubric: RubricFilterOpt = None,
    panel: PanelFilterOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap replicates.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Bootstrap seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Raw and error-corrected (Rogan-Gladen) verified counts, with a 95% interval.

    Reads --verdicts and --labels files, or the ledger with --db (filters as in calibrate).
    """
    from calibration.correction import UndefinedCorrection, corrected_count_ci

    rows, records = _load(
        verdicts,
        labels,
        need_times=False,
        db=db,
        tenant=tenant,
        rubric=rubric,
        panel=panel,
        since=since,
        until=until,
    )
    source = db if db is not None else str(verdicts)
    label_source = db if db is not None else str(labels)
    decided = [v for v in rows if v.decision != "abstain"]
    n_verified = sum(1 for v in decided if v.decision == "verified")
    n_abstain = len(rows) - len(decided)
    if not decided:
        fail(f"{source}: every verdict abstained; there is no verified count to correct")
    pairs = [r for r in records if r.judge != "abstain"]
    if not pairs:
        fail(
            f"no labelled outcome in {label_source} has a verified/not_verified verdict; label "
            "some to measure the judge's error rates"
        )
    try:
        result = corrected_count_ci(
            [r.judge for r in pairs],
            [r.human for r in pairs],
            n_verified=n_verified,
            n_total=len(decided),
            n=n_boot,
            seed=seed,
        )
    except UndefinedCorrection as exc:
        fail(f"raw count {n_verified} verified of {len(decided)} decided; {exc}")
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        data = result.to_dict()
        data["n_abstain"] = n_abstain
        _echo_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Verified outcomes, raw and corrected for judge error")
    for column in ("", "verified", "share", "95% CI"):
        table.add_column(column, justify="left" if column == "" else "right")
    table.add_row("raw (judge)", str(n_verified), _fmt(result.apparent), "")
    ci = f"{result.ci[0]:.1f} to {result.ci[1]:.1f}" if result.ci is not None else "undefined"
    table.add_row("corrected", f"{result.corrected:.1f}", _fmt(result.prevalence), ci)
    console.print(table)
    console.print(
        f"judge TPR {result.tpr:.3f}, FPR {result.fpr:.3f} on {result.n_labelled} labelled "
        f"outcomes; {len(decided)} decided, {n_abstain} abstained (not counted)",
        highlight=False,
    )
    if result.clipped:
        console.print(
            f"[yellow]note:[/yellow] the unclipped estimate {result.unclipped:.3f} was outside "
            "[0, 1] and was clipped; the measured error rates do not fit these verdicts exactly",
            highlight=False,
        )
    if result.ci_reason:
        console.print(f"[yellow]note:[/yellow] {result.ci_reason}", highlight=False)

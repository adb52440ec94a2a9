"""What the calibration and cost pages show, computed from the ledger (synchronous, per tenant).

Plots are PNGs rendered here with matplotlib and embedded as ``data:`` URIs: the pages make no
request to anywhere but the server.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from calibration.report_figures import clean

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from calibration.drift import DriftReport, LabelledRecord
    from calibration.join import LabelRecord
    from calibration.report_figures import AgreementBlock
    from judge.panel import GateSpec
    from judge.verdict import Verdict
    from ledger.cost_figures import CostReport

#: Bootstrap draws of the kappa intervals on the page (seeded: same data, same interval).
N_BOOT = 500
#: Default labour cost of finishing one failed task by hand (USD), for TCO and break-even.
DEFAULT_LABOR = 5.0


def data_uri(png: bytes | None) -> str | None:
    """A PNG as a ``data:`` URI for an ``<img src>``, or None when there is nothing to draw."""
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---- calibration -------------------------------------------------------------------------------


def panel_rubric_pairs(engine: Engine, tenant: str) -> list[tuple[str, str]]:
    """Every (panel, rubric) version pair the tenant has verdicts of, sorted."""
    from ledger.store import Ledger

    return Ledger(engine, tenant=tenant).panel_rubric_pairs()


def labelled_records(
    verdicts: Iterable[Verdict], labels: Iterable[LabelRecord]
) -> list[LabelledRecord]:
    """One record per labelled outcome with a reference label (as ``judge drift --db`` builds).

    Dated by label time; labels without a time cannot be placed and are left out.
    """
    from calibration.drift import LabelledRecord
    from calibration.join import join

    return [
        LabelledRecord.of_unit(unit, at=unit.label_at)
        for unit in join(list(verdicts), list(labels)).compared
        if unit.label_at is not None
    ]


def drift_window(pairs: int) -> int:
    """Labels per drift window: a quarter of the pairs, between 10 and 50 (the CLI default)."""
    return max(10, min(50, pairs // 4))


def over_time_png(over_time: dict[str, Any], report: DriftReport) -> bytes | None:
    """Rolling agreement and kappa by label date, with the drift windows marked.

    The reference window is shaded grey; the latest window is shaded red when it raised a drift
    alert (else green). One figure, because rendering dominates the page's time.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    from calibration.plots import figure_png, new_figure

    points = over_time.get("points") or []
    if len(points) < 2:
        return None
    times = [datetime.fromisoformat(p["at"]) for p in points]
    kappas = [math.nan if p["cohen_kappa"] is None else p["cohen_kappa"] for p in points]
    fig = new_figure(7.0, 3.3)
    ax = fig.add_subplot(1, 1, 1)
    for w in report.windows:
        if w.index == report.reference and w.index != report.latest:
            ax.axvspan(w.start, w.end, color="#9ca3af", alpha=0.25, label="reference window")
        elif w.index == report.latest:
            colour, name = ("#dc2626", "DRIFT ALERT") if report.alert else ("#16a34a", "latest")
            ax.axvspan(w.start, w.end, color=colour, alpha=0.18, label=f"{name} window")
    ax.plot(times, [p["accuracy"] for p in points], color="#2563eb", marker=".", label="accuracy")
    ax.plot(times, kappas, color="#ea580c", marker=".", label="Cohen's kappa")
    ax.axhline(0.6, color="#6b7280", linestyle=":", linewidth=1)
    ax.set_ylim(min(-0.05, *(k for k in kappas if k == k)), 1.05)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("agreement with humans")
    ax.set_xlabel("label date")
    ax.set_title(
        f"Agreement over time (rolling {over_time['window']} labels; dotted: kappa 0.6)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return figure_png(fig)


def confusion_cells(confusion: dict[str, Any]) -> list[list[tuple[int, float, int]]]:
    """The confusion matrix as (count, share, shade 0-4) per cell, for an HTML heat map."""
    matrix = confusion.get("matrix") or []
    total = sum(sum(row) for row in matrix)
    peak = max((max(row) for row in matrix if row), default=0)
    return [
        [
            (n, n / total if total else 0.0, min(4, math.ceil(4 * n / peak)) if peak else 0)
            for n in row
        ]
        for row in matrix
    ]


def gate_spec(engine: Engine, tenant: str, panel_ref: str) -> tuple[GateSpec, str]:
    """The gate thresholds of the panel a verdict names, and where they come from.

    The tenant's stored panel of that exact version (or a shipped one) when there is one, else
    the default thresholds (a panel given as a file to `judge verify` is not in the ledger).
    """
    from judge.panel import GateSpec, Panel
    from ledger.documents import DocumentError, get_document

    try:
        info, _ = get_document(engine, tenant, "panel", panel_ref, check_policy=False)
    except DocumentError:
        return GateSpec(), "default gate (the panel is not stored)"
    if isinstance(info.document, Panel):
        return info.document.gate, f"the gate of panel {info.name}@{info.version}"
    return GateSpec(), "default gate"


@dataclass
class CalibrationView:
    """Everything the calibration page shows for one selection."""

    pairs: list[tuple[str, str]]
    panel: str | None
    rubric: str | None
    table: list[dict[str, Any]]
    report: dict[str, Any] | None
    problem: str | None
    labels_total: int
    drift: dict[str, Any] | None
    gate: dict[str, Any] | None
    plots: dict[str, str | None]
    confusion: list[list[tuple[int, float, int]]] = field(default_factory=list)


def _block_row(panel: str, rubric: str, block: AgreementBlock) -> dict[str, Any]:
    lo, hi = block.cohen_kappa_ci
    return clean(
        {
            "panel": panel,
            "rubric": rubric,
            "n": block.n,
            "accuracy": block.accuracy,
            "kappa": block.cohen_kappa,
            "kappa_lo": lo,
            "kappa_hi": hi,
            "alpha": block.krippendorff_alpha,
            "abstain_rate": block.abstain_rate,
        }
    )


def calibration_view(
    engine: Engine,
    tenant: str,
    *,
    panel: str | None = None,
    rubric: str | None = None,
    now: datetime | None = None,
) -> CalibrationView:
    """Agreement per (panel, rubric), and for the selection: report, drift, gate and plots."""
    from calibration.gate import evaluate_gate
    from calibration.report import calibrate, panel_agreement
    from ledger.calibration_source import load_calibration_rows

    pairs = panel_rubric_pairs(engine, tenant)
    # Labelled verdicts only (what agreement compares); the others are counted, not read.
    every = load_calibration_rows(engine, tenant)
    verdicts, labels = every.verdicts, every.labels
    table = []
    for p, r in pairs:
        chosen = [v for v in verdicts if v.panel == p and v.rubric == r]
        # The same computation as the report's headline: undated labels count in both.
        table.append(_block_row(p, r, panel_agreement(chosen, labels, seed=0, n_boot=N_BOOT)))
    view = CalibrationView(
        pairs=pairs, panel=panel, rubric=rubric, table=table, report=None, problem=None,
        labels_total=len({lab.outcome_id for lab in labels}), drift=None, gate=None, plots={},
    )  # fmt: skip
    # The whole tenant when nothing is selected: the rows already read.
    chosen_rows = (
        every
        if panel is None and rubric is None
        else load_calibration_rows(engine, tenant, panel=panel, rubric=rubric)
    )
    selected, labels = chosen_rows.verdicts, chosen_rows.labels
    if not chosen_rows.total_verdicts or chosen_rows.last_panel is None:
        view.problem = "no verdicts match this panel and rubric yet"
        return view
    try:
        report = calibrate(
            selected, labels, seed=0, n_boot=N_BOOT, unlabelled=chosen_rows.unlabelled
        )
    except ValueError as exc:
        view.problem = str(exc)
        return view
    records = labelled_records(selected, labels)
    from calibration.drift import drift_report

    pairs_n = sum(r.is_pair for r in records)
    window = drift_window(pairs_n)
    drift = drift_report(records, window=window, min_pairs=min(20, window))
    when = now or datetime.now(UTC)
    spec, spec_source = gate_spec(engine, tenant, chosen_rows.last_panel)
    gate = evaluate_gate(
        [r for r in records if (r.labelled_at or r.at) <= when],
        spec=spec,
        now=when,
        drift_alert=drift.alert,
    )
    view.drift = clean(drift.to_dict()) | {"window": window}
    view.gate = gate.to_dict() | {"spec_source": spec_source}
    # The page shows the report's JSON (the figures GET /v1/calibration returns).
    view.report = report.to_dict()
    view.plots = {"over_time": data_uri(over_time_png(view.report["over_time"], drift))}
    view.confusion = confusion_cells(view.report["confusion"])
    return view


# ---- cost --------------------------------------------------------------------------------------


@dataclass
class CostView:
    """Everything the cost page shows."""

    report: CostReport
    by_tier: CostReport
    notes: list[str]
    plots: dict[str, str | None]
    paths: list[str]
    path_a: str | None
    path_b: str | None
    labor: float
    comparison: dict[str, Any] | None
    comparison_problem: str | None


def _comparison(
    grouped: dict[str | None, list[tuple[str, float | None]]], a: str, b: str, labor: float
) -> tuple[dict[str, Any] | None, str | None]:
    from ledger.economics import breakeven, explain, path_stats, tco

    stats = []
    for path in (a, b):
        if path not in grouped:
            return None, f"no judged outcomes with model path {path!r}"
        measured = path_stats(grouped[path], model_path=path)
        if measured.token_cost is None:
            return None, f"no judged outcome of {path!r} records an agent cost (agent.cost_usd)"
        stats.append(measured)
    sa_, sb = stats
    assert sa_.token_cost is not None and sb.token_cost is not None
    result = breakeven(
        cost_a=sa_.token_cost, cost_b=sb.token_cost, labor=labor,
        p_fail_a=sa_.p_fail, p_fail_b=sb.p_fail,
    )  # fmt: skip
    intervals = {
        s.model_path: (
            tco(token_cost=s.token_cost or 0.0, p_fail=s.p_fail_low, labor=labor),
            tco(token_cost=s.token_cost or 0.0, p_fail=s.p_fail_high, labor=labor),
        )
        for s in stats
    }
    overlap = intervals[a][0] <= intervals[b][1] and intervals[b][0] <= intervals[a][1]
    return {
        "paths": [
            {"key": key, "stats": s, "tco": t, "tco_ci": intervals[s.model_path]}
            for key, s, t in (("A", sa_, result.tco_a), ("B", sb, result.tco_b))
        ],
        "result": result,
        "explain": explain(result, name_a=a, name_b=b),
        "overlap": overlap,
    }, None


def cost_view(
    engine: Engine,
    tenant: str,
    *,
    path_a: str | None = None,
    path_b: str | None = None,
    labor: float = DEFAULT_LABOR,
    labor_rate: float | None = None,
) -> CostView:
    """Cost per verified outcome over time, counts by tier, and the comparison of two paths."""
    from ledger.cost_report import cost_report, report_notes
    from ledger.cost_report_html import cost_line_png, period_series, verified_bar_png
    from ledger.counted import judged_rows

    report = cost_report(
        engine, tenant, dims=["agent_version", "model_path", "period"], labor_rate=labor_rate
    )
    by_tier = cost_report(engine, tenant, dims=["tier"], labor_rate=labor_rate)
    series = period_series(report.to_dict())
    plots = {
        "cost": data_uri(cost_line_png(series)),
        "verified": data_uri(verified_bar_png(series)),
    }
    grouped = judged_rows(engine, tenant, since=None, until=None)
    paths = sorted(p for p in grouped if p is not None)
    a = path_a if path_a in paths else (paths[0] if paths else None)
    b = path_b if path_b in paths else (paths[1] if len(paths) > 1 else a)
    comparison: dict[str, Any] | None = None
    problem: str | None = "no model paths with judged outcomes yet"
    if a is not None and b is not None:
        comparison, problem = _comparison(grouped, a, b, labor)
    return CostView(
        report=report, by_tier=by_tier, notes=report_notes(report), plots=plots, paths=paths,
        path_a=a, path_b=b, labor=labor, comparison=comparison, comparison_problem=problem,
    )  # fmt: skip

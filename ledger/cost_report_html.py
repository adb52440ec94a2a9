"""The cost report as a self-contained HTML page, and the plots the web interface shares.

:func:`period_series` turns a :func:`ledger.cost_report.cost_report` grouped by period and model
path into aligned series; :func:`cost_line_png` and :func:`verified_bar_png` draw them;
:func:`render_cost_html` assembles the page `judge cost report --html` writes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.cost_figures import CostReport
from ledger.cost_report import (
    STATUSES,
    Period,
    period_bounds,
    period_label,
    report_notes,
)

# ---- HTML report ------------------------------------------------------------------------------

NO_PATH = "(no model path)"


def period_series(report: dict[str, Any]) -> dict[str, Any]:
    """Per model path and period, provisional and final merged: the points the plots draw.

    Parameters
    ----------
    report
        A :func:`cost_report` result grouped by (at least) ``period`` and ``model_path``.

    Returns
    -------
    dict
        ``periods``: every period label from the first to the last, with none skipped (so a
        period without outcomes shows as a gap); ``paths``: model path -> ``{"cost_per_verified":
        [...], "verified": [...], "outcomes": [...], "provisional": [...]}`` aligned with
        ``periods``, ``cost_per_verified`` None where the path has no verified outcome that
        period (undefined, not 0); ``undated``: outcomes without any timestamp (not drawn).
    """
    dims = report.get("group_by") or []
    if "period" not in dims or "model_path" not in dims:
        raise ValueError("period_series needs a cost_report grouped by period and model_path")
    period: Period = report.get("period") or "month"
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    starts: list[datetime] = []
    undated = 0
    for row in report["groups"]:
        if row["period_start"] is None:
            undated += row["outcomes"]
            continue
        path = row["group"]["model_path"] or NO_PATH
        cell = cells.setdefault(
            (path, row["group"]["period"]),
            {"numerator": 0.0, "verified": 0, "outcomes": 0, "provisional": False},
        )
        cell["numerator"] += row["numerator_usd"]
        cell["verified"] += row["verified"]
        cell["outcomes"] += row["outcomes"]
        cell["provisional"] |= row["status"] == "provisional"
        starts.append(datetime.fromisoformat(row["period_start"]))
    periods: list[str] = []
    if starts:
        cursor, last = min(starts), max(starts)
        while cursor <= last:
            periods.append(period_label(cursor, period=period))
            cursor = period_bounds(cursor, period=period)[1]
    paths: dict[str, dict[str, list[Any]]] = {}
    for path in sorted({p for p, _ in cells}):
        out: dict[str, list[Any]] = {
            "cost_per_verified": [],
            "verified": [],
            "outcomes": [],
            "provisional": [],
        }
        for label in periods:
            found = cells.get((path, label))
            verified = 0 if found is None else found["verified"]
            out["verified"].append(verified)
            out["outcomes"].append(0 if found is None else found["outcomes"])
            out["provisional"].append(bool(found and found["provisional"]))
            out["cost_per_verified"].append(
                found["numerator"] / verified if found is not None and verified else None
            )
        paths[path] = out
    return {"period": period, "periods": periods, "paths": paths, "undated": undated}


def _ticks(ax: Any, periods: list[str]) -> None:
    step = max(1, len(periods) // 12)
    ax.set_xticks(range(0, len(periods), step), periods[::step])
    if len(periods[0]) > 7 or len(periods) > 8:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlim(-0.6, len(periods) - 0.4)


def cost_line_png(series: dict[str, Any]) -> bytes | None:
    from calibration.plots import figure_png, new_figure

    periods, paths = series["periods"], series["paths"]
    if not periods or not paths:
        return None
    fig = new_figure(7.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(periods)))
    for name, data in paths.items():
        ys = [float("nan") if v is None else v for v in data["cost_per_verified"]]
        (line,) = ax.plot(xs, ys, marker="o", linewidth=1.8, label=name)
        open_x = [x for x, y, p in zip(xs, ys, data["provisional"], strict=True) if p and y == y]
        open_y = [ys[x] for x in open_x]
        if open_x:  # periods still holding provisional outcomes: hollow markers
            ax.plot(open_x, open_y, "o", markerfacecolor="white", color=line.get_color())
    _ticks(ax, periods)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("USD per verified outcome")
    ax.set_xlabel(f"period ({series['period']}, UTC, by last customer message)")
    ax.set_title(
        "Cost per verified outcome by model path (gap: no verified outcome; hollow: provisional)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def verified_bar_png(series: dict[str, Any]) -> bytes | None:
    from calibration.plots import figure_png, new_figure

    periods, paths = series["periods"], series["paths"]
    if not periods or not paths:
        return None
    fig = new_figure(7.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(paths)
    label_bars = len(periods) * len(paths) <= 48
    for i, (name, data) in enumerate(paths.items()):
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(periods))]
        bars = ax.bar(xs, data["verified"], width=width * 0.95, label=name)
        if label_bars:
            ax.bar_label(bars, fontsize=7, padding=1)
    _ticks(ax, periods)
    ax.set_ylabel("verified outcomes")
    ax.set_xlabel(f"period ({series['period']}, UTC, by last customer message)")
    ax.set_title("Verified outcomes per period and model path", fontsize=9)
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _usd(value: float | None, reason: str | None = None) -> str:
    from html import escape

    if value is None:
        title = f' title="{escape(reason)}"' if reason else ""
        return f"<span{title}>n/a (0 verified)</span>"
    return f"{value:.6f}"


def _table(report: dict[str, Any]) -> str:
    from html import escape

    dims: list[str] = report["group_by"]
    head = "".join(f"<th>{escape(d)}</th>" for d in dims)
    head += "<th>status</th>" + "".join(
        f"<th>{c}</th>"
        for c in (
            "outcomes",
            "verified",
            "agent USD",
            "judge USD",
            "judge calls",
            "numerator USD",
            "per verified USD",
        )
    )
    entries = [(r["group"], r["status"], r) for r in report["groups"]]
    total_group = {d: "TOTAL" for d in dims}
    entries += [(total_group, s, report[s]) for s in STATUSES]
    entries.append((total_group, "all", report["total"]))
    rows = []
    for group, status, r in entries:
        cells = "".join(
            f"<td>{escape('-' if group[d] is None else str(group[d]))}</td>" for d in dims
        )
        total = ' class="total"' if group is total_group else ""
        rows.append(
            f"<tr{total}>{cells}<td>{escape(status)}</td><td>{r['outcomes']}</td>"
            f"<td>{r['verified']}</td><td>{r['agent_cost_usd']:.6f}</td>"
            f"<td>{r['judge_cost_usd']:.6f}</td><td>{r['judge_calls']}</td>"
            f"<td>{r['numerator_usd']:.6f}</td>"
            f"<td>{_usd(r['cost_per_verified_usd'], r['reason'])}</td></tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_cost_html(
    report: dict[str, Any],
    series_report: dict[str, Any],
    *,
    title: str = "Cost per verified outcome",
) -> str:
    """A cost report as one self-contained HTML page: the table and two plots.

    Parameters
    ----------
    report
        The :func:`cost_report` result to show as the table (any grouping; provisional and final
        rows and totals), optionally with a ``ledger`` key naming the ledger.
    series_report
        A :func:`cost_report` result over the same outcomes grouped by ``period`` and
        ``model_path``, drawn as a line plot of cost per verified outcome (a gap where a path has
        no verified outcome in a period, never a zero) and a bar plot of verified counts.
    title
        Page title and heading (escaped).

    Returns
    -------
    str
        HTML with inline CSS and base64 PNG plots, no script, no external resource.
    """
    from html import escape

    from calibration.html import REPORT_CSS, img_tag

    series = period_series(series_report)
    plots = [
        img_tag(cost_line_png(series), "cost per verified outcome by model path over time"),
        img_tag(verified_bar_png(series), "verified outcomes per period and model path"),
    ]
    notes = [
        "cost per verified outcome = (agent inference + judge calls incl. retries + human "
        "review) / verified; n/a where a group has no verified outcome (undefined, not 0)",
        *report_notes(CostReport.model_validate(report)),
    ]
    if not series["periods"]:
        notes.append("no dated outcomes in the window: nothing to plot")
    if series["undated"]:
        notes.append(f"{series['undated']} outcome(s) without any timestamp are not plotted")
    window = f"from {report['from'] or 'the start'} to {report['to'] or 'now'}"
    where = f"{report['ledger']}, " if report.get("ledger") else ""
    subtitle = f"{where}tenant {report['tenant']}, verdicts recorded {window}"
    css = REPORT_CSS + "tr.total td{font-weight:600;background:#f9fafb}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{css}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="muted">{escape(subtitle)}</p>'
        f'<h2>Over time</h2><div class="plots">{"".join(plots)}</div>'
        f"<h2>Table</h2>{_table(report)}"
        + "".join(f'<p class="muted">{escape(n)}</p>' for n in notes)
        + "</body></html>\n"
    )


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) via a temporary file in the same folder and a rename.

    Readers see the old file or the whole new one, never a half-written one; on any error the
    temporary file is removed and ``path`` is left as it was.
    """
    import contextlib
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

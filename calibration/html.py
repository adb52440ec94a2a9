"""Render a calibration report (:func:`calibration.report.calibrate`) as one HTML file.

Inline CSS, plots embedded as base64 PNG, no script and no external request: the file can be
mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from calibration.plots import confusion_png, over_time_png, reliability_png

REPORT_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#111827;
background:#f9fafb}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem}
.muted{color:#6b7280;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:.5rem;padding:.75rem 1rem;
min-width:9rem}
.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#6b7280;font-size:.8rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
.plots figure{background:#fff;border:1px solid #e5e7eb;border-radius:.5rem;margin:0;padding:.5rem}
table{border-collapse:collapse;background:#fff;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f4f6}
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{float(value):.1%}"


def _ci(block: Mapping[str, Any]) -> str:
    lo, hi = block.get("cohen_kappa_ci") or [None, None]
    return f"[{_num(lo)}, {_num(hi)}]"


def img_tag(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _card(label: str, value: str, note: str = "") -> str:
    extra = f'<div class="k">{note}</div>' if note else ""
    return (
        f'<div class="card"><div class="k">{escape(label)}</div>'
        f'<div class="v">{value}</div>{extra}</div>'
    )


def _group_table(title: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    if not groups:
        return ""
    head = (
        f"<tr><th>{escape(title)}</th><th>n</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th>"
        "<th>kappa</th><th>kappa 95% CI</th><th>alpha</th><th>abstain</th>"
        "<th>human ceiling (alpha)</th></tr>"
    )
    rows = []
    for name, b in groups.items():
        ceiling = b.get("human_ceiling") or {}
        rows.append(
            f"<tr><td>{escape(str(name))}</td><td>{b['n']}</td><td>{_num(b['accuracy'])}</td>"
            f"<td>{_num(b['precision'])}</td><td>{_num(b['recall'])}</td><td>{_num(b['f1'])}</td>"
            f"<td>{_num(b['cohen_kappa'])}</td><td>{_ci(b)}</td>"
            f"<td>{_num(b['krippendorff_alpha'])}</td><td>{_pct(b['abstain_rate'])}</td>"
            f"<td>{_num(ceiling.get('krippendorff_alpha'))}</td></tr>"
        )
    return f"<h2>Per {escape(title)}</h2><table>{head}{''.join(rows)}</table>"


def render_html(report: Mapping[str, Any], *, title: str = "Judge calibration report") -> str:
    """The report as a self-contained HTML document.

    Parameters
    ----------
    report : mapping
        The result of :func:`calibration.report.calibrate`.
    title : str, keyword-only
        Page title and heading (escaped).

    Returns
    -------
    str
        HTML with inline CSS and base64 PNG plots; it references no external resource.
    """
    if "confusion" not in report or "by" not in report:
        raise ValueError("render_html needs the dict returned by calibration.report.calibrate")
    counts = report.get("counts", {})
    ceiling = report.get("human_ceiling") or {}
    settings = report.get("settings", {})
    cards = [
        _card(
            "outcomes compared",
            _num(report["n"]),
            f"{counts.get('joined', 0)} joined, {report.get('n_abstain', 0)} abstained",
        ),
        _card("accuracy", _num(report["accuracy"])),
        _card("Cohen's kappa", _num(report["cohen_kappa"]), f"95% CI {_ci(report)}"),
        _card("Krippendorff's alpha", _num(report["krippendorff_alpha"]), "nominal"),
        _card(
            "F1 (verified)",
            _num(report["f1"]),
            f"precision {_num(report['precision'])}, recall {_num(report['recall'])}",
        ),
        _card("abstain rate", _pct(report["abstain_rate"])),
        _card(
            "human ceiling",
            _num(ceiling.get("krippendorff_alpha")),
            f"alpha on {ceiling.get('n_units', 0)} multi-labelled outcomes"
            if ceiling
            else "needs outcomes with 2+ labellers",
        ),
    ]
    rel = report.get("reliability") or {}
    trend = report.get("over_time") or {}
    plots = [
        img_tag(confusion_png(report["confusion"]), "confusion matrix"),
        img_tag(reliability_png(rel.get("bins") or [], ece=rel.get("ece")), "reliability diagram"),
        img_tag(
            over_time_png(trend.get("points") or [], window=trend.get("window", 0)),
            "agreement over time",
        ),
    ]
    missing = []
    if rel.get("note"):
        missing.append(f"reliability diagram: {rel['note']}")
    if not trend.get("points"):
        missing.append("agreement over time needs labels with dates (label.at)")
    by = report.get("by", {})
    count_rows = "".join(
        f"<tr><td>{escape(k.replace('_', ' '))}</td><td>{escape(str(v))}</td></tr>"
        for k, v in counts.items()
    )
    notes = "".join(f'<p class="muted">{escape(m)}</p>' for m in missing)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{REPORT_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="muted">positive class: verified; abstentions excluded from agreement; '
        f"bootstrap {escape(str(settings.get('n_boot', '')))} draws, seed "
        f"{escape(str(settings.get('seed')))}</p>"
        f'<div class="cards">{"".join(cards)}</div>'
        f'<h2>Plots</h2><div class="plots">{"".join(plots)}</div>{notes}'
        f"{_group_table('judge', by.get('judge', {}))}"
        f"{_group_table('criterion', by.get('criterion', {}))}"
        f"<h2>Join</h2><table><tr><th>count</th><th>value</th></tr>{count_rows}</table>"
        "</body></html>\n"
    )

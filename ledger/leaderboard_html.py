"""The leaderboard (:func:`ledger.leaderboard.rank`) as one self-contained HTML page.

Inline CSS and a small inline script, no external request: the page can be mailed or opened
offline. Column headers sort the table (click again to reverse); the labour-cost field
recomputes the TCO column (cost per attempt + (1 - resolved rate) x labour cost) in the page.
Break-even labour costs do not depend on the labour cost and are computed once, in Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#111827;
background:#f9fafb}h1{font-size:1.4rem;margin-bottom:.25rem}.muted{color:#6b7280;font-size:.9rem}
table{border-collapse:collapse;background:#fff;font-size:.9rem;margin-top:1rem}
th,td{border:1px solid #e5e7eb;padding:.35rem .6rem;text-align:right;vertical-align:middle}
th{background:#f3f4f6;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.name,th.name{text-align:left}td.name{min-width:10rem}.rate{display:flex;align-items:center;gap:.5rem;
justify-content:flex-end}.bar{position:relative;width:10rem;height:1.1rem;background:#eef2ff}
.bar .fill{position:absolute;left:0;top:0;bottom:0;background:#6366f1}
.bar .ci{position:absolute;top:45%;height:2px;background:#111827}
.rate .v{font-size:.85rem;white-space:nowrap;min-width:8.5rem;text-align:left}
label{font-weight:600}input{width:6rem;font-size:1rem;margin-left:.4rem}
"""

_SCRIPT = """
(function(){
const table=document.getElementById('board');const body=table.tBodies[0];
const input=document.getElementById('labor');
function money(v){return v===null||!isFinite(v)?'\\u2013':'$'+v.toFixed(v<1?4:2);}
function retco(){const L=parseFloat(input.value);
 for(const tr of body.rows){const c=tr.dataset.cost===''?NaN:parseFloat(tr.dataset.cost);
  const r=parseFloat(tr.dataset.rate);const cell=tr.querySelector('td.tco');
  const t=(isFinite(c)&&isFinite(L)&&L>=0)?c+(1-r)*L:NaN;
  cell.dataset.value=isFinite(t)?String(t):'';cell.textContent=money(isFinite(t)?t:null);}
 document.getElementById('labor-shown').textContent=isFinite(L)?'$'+L.toFixed(2):'?';}
input.addEventListener('input',retco);
for(const th of table.tHead.rows[0].cells){th.addEventListener('click',function(){
 const i=th.cellIndex;const dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
 for(const o of table.tHead.rows[0].cells){o.removeAttribute('aria-sort');}
 th.setAttribute('aria-sort',dir);const rows=Array.from(body.rows);
 rows.sort(function(a,b){const x=a.cells[i].dataset.value,y=b.cells[i].dataset.value;
  const nx=x===''?NaN:parseFloat(x),ny=y===''?NaN:parseFloat(y);let c;
  if(isNaN(nx)||isNaN(ny)){if(!(isNaN(nx)&&isNaN(ny))){return isNaN(nx)?1:-1;}
   c=a.cells[i].textContent.localeCompare(b.cells[i].textContent);}
  else{c=nx-ny;}return dir==='ascending'?c:-c;});
 for(const r of rows){body.appendChild(r);}});}
retco();})();
"""


def _money(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _bar(row: dict[str, Any]) -> str:
    rate = row["resolved_rate"]
    low, high = row["resolved_rate_ci"]
    ci = ""
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        ci = f'<div class="ci" style="left:{low:.2%};width:{high - low:.2%}"></div>'
        label = f"{rate:.1%} ({low:.0%}&ndash;{high:.0%})"
    else:
        label = f"{rate:.1%}"
    return (
        f'<div class="rate"><div class="bar" title="95% interval">'
        f'<div class="fill" style="width:{rate:.2%}"></div>{ci}</div>'
        f'<span class="v">{label}</span></div>'
    )


def _breakeven(row: dict[str, Any]) -> tuple[str, str]:
    b = row.get("breakeven_next")
    if not b:
        return "", "&ndash;"
    versus = escape(b["versus"])
    rule = b["flip_rule"]
    if rule == "flips":
        text = f"above {_money(b['flip_labor'])} vs {versus}"
        return _value(b["flip_labor"]), text
    if rule == "dominates":
        return "0", f"always vs {versus} (cheaper per attempt too)"
    return "", f"labour cost does not matter vs {versus}"


def render_leaderboard(
    rows: Sequence[dict[str, Any]],
    *,
    title: str,
    source: str,
    detail_columns: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The page: a sortable table with a resolved-rate bar, costs, TCO and break-even."""
    labor = rows[0]["labor"] if rows else 0.0
    head = (
        '<th data-key="rank">#</th><th class="name" data-key="name">agent</th>'
        + "".join(f'<th class="name">{escape(c.replace("_", " "))}</th>' for c in detail_columns)
        + '<th data-key="resolved">resolved rate (95% CI)</th>'
        '<th data-key="cost_attempt">cost per attempt</th>'
        '<th data-key="cost_resolved">cost per resolved task</th>'
        '<th data-key="tco">TCO at <span id="labor-shown"></span></th>'
        '<th data-key="breakeven">pays off vs next row at labour cost</th>'
    )
    body = []
    for r in rows:
        be_value, be_text = _breakeven(r)
        details = "".join(
            f'<td class="name" data-value="">{escape(str(r["details"].get(c, "")))}</td>'
            for c in detail_columns
        )
        zero = ' <span class="muted">(reported as $0)</span>' if r.get("cost_note") else ""
        cpr = r["cost_per_resolved"]
        cpr_text = _money(cpr) if cpr is not None else escape(r.get("cost_reason", "")) or "&ndash;"
        body.append(
            f'<tr data-rate="{r["resolved_rate"]!r}" data-cost="{_value(r["cost_per_attempt"])}">'
            f'<td data-value="{r["rank"]}">{r["rank"]}</td>'
            f'<td class="name" data-value="">{escape(r["name"])}</td>{details}'
            f'<td data-value="{r["resolved_rate"]!r}">{_bar(r)}</td>'
            f'<td data-value="{_value(r["cost_per_attempt"])}">{_money(r["cost_per_attempt"])}'
            f"{zero}</td>"
            f'<td data-value="{_value(cpr)}">{cpr_text}</td>'
            f'<td class="tco" data-value="{_value(r["tco"])}">{_money(r["tco"])}</td>'
            f'<td data-value="{be_value}">{be_text}</td></tr>'
        )
    note_html = "".join(f'<p class="muted">{escape(n)}</p>' for n in notes)
    data = escape(json.dumps({"labor": labor, "rows": len(rows)}))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="muted">{escape(source)}</p>'
        f'<p><label for="labor">Labour cost to finish a failed task by hand (USD)</label>'
        f'<input id="labor" type="number" min="0" step="0.5" value="{labor}"></p>'
        f'<table id="board" data-meta="{data}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{note_html}"
        '<p class="muted">TCO = cost per attempt + (1 - resolved rate) x labour cost. Cost per '
        "resolved task = cost per attempt / resolved rate. Click a column header to sort.</p>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )

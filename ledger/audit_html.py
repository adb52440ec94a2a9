"""The audit and its dispute pack as one self-contained HTML page a person can read and forward.

No script, no external resource: the figures, a bar per claim type (supported, disputed,
pending, unknown), the problems, and one section per disputed conversation with the reason, each
judge's decision, scores, rationale and cited evidence, the transcript excerpt and the signals.
Every text that came from a ticket, a vendor or a judge is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ledger.audit import AuditReport, AuditRow, Dispute

__all__ = ["render_audit_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{margin:.2em 0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,#periods td{white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ddd;border-radius:6px;
padding:.6em 1em;min-width:9em}.card b{display:block;font-size:1.4em}
.bar{display:flex;height:14px;width:140px;border:1px solid #ccc}.bar span{display:block}
.supported{background:#3a9a5b}.disputed{background:#c8453c}.pending{background:#e0b13c}
.unknown{background:#999}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px}
article{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}
.msg{border-left:3px solid #ccc;padding:.2em .6em;margin:.3em 0;white-space:pre-wrap}
.msg.customer{border-color:#3a7bd5}.msg.agent{border-color:#8e44ad}.msg.tool{border-color:#999}
.meta{color:#666;font-size:.9em}blockquote{margin:.2em 0 .2em 1em;color:#444}
"""


def _usd(value: float | None) -> str:
    return "" if value is None else f"${value:,.2f}"


def _card(label: str, value: str, note: str = "") -> str:
    extra = f"<div class='meta'>{escape(note)}</div>" if note else ""
    return f"<div class='card'>{escape(label)}<b>{escape(value)}</b>{extra}</div>"


def _bar(row: AuditRow) -> str:
    total = row.billed_usd or 0.0
    if total <= 0:
        return ""
    parts = [
        ("supported", row.supported_usd),
        ("disputed", row.disputed_usd),
        ("pending", row.pending_usd),
        ("unknown", row.unknown_usd),
    ]
    spans = "".join(
        f"<span class='{name}' style='width:{100 * value / total:.2f}%' "
        f"title='{name} {_usd(value)}'></span>"
        for name, value in parts
        if value > 0
    )
    return f"<div class='bar' role='img' aria-label='share of the amount billed'>{spans}</div>"


def _period_table(report: AuditReport) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("period", "claim", "claims", "verified", "not verified", "duplicate",
                  "pending", "unknown", "billed", "supported", "disputed", "")
    )  # fmt: skip
    rows = []
    for row in [*report.by_period, None]:
        r: Any = row or report
        label = (escape(row.period or ""), escape(row.claim or "")) if row else ("total", "")
        cells = [r.claimed, r.verified, r.not_verified, r.duplicate, r.abstain + r.unjudged,
                 r.unknown]  # fmt: skip
        money = [_usd(r.billed_usd), _usd(r.supported_usd), _usd(r.disputed_usd)]
        rows.append(
            f"<tr><td>{label[0]}</td><td>{label[1]}</td>"
            + "".join(f"<td class='n'>{c}</td>" for c in cells)
            + "".join(f"<td class='n'>{m}</td>" for m in money)
            + f"<td>{_bar(r) if row else ''}</td></tr>"
        )
    legend = "".join(
        f"<span class='{n}'></span>{n}" for n in ("supported", "disputed", "pending", "unknown")
    )
    return (
        f"<table id='periods'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table><p class='legend meta'>{legend}</p>"
    )


def _problems(report: AuditReport) -> str:
    items = sorted((p for kind in report.problems.values() for p in kind), key=lambda p: p.line)
    if not items:
        return "<p>None: every claim in the file was matched.</p>"
    rows = "".join(
        f"<tr><td class='n'>{p.line}</td><td>{escape(p.outcome_id)}</td><td>"
        f"{escape(p.problem.replace('_', ' '))}</td><td>{escape(p.claim)}</td>"
        f"<td>{escape(p.claimed_at)}</td><td class='n'>{_usd(p.price_usd)}</td></tr>"
        for p in items
    )
    return (
        "<table id='problems'><thead><tr><th>line</th><th>outcome</th><th>problem</th>"
        f"<th>claim</th><th>claimed at</th><th>price</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _dispute(index: int, d: Dispute) -> str:
    head = (
        f"<h3>{escape(d.outcome_id)}: {escape(d.claim)}, {_usd(d.price_usd)}</h3>"
        f"<p class='meta'>claimed {escape(d.claimed_at)} (line {d.line}) &middot; "
        f"<b>{escape(d.status.replace('_', ' '))}</b>: {escape(d.reason)}"
        + (f" &middot; rubric {escape(d.rubric)}" if d.rubric else "")
        + (f" &middot; panel {escape(d.panel)}" if d.panel else "")
        + (f" &middot; flags {escape(', '.join(d.flags))}" if d.flags else "")
        + "</p>"
    )
    detail = d.detail
    if detail is None:
        return f"<article class='dispute' id='dispute-{index}'>{head}</article>"
    judges = "".join(
        f"<tr><td>{escape(j.judge)}</td><td>{escape(j.model)}</td><td>{escape(j.kind)}</td>"
        f"<td>{escape(j.decision or j.status)}</td><td>"
        + escape(", ".join(f"{k} {v:g}" for k, v in j.scores.items()))
        + f"</td><td>{escape(j.rationale or j.reason or '')}</td><td>"
        + "".join(
            f"<div>{escape(name)}: message {c.message}<blockquote>{escape(c.quote)}</blockquote>"
            "</div>"
            for name, cites in j.evidence.items()
            for c in cites
        )
        + "</td></tr>"
        for j in detail.judges
    )
    shown = len(detail.excerpt)
    skipped = detail.messages_total - shown
    messages = "".join(
        f"<div class='msg {escape(m.role)}'><span class='meta'>[{m.index}] {escape(m.role)}"
        + (f" {escape(m.author)}" if m.author else "")
        + (f" &middot; {escape(m.at)}" if m.at else "")
        + f"</span>\n{escape(m.text)}"
        + (" [cut]" if m.truncated else "")
        + "</div>"
        for m in detail.excerpt
    )
    signals = ", ".join(f"{escape(str(k))} = {escape(str(v))}" for k, v in detail.signals.items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in detail.reasons)
    return (
        f"<article class='dispute' id='dispute-{index}'>{head}"
        "<table class='judges'><thead><tr><th>judge</th><th>model</th><th>kind</th>"
        "<th>decision</th><th>scores</th><th>rationale</th><th>evidence cited</th></tr></thead>"
        f"<tbody>{judges}</tbody></table>"
        + (f"<p>Panel reasons:</p><ul>{reasons}</ul>" if reasons else "")
        + f"<p class='meta'>signals: {signals or 'none'}</p>"
        + f"<p class='meta'>transcript (revision {detail.outcome_revision}"
        + (f", the first {skipped} of {detail.messages_total} messages left out" if skipped else "")
        + f"):</p>{messages}</article>"
    )


def render_audit_html(report: AuditReport, *, title: str | None = None) -> str:
    """The audit as one HTML document (UTF-8, no script, no external resource)."""
    heading = title or f"Audit of the vendor's claims, tenant {report.tenant}"
    period = f"{report.from_ or 'the start'} to {report.to or 'now'}"
    cv, cd = report.corrected_verified, report.corrected_disputed_usd
    corrected = (
        f"verified, corrected for the panel's measured error: {cv.value:.1f}"
        + (f" (95% CI {cv.ci[0]:.1f} to {cv.ci[1]:.1f})" if cv.ci else "")
        + f"; disputed {_usd(cd.value)}"
        + (f" (95% CI {_usd(cd.ci[0])} to {_usd(cd.ci[1])})" if cd.ci else "")
        if cv.value is not None and cd.value is not None
        else f"no correction for the panel's error: {cv.note}"
    )
    cards = "".join(
        [
            _card("claims", str(report.claimed), f"{report.verified} verified"),
            _card("billed", _usd(report.billed_usd)),
            _card("supported", _usd(report.supported_usd)),
            _card("disputed", _usd(report.disputed_usd), f"{len(report.disputes)} claims"),
            _card("pending review", _usd(report.pending_usd)),
            _card("unknown", _usd(report.unknown_usd), f"{report.unknown} claims"),
        ]
    )
    unclaimed = report.verified_unclaimed["count"]
    unclaimed_note = (
        f"<p>The ledger verified {unclaimed} outcome(s) the vendor did not claim.</p>"
        if unclaimed
        else ""
    )
    disputes = "".join(_dispute(i, d) for i, d in enumerate(report.disputes, start=1))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(heading)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{escape(heading)}</h1>"
        f"<p class='meta'>claims dated {escape(period)}</p><div class='cards'>{cards}</div>"
        f"<p id='corrected'>{escape(corrected)}</p>"
        + unclaimed_note
        + f"<h2>By period and claim type</h2>{_period_table(report)}"
        + f"<h2>Claims not matched</h2>{_problems(report)}"
        + f"<h2>Disputed claims ({len(report.disputes)})</h2>"
        + (disputes or "<p>None.</p>")
        + "</body></html>\n"
    )

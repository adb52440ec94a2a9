"""`judge cost report --group-by period` and `--html`, from a real `judge verify` run.

Period figures are recomputed here from the raw tickets (the UTC month or day of each ticket's last
customer message, its agent.model_path and agent.cost_usd) and the verdict file `judge verify`
wrote, independently of the code under test.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.conftest import TICKETS, run, run_json

ROOT = Path(__file__).resolve().parents[2]
LATER = "2027-01-01T00:00:00Z"  # every shipped ticket is final by then


def copy_ledger(url: str, tmp_path: Path) -> str:
    copy = tmp_path / "copy.db"
    shutil.copy(url.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


def last_customer_at(record: dict[str, Any]) -> datetime:
    return max(
        datetime.fromisoformat(m["at"].replace("Z", "+00:00")).astimezone(UTC)
        for m in record["conversation"]
        if m["role"] == "customer" and m.get("at")
    )


def expected_by_period(verdicts: Path, *, day: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """(period label, model path) -> outcomes, verified, agent cost, bounds; from the raw files."""
    records = {r["id"]: r for r in map(json.loads, TICKETS.read_text().splitlines())}
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for v in map(json.loads, verdicts.read_text().splitlines()):
        record = records[v["outcome_id"]]
        at = last_customer_at(record)
        if day:
            label = f"{at.year:04d}-{at.month:02d}-{at.day:02d}"
            start = datetime(at.year, at.month, at.day, tzinfo=UTC)
            end = start + timedelta(hours=24)
        else:
            label = f"{at.year:04d}-{at.month:02d}"
            start = datetime(at.year, at.month, 1, tzinfo=UTC)
            end = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        e = expected.setdefault(
            (label, record["agent"]["model_path"]),
            {"outcomes": 0, "verified": 0, "agent": 0.0, "start": start, "end": end},
        )
        e["outcomes"] += 1
        e["verified"] += v["decision"] == "verified"
        e["agent"] += float(record["agent"]["cost_usd"])
    return expected


def remade(verdict: dict[str, Any], outcome: Any, *, outcome_id: str | None = None) -> Any:
    """The recorded verdict, as if made again on the revised outcome's content (or a copy's)."""
    from judge.verdict import Verdict

    changes: dict[str, Any] = {"content_hash": outcome.content_hash()}
    if outcome_id is not None:
        changes["outcome_id"] = outcome_id
    return Verdict.model_validate(verdict | changes)


# ---- period grouping --------------------------------------------------------------------------


def test_month_period_figures_recompute_from_the_tickets(
    verified_ledger: tuple[str, Path],
) -> None:
    url, verdicts = verified_ledger
    expected = expected_by_period(verdicts, day=False)
    assert len({label for label, _ in expected}) >= 3  # the shipped tickets span several months
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "period,model_path", "--now", LATER
    )
    assert data["period"] == "month" and data["group_by"] == ["period", "model_path"]
    got = {(r["group"]["period"], r["group"]["model_path"]): r for r in data["groups"]}
    assert set(got) == set(expected)
    for key, e in expected.items():
        r = got[key]
        assert r["status"] == "final"
        assert (r["outcomes"], r["verified"]) == (e["outcomes"], e["verified"]), key
        assert r["agent_cost_usd"] == pytest.approx(e["agent"], abs=1e-12)
        assert datetime.fromisoformat(r["period_start"]) == e["start"]
        assert datetime.fromisoformat(r["period_end"]) == e["end"]  # half-open: next month
        if e["verified"]:
            per = (e["agent"] + r["judge_cost_usd"]) / e["verified"]
            assert r["cost_per_verified_usd"] == pytest.approx(per, rel=1e-9)
        else:
            assert r["cost_per_verified_usd"] is None and r["reason"]
    # the existing keys are all still there, and the groups add up to the total
    for field in ("outcomes", "verified"):
        assert sum(r[field] for r in data["groups"]) == data["total"][field]
    assert data["total"]["outcomes"] == len(verdicts.read_text().splitlines())
    assert {"provisional", "final", "total", "unattributed_judge_calls"} <= set(data)
    # without the period dimension rows carry no period bounds
    plain = run_json("cost", "report", "--db", url, "--now", LATER)
    assert plain["period"] is None and "period_start" not in plain["groups"][0]


def test_day_period_figures_recompute_from_the_tickets(verified_ledger: tuple[str, Path]) -> None:
    url, verdicts = verified_ledger
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (label, _), e in expected_by_period(verdicts, day=True).items():
        expected[label][0] += e["outcomes"]
        expected[label][1] += e["verified"]
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "period", "--period", "day", "--now", LATER
    )
    assert data["period"] == "day"
    got = {r["group"]["period"]: [r["outcomes"], r["verified"]] for r in data["groups"]}
    assert got == dict(expected)
    for r in data["groups"]:
        start, end = (datetime.fromisoformat(r[k]) for k in ("period_start", "period_end"))
        assert (
            end - start == timedelta(days=1) and start.strftime("%Y-%m-%d") == r["group"]["period"]
        )
    text = run("cost", "report", "--db", url, "--group-by", "period", "--period", "day")
    assert text.exit_code == 0 and min(expected) in text.stdout


def test_period_falls_back_to_closed_at_without_customer_times(
    verified_ledger: tuple[str, Path], tmp_path: Path
) -> None:
    from judge.importers import read_outcomes
    from ledger.store import Ledger

    src_url, verdicts = verified_ledger
    url = copy_ledger(src_url, tmp_path)
    by_id = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    old = next(o for o in read_outcomes(TICKETS) if o.id in by_id)
    # a revision whose customer messages lost their times: the window anchors on closed_at
    conversation = [
        m.model_copy(update={"at": None}) if m.role == "customer" else m for m in old.conversation
    ]
    closed = datetime(2025, 7, 9, 12, tzinfo=UTC)
    # A new outcome, not a revision: the shipped tickets are final, and a verdict on a revision
    # of a final outcome changes no count (the meters' rule; see ledger.cost_report).
    revised = old.model_copy(
        update={
            "id": f"{old.id}-closed",
            "conversation": conversation,
            "signals": old.signals.model_copy(update={"closed_at": closed}),
        }
    )
    with Ledger.open(url, tenant="acme") as ledger:
        ledger.record_result(revised, remade(by_id[old.id], revised, outcome_id=revised.id))
    data = run_json("cost", "report", "--db", url, "--group-by", "period", "--now", LATER)
    july = [r for r in data["groups"] if r["group"]["period"] == "2025-07"]
    assert len(july) == 1 and july[0]["outcomes"] == 1
    assert july[0]["period_start"] == "2025-07-01T00:00:00+00:00"
    assert july[0]["period_end"] == "2025-08-01T00:00:00+00:00"
    assert sum(r["outcomes"] for r in data["groups"]) == len(by_id) + 1  # each counted once


# ---- the series the plots draw ----------------------------------------------------------------


def test_series_leaves_gaps_where_nothing_was_verified(verified_ledger: tuple[str, Path]) -> None:
    from ledger.cost_report_html import period_series

    url, verdicts = verified_ledger
    expected = expected_by_period(verdicts, day=True)
    data = run_json(
        "cost", "report", "--db", url, "--group-by", "period,model_path", "--period", "day",
        "--now", LATER,
    )  # fmt: skip
    series = period_series(data)
    periods = series["periods"]
    days = [datetime.fromisoformat(p).date() for p in periods]
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]  # none skipped
    assert periods[0] == min(label for label, _ in expected)
    assert periods[-1] == max(label for label, _ in expected)
    gaps = 0
    for path, points in series["paths"].items():
        for i, label in enumerate(periods):
            e = expected.get((label, path))
            verified = 0 if e is None else e["verified"]
            assert points["verified"][i] == verified
            if e is not None and verified:
                assert points["cost_per_verified"][i] == pytest.approx(e["agent"] / verified)
            else:  # undefined, never drawn as 0
                gaps += 1
                assert points["cost_per_verified"][i] is None
    assert gaps > 0


# ---- the HTML file ----------------------------------------------------------------------------


def test_html_is_self_contained_with_two_plots_and_the_table(
    verified_ledger: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = verified_ledger
    target = tmp_path / "report.html"
    result = run(
        "cost", "report", "--db", url, "--group-by", "model_path,tier", "--now",
        "2026-04-20T00:00:00Z", "--html", str(target), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout stays pure JSON; the "wrote" note goes to stderr
    assert f"wrote {target}" in result.stderr
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert refs and all(ref.startswith("data:image/png;base64,") for ref in refs)
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert "<script" not in page.lower()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    for encoded in images:
        png = base64.b64decode(encoded, validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    # the table: every group's status and figures, provisional and final, and the totals
    assert data["provisional"]["outcomes"] > 0 and data["final"]["outcomes"] > 0
    assert page.count("<td>provisional</td>") == 1 + sum(
        r["status"] == "provisional" for r in data["groups"]
    )
    assert page.count("<td>final</td>") == 1 + sum(r["status"] == "final" for r in data["groups"])
    assert f"<td>{data['total']['numerator_usd']:.6f}</td>" in page
    assert "n/a (0 verified)" in page
    assert not list(tmp_path.glob(".report.html.*"))  # no temporary file left behind


def test_html_escapes_names(verified_ledger: tuple[str, Path], tmp_path: Path) -> None:
    from judge.importers import read_outcomes
    from ledger.store import Ledger

    src_url, verdicts = verified_ledger
    url = copy_ledger(src_url, tmp_path)
    by_id = {v["outcome_id"]: v for v in map(json.loads, verdicts.read_text().splitlines())}
    old = next(o for o in read_outcomes(TICKETS) if o.id in by_id)
    evil = '<img src="https://evil.example/x.png" onerror=alert(1)>&co'
    agent = old.agent.model_copy(update={"model_path": evil})
    revised = old.model_copy(update={"id": f"{old.id}-evil", "agent": agent})
    with Ledger.open(url, tenant="acme") as ledger:
        ledger.record_result(revised, remade(by_id[old.id], revised, outcome_id=revised.id))
    target = tmp_path / "evil.html"
    result = run("cost", "report", "--db", url, "--html", str(target), "--now", LATER)
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert evil not in page and 'evil.example/x.png"' not in page
    assert "&lt;img src=&quot;https://evil.example/x.png&quot; onerror=alert(1)&gt;&amp;co" in page
    assert len(re.findall(r"<img ", page)) == 2


def test_html_is_never_left_half_written(
    verified_ledger: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from ledger import cost_report_html

    url, _ = verified_ledger
    target = tmp_path / "report.html"
    target.write_text("previous report", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", broken_replace)
        result = run("cost", "report", "--db", url, "--html", str(target))
    assert result.exit_code == 2
    assert "--html: cannot write" in result.stderr and "No space left" in result.stderr
    assert target.read_text(encoding="utf-8") == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]

    # a failure half-way through writing the text (it cannot be encoded) leaves nothing either
    with pytest.raises(UnicodeEncodeError):
        cost_report_html.write_text_atomic(target, "<html>" + "x" * 100_000 + "\ud800")
    assert target.read_text(encoding="utf-8") == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    cost_report_html.write_text_atomic(target, "new report")
    assert target.read_text(encoding="utf-8") == "new report"

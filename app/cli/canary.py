"""`judge canary`: re-grade a frozen canary set when the panel, rubric or a judge model changed.

The baseline is the verdict JSONL of the canary outcomes under the old configuration; verdicts
carry the rubric and panel references and each judge's model string. When the current
configuration differs (:func:`calibration.canary.needs_canary_regrade`) or ``--force`` is given,
the canary outcomes are re-graded with the current panel and compared with the baseline
(:func:`calibration.canary.canary_check`). The re-grade's model calls are recorded in the ledger
with purpose ``canary`` (paid, so on the books and in the daily budget; never served as a cache,
since a canary exists to ask the models again; not in the cost per verified outcome); no canary
verdict is written there.

Exit status: 0 no re-grade needed or no alert; 1 the canary alert fired (too many decisions
changed, or the re-grade is incomplete); 2 a usage or input error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import CallsDbOpt, CallsTenantOpt, fail, stderr

if TYPE_CHECKING:
    from judge.engine import Engine
    from judge.models import Outcome
    from judge.verdict import Verdict

EXIT_ALERT = 1


def register(app: typer.Typer) -> None:
    """Add ``judge canary`` to ``app``."""
    app.command("canary")(canary)


def canary(
    canary_path: Annotated[
        Path, typer.Option("--canary", help="The frozen canary outcomes (native JSONL or export).")
    ],
    baseline: Annotated[
        Path,
        typer.Option("--baseline", help="Verdict JSONL of the canary under the old configuration."),
    ],
    panel_path: Annotated[
        Path | None,
        typer.Option(
            "--panel", "-p", help="Current panel YAML. Default: OUTCOME_JUDGE_MODEL or local."
        ),
    ] = None,
    rubric: Annotated[
        list[str] | None,
        typer.Option("--rubric", "-r", help="Current rubric name or YAML path; repeatable."),
    ] = None,
    max_flip_rate: Annotated[
        float,
        typer.Option(
            "--max-flip-rate",
            min=0.0,
            max=0.999,
            help="Alert above this share of changed decisions.",
        ),
    ] = 0.05,
    force: Annotated[
        bool, typer.Option("--force", help="Re-grade even when nothing changed.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the re-graded verdicts here (JSONL).")
    ] = None,
    input_format: Annotated[
        str, typer.Option("--format", "-f", help="Canary format: native, ..., or auto.")
    ] = "auto",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=1024, help="Outcomes at once.")
    ] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    db: CallsDbOpt = None,
    tenant: CallsTenantOpt = "default",
) -> None:
    """Re-grade the frozen canary set after a panel, rubric or model change; alert on flips.

    Re-grades when the panel, rubric or any judge model differs from the baseline verdicts' (or
    with --force) and compares the decisions. The model calls are recorded in the ledger with
    purpose "canary" (never a cache; not in the cost per verified outcome). Exit status: 0 = no
    re-grade needed, or re-graded without alert; 1 = canary alert (more than --max-flip-rate of
    the decisions changed, or the re-grade is incomplete); 2 = usage or input error.
    """
    from app.verification import resolve_panel, resolve_rubrics
    from calibration.canary import needs_canary_regrade
    from calibration.join import CalibrationInputError
    from judge.engine import Engine
    from judge.importers import InputFileError, read_outcomes
    from judge.panel import Panel
    from judge.panel_loader import PanelError
    from judge.protocols import MemoryCallStore
    from judge.rubric_loader import RubricError

    try:
        outcomes = list(read_outcomes(canary_path, format=input_format))
        old = _read_baseline(baseline)
        rubrics = resolve_rubrics(rubric, Counter(o.kind for o in outcomes))
        panel, explanation = resolve_panel(panel_path)
    except (InputFileError, CalibrationInputError, RubricError, PanelError, ValueError) as exc:
        fail(str(exc))
    assert isinstance(panel, Panel)
    if explanation:
        stderr.print(f"[yellow]{explanation}[/yellow]", highlight=False)

    ids = {o.id for o in outcomes}
    previous = {v.outcome_id: v for v in old if v.outcome_id in ids}  # the last verdict wins
    if not previous:
        fail(
            f"{baseline} has no verdict for any of the {len(ids)} canary outcomes in "
            f"{canary_path}; the baseline must be the canary's verdicts (judge verify "
            f"{canary_path} --out {baseline})"
        )
    _check_frozen(outcomes, previous, canary_path)
    panels = sorted({v.panel for v in previous.values()})
    if len(panels) > 1:
        fail(
            f"{baseline} mixes verdicts of {len(panels)} panels ({', '.join(panels)}); a baseline "
            "is one run of one panel"
        )

    # Only to name the current models; the re-grade's engine records its calls (below).
    engine = Engine(panel, rubrics, store=MemoryCallStore())
    old_models = _baseline_models(previous.values())
    new_models = _current_models(engine)
    if panel.ref == panels[0]:  # same content: judges absent from the baseline never ran
        new_models = {k: v for k, v in new_models.items() if k in old_models}
    old_rubrics = ", ".join(sorted({v.rubric for v in previous.values()}))
    new_rubrics = ", ".join(sorted({rubrics[o.kind].ref for o in outcomes if o.id in previous}))
    trigger = needs_canary_regrade(
        panels[0], panel.ref, old_rubrics, new_rubrics, old_models, new_models
    )
    data: dict[str, Any] = {
        "regrade": bool(trigger) or force,
        "forced": force and not trigger,
        "trigger_reasons": trigger.reasons,
        "baseline": {"panel": panels[0], "rubrics": old_rubrics, "models": old_models},
        "current": {"panel": panel.ref, "rubrics": new_rubrics, "models": new_models},
        "canary_outcomes": len(outcomes),
        "without_baseline": sorted(ids - set(previous)),
        "result": None,
        "out": None,
    }
    if not data["regrade"]:
        _report(data, as_json=as_json)
        return

    from app.attested_documents import attested_for_panel
    from app.verification import probe_call_store
    from config.settings import get_settings

    regraded = [o for o in outcomes if o.id in previous]
    db_url = db or get_settings().db_url
    try:
        # Re-graded with what the tenant attested, as the baseline's `judge verify` did: else
        # every report would read as a flip under report_inputs: attested.
        attested = attested_for_panel(panel, db_url, tenant, regraded)
        with probe_call_store(panel, db_url=db_url, tenant=tenant, purpose="canary") as store:
            engine = Engine(panel, rubrics, store=store, attested=attested)
            verdicts = asyncio.run(_regrade(engine, regraded, concurrency))
    except ValueError as exc:  # a tenant name the ledger refuses
        fail(str(exc))
    from calibration.canary import canary_check

    try:
        result = canary_check(
            {k: v.decision for k, v in previous.items()},
            {v.outcome_id: v.decision for v in verdicts},
            max_flip_rate=max_flip_rate,
        )
    except ValueError as exc:
        fail(str(exc))
    data["result"] = result.to_dict()
    if out is not None:
        _write(out, verdicts)
        data["out"] = str(out)
    _report(data, as_json=as_json)
    if result.alert:
        raise typer.Exit(EXIT_ALERT)


def _read_baseline(path: Path) -> list[Verdict]:
    from calibration.join import CalibrationInputError, record_kind, to_verdict
    from calibration.records import read_records

    verdicts = []
    for lineno, obj in read_records(path):
        if record_kind(obj) != "verdict":
            raise CalibrationInputError(
                f"{path}: line {lineno}: not a verdict (needs outcome_id and decision); "
                "--baseline takes the verdict JSONL written by judge verify --out"
            )
        verdicts.append(to_verdict(obj, source=str(path), line=lineno))
    if not verdicts:
        raise CalibrationInputError(f"{path}: no verdicts found")
    return verdicts


def _check_frozen(outcomes: list[Outcome], previous: dict[str, Verdict], path: Path) -> None:
    """A canary set is frozen: a baseline verdict made on other content cannot be compared."""
    changed = [
        o.id
        for o in outcomes
        if o.id in previous
        and previous[o.id].content_hash is not None
        and previous[o.id].content_hash != o.content_hash()
    ]
    if changed:
        fail(
            f"{path}: {len(changed)} canary outcome(s) changed since the baseline was graded "
            f"(content hash differs): {', '.join(changed[:10])}; the canary set must stay frozen "
            "(restore them, or grade a new baseline)"
        )


def _baseline_models(verdicts: Any) -> dict[str, str]:
    """Each judge's model string in the baseline (the most frequent one, should a fallback have
    answered some outcomes)."""
    seen: dict[str, Counter[str]] = {}
    for v in verdicts:
        for j in v.judges:
            seen.setdefault(j.judge, Counter())[j.model] += 1
    return {name: counts.most_common(1)[0][0] for name, counts in sorted(seen.items())}


def _current_models(engine: Engine) -> dict[str, str]:
    """Each judge's model string now; a learned judge's includes its trained file's hash."""
    from judge.local.learned import LearnedJudge

    models: dict[str, str] = {}
    for spec in engine.panel.judges:
        judge = engine.judges[spec.name]
        if isinstance(judge, LearnedJudge):
            with contextlib.suppress(Exception):  # a broken file shows up as error judgments
                judge.load()
            models[spec.name] = judge.model_ref
        elif spec.kind == "llm":
            models[spec.name] = spec.model
        else:
            models[spec.name] = f"local:{spec.kind}"
    return models


async def _regrade(engine: Engine, outcomes: list[Outcome], concurrency: int) -> list[Verdict]:
    from judge.runner import verify_stream

    verdicts: list[Verdict] = []

    async def sink(outcome: Outcome, verdict: Verdict, resumed: bool) -> None:
        verdicts.append(verdict)

    await verify_stream(engine, outcomes, sink=sink, concurrency=concurrency)
    return verdicts


def _write(path: Path, verdicts: list[Verdict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(v.to_json() + "\n" for v in verdicts), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        fail(f"cannot write the re-graded verdicts to {path}: {exc}")
    finally:
        tmp.unlink(missing_ok=True)


def _report(data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not data["regrade"]:
        console.print(
            f"no re-grade needed: panel {data['current']['panel']}, rubric "
            f"{data['current']['rubrics']} and every judge model match the baseline "
            "(--force re-grades anyway)",
            highlight=False,
        )
        return
    why = data["trigger_reasons"] or ["--force"]
    console.print("re-graded the canary set because: " + "; ".join(why), highlight=False)
    result = data["result"]
    if result["flips"]:
        table = Table(title="Canary decisions that changed")
        for column in ("outcome", "baseline", "now"):
            table.add_column(column)
        for flip in result["flips"]:
            table.add_row(flip["id"], flip["previous"], flip["current"])
        console.print(table)
    rate, ci = result["flip_rate"], result["ci"]
    if rate is not None and ci is not None:
        console.print(
            f"{len(result['flips'])} of {result['n']} canary decisions changed: flip rate "
            f"{rate:.3f} (95% CI {ci[0]:.3f}..{ci[1]:.3f}), threshold {result['max_flip_rate']}",
            highlight=False,
        )
    if data["without_baseline"]:
        console.print(
            f"{len(data['without_baseline'])} canary outcome(s) have no baseline verdict and "
            "were not compared",
            highlight=False,
        )
    if data["out"]:
        console.print(f"re-graded verdicts written to {data['out']}", highlight=False)
    if result["alert"]:
        for reason in result["reasons"]:
            console.print(f"[bold red]CANARY ALERT:[/bold red] {reason}", highlight=False)
    else:
        console.print("no canary alert", highlight=False)

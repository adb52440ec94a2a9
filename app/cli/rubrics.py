"""`judge rubrics list|show|validate` and `judge panels validate|show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail, stderr

if TYPE_CHECKING:
    from rich.console import Console

    from judge.panel import Panel
    from judge.rubric import Rubric
    from judge.yamlsafe import LocatedError

rubrics_app = typer.Typer(
    name="rubrics",
    help="List, show and validate rubrics (what 'resolved' or 'correct' means).",
    no_args_is_help=True,
)
panels_app = typer.Typer(
    name="panels",
    help="Validate and show judge panels (which judges grade and how votes combine).",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add the ``rubrics`` and ``panels`` command groups to app."""
    app.add_typer(rubrics_app, name="rubrics")
    app.add_typer(panels_app, name="panels")


def _stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _report_problems(error: LocatedError) -> None:
    from rich.markup import escape

    for problem in error.problems:
        stderr.print(
            f"[bold red]error:[/bold red] {escape(str(problem))}", highlight=False, soft_wrap=True
        )


# -- rubrics ---------------------------------------------------------------------------------------


@rubrics_app.command("list")
def list_command(as_json: AsJson = False) -> None:
    """List the shipped rubrics: name, version, kind, criteria and gates."""
    from judge.rubric_loader import RubricError, list_rubrics

    try:
        rubrics = list_rubrics()
    except RubricError as err:
        fail(str(err))
    if as_json:
        _print_json(
            [
                {
                    "name": r.name,
                    "version": r.version,
                    "ref": r.ref,
                    "kind": r.kind,
                    "criteria": len(r.criteria),
                    "gates": [c.id for c in r.criteria if c.gate],
                }
                for r in rubrics
            ]
        )
        return
    from rich import box
    from rich.table import Table

    table = Table(title="Shipped rubrics", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Name", "Version", "Kind", "Criteria", "Gates"):
        table.add_column(column, no_wrap=column != "Gates", overflow="fold", min_width=5)
    for r in rubrics:
        gates = "\n".join(c.id for c in r.criteria if c.gate) or "-"
        table.add_row(r.name, r.version, r.kind, str(len(r.criteria)), gates)
    _stdout().print(table)


def _scale_text(rubric: Rubric, criterion_id: str) -> str:
    c = rubric.criterion(criterion_id)
    if c.scale == "binary":
        return "binary (0/1)"
    lo, hi = c.bounds
    return f"{lo:g}..{hi:g}"


def _when_text(when: dict[str, Any]) -> str:
    return " and ".join(f"{k}={json.dumps(v)}" for k, v in when.items())


def _show_rubric(rubric: Rubric) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _stdout()
    out.print(f"[bold]{rubric.ref}[/bold]  kind: {rubric.kind}  version: {rubric.version}")
    if rubric.description:
        out.print(escape(rubric.description))
    out.print()
    out.print("[bold]Criteria[/bold]")
    for c in rubric.criteria:
        gate = "[bold]gate[/bold]" if c.gate else "not a gate"
        out.print(
            f"  [bold]{c.id}[/bold]  {gate}  scale {_scale_text(rubric, c.id)}  weight "
            f"{c.weight:g}  passes at >= {c.pass_threshold:g}"
        )
        out.print(f"    {escape(c.question)}", soft_wrap=True)
        for i, step in enumerate(c.evaluation_steps, start=1):
            out.print(f"    {i}. {escape(step)}", soft_wrap=True)
        if c.examples:
            out.print(f"    ({len(c.examples)} example(s); see --json)")
    out.print()
    d = rubric.decision
    gates = "every gate passes and " if d.require_gates else ""
    out.print(
        f"Decision: verified when {gates}the weighted normalised score >= {d.threshold:g}; "
        f"verification window {rubric.window_hours:g} h."
    )
    if rubric.signals:
        rules = Table(title="Signal rules")
        for column in ("id", "when", "effect", "reason"):
            rules.add_column(column, overflow="fold")
        for rule in rubric.signals:
            when = rule.when.model_dump(exclude_unset=True)
            effect = f"tier {rule.tier}" if rule.effect == "tier" else rule.effect
            rules.add_row(rule.id, escape(_when_text(when)), effect, escape(rule.reason))
        out.print(rules)
    if rubric.citation:
        out.print("[bold]Citation[/bold]")
        for source in rubric.citation:
            out.print(f"- {escape(source)}")


@rubrics_app.command("show")
def show_command(
    name_or_path: Annotated[
        str, typer.Argument(help="A shipped rubric name (see `judge rubrics list`) or a YAML path.")
    ],
    as_json: AsJson = False,
) -> None:
    """Show a rubric: criteria, scales, weights, gates, signal rules, citation and version."""
    from judge.rubric_loader import RubricError, load_rubric

    try:
        rubric = load_rubric(name_or_path)
    except RubricError as err:
        fail(str(err))
    if as_json:
        data = rubric.model_dump(mode="json")
        data["signals"] = [
            {**rule.model_dump(mode="json"), "when": rule.when.model_dump(exclude_unset=True)}
            for rule in rubric.signals
        ]
        _print_json(data)
    else:
        _show_rubric(rubric)


@rubrics_app.command("validate")
def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="Rubric YAML files to check.")],
) -> None:
    """Check rubric files; print every problem with file, line and field (exit 2 if any)."""
    from rich.markup import escape

    from judge.rubric_loader import RubricError, parse_rubric_file

    bad = 0
    for path in paths:
        try:
            rubric = parse_rubric_file(path)
        except RubricError as err:
            bad += 1
            _report_problems(err)
            continue
        _stdout().print(f"ok  {escape(str(path))}  {rubric.ref}")
    if bad:
        fail(f"{bad} of {len(paths)} rubric file(s) invalid")


# -- panels ----------------------------------------------------------------------------------------


def _judge_row(judge: Any) -> tuple[str, str, str, str]:
    if judge.kind == "llm":
        extra = f"samples={judge.samples} temperature={judge.temperature:g}"
        if judge.api_base:
            extra += f" api_base={judge.api_base}"
        if judge.api_key_env:
            extra += f" api_key_env={judge.api_key_env}"
        if judge.fallbacks:
            extra += f" fallbacks={','.join(judge.fallbacks)}"
        for key, value in judge.litellm_extra().items():
            extra += f" {key}={json.dumps(value)}"
        return judge.name, judge.model, f"{judge.weight:g}", extra
    if judge.kind == "learned":
        return judge.name, "learned", f"{judge.weight:g}", f"path={judge.path}"
    return judge.name, "signals", f"{judge.weight:g}", ""


def _show_panel(panel: Panel) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _stdout()
    band = "none" if panel.abstain_band is None else "[{:g}, {:g}]".format(*panel.abstain_band)
    out.print(
        f"[bold]{escape(panel.ref)}[/bold]  aggregation: {panel.aggregation}  quorum: "
        f"{panel.quorum}  abstain band: {escape(band)}"
    )
    judges = Table(title="Judges")
    for column in ("name", "model / kind", "weight", "settings"):
        judges.add_column(column, overflow="fold")
    for judge in panel.judges:
        judges.add_row(*(escape(cell) for cell in _judge_row(judge)))
    out.print(judges)
    if panel.cascade:
        for i, stage in enumerate(panel.cascade, start=1):
            stop = (
                f"stop when confidence >= {stage.min_confidence:g}"
                if i < len(panel.cascade)
                else "final stage"
            )
            out.print(f"Cascade stage {i}: {escape(', '.join(stage.judges))} ({stop})")
    g = panel.gate
    drift = ", no open drift alert" if g.require_no_drift_alert else ""
    out.print(
        f"Final when kappa lower CI bound >= {g.min_kappa_lower:g} on >= {g.min_labels} labels "
        f"in the last {g.window_days} days{drift}; otherwise provisional."
    )


@panels_app.command("validate")
def panels_validate_command(
    paths: Annotated[list[Path], typer.Argument(help="Panel YAML files to check.")],
) -> None:
    """Check panel files; print every problem with file, line and field (exit 2 if any)."""
    from rich.markup import escape

    from judge.panel_loader import PanelError, load_panel

    bad = 0
    for path in paths:
        try:
            panel = load_panel(path)
        except PanelError as err:
            bad += 1
            _report_problems(err)
            continue
        _stdout().print(f"ok  {escape(str(path))}  {escape(panel.ref)}")
    if bad:
        fail(f"{bad} of {len(paths)} panel file(s) invalid")


@panels_app.command("show")
def panels_show_command(
    path: Annotated[
        str,
        typer.Argument(
            help="A panel YAML file, or 'default' for the panel used when --panel is not given."
        ),
    ],
    as_json: AsJson = False,
) -> None:
    """Show a panel: judges, aggregation, quorum, abstain band, cascade and version."""
    from config.settings import get_settings
    from judge.panel_loader import PanelError, default_panel, load_panel

    explanation: str | None = None
    if path == "default" and not Path(path).exists():
        panel, explanation = default_panel(get_settings())
    else:
        try:
            panel = load_panel(path)
        except PanelError as err:
            fail(str(err))
    if as_json:
        data = panel.model_dump(mode="json")
        if explanation:
            data["explanation"] = explanation
        _print_json(data)
        return
    if explanation:
        from rich.markup import escape

        stderr.print(f"[yellow]{escape(explanation)}[/yellow]", highlight=False)
    _show_panel(panel)

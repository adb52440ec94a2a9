"""`judge train`: fit the learned judge on labelled outcomes; report its cross-validated quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from app.cli._common import fail, stderr

if TYPE_CHECKING:
    from judge.local.learned import CVMetrics
    from judge.models import Outcome


def _read_all(inputs: list[Path], fmt: str) -> list[Outcome]:
    from judge.importers import InputFileError, read_outcomes

    outcomes: list[Outcome] = []
    for path in inputs:
        try:
            outcomes.extend(read_outcomes(path, format=fmt))
        except InputFileError as exc:
            fail(f"{exc} (file {path})")
    return outcomes


def _metrics_table(metrics: CVMetrics, out: Path) -> Any:
    from rich.table import Table

    split = f"{metrics.folds}-fold stratified" + (
        f", grouped by {metrics.grouped_by}" if metrics.grouped_by else ""
    )
    table = Table(title=f"learned judge: cross-validated on held-out folds ({split})")
    table.add_column("metric")
    table.add_column("learned judge", justify="right")
    table.add_column("baseline", justify="right")
    table.add_row("labelled outcomes", str(metrics.n), f"{metrics.positives} resolved")
    table.add_row(
        "accuracy", f"{metrics.accuracy:.3f}", f"{metrics.baseline_accuracy:.3f} (majority class)"
    )
    table.add_row("Cohen's kappa", f"{metrics.kappa:.3f}", "0.000")
    table.add_row("ROC AUC", f"{metrics.roc_auc:.3f}", "0.500")
    table.add_row(
        "Brier score (lower is better)",
        f"{metrics.brier:.3f}",
        f"{metrics.baseline_brier:.3f} (base rate)",
    )
    table.caption = f"saved to {out}"
    return table


def train(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", help="Files of labelled outcomes (native JSONL, tau-bench, ...)."
    ),
    fmt: str = typer.Option(
        "auto", "--format", help="auto, native, taubench, zendesk or intercom."
    ),
    out: Path = typer.Option(
        Path("learned-judge.joblib"), "--out", help="Where to write the model file."
    ),
    cv: int = typer.Option(5, "--cv", help="Cross-validation folds for the reported metrics."),
    seed: int = typer.Option(0, "--seed", help="Seed for fold shuffling and the classifier."),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Metadata key (e.g. task_id) whose values never straddle a fold: measures how the "
        "judge does on unseen groups.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
) -> None:
    """Train the learned judge on labelled outcomes; print its cross-validated metrics."""
    if cv < 2:
        fail(f"--cv must be at least 2, got {cv}")
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; give a file name such as {out / 'learned-judge.joblib'}")

    from judge.local.learned import LearnedModelError, TrainingDataError, train_learned_judge

    def progress(message: str) -> None:
        stderr.print(f"[dim]{message}...[/dim]", highlight=False)

    progress(f"reading {len(inputs)} file{'s' if len(inputs) != 1 else ''}")
    outcomes = _read_all(inputs, fmt)
    labelled = sum(1 for o in outcomes if o.label is not None)
    stderr.print(f"read {len(outcomes)} outcomes, {labelled} labelled", highlight=False)
    try:
        model = train_learned_judge(
            outcomes, cv=cv, seed=seed, group_by=group_by, progress=progress
        )
        progress(f"saving {out}")
        model.save(out)
    except TrainingDataError as exc:
        fail(f"cannot train on {', '.join(map(str, inputs))}: {exc}")
    except (LearnedModelError, OSError) as exc:
        fail(f"cannot write the model to {out}: {exc}")

    metrics = model.metrics
    if as_json:
        payload = {"model": str(out), "sha256": model.file_hash, "metrics": metrics.to_dict()}
        typer.echo(json.dumps(payload, indent=2))
    else:
        from rich.console import Console

        Console().print(_metrics_table(metrics, out))
    if metrics.accuracy <= metrics.baseline_accuracy:
        stderr.print(
            "[yellow]warning:[/yellow] the learned judge does not beat the majority-class "
            f"baseline on held-out folds ({metrics.accuracy:.3f} vs "
            f"{metrics.baseline_accuracy:.3f}); do not let it decide alone.",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``judge train`` to ``app``."""
    app.command("train")(train)

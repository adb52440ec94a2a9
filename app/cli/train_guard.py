"""`judge train-guard`: fit the injection detector; report recall on held-out sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from app.cli._common import fail, stderr

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = _REPO.parent / "shared" / "datasets"
DEFAULT_CORPUS = DEFAULT_SHARED / "injection"
PROJECT_DIR = _REPO / "datasets" / "injection"


def project_files() -> list[Path]:
    """The project's own training texts: every ``datasets/injection/project_*.jsonl``."""
    return sorted(PROJECT_DIR.glob("project_*.jsonl"))


def _table(title: str, rows: dict[str, dict[str, float]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in ("group", "injections", "recall", "benign", "false flags"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, r in rows.items():
        table.add_row(
            name,
            str(int(r["injections"])),
            f"{r['recall']:.1%}" if r["injections"] else "-",
            str(int(r["benign"])),
            f"{r['false_flag_rate']:.1%}" if r["benign"] else "-",
        )
    return table


def train_guard(
    out: Path = typer.Option(
        Path("injection-detector.json"), "--out", help="Where to write the model (JSON)."
    ),
    corpus: Path = typer.Option(
        DEFAULT_CORPUS, "--corpus", help="Folder of the public *.train.jsonl injection corpora."
    ),
    project: list[Path] = typer.Option(
        [],
        "--project",
        help="The project's own training texts (JSONL; repeat). "
        "Default: every datasets/injection/project_*.jsonl.",
    ),
    shared: Path = typer.Option(
        DEFAULT_SHARED,
        "--shared",
        help="The shared datasets folder: benign LLMBar outputs, Topical-Chat turns and "
        "SummEval articles are read from it as support-domain negatives, and some of LLMBar's "
        "instructions as tasks planted in documents (guard_training.TASKS_READ).",
    ),
    evaluate: bool = typer.Option(
        True, "--evaluate/--no-evaluate", help="Also report leave-one-source-out recall."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train the injection detector (char + word n-grams, calibrated) and save it as JSON.

    The file is plain JSON (weights, calibration, threshold): loading it runs no code. Point
    OUTCOME_JUDGE_INJECTION_DETECTOR_PATH at it to use it instead of the shipped one.
    """
    from judge.guard_training import (
        grouped_by_text,
        leave_one_source_out,
        load_rows,
        recall_table,
        train_detector,
    )

    try:
        rows = load_rows(corpus, *(project or project_files()), shared_dir=shared)
        detector = train_detector(rows)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(detector.to_json(), encoding="utf-8")
    tmp.replace(out)
    report: dict[str, Any] = {
        "out": str(out),
        "detector": detector.ref,
        "rows": len(rows),
        "threshold": detector.threshold,
        "trained_on": detector.info.get("trained_on"),
        "augmented": detector.info.get("augmented"),
    }
    if evaluate:
        loso = leave_one_source_out(rows)
        grouped = grouped_by_text(rows)
        report["leave_one_source_out"] = {
            "by_source": recall_table(loso, lambda r: r.source),
            "by_category": recall_table(loso, lambda r: f"{r.source}:{r.category}"),
            "by_language": recall_table(loso, lambda r: r.language),
        }
        report["grouped_by_text"] = {
            "by_source": recall_table(grouped, lambda r: r.source),
            "by_language": recall_table(grouped, lambda r: r.language),
        }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    stderr.print(
        f"saved {detector.ref} to {out} ({len(rows)} rows, threshold {detector.threshold})"
    )
    if evaluate:
        from rich.console import Console

        console = Console()
        for split in ("leave_one_source_out", "grouped_by_text"):
            for key, rows_ in report[split].items():
                console.print(_table(f"{split} - {key} (held-out rows only)", rows_))


def register(app: typer.Typer) -> None:
    app.command("train-guard")(train_guard)

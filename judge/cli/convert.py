"""`judge convert`: turn tau-bench, Zendesk or Intercom exports into native Outcome JSONL."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from judge.cli._common import fail, stderr


def convert_file(
    source: Path, out: Path, *, format: str = "auto", tenant: str | None = None
) -> tuple[int, str]:
    """Convert ``source`` to native JSONL at ``out`` atomically; return (count, format).

    The output is written to a temporary file beside ``out`` and renamed into place only after
    every record converted, so an error never leaves a partial file (an existing ``out`` is kept).

    Raises
    ------
    judge.importers.InputFileError
        For any problem in the input (file, line or record, field).
    OSError
        When the output cannot be written.
    """
    from judge.importers import read_outcomes, resolve_format

    fmt = resolve_format(source, format)
    outcomes = read_outcomes(source, format=fmt, tenant=tenant)
    directory = out.parent if str(out.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for outcome in outcomes:
                handle.write(outcome.model_dump_json(exclude_defaults=True))
                handle.write("\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count, fmt


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""

    @app.command("convert")
    def convert(
        input: Path = typer.Argument(
            ..., help="Export to convert: tau-bench JSON, Zendesk or Intercom export, or JSONL."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Native Outcome JSONL to write."),
        format: str = typer.Option(
            "auto",
            "--format",
            "-f",
            help="Input format: auto, native, taubench, zendesk or intercom.",
        ),
        tenant: str | None = typer.Option(
            None, "--tenant", help="Tenant to stamp on every outcome."
        ),
    ) -> None:
        """Convert an export into native Outcome JSONL (written atomically)."""
        from judge.importers import InputFileError

        if out.resolve() == input.resolve():
            fail("--out must be a different file from INPUT")
        if not out.parent.is_dir():
            fail(f"output directory {out.parent} does not exist; create it first")
        if tenant is not None and not 1 <= len(tenant) <= 100:
            fail("--tenant must be 1 to 100 characters")
        try:
            count, fmt = convert_file(input, out, format=format, tenant=tenant)
        except InputFileError as exc:
            fail(f"{exc} (nothing was written to {out})")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}")
        stderr.print(
            f"converted {count} outcome{'s' if count != 1 else ''} from {fmt} format "
            f"({input.name}) -> {out}",
            highlight=False,
        )

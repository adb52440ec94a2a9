"""Where `judge calibrate`, `judge drift` and `judge gate` read verdicts and labels from.

Either files (``--verdicts`` and ``--labels``) or the ledger (``--db``), never both. From the
ledger (:func:`ledger.calibration_source.load_calibration_rows`, shared with the API), `judge
calibrate` reads the labelled outcomes' verdicts and counts the others
(:meth:`ledger.store.Ledger.labelled_verdicts`); `judge drift` and `judge gate` read every
verdict (:meth:`ledger.store.Ledger.iter_verdicts`), since their windows count unlabelled ones:
optionally one rubric, one panel, recorded in ``[--from, --to)``, and all of the tenant's labels
(:mod:`calibration.join` pairs them on outcome id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli._common import fail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from calibration.join import LabelRecord, UnlabelledVerdicts
    from calibration.tool_verdicts import VerdictColumns
    from judge.verdict import Verdict

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Read verdicts and labels from this ledger (e.g. sqlite:///outcome-judge.db) "
        "instead of --verdicts/--labels.",
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="With --db: the tenant (default: the ledger's only tenant)."),
]
RubricFilterOpt = Annotated[
    str | None,
    typer.Option(
        "--rubric", help="With --db: only verdicts of this rubric (name or name@version)."
    ),
]
PanelFilterOpt = Annotated[
    str | None,
    typer.Option("--panel", help="With --db: only verdicts of this panel (name or name@version)."),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="With --db: verdicts recorded at or after this ISO 8601 time."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="With --db: verdicts recorded before this ISO 8601 time."),
]


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 option value as an aware datetime (naive means UTC); exits 2 when malformed."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{option}: {value!r} is not an ISO 8601 time; use e.g. 2026-03-01 or 2026-03-01T00:00Z"
        )
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def load_rows(
    *,
    verdicts: Path | None,
    labels: Path | None,
    db: str | None,
    tenant: str | None = None,
    rubric: str | None = None,
    panel: str | None = None,
    since: str | None = None,
    until: str | None = None,
    columns: VerdictColumns | None = None,
    every_verdict: bool = True,
) -> tuple[list[Verdict], list[LabelRecord], str, UnlabelledVerdicts]:
    """Verdicts, labels, a description of where they came from (for messages), and the count of
    the verdicts not returned.

    Exactly one source: ``--verdicts`` and ``--labels`` together, or ``--db``. The ledger filters
    only make sense with ``--db``. A file's verdicts are all returned; from the ledger, without
    ``every_verdict``, only the labelled outcomes' verdicts are read and the others counted
    (:func:`ledger.calibration_source.load_calibration_rows`). Exits 2 (via :func:`fail`) on any
    usage or input error.
    """
    from calibration.join import CalibrationInputError, UnlabelledVerdicts, load_files

    files = verdicts is not None or labels is not None
    filters = {
        "--tenant": tenant,
        "--rubric": rubric,
        "--panel": panel,
        "--from": since,
        "--to": until,
    }
    if db is not None and files:
        fail("give either --verdicts and --labels (files) or --db (the ledger), not both")
    if db is not None and columns is not None and columns.explicit:
        fail(
            "--id-column, --decision-column, --score-column and --threshold read a verdicts file; "
            "the ledger's verdicts need no mapping"
        )
    if db is None:
        if verdicts is None or labels is None:
            fail("give --verdicts FILE and --labels FILE, or --db URL to read the ledger")
        used = [name for name, value in filters.items() if value is not None]
        if used:
            fail(
                f"{', '.join(used)}: ledger filter(s); use with --db, not with --verdicts/--labels"
            )
        try:
            verdict_rows, label_rows = load_files(verdicts, labels, columns=columns)
        except (CalibrationInputError, ValueError) as exc:
            fail(str(exc))
        return verdict_rows, label_rows, str(labels), UnlabelledVerdicts()
    return _from_ledger(
        db,
        tenant=tenant,
        rubric=rubric,
        panel=panel,
        since=parse_time(since, "--from"),
        until=parse_time(until, "--to"),
        every_verdict=every_verdict,
    )


def open_ledger(url: str, tenant: str | None, *, tables: set[str]) -> tuple[Engine, str, str]:
    """Open an existing ledger to read: its engine, the tenant, and the URL with no password.

    The tenant is the given one, else the ledger's only one. Never creates a database: a missing
    SQLite file, a database without the ``tables`` of a ledger, or several tenants without
    ``--tenant`` exit 2 (via :func:`fail`) with the fix.
    """
    from app.cli._common import redact_url
    from ledger.db import LedgerDatabaseError, make_engine, parse_url
    from ledger.schema import current_tables

    shown = redact_url(url)
    try:
        parsed = parse_url(url)
        file = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
            fail(f"--db: no ledger at {shown} (file not found); run judge verify --db first")
        engine = make_engine(url)
    except LedgerDatabaseError as exc:
        fail(f"--db: {exc}")
    try:
        if not tables <= current_tables(engine):
            fail(f"--db: {shown} is not an outcome-judge ledger; run judge verify --db {shown}")
        chosen = tenant or _only_tenant(engine, shown)
    except BaseException:
        engine.dispose()
        raise
    return engine, chosen, shown


def _from_ledger(
    url: str,
    *,
    tenant: str | None,
    rubric: str | None,
    panel: str | None,
    since: datetime | None,
    until: datetime | None,
    every_verdict: bool,
) -> tuple[list[Verdict], list[LabelRecord], str, UnlabelledVerdicts]:
    from ledger.calibration_source import load_calibration_rows

    if since is not None and until is not None and since >= until:
        fail(f"--from ({since.isoformat()}) must be before --to ({until.isoformat()})")
    engine, chosen, shown = open_ledger(url, tenant, tables={"verdicts", "labels", "tenants"})
    try:
        rows = load_calibration_rows(
            engine,
            chosen,
            rubric=rubric,
            panel=panel,
            since=since,
            until=until,
            every_verdict=every_verdict,
        )
    finally:
        engine.dispose()
    if not rows.total_verdicts:
        wanted = ", ".join(
            f"{k} {v}"
            for k, v in (("rubric", rubric), ("panel", panel), ("from", since), ("to", until))
            if v is not None
        )
        fail(
            f"--db: no verdicts for tenant {chosen!r} in {shown}"
            + (f" matching {wanted}" if wanted else "")
        )
    return rows.verdicts, rows.labels, f"the ledger {shown} (tenant {chosen})", rows.unlabelled


def _only_tenant(engine: Engine, shown: str) -> str:
    from sqlmodel import select

    from ledger.db import session
    from ledger.tables import TenantRow

    with session(engine, readonly=True) as db:
        names = sorted(db.exec(select(TenantRow.name)).all())
    if len(names) == 1:
        return names[0]
    if not names:
        fail(f"--db: the ledger {shown} is empty; run judge verify --db first")
    fail(f"--db: the ledger {shown} holds tenants {', '.join(names)}; pass --tenant")

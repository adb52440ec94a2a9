"""`judge pull zendesk|intercom`: fetch new and changed tickets into a JSONL file, resumably.

Credentials come only from the environment (never an option, never the ledger):

- Zendesk: ``ZENDESK_SUBDOMAIN``, and ``ZENDESK_EMAIL`` + ``ZENDESK_API_TOKEN`` (API token) or
  ``ZENDESK_OAUTH_TOKEN`` (OAuth bearer token);
- Intercom: ``INTERCOM_ACCESS_TOKEN``.

The cursor (where the pull stopped) is kept in the ledger (``pull_cursors``) per tenant, source
and account, and saved after every page durably appended to ``--out``: run the same command
again to continue, after an interruption or a day later. Then ``judge convert OUT``.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli._common import fail, stderr

OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="JSON Lines file the pages are appended to.")
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Ledger keeping the cursor. Default: OUTCOME_JUDGE_DB_URL."),
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the cursor belongs to.")]
MaxPagesOpt = Annotated[
    int | None,
    typer.Option("--max-pages", min=1, help="Stop after this many pages (run again to go on)."),
]
PageSizeOpt = Annotated[int, typer.Option("--page-size", min=1, max=1000, help="Per page.")]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="First pull only: start at this ISO 8601 time (default: 30 days)."
    ),
]
MaxWaitOpt = Annotated[
    float,
    typer.Option("--max-wait", min=0, help="Longest Retry-After (seconds) to wait out at once."),
]


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _since(value: str | None) -> int:
    from app.cli._sources import parse_time

    moment = parse_time(value, "--since")
    if moment is None:
        return int(datetime.now(UTC).timestamp()) - 30 * 86400
    return int(moment.timestamp())


def _run(
    source: str,
    account: str,
    *,
    db: str | None,
    tenant: str,
    out: Path,
    pull: Any,
) -> None:
    from app.cli._common import redact_url
    from app.cli._pull.http import PullError
    from app.cli._pull.sink import LineSink
    from config.settings import get_settings
    from ledger.db import LedgerDatabaseError, make_engine
    from ledger.pull_cursors import load_cursor, save_cursor
    from ledger.schema import migrate

    if not out.parent.is_dir():
        fail(f"output directory {out.parent} does not exist; create it first")
    url = db or get_settings().db_url
    try:
        engine = make_engine(url)
        migrate(engine)
    except LedgerDatabaseError as exc:
        fail(f"--db: {exc}")
    state = load_cursor(engine, tenant=tenant, source=source, account=account)

    def save(cursor: dict[str, Any], pages: int, records: int) -> None:
        save_cursor(
            engine,
            tenant=tenant,
            source=source,
            account=account,
            cursor=cursor,
            pages=pages,
            records=records,
        )

    sink = LineSink(out)
    try:
        summary = pull(state.cursor if state else None, sink, save)
    except PullError as exc:
        fail(f"{exc} (pages written so far are in {out}; the cursor was saved after each)")
    finally:
        sink.close()
        engine.dispose()
    resumed = "resumed from the saved cursor" if state else "first pull"
    more = "" if summary.finished else "; more pages remain: run the same command again"
    stderr.print(
        f"pulled {summary.pages} page(s), {summary.records} record(s) from {source} "
        f"({account}, {resumed}) -> {out}{more}\n"
        f"cursor saved in {redact_url(url)}; next: judge convert {out} --out outcomes.jsonl",
        highlight=False,
    )


def zendesk(
    out: OutOpt,
    db: DbOpt = None,
    tenant: TenantOpt = "default",
    since: SinceOpt = None,
    page_size: PageSizeOpt = 100,
    max_pages: MaxPagesOpt = None,
    max_wait: MaxWaitOpt = 120.0,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Default: https://$ZENDESK_SUBDOMAIN.zendesk.com"),
    ] = None,
) -> None:
    """Pull tickets (incremental cursor export) with their audits from Zendesk."""
    from app.cli._pull.http import HttpClient
    from app.cli._pull.zendesk import pull_zendesk

    subdomain = _env("ZENDESK_SUBDOMAIN")
    email, token, oauth = (
        _env("ZENDESK_EMAIL"),
        _env("ZENDESK_API_TOKEN"),
        _env("ZENDESK_OAUTH_TOKEN"),
    )
    if oauth:
        headers = {"Authorization": f"Bearer {oauth}"}
    elif email and token:
        basic = base64.b64encode(f"{email}/token:{token}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {basic}"}
    else:
        fail(
            "set ZENDESK_EMAIL and ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN) in the environment; "
            "credentials are never taken from options"
        )
    if base_url is None and subdomain is None:
        fail("set ZENDESK_SUBDOMAIN in the environment (or pass --base-url)")
    base = base_url or f"https://{subdomain}.zendesk.com"
    client = HttpClient(base, headers, max_wait=max_wait)
    start = _since(since)
    _run(
        "zendesk",
        subdomain or base,
        db=db,
        tenant=tenant,
        out=out,
        pull=lambda cursor, sink, save: pull_zendesk(
            client,
            sink,
            cursor=cursor,
            start_time=start,
            page_size=page_size,
            max_pages=max_pages,
            save=save,
        ),
    )


def intercom(
    out: OutOpt,
    db: DbOpt = None,
    tenant: TenantOpt = "default",
    since: SinceOpt = None,
    page_size: PageSizeOpt = 50,
    max_pages: MaxPagesOpt = None,
    max_wait: MaxWaitOpt = 120.0,
    account: Annotated[
        str, typer.Option("--account", help="Name of this workspace's cursor.")
    ] = "default",
    api_version: Annotated[
        str, typer.Option("--api-version", help="Intercom-Version header.")
    ] = "2.14",
    base_url: Annotated[
        str, typer.Option("--base-url", help="api.eu.intercom.io / api.au.intercom.io by region.")
    ] = "https://api.intercom.io",
) -> None:
    """Pull conversations updated since the last pull from Intercom, each with its parts."""
    from app.cli._pull.http import HttpClient
    from app.cli._pull.intercom import pull_intercom

    token = _env("INTERCOM_ACCESS_TOKEN")
    if token is None:
        fail("set INTERCOM_ACCESS_TOKEN in the environment; credentials are never options")
    headers = {"Authorization": f"Bearer {token}", "Intercom-Version": api_version}
    client = HttpClient(base_url, headers, max_wait=max_wait)
    start = _since(since)
    _run(
        "intercom",
        account,
        db=db,
        tenant=tenant,
        out=out,
        pull=lambda cursor, sink, save: pull_intercom(
            client,
            sink,
            cursor=cursor,
            since=start,
            page_size=min(page_size, 150),
            max_pages=max_pages,
            save=save,
        ),
    )


def register(app: typer.Typer) -> None:
    """Add ``judge pull zendesk`` and ``judge pull intercom``."""
    pull_app = typer.Typer(
        help="Fetch new and changed tickets from a help desk into JSONL, resumably "
        "(credentials from the environment, cursor in the ledger).",
        no_args_is_help=True,
    )
    pull_app.command("zendesk")(zendesk)
    pull_app.command("intercom")(intercom)
    app.add_typer(pull_app, name="pull")

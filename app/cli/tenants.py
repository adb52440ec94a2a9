"""`judge tenants`: the tenants of a service ledger and their API keys.

``judge tenants create NAME`` makes a tenant and prints its first key on stdout (so a script can
capture it) exactly once: only a hash of the key is stored, so it cannot be shown again. The other
commands list tenants and keys, add and revoke keys, and change a tenant's daily judge budget and
request rate (both take effect on the next API request; no restart).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail, stderr

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ledger.tenants import IssuedKey, KeyInfo, TenantInfo

tenants_app = typer.Typer(
    name="tenants",
    help="Tenants of the API and their keys: create, list, add-key, revoke-key, set-limits.",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The ledger, e.g. sqlite:///outcome-judge.db or postgresql+psycopg://user@host/db. "
        "Default: OUTCOME_JUDGE_DB_URL or ./outcome-judge.db (the one `judge serve` uses).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
BudgetOpt = Annotated[
    str | None,
    typer.Option(
        "--daily-budget",
        metavar="USD",
        help="Judge spend per UTC day after which the tenant's verification jobs wait, e.g. 25.",
    ),
]
RateOpt = Annotated[
    int | None,
    typer.Option(
        "--rate-limit",
        metavar="N",
        help="API requests per minute before 429 (default: OUTCOME_JUDGE_REQUESTS_PER_MINUTE).",
    ),
]
KeyNameOpt = Annotated[
    str | None,
    typer.Option("--name", help="A label for the key, e.g. 'zendesk-sync' (not secret)."),
]
ScopeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="SCOPE",
        help="What the key may change (repeat for several): submit (outcomes, verification "
        "jobs), review (labels; labels inside submitted outcomes count), configure (rubrics, "
        "panels). Every key reads. Default: all three. Give the integration of the party "
        "billed per resolution --scope submit.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")


@contextmanager
def _ledger(db: str | None, *, create: bool = False) -> Iterator[Engine]:
    """The ledger's engine, schema brought up to date; exits 2 with the fix when unusable.

    Only ``create`` may start a new SQLite file: listing or changing tenants of a ledger that does
    not exist is a mistake (usually a wrong --db), not a request for an empty one.
    """
    from app.cli._common import redact_url
    from config.settings import get_settings
    from ledger.db import LedgerDatabaseError, make_engine, parse_url
    from ledger.schema import migrate

    url = db or get_settings().db_url
    shown = redact_url(url)
    try:
        parsed = parse_url(url)
        file = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if not create and file not in (None, "", ":memory:") and not Path(str(file)).is_file():
            fail(
                f"--db: no ledger at {shown} (file not found); check --db, or create a tenant "
                "first with `judge tenants create NAME`"
            )
        engine = make_engine(url)
    except LedgerDatabaseError as exc:
        fail(f"--db: {exc}")
    try:
        migrate(engine)
        yield engine
    except LedgerDatabaseError as exc:
        fail(f"--db: {exc}")
    finally:
        engine.dispose()


def _budget(value: str | None) -> Decimal | None:
    """``--daily-budget`` as USD; exits 2 with an example when it is not a number >= 0."""
    if value is None:
        return None
    text = value.strip().removeprefix("$")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        fail(f"--daily-budget: {value!r} is not an amount of USD; give a number, e.g. 25 or 2.50")
    if not amount.is_finite() or amount < 0:
        fail(f"--daily-budget: {value!r} must be a number of USD >= 0, e.g. 25 (no cap: omit it)")
    return amount


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat()


def _money(amount: Decimal | None) -> str | None:
    """A USD amount without the ledger's 12 trailing decimals (``25`` not ``25.000000000000``)."""
    if amount is None:
        return None
    return format(amount.normalize(), "f")


def _default_rate() -> int:
    from config.settings import get_settings

    return get_settings().requests_per_minute


def _tenant_json(info: TenantInfo, keys: list[KeyInfo] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": info.name,
        "created_at": _iso(info.created_at),
        "daily_budget_usd": _money(info.daily_budget_usd),
        "requests_per_minute": info.requests_per_minute,
        "effective_requests_per_minute": info.requests_per_minute or _default_rate(),
        "active_keys": info.active_keys,
    }
    if keys is not None:
        data["keys"] = [_key_json(k) for k in keys if k.tenant == info.name]
    return data


def _key_json(key: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
        "scopes": _scope_list(key.scopes),
    }


def _scope_list(scopes: frozenset[str]) -> list[str]:
    from ledger.tenants import KEY_SCOPES

    return [scope for scope in KEY_SCOPES if scope in scopes]


def _limits_line(info: TenantInfo) -> str:
    budget = (
        f"{_money(info.daily_budget_usd)} USD/day" if info.daily_budget_usd is not None else "no"
    )
    rate = (
        f"{info.requests_per_minute}/min"
        if info.requests_per_minute is not None
        else f"default ({_default_rate()}/min)"
    )
    return f"budget {budget}, rate {rate}"


def _show_key(issued: IssuedKey, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """The key on stdout (the only place it ever appears); the warning on stderr."""
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tenant": issued.tenant,
                    "key_id": issued.key_id,
                    "key": issued.key,
                    "scopes": _scope_list(issued.scopes),
                    **(extra or {}),
                },
                indent=2,
            )
        )
    else:
        typer.echo(issued.key)
    stderr.print(
        f"API key {issued.key_id} for tenant {issued.tenant!r} is shown once and stored only as a "
        "hash: keep it now (send it as `Authorization: Bearer <key>`). Lost keys cannot be "
        f"recovered; add another with `judge tenants add-key {issued.tenant}`.",
        highlight=False,
        soft_wrap=True,
    )
    from ledger.tenants import ALL_SCOPES

    if issued.scopes == ALL_SCOPES:
        stderr.print(
            "It may send outcomes, label and store rubrics and panels (every scope). Give the "
            "integration of the party billed per resolution a key of its own that may only "
            f"send: `judge tenants add-key {issued.tenant} --name SYNC --scope submit`.",
            highlight=False,
            soft_wrap=True,
        )


@tenants_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The tenant's name, e.g. acme (at most 100 chars).")],
    daily_budget: BudgetOpt = None,
    rate_limit: RateOpt = None,
    key_name: KeyNameOpt = None,
    scope: ScopeOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant and print its first API key (once: only its hash is stored).

    The key goes to stdout alone, so `KEY=$(judge tenants create acme)` captures it.
    """
    from ledger.tenants import TenantExistsError, create_tenant

    budget = _budget(daily_budget)
    with _ledger(db, create=True) as engine:
        try:
            issued = create_tenant(
                engine,
                name,
                daily_budget_usd=budget,
                requests_per_minute=rate_limit,
                key_name=key_name,
                scopes=scope or None,
            )
        except TenantExistsError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(_option_error(exc))
    _show_key(
        issued,
        as_json,
        {"daily_budget_usd": _money(budget), "requests_per_minute": rate_limit},
    )


def _option_error(exc: ValueError) -> str:
    """Name the option a ledger validation message is about."""
    message = str(exc)
    if message.startswith("daily budget"):
        return f"--daily-budget: {message}"
    if message.startswith("requests per minute"):
        return f"--rate-limit: {message}"
    if message.startswith("key name"):
        return f"--name: {message}"
    if message.startswith("unknown key scope"):
        return f"--scope: {message}"
    return message


@tenants_app.command("list")
def list_(
    keys: Annotated[
        bool, typer.Option("--keys", help="Also list each tenant's key ids (never the keys).")
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every tenant: created, daily budget, request rate, active keys."""
    from ledger.tenants import list_keys, list_tenants

    with _ledger(db) as engine:
        tenants = list_tenants(engine)
        all_keys = list_keys(engine) if keys else None
    if as_json:
        typer.echo(json.dumps({"tenants": [_tenant_json(t, all_keys) for t in tenants]}, indent=2))
        return
    if not tenants:
        stderr.print("no tenants yet; create one with `judge tenants create NAME`", highlight=False)
        return
    rows = [("NAME", "CREATED", "BUDGET USD/DAY", "RATE/MIN", "ACTIVE KEYS")]
    for t in tenants:
        rows.append(
            (
                t.name,
                t.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                _money(t.daily_budget_usd) or "-",
                str(t.requests_per_minute)
                if t.requests_per_minute
                else f"{_default_rate()} (default)",
                str(t.active_keys),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if all_keys is not None and row[0] != "NAME":
            for k in all_keys:
                if k.tenant == row[0]:
                    state = f"revoked {_iso(k.revoked_at)}" if k.revoked_at else "active"
                    label = f" ({k.name})" if k.name else ""
                    scopes = ",".join(_scope_list(k.scopes)) or "read only"
                    typer.echo(
                        f"    key {k.key_id}{label}  created {_iso(k.created_at)}  {state}  "
                        f"scopes {scopes}"
                    )


@tenants_app.command("add-key")
def add_key(
    name: Annotated[str, typer.Argument(help="An existing tenant.")],
    key_name: KeyNameOpt = None,
    scope: ScopeOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue another API key for a tenant: to rotate (add, switch clients, revoke the old), or
    one per party with only the scopes it needs (`--scope submit` for a help desk's sync)."""
    from ledger.tenants import UnknownTenantError, issue_key

    with _ledger(db) as engine:
        try:
            issued = issue_key(engine, name, key_name=key_name, scopes=scope or None)
        except UnknownTenantError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(_option_error(exc))
    _show_key(issued, as_json)


@tenants_app.command("revoke-key")
def revoke_key(
    key_id: Annotated[
        str,
        typer.Argument(
            help="The key's id (the 12 hex digits after `oj_`, as `judge tenants list --keys` "
            "shows them); a whole key is accepted too."
        ),
    ],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: requests with it answer 401 from now on."""
    from ledger.tenants import key_id_of
    from ledger.tenants import revoke_key as revoke

    shown = key_id_of(key_id)
    with _ledger(db) as engine:
        if not revoke(engine, key_id):
            fail(
                f"no active key {shown!r} (unknown or already revoked); "
                "`judge tenants list --keys` shows the key ids"
            )
    if as_json:
        typer.echo(json.dumps({"key_id": shown, "revoked": True}))
    else:
        typer.echo(f"revoked key {shown}")


@tenants_app.command("set-limits")
def set_limits(
    name: Annotated[str, typer.Argument(help="An existing tenant.")],
    daily_budget: BudgetOpt = None,
    no_budget: Annotated[
        bool, typer.Option("--no-budget", help="Lift the daily judge budget cap.")
    ] = False,
    rate_limit: RateOpt = None,
    default_rate: Annotated[
        bool,
        typer.Option("--default-rate", help="Use the service's default request rate again."),
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a tenant's daily judge budget and/or request rate (applies to the next request)."""
    from ledger.tenants import UnknownTenantError
    from ledger.tenants import set_limits as change

    if daily_budget is not None and no_budget:
        fail("give --daily-budget USD or --no-budget, not both")
    if rate_limit is not None and default_rate:
        fail("give --rate-limit N or --default-rate, not both")
    if daily_budget is None and not no_budget and rate_limit is None and not default_rate:
        fail(
            "nothing to change: give --daily-budget USD, --no-budget, --rate-limit N or "
            "--default-rate"
        )
    budget = _budget(daily_budget)
    with _ledger(db) as engine:
        try:
            info = change(
                engine,
                name,
                daily_budget_usd=budget,
                requests_per_minute=rate_limit,
                clear_budget=no_budget,
                clear_rate=default_rate,
            )
        except UnknownTenantError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(_option_error(exc))
    if as_json:
        typer.echo(json.dumps(_tenant_json(info), indent=2))
    else:
        typer.echo(f"tenant {info.name}: {_limits_line(info)}")

"""`judge export meter`: the verified-outcomes meter to a billing system, each count once;
`judge export verdicts`: each verdict to a tracing tool as an OpenTelemetry evaluation event."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from app.cli._common import LedgerUrlOpt, fail, stderr
from app.cli._sources import FromOpt, TenantOpt, ToOpt, open_ledger

export_app = typer.Typer(
    name="export",
    help="Send verified counts to billing systems (CloudEvents, OpenMeter, Lago, Stripe) and "
    "verdicts to tracing tools (OpenTelemetry).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("meter")
def meter(
    to: Annotated[
        str, typer.Option("--to", help="cloudevents, openmeter, lago or stripe.", metavar="TARGET")
    ],
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            help="Base URL: the CloudEvents sink itself; OpenMeter's, Lago's or Stripe's API root "
            "(e.g. https://api.stripe.com).",
        ),
    ],
    db: LedgerUrlOpt = None,
    tenant: TenantOpt = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help="Environment variable holding the token (default: OUTCOME_JUDGE_CLOUDEVENTS_"
            "TOKEN, OPENMETER_API_KEY, LAGO_API_KEY or STRIPE_API_KEY).",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="CloudEvents/OpenMeter subject (default: the tenant)."),
    ] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Stripe: the customer id billed (cus_...).")
    ] = None,
    subscription: Annotated[
        str | None,
        typer.Option("--subscription", help="Lago: the external_subscription_id billed."),
    ] = None,
    event_name: Annotated[
        str,
        typer.Option("--event-name", help="Stripe meter event_name, or Lago billable metric code."),
    ] = "verified_outcomes",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and print; send and record nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send every verified outcome as a usage event and every revocation as a correction.

    Each meter entry is sent once under the target's idempotency key (CloudEvents/OpenMeter id,
    Lago transaction_id, Stripe identifier): running again sends only what is new. A count taken
    back is a cancel of the usage event on Stripe within 24 hours of sending it, otherwise a
    negative event. Exit status 1 when the target refused a batch (what was sent stays recorded).
    """
    from app.export.deliver import export_meter
    from app.export.targets import TARGETS, TOKEN_ENV, TargetConfig
    from config.settings import get_settings

    if to not in TARGETS:
        fail(f"--to: unknown target {to!r}; use one of {', '.join(TARGETS)}")
    if not endpoint.startswith(("http://", "https://")):
        fail(f"--endpoint: {endpoint!r} is not an http(s) URL")
    if to == "stripe" and not customer:
        fail("--customer is required for Stripe: the customer the meter events bill (cus_...)")
    if to == "lago" and not subscription:
        fail("--subscription is required for Lago: the external_subscription_id to bill")
    variable = token_env or TOKEN_ENV[to]
    token = os.environ.get(variable, "")
    if not token and not dry_run:
        fail(f"set {variable} to the {to} API token (tokens are read from the environment only)")
    from ledger.schema import migrate

    engine, chosen, _ = open_ledger(db or get_settings().db_url, tenant, tables={"meter_entries"})
    migrate(engine)  # a ledger from before the export log gets its table (append-only migration)
    config = TargetConfig(
        target=to,
        endpoint=endpoint,
        token=token,
        tenant=chosen,
        subject=subject,
        customer=customer,
        subscription=subscription,
        event_name=event_name,
    )
    try:
        summary = export_meter(engine, config, dry_run=dry_run)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        sent = summary.sent
        stderr.print(
            f"{config.destination} ({to}), tenant {chosen}: "
            + (
                f"{summary.planned} event(s) to send (dry run)"
                if dry_run
                else f"sent {sent['usage']} usage, {sent['negative']} negative, "
                f"{sent['cancel']} cancel event(s) in {summary.requests} request(s); "
                f"{summary.already_delivered} already there"
            )
            + f"; meter total {summary.meter_total}, exported total {summary.exported_total}",
            highlight=False,
        )
    if summary.error:
        fail(f"{to} refused: {summary.error}", code=1)


@export_app.command("verdicts")
def verdicts(
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OTLP/HTTP base URL (events go to {endpoint}/v1/logs). Default: "
            "OTEL_EXPORTER_OTLP_ENDPOINT.",
        ),
    ] = None,
    db: LedgerUrlOpt = None,
    tenant: TenantOpt = None,
    since: FromOpt = None,
    until: ToOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send each verdict as an OpenTelemetry gen_ai.evaluation.result event (OTLP/HTTP JSON).

    Headers (e.g. the tracing tool's API key) come from OTEL_EXPORTER_OTLP_HEADERS
    (key=value,key2=value2), never from the command line. A verdict is sent once per endpoint;
    outcomes whose cost came from --traces are linked to their agent's span. Exit status 1 when
    the receiver refused a batch.
    """
    from app.cli._sources import parse_time
    from app.export.otlp import export_verdicts, otlp_headers
    from config.settings import get_settings
    from ledger.schema import migrate

    url = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not url.startswith(("http://", "https://")):
        fail("--endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) must be an http(s) URL")
    headers = otlp_headers(os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    start, end = parse_time(since, "--from"), parse_time(until, "--to")
    engine, chosen, _ = open_ledger(db or get_settings().db_url, tenant, tables={"verdicts"})
    migrate(engine)
    try:
        result = export_verdicts(
            engine, chosen, endpoint=url, headers=headers, since=start, until=end
        )
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        stderr.print(
            f"{result.destination}: sent {result.sent} of {result.planned} verdict(s) as "
            f"gen_ai.evaluation.result events, {result.linked} linked to the agent's span"
            + (f"; the receiver rejected {result.rejected}" if result.rejected else ""),
            highlight=False,
        )
    if result.error:
        fail(f"the OTLP receiver refused: {result.error}", code=1)

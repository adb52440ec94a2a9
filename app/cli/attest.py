"""`judge attest`: record documents a tenant's buyer vouches for, in the ledger.

The command line's ``POST /v1/attestations``: a panel with ``report_inputs: attested`` verifies
a report only when its brief and sources are attested documents (:mod:`judge.attestation`);
``judge verify`` and the service's workers read them from the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli._common import LedgerUrlOpt, fail, redact_url, stderr


def register(app: typer.Typer) -> None:
    app.command("attest")(attest)


def attest(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help='JSON Lines, one document a line: {"text": ...} or {"sha256": ...}, with an '
            'optional "id".',
        ),
    ],
    tenant: Annotated[
        str, typer.Option("--tenant", help="Whose documents (it must exist, but for default).")
    ] = "default",
    db: LedgerUrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Attest the documents in FILE for a tenant: under a panel with report_inputs: attested, a
    report verifies only when its brief and sources are attested. Only digests are stored;
    attesting a document again changes nothing. Give this to the buyer, not to the party that
    sends the reports."""
    from app.attested_documents import AttestedFileError, read_attested_documents
    from config.settings import get_settings
    from ledger.attested import attest_documents
    from ledger.db import LedgerDatabaseError, make_engine
    from ledger.schema import migrate
    from ledger.store import DEFAULT_TENANT, ensure_tenant
    from ledger.tenants import UnknownTenantError

    try:
        documents = read_attested_documents(path)
    except AttestedFileError as exc:
        fail(str(exc))
    db_url = db or get_settings().db_url
    engine = make_engine(db_url)
    try:
        migrate(engine)
        if tenant == DEFAULT_TENANT:
            ensure_tenant(engine, tenant)
        added = attest_documents(engine, tenant, documents, key_id=None)
    except UnknownTenantError as exc:
        fail(str(exc))
    except LedgerDatabaseError as exc:
        fail(f"{redact_url(db_url)}: {exc}")
    finally:
        engine.dispose()
    result = {
        "tenant": tenant,
        "count": len(documents),
        "created": len(added),
        "unchanged": len(documents) - len(added),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    stderr.print(
        f"{result['count']} document(s) for tenant {tenant}: {result['created']} attested, "
        f"{result['unchanged']} attested already ({redact_url(db_url)})",
        highlight=False,
    )

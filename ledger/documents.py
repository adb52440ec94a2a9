"""Rubrics and panels a tenant stores through the API, and how a job's names resolve to them.

A stored document is the YAML text as posted (table ``documents``), identified by (tenant, kind,
name, version) where the version is the document's content-hash version (``Rubric.version``,
``Panel.version``: the same one verdicts carry in ``name@version``). Posting the same content
again stores nothing new but makes that version the tenant's current one again.

Resolution (what a verification job uses):

- a rubric name is the tenant's stored rubric of that name (newest version, or ``name@version``
  for an exact one), else the shipped rubric of that name (never a file path);
- a panel name is the tenant's stored panel of that name, else ``default`` = the server's
  default panel (:func:`judge.panel_loader.default_panel`).

Panels stored through the API are held to a policy the server's own panel files are not: a
tenant must not be able to make the server send its provider keys elsewhere, read server files or
pass arbitrary options to litellm (see :func:`check_panel_policy`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from config.settings import Settings, get_settings
from judge.panel import Panel
from judge.rubric import Rubric
from judge.rubric_loader import DEFAULT_RUBRICS
from judge.yamlsafe import MAX_BYTES, LocatedError
from ledger.db import session
from ledger.panel_policy import PROVIDER_KEY_ENVS, SAFE_LITELLM_KEYS, panel_policy_problems
from ledger.service_tables import StoredDocumentRow
from ledger.store import check_tenant_name, ensure_tenant
from ledger.tables import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "DEFAULT_RUBRICS",
    "PROVIDER_KEY_ENVS",
    "SAFE_LITELLM_KEYS",
    "DocumentError",
    "DocumentInfo",
    "UnknownDocumentError",
    "check_panel_policy",
    "get_document",
    "list_documents",
    "parse_panel_text",
    "parse_rubric_text",
    "resolve_panel",
    "resolve_rubrics",
    "save_panel",
    "save_rubric",
]

DocumentKind = Literal["rubric", "panel"]


_SHOWN = {"rubric": "<rubric yaml>", "panel": "<panel yaml>"}
_NAME_CHARS = 64


class DocumentError(ValueError):
    """A posted rubric or panel is invalid or not allowed.

    ``problems`` lists ``{"message", "line", "column", "field"}`` (line/column 1-based, in the
    posted YAML, None when not tied to a place); ``str(error)`` names the first and the fix.
    """

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [
            {"message": message, "line": None, "column": None, "field": None}
        ]


class UnknownDocumentError(DocumentError):
    """A rubric or panel name that is neither stored for the tenant nor shipped."""


@dataclass(frozen=True)
class DocumentInfo:
    """A rubric or panel as listed: where it comes from and its parsed content.

    ``source`` is ``"stored"`` (the tenant posted it) or ``"shipped"`` (it comes with the
    server). ``created_at`` and ``text`` are None for shipped documents.
    """

    kind: DocumentKind
    name: str
    version: str
    source: Literal["stored", "shipped"]
    document: Rubric | Panel
    created_at: datetime | None = None
    text: str | None = None


# -- parsing ----------------------------------------------------------------------------------


def _from_located(kind: DocumentKind, err: LocatedError) -> DocumentError:
    problems = [
        {"message": p.message, "line": p.line, "column": p.column, "field": p.field}
        for p in err.problems
    ]
    first = err.problems[0]
    where = f"line {first.line}" if first.line is not None else "the document"
    if first.field:
        where += f", field '{first.field}'"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return DocumentError(f"invalid {kind}: {where}: {first.message}{more}", problems)


def _check_size(kind: DocumentKind, text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise DocumentError(f"the {kind} YAML is empty; send the document's text in 'yaml'")
    # A lone surrogate is refused by the YAML check (control character), not a crash here.
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DocumentError(
            f"the {kind} YAML is larger than {MAX_BYTES // 1024} KiB; {kind} documents are small"
        )


def _non_finite(value: Any, loc: str = "") -> str | None:
    """The field of the first infinite or NaN number in a parsed document, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return loc or "(document)"
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        items = ((f"{loc}.{k}" if loc else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{loc}[{i}]", v) for i, v in enumerate(value))
    for where, item in items:
        found = _non_finite(item, where)
        if found is not None:
            return found
    return None


def _check_finite(kind: DocumentKind, document: Rubric | Panel) -> None:
    # YAML's .inf/.nan pass the models' bounds (inf >= 0) but make scores and weights meaningless.
    where = _non_finite(document.model_dump(mode="python"))
    if where is not None:
        raise DocumentError(
            f"invalid {kind}: field '{where}': must be a finite number (not .inf or .nan)",
            [{"message": "must be a finite number", "line": None, "column": None, "field": where}],
        )


def parse_rubric_text(text: str) -> Rubric:
    """Validate rubric YAML text with the same rules as rubric files (located errors).

    Raises
    ------
    DocumentError
        With every problem (line, column, field, message).
    """
    from judge import rubric_loader

    _check_size("rubric", text)
    try:
        rubric = rubric_loader.parse_rubric_text(text, shown=_SHOWN["rubric"])
    except LocatedError as err:
        raise _from_located("rubric", err) from None
    _check_finite("rubric", rubric)
    return rubric


def parse_panel_text(
    text: str, *, settings: Settings | None = None, check_policy: bool = True
) -> Panel:
    """Validate panel YAML text like panel files, then apply :func:`check_panel_policy`."""
    from judge import panel_loader

    _check_size("panel", text)
    try:
        # No file check: a learned judge's path is held to the server's model by the policy.
        panel = panel_loader.parse_panel_text(text, shown=_SHOWN["panel"], check_files=False)
    except LocatedError as err:
        raise _from_located("panel", err) from None
    _check_finite("panel", panel)
    if check_policy:
        check_panel_policy(panel, settings or get_settings())
    return panel


def check_panel_policy(panel: Panel, settings: Settings) -> None:
    """Refuse what a tenant's panel must not do on a shared server (:mod:`ledger.panel_policy`).

    Providers outside ``settings.panel_providers`` or without a hosted endpoint, ``api_base``
    outside ``settings.allowed_api_bases``, a key variable sent to a provider it is not mapped
    to, unsafe pass-through keys, timeouts and retries over the caps, and a ``learned`` judge
    other than the server's model.

    Raises
    ------
    DocumentError
        Listing every violation, each with its field (``judges[i].model`` ...) and the fix.
    """
    problems = [
        {"message": message, "line": None, "column": None, "field": field}
        for field, message in panel_policy_problems(panel, settings)
    ]
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DocumentError(
            f"panel not allowed: field '{first['field']}': {first['message']}{more}", problems
        )


# -- storing and reading ----------------------------------------------------------------------


def _save(
    engine: Engine, tenant: str, kind: DocumentKind, name: str, version: str, text: str
) -> bool:
    """Store one version; False when it was stored before (it becomes current again)."""
    ensure_tenant(engine, tenant)
    now = utcnow()
    with session(engine) as db:
        existing = db.exec(
            select(StoredDocumentRow).where(
                StoredDocumentRow.tenant == tenant,
                StoredDocumentRow.kind == kind,
                StoredDocumentRow.name == name,
                StoredDocumentRow.version == version,
            )
        ).first()
        if existing is not None:
            # Re-posting an earlier version makes it current again (newest created_at wins).
            db.execute(
                sa.update(StoredDocumentRow)
                .where(col(StoredDocumentRow.pk) == existing.pk)
                .values(created_at=now, text=text)
            )
            return False
        db.add(
            StoredDocumentRow(
                tenant=tenant, kind=kind, name=name, version=version, text=text, created_at=now
            )
        )
    return True


def save_rubric(engine: Engine, tenant: str, yaml_text: str) -> Rubric:
    """Validate and store a tenant's rubric; returns it (``.name``, ``.version``).

    Raises
    ------
    DocumentError
        The YAML is invalid (every located problem in ``problems``) or too large.
    """
    check_tenant_name(tenant)
    rubric = parse_rubric_text(yaml_text)
    _save(engine, tenant, "rubric", rubric.name, rubric.version, yaml_text)
    return rubric


def save_panel(
    engine: Engine, tenant: str, yaml_text: str, *, settings: Settings | None = None
) -> Panel:
    """Validate (file rules plus :func:`check_panel_policy`) and store a tenant's panel.

    Raises
    ------
    DocumentError
        Invalid YAML, or a panel the server's policy refuses (the message names the fix).
    """
    check_tenant_name(tenant)
    panel = parse_panel_text(yaml_text, settings=settings)
    _save(engine, tenant, "panel", panel.name, panel.version, yaml_text)
    return panel


def _rows(
    engine: Engine, tenant: str, kind: DocumentKind, name: str | None = None
) -> list[StoredDocumentRow]:
    """Stored rows, newest first."""
    stmt = select(StoredDocumentRow).where(
        StoredDocumentRow.tenant == tenant, StoredDocumentRow.kind == kind
    )
    if name is not None:
        stmt = stmt.where(StoredDocumentRow.name == name)
    stmt = stmt.order_by(col(StoredDocumentRow.created_at).desc(), col(StoredDocumentRow.pk).desc())
    with session(engine, readonly=True) as db:
        return list(db.exec(stmt).all())


def _parse_stored(
    kind: DocumentKind, text: str, settings: Settings, check_policy: bool
) -> Rubric | Panel:
    # Stored text is parsed again on every use, so a tightened policy (an api_base removed from
    # the allowlist) applies to panels stored before the change.
    if kind == "rubric":
        return parse_rubric_text(text)
    return parse_panel_text(text, settings=settings, check_policy=check_policy)


def _info(row: StoredDocumentRow, settings: Settings, check_policy: bool = True) -> DocumentInfo:
    kind: DocumentKind = "rubric" if row.kind == "rubric" else "panel"
    return DocumentInfo(
        kind=kind,
        name=row.name,
        version=row.version,
        source="stored",
        document=_parse_stored(kind, row.text, settings, check_policy),
        created_at=row.created_at,
        text=row.text,
    )


def _shipped(kind: DocumentKind, settings: Settings) -> list[DocumentInfo]:
    if kind == "rubric":
        from judge.rubric_loader import list_rubrics

        return [
            DocumentInfo(
                kind="rubric", name=r.name, version=r.version, source="shipped", document=r
            )
            for r in list_rubrics()
        ]
    panel = _default_panel(settings)
    return [
        DocumentInfo(
            kind="panel", name="default", version=panel.version, source="shipped", document=panel
        )
    ]


def _default_panel(settings: Settings) -> Panel:
    from judge.panel_loader import default_panel

    return default_panel(settings)[0]


def list_documents(
    engine: Engine, tenant: str, kind: DocumentKind, *, settings: Settings | None = None
) -> list[DocumentInfo]:
    """The shipped documents of ``kind`` and the tenant's (newest version of each name).

    A stored document with a shipped name is listed as well as the shipped one; jobs use the
    stored one. Sorted by name, stored before shipped.
    """
    settings = settings or get_settings()
    latest: dict[str, StoredDocumentRow] = {}
    for row in _rows(engine, tenant, kind):
        latest.setdefault(row.name, row)
    # Listing shows what is stored even if the policy has since tightened; using it is refused.
    stored = [_info(row, settings, check_policy=False) for row in latest.values()]
    out = stored + _shipped(kind, settings)
    return sorted(out, key=lambda d: (d.name, d.source != "stored"))


def get_document(
    engine: Engine,
    tenant: str,
    kind: DocumentKind,
    name: str,
    *,
    settings: Settings | None = None,
    check_policy: bool = True,
) -> tuple[DocumentInfo, list[DocumentInfo]]:
    """The document a job naming ``name`` would use, and every stored version (newest first).

    ``name`` may be ``name@version`` for one exact version. ``check_policy=False`` reads a
    stored panel the current policy would refuse (to show it, never to run it).

    Raises
    ------
    UnknownDocumentError
        Neither the tenant nor the server has it (another tenant's documents do not count).
    """
    settings = settings or get_settings()
    base, _, version = name.partition("@")
    versions = [_info(row, settings, check_policy) for row in _rows(engine, tenant, kind, base)]
    if version:
        exact = [v for v in versions if v.version == version]
        shipped = [s for s in _shipped(kind, settings) if s.name == base and s.version == version]
        found = exact or shipped
    else:
        found = versions[:1] or [s for s in _shipped(kind, settings) if s.name == base]
    if not found:
        raise UnknownDocumentError(
            f"no {kind} named {name!r} (stored for this tenant or shipped); list them with "
            f"GET /v1/{kind}s or store one with POST /v1/{kind}s"
        )
    return found[0], versions


def resolve_rubrics(
    engine: Engine,
    tenant: str,
    rubrics_by_kind: Mapping[str, str] | None,
    kinds: Iterable[str],
) -> dict[str, Rubric]:
    """The rubric for each outcome kind of a job.

    Parameters
    ----------
    rubrics_by_kind
        ``{kind: rubric name}`` from the job request (``name`` or ``name@version``); kinds not
        named use :data:`DEFAULT_RUBRICS`.
    kinds
        The outcome kinds to resolve (those of the job's outcomes); kinds in ``rubrics_by_kind``
        are resolved too, so a bad name fails when the job is created.

    Raises
    ------
    UnknownDocumentError
        A name that is neither stored for the tenant nor shipped, or an unknown kind.
    DocumentError
        A rubric whose ``kind`` is not the kind it was named for.
    """
    chosen = dict(rubrics_by_kind or {})
    wanted = list(dict.fromkeys([*kinds, *chosen]))
    out: dict[str, Rubric] = {}
    for kind in wanted:
        if kind not in DEFAULT_RUBRICS:
            raise UnknownDocumentError(
                f"unknown outcome kind {kind!r} in rubrics; use {', '.join(DEFAULT_RUBRICS)}"
            )
        name = chosen.get(kind) or DEFAULT_RUBRICS[kind]
        _check_name(name, "rubric")
        info, _ = get_document(engine, tenant, "rubric", name)
        rubric = info.document
        assert isinstance(rubric, Rubric)
        if rubric.kind != kind:
            raise DocumentError(
                f"rubric {name!r} is for {rubric.kind} outcomes, not {kind}; name a "
                f"{kind} rubric (e.g. {DEFAULT_RUBRICS[kind]})"
            )
        out[kind] = rubric
    return out


def resolve_panel(
    engine: Engine, tenant: str, name: str | None = None, *, settings: Settings | None = None
) -> Panel:
    """The panel a job naming ``name`` uses (default ``"default"``).

    The tenant's stored panel of that name (newest version), else for ``default`` the server's
    default panel (:func:`judge.panel_loader.default_panel`). Stored panels are re-checked
    against the current policy (:func:`check_panel_policy`).

    Raises
    ------
    UnknownDocumentError
        No such panel for this tenant.
    DocumentError
        The stored panel is no longer allowed (the allowlist changed).
    """
    settings = settings or get_settings()
    name = name or "default"
    _check_name(name, "panel")
    info, _ = get_document(engine, tenant, "panel", name, settings=settings)
    panel = info.document
    assert isinstance(panel, Panel)
    return panel


def _check_name(name: str, kind: DocumentKind) -> None:
    # Names only: a path ("../x.yaml") must never reach the file loaders.
    base, _, version = name.partition("@")
    ok = (
        0 < len(base) <= _NAME_CHARS
        and all(c.isalnum() or c in "-_.:" for c in base)
        and base[0].isalnum()
        and all(c in "0123456789abcdef" for c in version)
    )
    if not ok:
        raise UnknownDocumentError(
            f"{kind} {name!r} is not a {kind} name; use a name such as "
            f"{'support-resolution' if kind == 'rubric' else 'default'} (optionally name@version)"
        )

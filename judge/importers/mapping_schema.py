"""The declarative mapping format: where a help desk keeps ticket id, messages, authors, times,
status, CSAT and reopens (a small YAML file; ``judge convert --mapping FILE``).

Paths are dotted (``stats.resolved_at``, ``_embedded.threads``, ``senders.0.actorId``); an empty
path is the object itself. Shipped mappings (``judge/importers/mappings/*.yaml``) cover Freshdesk,
Help Scout, Gorgias, Salesforce (Case with CaseComments and EmailMessages), Front and HubSpot;
``--mapping freshdesk`` picks one by name. A mapping file is validated like a rubric: every
problem names the file, line and field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judge.yamlsafe import LocatedError, display_path, load_yaml, validation_problems

Scalar = str | int | float | bool | None
TimeFormat = Literal["iso", "unix", "unix_ms"]
MAPPINGS_DIR = Path(__file__).parent / "mappings"


class MappingError(LocatedError):
    """A mapping file that cannot be used; the message names file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """A test on one field: true when its value is one of ``values``.

    ``values`` are compared as given and as strings, so ``[true]`` matches ``true`` and ``2``
    matches ``2`` or ``"2"``; with ``prefix: true`` a string value matches when it starts with
    one of them (HubSpot actor ids: ``B-`` bots, ``S-`` system).
    """

    path: str
    values: list[Scalar] = Field(min_length=1)
    prefix: bool = False

    def holds(self, value: Any) -> bool:
        if self.prefix:
            return isinstance(value, str) and value.startswith(tuple(str(v) for v in self.values))
        return listed(value, self.values)


def listed(value: Any, values: list[Scalar]) -> bool:
    """Whether ``value`` is one of ``values``, as itself or as text (ids come as either), but
    never a number for a boolean: ``1 == True`` in Python, and an ``incoming: 1`` must not pass
    for a listed ``true``.

    >>> listed(True, [True]), listed(1, [True]), listed("42", [42]), listed(0, [False])
    (True, False, True, False)
    """
    for allowed in values:
        if isinstance(allowed, bool) or isinstance(value, bool):
            if value is allowed:
                return True
        elif value == allowed or str(value) == str(allowed):
            return True
    return False


class RoleRule(_Strict):
    """Which field says customer or agent, and the values of each; any other value is an error."""

    path: str
    customer: list[Scalar] = Field(min_length=1)
    agent: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> RoleRule:
        both = {str(v) for v in self.customer} & {str(v) for v in self.agent}
        if both:
            raise ValueError(f"values {sorted(both)} are listed as both customer and agent")
        return self


class PublicRule(_Strict):
    """Which field says a message is public; ``private`` lists the values of an internal note."""

    path: str
    private: list[Scalar] = Field(min_length=1)


class MessageSource(_Strict):
    """One list of messages inside a ticket record (several lists are merged by time)."""

    path: str = Field(description="where the list sits in the ticket record")
    text: str = Field(description="the message text, within a message")
    html: bool = Field(default=False, description="the text is HTML (converted to plain text)")
    author: str | None = Field(default=None, description="author id")
    author_name: str | None = None
    author_email: str | None = None
    at: str | None = Field(default=None, description="when it was written")
    role: RoleRule | Literal["customer", "agent"]
    public: PublicRule | bool | None = Field(
        default=None, description="a rule, or false when every message of the list is internal"
    )
    only: list[Match] = Field(default_factory=list, description="keep messages matching all")
    ai: Match | None = Field(default=None, description="an agent message written by AI")
    automation: Match | None = Field(default=None, description="written by automation")
    staff: Match | None = Field(
        default=None,
        description="written by the team (an agent, an integration): never the customer's",
    )
    skip: list[Match] = Field(default_factory=list, description="messages that are not messages")


class Opening(_Strict):
    """A field of the ticket itself that opens the conversation (e.g. a description)."""

    text: str
    html: bool = False
    author: str | None = None
    at: str | None = None
    role: Literal["customer", "agent", "system"] = "customer"


class Mapping(_Strict):
    """A help desk's export described declaratively (see the module docstring)."""

    name: str = Field(min_length=1, max_length=100)
    vendor: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1, description="the API reference the shape follows")
    records: str = Field(default="", description="where the ticket list sits in each value")
    id: str
    id_prefix: str = ""
    time: TimeFormat = "iso"
    created_at: str | None = None
    opening: Opening | None = None
    messages: list[MessageSource] = Field(min_length=1)
    status: str | None = None
    status_map: dict[str, str] = Field(default_factory=dict)
    closed_statuses: list[str] = Field(default_factory=list)
    closed_at: str | None = None
    reopened_at: str | None = None
    reopens: str | None = None
    csat: str | None = None
    csat_map: dict[str, int] = Field(default_factory=dict)
    resolution_state: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict, description="name -> path")

    @model_validator(mode="after")
    def _closing(self) -> Mapping:
        if self.closed_at and not self.status:
            raise ValueError("closed_at needs status and closed_statuses to know when it applies")
        if any(not 1 <= v <= 5 for v in self.csat_map.values()):
            raise ValueError("csat_map values must be CSAT scores from 1 to 5")
        return self

    def ticket_keys(self) -> set[str]:
        """Top-level ticket keys the mapping reads (for the report's fields not mapped)."""
        paths = [self.id, self.created_at, self.status, self.closed_at, self.reopened_at]
        paths += [self.reopens, self.csat, self.resolution_state, *self.metadata.values()]
        paths += [m.path for m in self.messages]
        if self.opening is not None:
            paths += [self.opening.text, self.opening.author, self.opening.at]
        return {p.split(".")[0] for p in paths if p}

    def message_keys(self, source: MessageSource) -> set[str]:
        paths = [source.text, source.author, source.author_name, source.author_email, source.at]
        rules = [source.role, source.public, source.ai, source.automation, source.staff]
        rules += source.skip
        for rule in (*rules, *source.only):
            if isinstance(rule, RoleRule | PublicRule | Match):
                paths.append(rule.path)
        return {p.split(".")[0] for p in paths if p}


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped with the package."""
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(name_or_path: str | os.PathLike[str]) -> Mapping:
    """Load a shipped mapping by name (``freshdesk``) or a mapping file by path.

    Raises
    ------
    MappingError
        Unknown name (the shipped ones are listed), unreadable YAML, or an invalid mapping, with
        the file, line and field of every problem.

    Examples
    --------
    >>> load_mapping("freshdesk").vendor
    'freshdesk'
    """
    text = str(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and os.sep not in text and not text.endswith((".yaml", ".yml")):
        if text not in shipped_mappings():
            raise MappingError.single(
                text,
                "no such mapping file, and not a shipped mapping "
                f"({', '.join(shipped_mappings())})",
            )
        path = MAPPINGS_DIR / f"{text}.yaml"
    shown = display_path(path)
    if not path.is_file():
        raise MappingError.single(shown, "no such mapping file")
    try:
        data, marks = load_yaml(path)
    except LocatedError as exc:
        raise MappingError.from_error(exc) from exc
    if not isinstance(data, dict):
        raise MappingError.single(shown, "a mapping file must be a YAML mapping (key: value)")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc.errors(), data, marks, shown)
        raise MappingError(problems) from exc

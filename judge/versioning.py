"""Content-hash versions for rubrics and panels: ``name@version``, where the version is a hash of
the normalised content, so comments, key order and layout never change it and meaning always does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar, Self

from pydantic import BaseModel, computed_field


class ContentVersioned(BaseModel):
    """Base of frozen models versioned by the SHA-256 of their content (cached once computed)."""

    version_digits: ClassVar[int] = 7
    #: Fields added after versions were first recorded: left out of the hash while they hold
    #: their default, so content that does not use them keeps its version.
    version_omit_defaults: ClassVar[frozenset[str]] = frozenset()
    name: str

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy, forgetting the cached version so a changed copy is hashed anew."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("version", None)
        copy.__dict__.pop("ref", None)
        return copy

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def version(self) -> str:
        """The first ``version_digits`` hex digits of the SHA-256 of the normalised content."""
        content = self.model_dump(mode="json", exclude={"version", "ref"})
        for key in self.version_omit_defaults:
            field = type(self).model_fields[key]
            if getattr(self, key) == field.get_default(call_default_factory=True):
                content.pop(key, None)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[: self.version_digits]

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

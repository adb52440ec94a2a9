"""Safe, located YAML loading for rubric and panel files.

:func:`load_yaml` (a file) and :func:`load_yaml_text` (text, e.g. a document posted through the
API) parse with PyYAML's ``SafeLoader`` machinery but compose the node tree themselves, so they
know the line and column of every mapping key and sequence item, and they refuse what a
configuration file never needs and an attacker might use:

- anchors and aliases (the "billion laughs" expansion bomb), and merge keys (``<<``);
- explicit tags other than the core ones (``!!python/object``, ``!!binary``, ``!custom`` ...);
- duplicate mapping keys (PyYAML silently keeps the last one);
- documents over :data:`MAX_BYTES`, files that are not UTF-8, control characters, and nesting
  deeper than :data:`MAX_DEPTH`;
- more than one YAML document.

Every refusal is a :class:`YamlError` naming the file (or the text's label) and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64
_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))

Loc = tuple[str | int, ...]
# YAML 1.1 printable set (what PyYAML's reader accepts), so refusals can name the line.
_NOT_PRINTABLE = re.compile(
    r"[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


class Mark(NamedTuple):
    """A 1-based position in a file."""

    line: int
    column: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (path, line, column, field) and what (message)."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f" line {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class LocatedError(Exception):
    """One or more :class:`Problem` in a file; ``path``/``line``/``field`` are the first one's.

    ``str(error)`` lists every problem, one per line, as
    ``"rubrics/x.yaml line 14, field 'criteria[2].scale.max': Input should be a valid number"``.
    """

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("a LocatedError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.path = first.path
        self.line = first.line
        self.column = first.column
        self.field = first.field
        self.message = first.message
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(
        cls,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> Self:
        return cls([Problem(path, message, line, column, field)])

    @classmethod
    def from_error(cls, other: LocatedError) -> Self:
        """Re-raise another located error's problems as this (sub)class."""
        return cls(other.problems)


class YamlError(LocatedError):
    """The file could not be read as safe YAML (syntax, size, encoding or a refused construct)."""


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when it lies below it, else as given.

    >>> display_path("rubrics/x.yaml")
    'rubrics/x.yaml'
    """
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def format_loc(loc: Loc) -> str:
    """``("criteria", 2, "scale", "max")`` -> ``"criteria[2].scale.max"``.

    >>> format_loc(("criteria", 2, "scale", "max"))
    'criteria[2].scale.max'
    >>> format_loc(())
    ''
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def nearest_mark(marks: dict[Loc, Mark], loc: Loc) -> Mark | None:
    """The mark of ``loc`` or of its longest prefix that has one (a missing key -> its parent)."""
    for end in range(len(loc), -1, -1):
        mark = marks.get(tuple(loc[:end]))
        if mark is not None:
            return mark
    return None


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, anchors, non-core tags and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(
                f"aliases (*{event.anchor}) are not allowed; write the value out in full",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(
                f"anchors (&{anchor}) are not allowed; write the value out in full",
                event.start_mark,
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent):
            tag = event.tag
            if tag is not None and tag not in ALLOWED_TAGS:
                shown = "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
                raise _Refused(
                    f"the tag {shown} is not allowed; use plain YAML values "
                    "(strings, numbers, booleans, lists, mappings)",
                    event.start_mark,
                )
        if isinstance(event, CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)


def _mark(node_mark: Any) -> Mark:
    return Mark(node_mark.line + 1, node_mark.column + 1)


def _yaml_error(shown: str, err: yaml.YAMLError) -> YamlError:
    if isinstance(err, yaml.composer.ComposerError) and "single document" in str(err.context):
        mark = err.problem_mark
        return YamlError.single(
            shown,
            "a file holds one YAML document, but a second one starts here ('---'); remove it",
            line=None if mark is None else mark.line + 1,
        )
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        message = f"invalid YAML: {problem}"
        ctx = err.context_mark
        if err.context and ctx is not None and mark is not None and ctx.line != mark.line:
            message += f" ({err.context} at line {ctx.line + 1}, column {ctx.column + 1})"
        if mark is None:
            return YamlError.single(shown, message)
        return YamlError.single(shown, message, line=mark.line + 1, column=mark.column + 1)
    if isinstance(err, yaml.reader.ReaderError):
        return YamlError.single(shown, f"invalid YAML: {err.reason} (character {err.character!r})")
    return YamlError.single(shown, f"invalid YAML: {err}")


def _construct(loader: _GuardedLoader, node: Node, loc: Loc, marks: dict[Loc, Mark]) -> Any:
    if isinstance(node, ScalarNode):
        if node.tag == _CORE + "timestamp":
            return node.value  # no model field wants a datetime; keep what the user wrote
        if node.tag == _CORE + "merge":
            raise _Refused("merge keys ('<<') are not allowed", node.start_mark)
        if node.tag not in ALLOWED_TAGS:
            raise _Refused(f"unsupported value type {node.tag}", node.start_mark)
        return loader.construct_object(node, deep=True)
    if isinstance(node, SequenceNode):
        items = []
        for i, child in enumerate(node.value):
            marks[(*loc, i)] = _mark(child.start_mark)
            items.append(_construct(loader, child, (*loc, i), marks))
        return items
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Refused("mapping keys must be plain values", key_node.start_mark)
            key = _construct(loader, key_node, loc, marks)
            if key in out:
                first = marks.get((*loc, key))
                where = f" (first on line {first.line})" if first else ""
                raise _Refused(f"duplicate key '{key}'{where}", key_node.start_mark)
            marks[(*loc, key)] = _mark(key_node.start_mark)
            out[key] = _construct(loader, value_node, (*loc, key), marks)
        return out
    raise _Refused(f"unsupported YAML node {type(node).__name__}", node.start_mark)


def read_yaml_file(path: str | os.PathLike[str]) -> str:
    """The text of a YAML file, refusing what cannot be a rubric or panel file.

    Parameters
    ----------
    path
        The file to read (at most :data:`MAX_BYTES` bytes of UTF-8; a byte order mark is dropped).

    Raises
    ------
    YamlError
        When the file is missing, a directory, unreadable, too large or not UTF-8.
    """
    shown = display_path(path)
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never read more than the limit from a huge file
    except FileNotFoundError:
        raise YamlError.single(shown, "no such file") from None
    except IsADirectoryError:
        raise YamlError.single(shown, "is a directory, not a YAML file") from None
    except OSError as err:
        raise YamlError.single(shown, f"cannot read the file: {err.strerror or err}") from None
    if len(raw) > MAX_BYTES:
        raise YamlError.single(
            shown, f"file is larger than {MAX_BYTES // 1024} KiB; rubric and panel files are small"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise YamlError.single(
            shown, f"not UTF-8 (byte 0x{raw[err.start]:02x}); save the file as UTF-8", line=line
        ) from None


def load_yaml_text(text: str, shown: str) -> tuple[Any, dict[Loc, Mark]]:
    """Parse one YAML document from text safely, with the position of every key and item.

    Parameters
    ----------
    text
        The YAML (at most :data:`MAX_BYTES` bytes once encoded as UTF-8; a leading byte order
        mark is dropped, as for files).
    shown
        The name problems carry as their ``path``: a file's display path, or a label such as
        ``"<rubric yaml>"`` for text that never was a file.

    Returns
    -------
    (data, marks)
        ``data`` is plain Python (dict, list, str, int, float, bool, None; ``None`` for an empty
        document). ``marks`` maps a location such as ``("criteria", 2, "scale", "max")`` to the
        1-based line and column where that key (or sequence item) starts; ``()`` is the document.

    Raises
    ------
    YamlError
        When the text is too large, holds a control character, is not valid YAML, or uses a
        refused construct (anchor, alias, merge key, non-core tag, duplicate key, deep nesting,
        several documents).

    Examples
    --------
    >>> data, marks = load_yaml_text("a: 1\\nb:\\n  - x\\n  - y\\n", "<yaml>")
    >>> data, marks[("b", 1)]
    ({'a': 1, 'b': ['x', 'y']}, Mark(line=4, column=5))
    >>> load_yaml_text("a: 1\\na: 2\\n", "<rubric yaml>")
    Traceback (most recent call last):
    ...
    judge.yamlsafe.YamlError: <rubric yaml> line 2: duplicate key 'a' (first on line 1)
    """
    # "surrogatepass": a lone surrogate (possible in text from JSON) must reach the
    # control-character check below and be refused there, not crash the size check.
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError.single(
            shown, f"larger than {MAX_BYTES // 1024} KiB; rubric and panel files are small"
        )
    text = text.removeprefix("\ufeff")
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise YamlError.single(
            shown, f"control character {bad.group()!r} is not allowed in YAML", line=line
        )

    loader = _GuardedLoader(text)
    marks: dict[Loc, Mark] = {(): Mark(1, 1)}
    try:
        root = loader.get_single_node()
        data = None if root is None else _construct(loader, root, (), marks)
    except _Refused as err:
        raise YamlError.single(
            shown, err.message, line=err.mark.line + 1, column=err.mark.column + 1
        ) from None
    except yaml.YAMLError as err:
        raise _yaml_error(shown, err) from None
    finally:
        loader.dispose()
    if root is not None:
        marks[()] = _mark(root.start_mark)
    return data, marks


def load_yaml(path: str | os.PathLike[str]) -> tuple[Any, dict[Loc, Mark]]:
    """Read one YAML file safely, with the position of every key and item.

    :func:`read_yaml_file` then :func:`load_yaml_text`, with problems naming the file's display
    path (:func:`display_path`).

    Raises
    ------
    YamlError
        When the file is missing, too large, not UTF-8, not valid YAML, or uses a refused construct
        (anchor, alias, merge key, non-core tag, duplicate key, deep nesting, several documents).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.yaml"
    >>> _ = f.write_text("a: 1\\nb:\\n  - x\\n  - y\\n")
    >>> data, marks = load_yaml(f)
    >>> data
    {'a': 1, 'b': ['x', 'y']}
    >>> marks[("b", 1)]
    Mark(line=4, column=5)
    """
    return load_yaml_text(read_yaml_file(path), display_path(path))


# -- pydantic validation errors -> located problems ---------------------------------------------

_MISMATCH = frozenset(
    {"literal_error", "model_type", "model_attributes_type", "dict_type", "is_instance_of"}
)
HINTS: dict[str, str] = {
    "scale": "scale must be 'binary' or a range such as {min: 1, max: 5}",
}


def _is_branch_tag(part: str | int, here: Any) -> bool:
    """A pydantic union-member label (``literal['binary']``, ``function-after[..., RangeScale]``,
    ``RangeScale``, or a discriminator value) rather than a key of the user's data."""
    if not isinstance(part, str):
        return False
    if isinstance(here, dict):
        if part in here:
            return False
        if here.get("kind") == part:
            return True
    return any(c in part for c in "[](") or part[:1].isupper()


def _child(here: Any, part: str | int) -> Any:
    if isinstance(here, dict):
        return here.get(part)
    if isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
        return here[part]
    return None


def _clean(loc: Loc, data: Any) -> tuple[Loc, Loc | None, str | None, Loc]:
    """Split a pydantic loc into (user loc, loc of the first union, its branch tag, rest)."""
    clean: list[str | int] = []
    here = data
    union_at: Loc | None = None
    tag: str | None = None
    rest: list[str | int] = []
    for part in loc:
        if _is_branch_tag(part, here):
            if union_at is None:
                union_at, tag = tuple(clean), str(part)
            continue
        clean.append(part)
        if union_at is not None:
            rest.append(part)
        here = _child(here, part)
    return tuple(clean), union_at, tag, tuple(rest)


def _message(error: Any) -> str:
    msg = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key (not part of the format; check the spelling)"
    if kind == "missing":
        return "required key is missing"
    value = error.get("input")
    if kind not in ("union", "value_error") and isinstance(value, str | int | float | bool):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        msg += f" (got {shown})"
    return msg


def validation_problems(
    errors: list[Any],
    data: Any,
    marks: dict[Loc, Mark],
    shown: str,
    *,
    locate: Any = None,
) -> list[Problem]:
    """Turn pydantic ``ValidationError.errors()`` into problems with the YAML line and field.

    Union noise is reduced: when one member of a union matches the value's shape, the other
    members' "wrong type" errors are dropped; when none matches, one error names the choices.
    ``locate(message, data) -> loc | None`` places errors raised by whole-model validators
    (pydantic reports those at the model's own location) on the offending key.
    """
    by_union: dict[Loc, dict[str, list[tuple[Loc, Loc, Any]]]] = {}
    plain: list[tuple[Loc, Any]] = []
    for error in errors:
        loc, union_at, tag, rest = _clean(tuple(error.get("loc", ())), data)
        if union_at is None or tag is None:
            plain.append((loc, error))
        else:
            by_union.setdefault(union_at, {}).setdefault(tag, []).append((loc, rest, error))
    for union_at, branches in by_union.items():

        def mismatch(items: list[tuple[Loc, Loc, Any]]) -> bool:
            return all(not rest and e.get("type") in _MISMATCH for _, rest, e in items)

        fitting = {t: items for t, items in branches.items() if not mismatch(items)}
        if fitting:
            for items in fitting.values():
                plain.extend((loc, e) for loc, _, e in items)
        else:
            last = union_at[-1] if union_at else ""
            hint = HINTS.get(str(last)) or " or ".join(
                _message(items[0][2]) for items in branches.values()
            )
            plain.append((union_at, {"msg": hint, "type": "union"}))

    problems: list[Problem] = []
    seen: set[tuple[Loc, str]] = set()
    for loc, error in plain:
        message = _message(error)
        if error.get("type") == "union_tag_invalid":
            loc = (*loc, "kind")
        if not loc and locate is not None:
            loc = tuple(locate(message, data) or ())
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        mark = nearest_mark(marks, loc)
        problems.append(
            Problem(
                shown,
                message,
                line=None if mark is None else mark.line,
                column=None if mark is None else mark.column,
                field=format_loc(loc) or None,
            )
        )
    return unique_problems(problems)


def unique_problems(problems: list[Problem]) -> list[Problem]:
    """Drop repeats (same line, field and message) and sort by position in the file."""
    seen: set[tuple[int | None, str | None, str]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (p.line, p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    out.sort(key=lambda p: (p.line or 0, p.column or 0))
    return out

"""Find, load and validate rubric YAML files, with errors that name the file, line and field.

A rubric is named (``support-resolution``: a file in :func:`shipped_rubrics_dir`) or given by path
(``rubrics/mine.yaml``); rubric text that never was a file (posted through the API) is validated
with :func:`parse_rubric_text`. Parsing goes through :func:`judge.yamlsafe.load_yaml_text` (no
anchors, tags, duplicate keys or oversize documents) and then the :class:`judge.rubric.Rubric`
model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from judge.rubric import Rubric
from judge.yamlsafe import (
    Loc,
    LocatedError,
    Problem,
    YamlError,
    display_path,
    format_loc,
    load_yaml_text,
    nearest_mark,
    read_yaml_file,
    unique_problems,
    validation_problems,
)

_PACKAGE_DIR = Path(__file__).resolve().parent

#: The shipped rubric each kind of outcome is verified with when none is named (``judge
#: verify`` without ``--rubric``, a job without ``rubrics``).
DEFAULT_RUBRICS: dict[str, str] = {
    "support_ticket": "support-resolution",
    "report": "report-accuracy",
}


class RubricError(LocatedError):
    """A rubric cannot be found or is invalid.

    Attributes ``path``, ``line``, ``field`` and ``message`` describe the first problem;
    ``problems`` lists them all (``str(error)`` prints one per line).
    """


def shipped_rubrics_dir() -> Path:
    """The directory of the rubrics that ship with outcome-judge.

    In a source or editable checkout this is the repository's ``rubrics/`` (next to
    ``pyproject.toml``); in an installed wheel it is the packaged copy ``judge/_shipped_rubrics``.

    >>> (shipped_rubrics_dir() / "support-resolution.yaml").is_file()
    True
    """
    repo = _PACKAGE_DIR.parent
    if (repo / "pyproject.toml").is_file() and (repo / "rubrics").is_dir():
        return repo / "rubrics"
    return _PACKAGE_DIR / "_shipped_rubrics"


def shipped_rubric_names() -> list[str]:
    """Names of the shipped rubrics, sorted (file stems in :func:`shipped_rubrics_dir`)."""
    directory = shipped_rubrics_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if p.is_file())


def _looks_like_path(value: str | os.PathLike[str]) -> bool:
    if not isinstance(value, str):
        return True
    return value.endswith((".yaml", ".yml")) or "/" in value or os.sep in value


def _locate(message: str, data: Any) -> Loc | None:
    """Place a whole-rubric validator error on the key it is about."""
    match = re.search(r"criterion id '([^']+)' appears twice", message)
    if match and isinstance(data, dict) and isinstance(data.get("criteria"), list):
        hits = [
            i
            for i, c in enumerate(data["criteria"])
            if isinstance(c, dict) and c.get("id") == match.group(1)
        ]
        if len(hits) > 1:
            return ("criteria", hits[1], "id")
    return None


def _extra_checks(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Checks on the raw data, so they are reported together with field errors (the model checks
    unique criterion ids only once every field is valid; it does not check signal rule ids)."""
    found: list[tuple[Loc, str]] = []
    for key, what in (("criteria", "criterion"), ("signals", "signal rule")):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        seen: set[str] = set()
        for i, item in enumerate(items):
            item_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(item_id, str):
                if item_id in seen:
                    found.append(((key, i, "id"), f"{what} id '{item_id}' appears twice"))
                seen.add(item_id)
    return found


def parse_rubric_text(
    text: str, *, shown: str = "<rubric yaml>", expect_name: str | None = None
) -> Rubric:
    """Validate rubric YAML text (e.g. posted through the API) with the rules of rubric files.

    Parameters
    ----------
    text
        The YAML document.
    shown
        The name every problem carries as its ``path`` (a file's display path, or a label).
    expect_name
        When given, the rubric's ``name`` must equal it (shipped files are named after the rubric).

    Raises
    ------
    RubricError
        With every problem found, each naming ``shown``, the line and the field.

    Examples
    --------
    >>> parse_rubric_text("name: x\\nkind: report\\n")
    Traceback (most recent call last):
    ...
    judge.rubric_loader.RubricError: <rubric yaml> line 1, field 'criteria': required key is missing
    """
    try:
        data, marks = load_yaml_text(text, shown)
    except YamlError as err:
        raise RubricError.from_error(err) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RubricError.single(
            shown,
            f"a rubric file must be a mapping with name, kind and criteria; found {got}",
            line=1,
        )
    problems: list[Problem] = []
    for loc, message in _extra_checks(data):
        mark = nearest_mark(marks, loc)
        line = None if mark is None else mark.line
        problems.append(Problem(shown, message, line=line, field=format_loc(loc)))
    rubric: Rubric | None = None
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as err:
        problems += validation_problems(err.errors(), data, marks, shown, locate=_locate)
    if rubric is not None and expect_name is not None and rubric.name != expect_name:
        mark = marks.get(("name",))
        problems.append(
            Problem(
                shown,
                f"name '{rubric.name}' does not match the file name; rename one to the other",
                line=None if mark is None else mark.line,
                field="name",
            )
        )
    if problems or rubric is None:
        raise RubricError(unique_problems(problems))
    return rubric


def parse_rubric_file(path: str | os.PathLike[str], *, expect_name: str | None = None) -> Rubric:
    """Load and validate one rubric file (any location).

    Parameters
    ----------
    path
        The YAML file.
    expect_name
        When given, the rubric's ``name`` must equal it (shipped files are named after the rubric).

    Raises
    ------
    RubricError
        With every problem found, each naming file, line and field.
    """
    try:
        text = read_yaml_file(path)
    except YamlError as err:
        raise RubricError.from_error(err) from None
    return parse_rubric_text(text, shown=display_path(path), expect_name=expect_name)


def load_rubric(name_or_path: str | os.PathLike[str]) -> Rubric:
    """Load a shipped rubric by name, or a rubric file by path.

    Parameters
    ----------
    name_or_path
        A shipped rubric name such as ``"support-resolution"``, or a path (anything ending in
        ``.yaml``/``.yml`` or containing a path separator, or a :class:`~pathlib.Path`).

    Raises
    ------
    RubricError
        Unknown name (the message lists the shipped names), missing file, or an invalid rubric.

    Examples
    --------
    >>> rubric = load_rubric("support-resolution")
    >>> rubric.kind, rubric.ref.startswith("support-resolution@")
    ('support_ticket', True)
    """
    if _looks_like_path(name_or_path):
        return parse_rubric_file(name_or_path)
    name = str(name_or_path)
    names = shipped_rubric_names()
    if name not in names:
        shipped = ", ".join(names) or "(none found in " + str(shipped_rubrics_dir()) + ")"
        raise RubricError.single(
            name,
            f"not a shipped rubric (shipped: {shipped}); to use your own rubric, "
            "pass the path of its YAML file, e.g. ./my-rubric.yaml",
        )
    return parse_rubric_file(shipped_rubrics_dir() / f"{name}.yaml", expect_name=name)


def list_rubrics() -> list[Rubric]:
    """Every shipped rubric, sorted by name.

    Raises
    ------
    RubricError
        When a shipped rubric file is invalid (a packaging bug, never silently skipped).

    >>> [r.name for r in list_rubrics()][:2]
    ['report-accuracy', 'support-resolution']
    """
    directory = shipped_rubrics_dir()
    return [
        parse_rubric_file(directory / f"{n}.yaml", expect_name=n) for n in shipped_rubric_names()
    ]

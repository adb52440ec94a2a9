"""Load and validate panel YAML files, and build the default panel from settings.

A panel file lists judges (LLM judges by litellm model string, or the local ``signals`` and
``learned`` judges), how their judgments are aggregated, and optional cascade stages. Files load
with :func:`load_panel`, text that never was a file (posted through the API) with
:func:`parse_panel_text`. Errors name the file (or the text's label), line and field, like rubric
errors (:mod:`judge.rubric_loader`).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.settings import Settings
from judge.panel import LearnedJudgeSpec, LLMJudgeSpec, Panel, SignalsJudgeSpec
from judge.yamlsafe import (
    Loc,
    LocatedError,
    Mark,
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

DEFAULT_ABSTAIN_BAND = (0.35, 0.65)
"""Default panels abstain (human review) when the mean P(verified) lies strictly inside."""

_LLM_FIELDS = frozenset(LLMJudgeSpec.model_fields)
_SECRET_KEYS = frozenset({"api_key", "apikey", "key", "token", "secret", "password"})
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")

EXPLAIN_LOCAL = (
    "No LLM judge is configured; using the local panel ({judges}). To add one: set "
    "OUTCOME_JUDGE_MODEL=openai/gpt-4o-mini (any litellm model string; local Ollama: "
    "OUTCOME_JUDGE_MODEL=ollama/llama3.1 OUTCOME_JUDGE_API_BASE=http://localhost:11434) "
    "or pass --panel panel.yaml (see examples/panel.yaml)."
)


class PanelError(LocatedError):
    """A panel file is invalid; ``problems`` lists every problem with file, line and field."""


_COVERED = ("judge names must be unique", "cascade names unknown judges", "quorum ")
"""Whole-panel validator messages that :func:`_pre_checks` reports with a precise location."""


def _locate(message: str, data: Any) -> Loc | None:
    """Place a remaining whole-panel validator error on the key it is about."""
    if isinstance(data, dict) and message.startswith("abstain_band") and "abstain_band" in data:
        return ("abstain_band",)
    return None


def _pre_checks(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Normalise judges (``kind`` defaults to ``llm``) and catch what the model lets through:
    secrets written into the file and misspelt LLM judge keys (which would pass to litellm)."""
    found: list[tuple[Loc, str]] = []
    judges = data.get("judges")
    if not isinstance(judges, list):
        return found
    names: list[str] = []
    for i, judge in enumerate(judges):
        if not isinstance(judge, dict):
            continue
        judge.setdefault("kind", "llm")  # LLM judges are written without a kind (DESIGN.md)
        name = judge.get("name", judge["kind"] if judge["kind"] != "llm" else None)
        if isinstance(name, str):
            if name in names:
                found.append((("judges", i, "name"), f"judge name '{name}' is used twice"))
            names.append(name)
        if judge.get("kind") not in ("llm", "guard"):
            continue
        for key in judge:
            if not isinstance(key, str) or key in _LLM_FIELDS:
                continue
            if key.lower() in _SECRET_KEYS or key.lower().endswith(("_key", "_token", "_secret")):
                found.append(
                    (
                        ("judges", i, key),
                        "do not write secrets into panel files; put the key in an environment "
                        "variable and name it with api_key_env (e.g. api_key_env: OPENAI_API_KEY)",
                    )
                )
                continue
            close = difflib.get_close_matches(key, sorted(_LLM_FIELDS), n=1, cutoff=0.8)
            if close:
                found.append(
                    (
                        ("judges", i, key),
                        f"unknown key (did you mean '{close[0]}'?); keys an LLM judge does not "
                        "define are passed to litellm as they are",
                    )
                )
    stages = data.get("cascade")
    for s, stage in enumerate(stages if isinstance(stages, list) else []):
        listed = stage.get("judges") if isinstance(stage, dict) else None
        for k, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in names:
                known = ", ".join(dict.fromkeys(names)) or "none"
                found.append(
                    (("cascade", s, "judges", k), f"no judge named '{name}' (judges: {known})")
                )
    quorum = data.get("quorum")
    if isinstance(quorum, int) and not isinstance(quorum, bool) and quorum > len(judges):
        found.append((("quorum",), f"quorum {quorum} exceeds the {len(judges)} judges"))
    return found


def _problem(shown: str, marks: dict[Loc, Mark], loc: Loc, message: str) -> Problem:
    mark = nearest_mark(marks, loc)
    return Problem(
        shown,
        message,
        line=None if mark is None else mark.line,
        column=None if mark is None else mark.column,
        field=format_loc(loc) or None,
    )


def _missing_models(data: dict[str, Any], marks: dict[Loc, Mark], shown: str) -> list[Problem]:
    judges = data.get("judges")
    found: list[Problem] = []
    for i, judge in enumerate(judges if isinstance(judges, list) else []):
        if not isinstance(judge, dict) or judge.get("kind") != "learned":
            continue
        path = judge.get("path")
        if isinstance(path, str) and path and not Path(path).is_file():
            found.append(
                _problem(
                    shown,
                    marks,
                    ("judges", i, "path"),
                    f"learned model file {path} does not exist (relative paths are relative to "
                    "the working directory); train one with `judge train` or fix the path",
                )
            )
    return found


def parse_panel_text(text: str, *, shown: str = "<panel yaml>", check_files: bool = False) -> Panel:
    """Validate panel YAML text (e.g. posted through the API) with the rules of panel files.

    Parameters
    ----------
    text
        The YAML document.
    shown
        The name every problem carries as its ``path`` (a file's display path, or a label).
    check_files
        Require each learned judge's ``path`` to exist. Off by default: text has no folder, and
        the server checks stored panels' learned paths against its own model instead
        (:func:`ledger.documents.check_panel_policy`).

    Relative paths (a learned judge's ``path``) are kept as written and mean the same for text as
    for a file: relative to the working directory of the process that uses the panel, never to a
    file's folder, so a panel's version is the same wherever its YAML came from.

    Raises
    ------
    PanelError
        With every problem found, each naming ``shown``, the line and the field.

    Examples
    --------
    >>> panel = parse_panel_text("name: quick\\njudges:\\n  - {name: mini, model: openai/m}\\n")
    >>> panel.name, panel.judges[0].kind
    ('quick', 'llm')
    """
    try:
        data, marks = load_yaml_text(text, shown)
    except YamlError as err:
        raise PanelError.from_error(err) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise PanelError.single(
            shown, f"a panel file must be a mapping with a 'judges' list; found {got}", line=1
        )
    problems = [_problem(shown, marks, loc, msg) for loc, msg in _pre_checks(data)]
    panel: Panel | None = None
    try:
        panel = Panel.model_validate(data)
    except ValidationError as err:
        errors = [
            e
            for e in err.errors()
            if e.get("loc") or not any(c in str(e.get("msg", "")) for c in _COVERED)
        ]
        problems += validation_problems(errors, data, marks, shown, locate=_locate)
    if check_files:
        problems += _missing_models(data, marks, shown)
    if problems or panel is None:
        raise PanelError(unique_problems(problems))
    return panel


def load_panel(path: str | os.PathLike[str], *, check_files: bool = True) -> Panel:
    """Load and validate a panel YAML file.

    Parameters
    ----------
    path
        The panel file.
    check_files
        Require each learned judge's ``path`` to exist. A relative ``path`` is relative to the
        working directory, like ``OUTCOME_JUDGE_LEARNED_MODEL_PATH``, not to the panel file's
        folder; it is kept as written, so the panel's version does not depend on where the file
        is loaded from (the same rule as :func:`parse_panel_text`).

    Raises
    ------
    PanelError
        With every problem found, each naming file, line and field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "panel.yaml"
    >>> _ = f.write_text("name: quick\\njudges:\\n  - {name: mini, model: openai/gpt-4o-mini}\\n")
    >>> panel = load_panel(f)
    >>> panel.judges[0].kind, panel.aggregation
    ('llm', 'majority')
    """
    try:
        text = read_yaml_file(path)
    except YamlError as err:
        raise PanelError.from_error(err) from None
    return parse_panel_text(text, shown=display_path(path), check_files=check_files)


def _judge_name(model: str) -> str:
    """A judge name from a litellm model string: ``openai/gpt-4o-mini`` -> ``gpt-4o-mini``.

    >>> _judge_name("openai/gpt-4o-mini"), _judge_name("ollama/llama3.1:8b"), _judge_name("//")
    ('gpt-4o-mini', 'llama3.1:8b', 'llm')
    """
    tail = model.rstrip("/").rsplit("/", 1)[-1]
    name = _NAME_CHARS.sub("-", tail).strip("-_.:")[:64]
    if not name or not name[0].isalnum() or name in {"signals", "learned"}:
        return "llm" if not name or not name[0].isalnum() else f"llm-{name}"[:64]
    return name


def default_panel(settings: Settings) -> tuple[Panel, str]:
    """The panel used when no ``--panel`` file is given, and a sentence saying what it is.

    - ``settings.model`` set (``OUTCOME_JUDGE_MODEL``): panel ``default`` = one LLM judge on that
      model (``api_base`` from ``OUTCOME_JUDGE_API_BASE``, weight 2) plus the signals judge
      (weight 1; it votes only on a decisive signal such as a reopen or a confirmation).
    - otherwise: panel ``local`` = the signals judge, plus the learned judge when
      ``settings.learned_model_path`` exists.

    Both aggregate with ``mean`` (weighted mean of the voters' P(verified)) and abstain, i.e.
    send to human review instead of auto-verifying, when it lies inside
    :data:`DEFAULT_ABSTAIN_BAND`.

    Examples
    --------
    >>> from config.settings import Settings
    >>> panel, why = default_panel(Settings(learned_model_path="/nonexistent/model.joblib"))
    >>> panel.name, [j.kind for j in panel.judges]
    ('local', ['signals'])
    >>> why.startswith("No LLM judge is configured; using the local panel (signals).")
    True
    """
    if settings.model:
        llm = LLMJudgeSpec(
            name=_judge_name(settings.model),
            model=settings.model,
            api_base=settings.api_base,
            weight=2.0,
        )
        panel = Panel(
            name="default",
            judges=[llm, SignalsJudgeSpec(kind="signals")],
            aggregation="mean",
            abstain_band=DEFAULT_ABSTAIN_BAND,
        )
        where = f" at {settings.api_base}" if settings.api_base else ""
        return panel, (
            f"Using the default panel: LLM judge {settings.model}{where} (from "
            "OUTCOME_JUDGE_MODEL) plus the signals judge. Pass --panel panel.yaml for another "
            "panel (see examples/panel.yaml)."
        )
    judges: list[SignalsJudgeSpec | LearnedJudgeSpec] = [SignalsJudgeSpec(kind="signals")]
    if settings.learned_model_path.is_file():
        judges.append(LearnedJudgeSpec(kind="learned", path=settings.learned_model_path))
    panel = Panel(
        name="local",
        judges=list(judges),
        aggregation="mean",
        abstain_band=DEFAULT_ABSTAIN_BAND,
    )
    return panel, EXPLAIN_LOCAL.format(judges=", ".join(j.name for j in judges))

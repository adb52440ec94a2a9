"""Shipped rubrics, rubric YAML loading with located errors, and `judge rubrics ...`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from judge.rubric_loader import (
    RubricError,
    list_rubrics,
    load_rubric,
    parse_rubric_file,
    shipped_rubrics_dir,
)
from judge.yamlsafe import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "rubrics" / "support-resolution.yaml"

MINIMAL = """\
name: tiny
kind: support_ticket
criteria:
  - id: answered
    question: Was the question answered?
"""


def write(tmp_path: Path, text: str, name: str = "rubric.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path) -> RubricError:
    with pytest.raises(RubricError) as info:
        parse_rubric_file(path)
    return info.value


# -- shipped rubrics -----------------------------------------------------------------------------


def test_shipped_dir_is_the_repository_rubrics_in_a_checkout() -> None:
    assert shipped_rubrics_dir() == ROOT / "rubrics"


def test_every_shipped_rubric_loads_and_is_named_after_its_file() -> None:
    rubrics = list_rubrics()
    files = sorted(p.stem for p in (ROOT / "rubrics").glob("*.yaml"))
    assert [r.name for r in rubrics] == files
    assert {"support-resolution", "report-accuracy"} <= set(files)
    for r in rubrics:
        assert re.fullmatch(r"[0-9a-f]{7}", r.version)
        assert r.ref == f"{r.name}@{r.version}"
        assert r.citation, f"{r.name} must say where its definition comes from"


def test_support_resolution_has_the_gates_design_requires() -> None:
    r = load_rubric("support-resolution")
    assert r.kind == "support_ticket"
    gates = {c.id for c in r.criteria if c.gate}
    assert gates == {
        "request_understood",
        "answer_correct",
        "all_questions_handled",
        "customer_not_failed",
    }
    human = r.criterion("no_human_intervention")
    assert not human.gate and human.weight == 0  # decides the tier, never the verdict
    assert r.decision.require_gates
    assert r.window_hours == 72


def _rules(rubric_name: str) -> dict[tuple[str, object], tuple[str, str | None]]:
    out: dict[tuple[str, object], tuple[str, str | None]] = {}
    for rule in load_rubric(rubric_name).signals:
        ((key, value),) = rule.when.model_dump(exclude_unset=True).items()
        out[(key, value)] = (rule.effect, rule.tier)
    return out


def test_support_resolution_signal_rules() -> None:
    assert _rules("support-resolution") == {
        ("reopened_within_hours", 72): ("not_verified", None),
        ("csat_at_most", 3): ("not_verified", None),
        ("escalated", True): ("not_verified", None),
        ("recontact_within_hours", 72): ("not_verified", None),
        ("customer_confirmed", False): ("not_verified", None),
        ("customer_reports_failure", True): ("abstain", None),
        ("human_touch", True): ("tier", "assisted"),
        ("customer_confirmed", True): ("tier", "confirmed"),
    }


def test_support_resolution_cites_the_vendor_and_benchmark_definitions() -> None:
    text = " ".join(load_rubric("support-resolution").citation)
    for source in ("Zendesk", "Intercom", "assumed resolution", "tau-bench", "2406.12045"):
        assert source in text


def test_report_accuracy_gates_and_sections_scale() -> None:
    r = load_rubric("report-accuracy")
    assert r.kind == "report"
    assert {c.id for c in r.criteria if c.gate} == {
        "numbers_match_sources",
        "claims_supported",
        "citations_support_claims",
        "brief_answered",
    }
    sections = r.criterion("required_sections")
    assert not sections.gate and sections.bounds == (1.0, 5.0)


def test_report_accuracy_threshold_makes_sections_matter() -> None:
    # With every gate passing, the weighted normalised score must reach the threshold exactly
    # when required_sections reaches its own pass mark (3 of 5), as the file's comment says.
    r = load_rubric("report-accuracy")
    sections = r.criterion("required_sections")
    total = sum(c.weight for c in r.criteria)
    for score in (1, 2, 3, 4, 5):
        weighted = sum(
            c.weight * (c.normalise(score) if c is sections else 1.0) for c in r.criteria
        )
        assert (weighted / total >= r.decision.threshold) == sections.passes(score)


def test_shipped_criteria_have_steps_and_examples_inside_their_scale() -> None:
    for r in list_rubrics():
        for c in r.criteria:
            assert c.evaluation_steps, f"{r.name}.{c.id} needs evaluation_steps"
            assert 1 <= len(c.examples) <= 2, f"{r.name}.{c.id} needs one or two examples"
            lo, hi = c.bounds
            for ex in c.examples:
                assert lo <= ex.score <= hi, f"{r.name}.{c.id}: example score {ex.score}"


def test_name_and_path_give_the_same_rubric(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    shutil.copy(SUPPORT, copy)
    assert load_rubric(str(copy)).version == load_rubric("support-resolution").version
    assert load_rubric(copy).version == load_rubric("support-resolution").version


def test_unknown_name_lists_the_shipped_rubrics() -> None:
    with pytest.raises(RubricError) as info:
        load_rubric("support-resolutoin")
    assert "support-resolution" in str(info.value)
    assert "report-accuracy" in str(info.value)


def test_missing_path_is_an_error() -> None:
    with pytest.raises(RubricError, match="no such file"):
        load_rubric("nowhere/rubric.yaml")


# -- versions -------------------------------------------------------------------------------------


def test_version_ignores_comments_key_order_and_layout(tmp_path: Path) -> None:
    original = load_rubric("support-resolution")
    data = yaml.safe_load(SUPPORT.read_text(encoding="utf-8"))
    reordered = dict(reversed(list(data.items())))
    reordered["criteria"] = [dict(reversed(list(c.items()))) for c in data["criteria"]]
    text = "# a different comment\n" + yaml.safe_dump(reordered, sort_keys=False, indent=4)
    assert load_rubric(write(tmp_path, text)).version == original.version
    flow = json.dumps(data)  # JSON is YAML: same content, entirely different layout
    assert load_rubric(write(tmp_path, flow, "flow.yaml")).version == original.version


def test_explicit_defaults_do_not_change_the_version(tmp_path: Path) -> None:
    plain = load_rubric(write(tmp_path, MINIMAL))
    explicit = MINIMAL.replace(
        "    question: Was the question answered?\n",
        "    question: Was the question answered?\n    weight: 1.0\n    gate: false\n"
        "    scale: binary\n",
    )
    assert load_rubric(write(tmp_path, explicit, "b.yaml")).version == plain.version


@pytest.mark.parametrize(
    "change",
    [
        ("question: Was the question answered?", "question: Was the question fully answered?"),
        ("question: Was the question answered?", "question: Was it answered?\n    gate: true"),
        ("kind: support_ticket", "kind: report"),
        ("criteria:", "decision: {threshold: 0.9}\ncriteria:"),
        ("criteria:", "window_hours: 48\ncriteria:"),
        ("criteria:", "citation: [somewhere]\ncriteria:"),
    ],
)
def test_any_semantic_change_gives_a_new_version(tmp_path: Path, change: tuple[str, str]) -> None:
    before = load_rubric(write(tmp_path, MINIMAL)).version
    after = load_rubric(write(tmp_path, MINIMAL.replace(*change), "changed.yaml")).version
    assert after != before


# -- invalid files: file, line and field ----------------------------------------------------------

CRITERIA_HEAD = "name: bad\nkind: support_ticket\ncriteria:\n"


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (  # bad scale: max is not a number
            "  - id: a\n    question: q\n    scale: {min: 1, max: ten}\n",
            6,
            "criteria[0].scale.max",
            "valid number",
        ),
        (  # bad scale: unknown word
            "  - id: a\n    question: q\n    scale: binay\n",
            6,
            "criteria[0].scale",
            "'binary' or a range",
        ),
        (  # bad scale: min above max
            "  - id: a\n    question: q\n    scale:\n      min: 5\n      max: 1\n",
            6,
            "criteria[0].scale",
            "must be below max",
        ),
        (  # unknown key
            "  - id: a\n    question: q\n    gaet: true\n",
            6,
            "criteria[0].gaet",
            "unknown key",
        ),
        (  # duplicate criterion id: the second one is reported
            "  - id: a\n    question: q\n  - id: b\n    question: q\n  - id: a\n    question: q\n",
            8,
            "criteria[2].id",
            "criterion id 'a' appears twice",
        ),
        (  # missing question: reported at the criterion
            "  - id: a\n    question: q\n  - id: b\n    weight: 2\n",
            6,
            "criteria[1].question",
            "required key is missing",
        ),
        (  # wrong type
            "  - id: a\n    question: q\n    weight: heavy\n",
            6,
            "criteria[0].weight",
            "'heavy'",
        ),
        (  # bad id
            "  - id: Has Spaces\n    question: q\n",
            4,
            "criteria[0].id",
            "should match pattern",
        ),
    ],
)
def test_invalid_rubric_names_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    err = error_for(write(tmp_path, CRITERIA_HEAD + body))
    assert (err.line, err.field) == (line, field), str(err)
    assert message in err.message
    assert f"rubric.yaml line {line}, field '{field}': {err.message}" in str(err)


def test_top_level_and_signal_rule_errors(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "treshold: 0.8\n"  # line 6
        + "signals:\n"
        + "  - id: r\n"  # line 8
        + "    when: {csat_at_most: 9}\n"  # line 9
        + "    effect: not_verified\n"
        + "  - id: r\n"  # line 11
        + "    when: {escalated: true}\n"
        + "    effect: veto\n"  # line 13
    )
    err = error_for(write(tmp_path, text))
    found = {(p.line, p.field) for p in err.problems}
    assert found == {
        (6, "treshold"),
        (9, "signals[0].when.csat_at_most"),
        (11, "signals[1].id"),
        (13, "signals[1].effect"),
    }


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    body = (
        "  - id: a\n    question: q\n    scale: {min: 1, max: ten}\n"  # line 6
        "  - id: b\n    weight: -1\n"  # lines 7-8
    )
    err = error_for(write(tmp_path, CRITERIA_HEAD + body))
    assert [(p.line, p.field) for p in err.problems] == [
        (6, "criteria[0].scale.max"),
        (7, "criteria[1].question"),
        (8, "criteria[1].weight"),
    ]
    assert len(str(err).splitlines()) == 3


def test_tier_rule_without_tier(tmp_path: Path) -> None:
    text = MINIMAL + "signals:\n  - id: t\n    when: {human_touch: true}\n    effect: tier\n"
    err = error_for(write(tmp_path, text))
    assert (err.line, err.field) == (7, "signals[0]")
    assert "needs a 'tier'" in err.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\ncriteria:\n  - id: a\n    question: [unclosed\n", 5, "invalid YAML"),
        ("name: x\nkind: report\n  bad indent: 1\n", 3, "invalid YAML"),
        ("name: x\nname: y\n", 2, "duplicate key 'name' (first on line 1)"),
        ("name: x\ncriteria: !!python/object:os.system ls\n", 2, "!!python/object"),
        ("name: x\ncriteria: !!python/object/apply:os.system [ls]\n", 2, "not allowed"),
        ("name: x\nkind: !custom report\n", 2, "tag !custom is not allowed"),
        ("a: &a [x, x]\nb: *a\n", 1, "anchors (&a) are not allowed"),
        ("name: x\n---\nname: y\n", 2, "one YAML document"),
        ("x: {<<: {a: 1}}\n", 1, "merge keys"),
        ("name: x\ndescription: 'tab ok\tbell \x07'\n", 2, "control character"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    err = error_for(write(tmp_path, text))
    assert err.line == line, str(err)
    assert message in err.message
    assert err.path == "rubric.yaml" or err.path.endswith("rubric.yaml")


def test_billion_laughs_is_refused_before_any_expansion(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    err = error_for(write(tmp_path, "\n".join(lines) + "\n"))
    assert err.line == 1 and "anchors" in err.message


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "description: " + "x" * MAX_BYTES + "\n"
    err = error_for(write(tmp_path, text))
    assert "larger than 256 KiB" in err.message


def test_non_utf8_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_bytes(MINIMAL.encode() + b"description: caf\xe9\n")
    err = error_for(path)
    assert err.line == 6 and "not UTF-8" in err.message


def test_utf8_with_bom_and_non_ascii_text_loads(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (MINIMAL + "description: café ✓\n").encode())
    assert parse_rubric_file(path).description == "café ✓"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_a_rubric_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    err = error_for(write(tmp_path, text))
    assert err.line == 1 and "must be a mapping" in err.message


def test_dates_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "description: 2026-03-01\n")
    assert parse_rubric_file(path).description == "2026-03-01"


# -- CLI ----------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_list() -> None:
    result = runner.invoke(app, ["rubrics", "list"])
    assert result.exit_code == 0, result.output
    assert "support-resolution" in result.stdout and "report-accuracy" in result.stdout
    assert load_rubric("support-resolution").version in result.stdout

    result = runner.invoke(app, ["rubrics", "list", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["support-resolution"]["gates"] == [
        "request_understood",
        "answer_correct",
        "all_questions_handled",
        "customer_not_failed",
    ]
    assert rows["report-accuracy"]["criteria"] == 5


def test_cli_show_json_round_trips_to_the_same_version() -> None:
    result = runner.invoke(app, ["rubrics", "show", "support-resolution", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ref"] == load_rubric("support-resolution").ref
    assert data["signals"][0]["when"] == {"reopened_within_hours": 72}
    assert data["citation"]


def test_cli_show_table_mentions_gates_rules_and_citation() -> None:
    result = runner.invoke(app, ["rubrics", "show", "support-resolution"])
    assert result.exit_code == 0, result.output
    for text in ("answer_correct", "gate", "tier assisted", "Zendesk", "72"):
        assert text in result.stdout


def test_cli_show_unknown_name_fails() -> None:
    result = runner.invoke(app, ["rubrics", "show", "nope"])
    assert result.exit_code == 2
    assert "support-resolution" in result.stderr


def test_cli_validate(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL, "good.yaml")
    bad = write(tmp_path, CRITERIA_HEAD + "  - id: a\n    question: q\n    scale: {min: 1}\n")
    ok = runner.invoke(app, ["rubrics", "validate", str(good), str(SUPPORT)])
    assert ok.exit_code == 0, ok.output
    assert "tiny@" in ok.stdout

    result = runner.invoke(app, ["rubrics", "validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert "line 6, field 'criteria[0].scale.max': required key is missing" in result.stderr
    assert "1 of 2 rubric file(s) invalid" in result.stderr

    missing = runner.invoke(app, ["rubrics", "validate", str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_installed_wheel_uses_the_packaged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wheel has site-packages/judge/_shipped_rubrics (pyproject force-include) and no
    # pyproject.toml next to the package; a stray site-packages/rubrics must not be used.
    package = tmp_path / "site-packages" / "judge"
    shutil.copytree(ROOT / "rubrics", package / "_shipped_rubrics")
    (tmp_path / "site-packages" / "rubrics").mkdir()
    monkeypatch.setattr("judge.rubric_loader._PACKAGE_DIR", package)
    assert shipped_rubrics_dir() == package / "_shipped_rubrics"
    assert (
        load_rubric("report-accuracy").version
        == parse_rubric_file(ROOT / "rubrics" / "report-accuracy.yaml").version
    )


def test_rubric_text_is_capped_because_it_goes_into_every_prompt() -> None:
    from judge.rubric_loader import parse_rubric_text

    question = "Was it solved? " + "x" * 1000
    head = "name: long\nkind: support_ticket\ncriteria:\n"
    text = f"{head}  - id: solved\n    question: {question}\n"
    with pytest.raises(RubricError) as caught:
        parse_rubric_text(text)
    assert "criteria[0].question" in str(caught.value)
    assert "1000" in str(caught.value)
    parse_rubric_text(text.replace(question, "Was it solved?"))

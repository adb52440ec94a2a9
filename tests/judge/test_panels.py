"""Panel YAML loading with located errors, the default panel, and `judge panels ...`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from config.settings import get_settings
from judge.panel import LearnedJudgeSpec, LLMJudgeSpec
from judge.panel_loader import PanelError, default_panel, load_panel

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "panels"
EXAMPLE = ROOT / "examples" / "panel.yaml"

LOCAL_EXPLANATION = (
    "No LLM judge is configured; using the local panel ({judges}). To add one: set "
    "OUTCOME_JUDGE_MODEL=openai/gpt-4o-mini (any litellm model string; local Ollama: "
    "OUTCOME_JUDGE_MODEL=ollama/llama3.1 OUTCOME_JUDGE_API_BASE=http://localhost:11434) "
    "or pass --panel panel.yaml (see examples/panel.yaml)."
)


def write(tmp_path: Path, text: str, name: str = "panel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path) -> PanelError:
    with pytest.raises(PanelError) as info:
        load_panel(path)
    return info.value


# -- good panels ---------------------------------------------------------------------------------


def test_example_panel_loads_and_keeps_no_secrets() -> None:
    panel = load_panel(EXAMPLE)
    assert panel.has_llm
    llm = [j for j in panel.judges if isinstance(j, LLMJudgeSpec)]
    assert {j.model.split("/")[0] for j in llm} == {"openai", "anthropic"}
    assert all(j.api_key_env for j in llm)
    text = EXAMPLE.read_text(encoding="utf-8")
    for variant in (
        "ollama/",
        "api_base: http://localhost:11434",
        "api_base: http://localhost:8000",
    ):
        assert variant in text  # the commented local-model variants users copy


def test_llm_judges_need_no_kind_and_pass_extra_keys_to_litellm() -> None:
    panel = load_panel(FIXTURES / "llm-majority.yaml")
    assert [j.kind for j in panel.judges] == ["llm", "llm", "llm"]
    local = panel.judge("local")
    assert isinstance(local, LLMJudgeSpec)
    assert local.litellm_extra() == {"top_p": 0.9}
    assert local.api_base == "http://localhost:11434"
    assert panel.aggregation == "majority" and panel.quorum == 2


def test_cascade_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "learned-judge.joblib").write_bytes(b"")  # existence only; loading is elsewhere
    panel = load_panel(FIXTURES / "cascade.yaml")
    assert panel.cascade is not None
    assert [s.judges for s in panel.cascade] == [
        ["learned", "signals"],
        ["mini", "signals"],
        ["strong", "signals"],
    ]
    learned = panel.judge("learned")
    assert isinstance(learned, LearnedJudgeSpec)
    assert learned.path == Path("learned-judge.joblib")  # kept as written: stable version


def test_cascade_without_its_learned_model_names_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    err = error_for(FIXTURES / "cascade.yaml")
    assert (err.line, err.field) == (6, "judges[0].path")
    assert "learned-judge.joblib does not exist" in err.message
    assert load_panel(FIXTURES / "cascade.yaml", check_files=False).judge("learned")


def test_version_is_stable_and_content_based(tmp_path: Path) -> None:
    a = load_panel(FIXTURES / "local.yaml")
    copy = tmp_path / "elsewhere.yaml"
    copy.write_text("# moved\n" + (FIXTURES / "local.yaml").read_text(), encoding="utf-8")
    assert load_panel(copy).version == a.version
    changed = write(tmp_path, copy.read_text().replace("[0.35, 0.65]", "[0.3, 0.7]"), "c.yaml")
    assert load_panel(changed).version != a.version


# -- invalid panels --------------------------------------------------------------------------------

HEAD = "name: p\njudges:\n"


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        ("  - name: a\n    model: m\n    samples: lots\n", 5, "judges[0].samples", "'lots'"),
        (
            "  - name: a\n    model: m\n    temprature: 0.3\n",
            5,
            "judges[0].temprature",
            "temperature",
        ),
        ("  - name: a\n    model: m\n    api_key: sk-123\n", 5, "judges[0].api_key", "api_key_env"),
        ("  - kind: signals\n    foo: 1\n", 4, "judges[0].foo", "unknown key"),
        ("  - kind: wizard\n", 3, "judges[0].kind", "'wizard'"),
        ("  - name: a\n", 3, "judges[0].model", "required key is missing"),
        ("  - kind: learned\n", 3, "judges[0].path", "required key is missing"),
        ("  - kind: learned\n    path: gone.joblib\n", 4, "judges[0].path", "does not exist"),
        (
            "  - {name: a, model: m}\n  - {name: a, model: n}\n",
            4,
            "judges[1].name",
            "judge name 'a' is used twice",
        ),
        (
            "  - {name: a, model: m}\ncascade:\n  - judges: [a, b]\n",
            5,
            "cascade[0].judges[1]",
            "no judge named 'b'",
        ),
        ("  - {name: a, model: m}\nquorum: 3\n", 4, "quorum", "exceeds the 1 judges"),
        ("  - {name: a, model: m}\naggregation: avg\n", 4, "aggregation", "'avg'"),
        (
            "  - {name: a, model: m}\nabstain_band: [0.7, 0.3]\n",
            4,
            "abstain_band",
            "low <= 0.5 <= high",
        ),
        ("  - {name: a, model: m}\ngate: {min_labels: 0}\n", 4, "gate.min_labels", "greater"),
        ("  - {name: a, model: m}\ntypo: 1\n", 4, "typo", "unknown key"),
    ],
)
def test_invalid_panel_names_line_and_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    line: int,
    field: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    err = error_for(write(tmp_path, HEAD + body))
    assert (err.line, err.field) == (line, field), str(err)
    assert message in err.message, err.message
    assert str(err).startswith(f"panel.yaml line {line}, field '{field}': ")


def test_root_rule_errors_are_reported_once(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, HEAD + "  - {name: a, model: m}\n  - {name: a, model: n}\n"))
    assert len(err.problems) == 1, str(err)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("judges: &j [{name: a, model: m}]\nmore: *j\n", 1, "anchors"),
        ("judges: !!python/object/new:list []\n", 1, "!!python/object/new:list"),
        ("name: a\nname: b\njudges: []\n", 2, "duplicate key 'name'"),
        ("judges:\n  - {name: a, model: m\n", 3, "invalid YAML"),
        ("", 1, "must be a mapping"),
    ],
)
def test_unsafe_or_broken_panel_yaml(tmp_path: Path, text: str, line: int, message: str) -> None:
    err = error_for(write(tmp_path, text))
    assert err.line == line, str(err)
    assert message in err.message


def test_oversize_panel_is_refused(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, "# " + "x" * (300 * 1024) + "\njudges: []\n"))
    assert "larger than 256 KiB" in err.message


# -- default panel ---------------------------------------------------------------------------------


def test_default_panel_without_a_model_is_local_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no learned-judge.joblib here
    panel, explanation = default_panel(get_settings())
    assert not panel.has_llm
    assert [j.kind for j in panel.judges] == ["signals"]
    assert panel.aggregation == "mean" and panel.abstain_band is not None
    assert explanation == LOCAL_EXPLANATION.format(judges="signals")


def test_default_panel_adds_the_learned_judge_when_its_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "models" / "judge.joblib"
    model.parent.mkdir()
    model.touch()
    monkeypatch.setenv("OUTCOME_JUDGE_LEARNED_MODEL_PATH", str(model))
    panel, explanation = default_panel(get_settings())
    assert [j.kind for j in panel.judges] == ["signals", "learned"]
    learned = panel.judge("learned")
    assert isinstance(learned, LearnedJudgeSpec) and learned.path == model
    assert panel.aggregation == "mean"
    lo, hi = panel.abstain_band or (0.0, 0.0)
    assert 0 < lo < 0.5 < hi < 1  # undecided outcomes abstain instead of being auto-verified
    assert explanation == LOCAL_EXPLANATION.format(judges="signals, learned")


def test_default_panel_with_a_model_uses_it_plus_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "learned.joblib").touch()
    monkeypatch.setenv("OUTCOME_JUDGE_LEARNED_MODEL_PATH", str(tmp_path / "learned.joblib"))
    monkeypatch.setenv("OUTCOME_JUDGE_MODEL", "ollama/llama3.1")
    monkeypatch.setenv("OUTCOME_JUDGE_API_BASE", "http://localhost:11434")
    panel, explanation = default_panel(get_settings())
    assert panel.has_llm
    assert [j.kind for j in panel.judges] == ["llm", "signals"]
    llm = panel.judges[0]
    assert isinstance(llm, LLMJudgeSpec)
    assert (llm.model, llm.api_base) == ("ollama/llama3.1", "http://localhost:11434")
    assert llm.weight > panel.judges[1].weight
    assert "No LLM judge" not in explanation and "ollama/llama3.1" in explanation
    # deterministic: the same settings give the same panel version
    assert default_panel(get_settings())[0].ref == panel.ref


def test_default_judge_name_is_valid_for_any_model_string(monkeypatch: pytest.MonkeyPatch) -> None:
    for model in ("openai/gpt-4o-mini", "signals", "azure/my deployment!", "hf/org/model@v2"):
        monkeypatch.setenv("OUTCOME_JUDGE_MODEL", model)
        get_settings.cache_clear()
        panel, _ = default_panel(get_settings())
        names = [j.name for j in panel.judges]
        assert len(set(names)) == len(names)


# -- CLI ----------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_panels_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(FIXTURES / "cascade.yaml", tmp_path / "cascade.yaml")
    monkeypatch.chdir(tmp_path)
    ok = runner.invoke(app, ["panels", "validate", str(EXAMPLE), str(FIXTURES / "local.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "two-models-plus-signals@" in ok.stdout

    bad = runner.invoke(app, ["panels", "validate", str(EXAMPLE), "cascade.yaml"])
    assert bad.exit_code == 2
    assert "cascade.yaml line 6, field 'judges[0].path'" in bad.stderr
    assert "1 of 2 panel file(s) invalid" in bad.stderr

    (tmp_path / "learned-judge.joblib").touch()
    fixed = runner.invoke(app, ["panels", "validate", "cascade.yaml"])
    assert fixed.exit_code == 0, fixed.output


def test_cli_panels_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = runner.invoke(app, ["panels", "show", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ref"] == load_panel(EXAMPLE).ref
    assert [j["name"] for j in data["judges"]] == ["gpt4o-mini", "claude-haiku", "signals"]

    table = runner.invoke(app, ["panels", "show", str(FIXTURES / "llm-majority.yaml")])
    assert table.exit_code == 0
    assert "majority" in table.stdout and "top_p=0.9" in table.stdout

    monkeypatch.chdir(tmp_path)
    default = runner.invoke(app, ["panels", "show", "default", "--json"])
    assert default.exit_code == 0
    assert json.loads(default.stdout)["explanation"].startswith("No LLM judge is configured")

    missing = runner.invoke(app, ["panels", "show", "absent.yaml"])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_a_judge_backoff_sets_its_retry_waits(tmp_path: Path) -> None:
    from judge.limits import ProviderLimiter
    from judge.llm_judge import BACKOFF, Backoff, LLMJudge
    from judge.panel_loader import load_panel
    from judge.protocols import MemoryCallStore

    path = tmp_path / "panel.yaml"
    path.write_text(
        "name: quick\njudges:\n"
        "  - {name: a, model: openai/x, backoff: {initial: 0.1, maximum: 2, jitter: 0}}\n"
        "  - {name: b, model: openai/y}\n",
        encoding="utf-8",
    )
    panel = load_panel(path)
    built = {
        spec.name: LLMJudge(spec, store=MemoryCallStore(), limiter=ProviderLimiter())  # type: ignore[arg-type]
        for spec in panel.judges
    }
    assert built["a"].backoff == Backoff(initial=0.1, maximum=2.0, jitter=0.0)
    assert built["b"].backoff is None  # the module default applies: BACKOFF
    assert BACKOFF.initial == 1.0
    path.write_text(
        "name: quick\njudges:\n  - {name: a, model: openai/x, backoff: {initial: -1}}\n",
        encoding="utf-8",
    )
    with pytest.raises(PanelError, match=r"backoff\.initial"):
        load_panel(path)

"""The learned judge: training, honest cross-validated metrics, model files, the judge, the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path

import joblib
import pytest
from typer.testing import CliRunner

from app.cli import app
from judge.importers import read_outcomes
from judge.local.features import outcome_text
from judge.local.learned import (
    LearnedJudge,
    LearnedModelError,
    TrainedModel,
    TrainingDataError,
    load_learned_model,
    train_learned_judge,
)
from judge.models import Label, Message, Outcome, Report
from judge.panel import LearnedJudgeSpec
from judge.protocols import Judge
from judge.rubric import Criterion, Rubric
from tests.conftest import shared_dataset

RUBRIC = Rubric(
    name="support-test",
    kind="support_ticket",
    criteria=[Criterion(id="resolved", question="Was it resolved?")],
)

# ---- synthetic, separable-by-construction data (fast; the vocabularies do not overlap) ---------

GOOD_END = ["thanks that fixed it", "great it works now", "perfect the refund arrived"]
BAD_END = ["this still does not work", "you did not help at all", "nothing changed still broken"]


def synthetic(n_good: int, n_bad: int, *, seed: int = 0, label: bool = True) -> list[Outcome]:
    rnd = random.Random(seed)
    outcomes = []
    for i in range(n_good + n_bad):
        good = i < n_good
        topic = rnd.choice(["order", "invoice", "password", "delivery"])
        action = "issue_refund" if good else "lookup_order"
        outcomes.append(
            Outcome(
                id=f"S-{seed}-{i}",
                kind="support_ticket",
                conversation=[
                    Message(role="customer", text=f"problem with my {topic} number {i}"),
                    Message(role="agent", text="let me check", tool_calls=[{"name": action}]),
                    Message(role="tool", name=action, text="ok"),
                    Message(role="customer", text=rnd.choice(GOOD_END if good else BAD_END)),
                ],
                label=Label(resolved=good) if label else None,
                metadata={"group": str(i % 7)},
            )
        )
    rnd.shuffle(outcomes)
    return outcomes


# ---- the public tau-bench data --------------------------------------------------------------


@pytest.fixture(scope="module")
def tau_outcomes() -> list[Outcome]:
    return list(read_outcomes(shared_dataset("tau_bench_airline/trajectories.json")))


@pytest.fixture(scope="module")
def tau_model(tau_outcomes: list[Outcome]) -> TrainedModel:
    return train_learned_judge(tau_outcomes, cv=5, seed=0)


@pytest.fixture(scope="module")
def tau_model_file(tau_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tau_model.save(tmp_path_factory.mktemp("model") / "tau.joblib")


def test_tau_bench_cross_validated_beats_majority_baseline(tau_model: TrainedModel) -> None:
    # Held-out (5-fold stratified) predictions on 120 real conversations, 36 resolved. Over seeds
    # 0-9 accuracy ranged 0.742-0.792 against the 0.700 majority baseline and the Brier score
    # 0.165-0.173 against 0.210 for always predicting the base rate.
    m = tau_model.metrics
    assert (m.n, m.positives, m.folds) == (120, 36, 5)
    assert m.baseline_accuracy == pytest.approx(84 / 120)
    assert m.baseline_brier == pytest.approx(0.3 * 0.7)
    assert m.accuracy > m.baseline_accuracy
    assert m.brier < m.baseline_brier  # calibrated probabilities beat the base rate
    assert m.kappa > 0.2
    assert m.roc_auc > 0.65


def test_tau_bench_grouped_by_task_is_weaker_but_better_than_chance(
    tau_outcomes: list[Outcome],
) -> None:
    # The 4 trials of a task look alike, so stratified folds flatter the model. Grouping by task
    # measures unseen tasks: seeds 0-9 gave AUC 0.58-0.75 and accuracy around the baseline.
    m = train_learned_judge(tau_outcomes, cv=5, seed=0, group_by="task_id").metrics
    assert m.grouped_by == "task_id"
    assert m.roc_auc > 0.5
    assert 0.0 <= m.brier <= 0.25


def test_probabilities_are_probabilities(
    tau_model: TrainedModel, tau_outcomes: list[Outcome]
) -> None:
    probabilities = tau_model.predict_proba(tau_outcomes)
    assert len(probabilities) == len(tau_outcomes)
    assert all(0.0 < p < 1.0 for p in probabilities)
    # sigmoid calibration keeps the average prediction near the observed resolution rate
    assert sum(probabilities) / len(probabilities) == pytest.approx(36 / 120, abs=0.1)


def test_metadata(tau_model: TrainedModel) -> None:
    import sklearn

    md = tau_model.metadata
    assert md["sklearn_version"] == sklearn.__version__
    assert md["feature_version"] == "text-v1"
    assert md["n"] == 120
    assert md["class_balance"] == {"resolved": 36, "not_resolved": 84}
    assert md["kinds"] == ["support_ticket"]
    assert set(md["cv"]) >= {"accuracy", "kappa", "roc_auc", "brier", "baseline_accuracy"}
    assert md["trained_at"]


def test_save_and_load_round_trip(
    tau_model: TrainedModel, tau_model_file: Path, tau_outcomes: list[Outcome]
) -> None:
    loaded = load_learned_model(tau_model_file)
    sample = tau_outcomes[:10]
    assert loaded.predict_proba(sample) == pytest.approx(tau_model.predict_proba(sample))
    assert loaded.metadata == tau_model.metadata
    assert loaded.file_hash == hashlib.sha256(tau_model_file.read_bytes()).hexdigest()
    assert [p.name for p in tau_model_file.parent.iterdir()] == ["tau.joblib"]  # no temp files


def test_learned_judge_on_real_conversations(
    tau_model_file: Path, tau_outcomes: list[Outcome]
) -> None:
    judge = LearnedJudge(LearnedJudgeSpec(kind="learned", name="cheap", path=tau_model_file))
    assert isinstance(judge, Judge)
    digest = hashlib.sha256(tau_model_file.read_bytes()).hexdigest()[:8]

    async def run_all() -> list:
        return [await judge(o, RUBRIC) for o in tau_outcomes[:12]]

    judgments = asyncio.run(run_all())
    for j in judgments:
        assert j.status == "ok" and j.kind == "learned" and j.judge == "cheap"
        assert j.model == f"local:learned@{digest}"
        assert j.cost_usd == 0.0
        assert j.p_verified is not None
        assert j.decision == ("verified" if j.p_verified >= 0.5 else "not_verified")
        assert f"{j.p_verified:.2f}" in j.rationale


def test_learned_judge_reads_the_file_once(tau_model: TrainedModel, tmp_path: Path) -> None:
    path = tau_model.save(tmp_path / "m.joblib")
    judge = LearnedJudge(LearnedJudgeSpec(kind="learned", path=path))
    o = synthetic(1, 0)[0]
    first = asyncio.run(judge(o, RUBRIC))
    path.unlink()
    second = asyncio.run(judge(o, RUBRIC))
    assert first.status == second.status == "ok"
    assert first.p_verified == second.p_verified


def test_missing_model_is_an_error_judgment_never_a_vote(tmp_path: Path) -> None:
    judge = LearnedJudge(LearnedJudgeSpec(kind="learned", path=tmp_path / "nope.joblib"))
    j = asyncio.run(judge(synthetic(1, 0)[0], RUBRIC))
    assert j.status == "error" and not j.counts
    assert j.reason is not None and "nope.joblib" in j.reason and "judge train" in j.reason
    with pytest.raises(LearnedModelError, match="no learned-judge model"):
        judge.load()


def test_outcome_kind_the_model_never_saw(tau_model_file: Path) -> None:
    judge = LearnedJudge(LearnedJudgeSpec(kind="learned", path=tau_model_file))
    report = Outcome(id="R-1", kind="report", report=Report(brief="b", text="t"))
    j = asyncio.run(judge(report, RUBRIC))
    assert j.status == "error" and "support_ticket" in (j.reason or "")


# ---- bad model files ------------------------------------------------------------------------


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.joblib"
    path.write_bytes(b"\x00not a pickle at all" * 10)
    with pytest.raises(LearnedModelError, match="corrupt"):
        load_learned_model(path)


def test_some_other_pickle(tmp_path: Path) -> None:
    path = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(LearnedModelError, match="not a learned-judge model"):
        load_learned_model(path)


def _tampered(model: TrainedModel, path: Path, **metadata: str) -> Path:
    bad = TrainedModel(pipeline=model.pipeline, metadata={**model.metadata, **metadata})
    return bad.save(path)


def test_incompatible_sklearn_version(tau_model: TrainedModel, tmp_path: Path) -> None:
    path = _tampered(tau_model, tmp_path / "old.joblib", sklearn_version="0.24.2")
    with pytest.raises(LearnedModelError, match=r"scikit-learn 0\.24\.2.*retrain"):
        load_learned_model(path)


def test_incompatible_feature_version(tau_model: TrainedModel, tmp_path: Path) -> None:
    path = _tampered(tau_model, tmp_path / "old.joblib", feature_version="text-v0")
    with pytest.raises(LearnedModelError, match="text-v0"):
        load_learned_model(path)


def test_save_into_a_directory_is_refused(tau_model: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(LearnedModelError, match="directory"):
        tau_model.save(tmp_path)


# ---- training data checks -------------------------------------------------------------------


def test_separable_data_is_learned() -> None:
    m = train_learned_judge(synthetic(15, 15), cv=5, seed=0).metrics
    assert m.accuracy >= 0.9 and m.roc_auc >= 0.9


def test_unlabelled_outcomes_are_ignored() -> None:
    model = train_learned_judge(synthetic(8, 8) + synthetic(5, 5, seed=1, label=False), cv=4)
    assert model.metadata["n"] == 16


def test_same_seed_same_model() -> None:
    data = synthetic(9, 9, seed=3)
    a = train_learned_judge(data, cv=3, seed=7)
    b = train_learned_judge(data, cv=3, seed=7)
    assert a.metrics == b.metrics
    assert a.predict_proba(data) == b.predict_proba(data)


@pytest.mark.parametrize(
    ("data", "cv", "message"),
    [
        (synthetic(4, 4), 5, "at least 10 labelled"),
        (synthetic(20, 0), 5, "both classes"),
        (synthetic(17, 3), 5, "only 3 outcomes are labelled 'not resolved'"),
        (synthetic(10, 10), 1, "at least 2 folds"),
    ],
)
def test_unusable_training_data_is_refused(data: list[Outcome], cv: int, message: str) -> None:
    with pytest.raises(TrainingDataError, match=message):
        train_learned_judge(data, cv=cv)


def test_group_by_needs_the_key() -> None:
    with pytest.raises(TrainingDataError, match="no metadata key 'task'"):
        train_learned_judge(synthetic(10, 10), group_by="task")


def test_features_keep_tools_and_the_ending() -> None:
    text = outcome_text(synthetic(1, 0)[0])
    assert "call_issue_refund" in text
    assert "tool_issue_refund" in text
    assert any(line.startswith("lastcust_") for line in text.splitlines())


# ---- the CLI --------------------------------------------------------------------------------


def _write_jsonl(path: Path, outcomes: list[Outcome]) -> Path:
    path.write_text("".join(o.model_dump_json() + "\n" for o in outcomes), encoding="utf-8")
    return path


def test_cli_trains_saves_and_prints_metrics(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "labelled.jsonl", synthetic(12, 12))
    out = tmp_path / "models" / "judge.joblib"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(out), "--cv", "4"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "Brier" in result.stdout
    assert "read 24 outcomes, 24 labelled" in result.stderr
    assert load_learned_model(out).metadata["n"] == 24


def test_cli_json_on_tau_bench_matches_the_library(tmp_path: Path, tau_model: TrainedModel) -> None:
    data = shared_dataset("tau_bench_airline/trajectories.json")
    out = tmp_path / "tau.joblib"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metrics"] == pytest.approx(tau_model.metrics.to_dict())
    assert payload["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "no such file"),
        (["few.jsonl"], "at least 10 labelled"),
        (["few.jsonl", "--cv", "1"], "--cv must be at least 2"),
        (["few.jsonl", "--format", "csv"], "unknown format"),
    ],
)
def test_cli_bad_input_exits_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    _write_jsonl(tmp_path / "few.jsonl", synthetic(3, 3))
    argv = ["train", *(str(tmp_path / a) if a.endswith(".jsonl") else a for a in args)]
    out = tmp_path / "never.joblib"
    result = CliRunner().invoke(app, [*argv, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()

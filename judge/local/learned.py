"""The ``learned`` judge: a scikit-learn text classifier with calibrated probabilities.

Training (:func:`train_learned_judge`) needs outcomes with human labels. The model is a word
TF-IDF (unigrams and bigrams) feeding a class-balanced logistic regression wrapped in
``CalibratedClassifierCV`` (sigmoid / Platt scaling, 3 internal folds), so ``P(verified)`` is a
probability, not just a score. The settings are fixed by reasoning, not tuned on the data the
metrics are reported on:

- word n-grams, not character n-grams: the documents are long and machine-written; character
  n-grams mostly pick up identifiers (names, booking codes) that memorise the training tasks;
- ``min_df=2``: a term seen in a single conversation cannot generalise;
- logistic regression with ``C=1`` on L2-normalised TF-IDF rows: a strongly regularised linear
  model is the right capacity for hundreds, not millions, of labels;
- sigmoid calibration, not isotonic: isotonic regression overfits below ~1,000 examples.

Quality is reported honestly: accuracy, Cohen's kappa, ROC AUC and Brier score are computed on
held-out folds (``cross_val_predict``, stratified; grouped when ``group_by`` names a metadata key
such as a task id, so that trials of the same task never sit on both sides of a split), next to
the majority-class baseline.

Model files are joblib pickles. **Loading a pickle can run arbitrary code: load only model files
you trust** (ones you trained yourself or got from a trusted source).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.local.features import FEATURE_VERSION, outcome_text, outcome_texts
from judge.models import Outcome
from judge.panel import LearnedJudgeSpec
from judge.rubric import Rubric
from judge.verdict import Decision, Judgment, utcnow

FILE_FORMAT = "outcome-judge/learned-judge"
FILE_FORMAT_VERSION = 1
MIN_LABELS = 10
CALIBRATION_FOLDS = 3
MODEL_PREFIX = "local:learned"


class TrainingDataError(ValueError):
    """The labelled outcomes cannot train a model; the message says what to add or change."""


class LearnedModelError(ValueError):
    """A learned-judge model file is missing, unreadable or incompatible with this version."""


@dataclass(frozen=True)
class CVMetrics:
    """Cross-validated quality of the learned judge, from held-out predictions only.

    ``baseline_accuracy`` is what always predicting the majority class scores; ``baseline_brier``
    is the Brier score of always predicting the base rate. A useful model beats both.
    """

    folds: int
    n: int
    positives: int
    accuracy: float
    kappa: float
    roc_auc: float
    brier: float
    baseline_accuracy: float
    baseline_brier: float
    grouped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "n": self.n,
            "positives": self.positives,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "roc_auc": self.roc_auc,
            "brier": self.brier,
            "baseline_accuracy": self.baseline_accuracy,
            "baseline_brier": self.baseline_brier,
            "grouped_by": self.grouped_by,
        }


@dataclass
class TrainedModel:
    """A fitted learned-judge pipeline with its metadata.

    ``metadata`` holds ``sklearn_version``, ``feature_version``, ``n``, ``class_balance``,
    ``kinds`` (outcome kinds it was trained on), ``cv`` (the :class:`CVMetrics` as a dict),
    ``seed`` and ``trained_at``.
    """

    pipeline: Any
    metadata: dict[str, Any]
    file_hash: str | None = field(default=None)

    @property
    def metrics(self) -> CVMetrics:
        return CVMetrics(**self.metadata["cv"])

    def predict_proba(self, outcomes: Sequence[Outcome]) -> list[float]:
        """Calibrated P(verified) for each outcome."""
        if not outcomes:
            return []
        probabilities = self.pipeline.predict_proba(outcome_texts(outcomes))
        return [float(p) for p in probabilities[:, 1]]

    def top_terms(self, outcome: Outcome, *, k: int = 3) -> tuple[list[str], list[str]]:
        """The terms of this outcome that push hardest towards / away from verified."""
        vectorizer = self.pipeline.named_steps["features"]
        calibrated = self.pipeline.named_steps["classifier"]
        coefs = [c.estimator.coef_[0] for c in calibrated.calibrated_classifiers_]
        coef = sum(coefs) / len(coefs)
        row = vectorizer.transform([outcome_text(outcome)]).tocoo()
        contributions = sorted(
            ((float(v * coef[i]), int(i)) for i, v in zip(row.col, row.data, strict=True)),
        )
        names = vectorizer.get_feature_names_out()
        towards = [str(names[i]) for c, i in reversed(contributions[-k:]) if c > 0]
        away = [str(names[i]) for c, i in contributions[:k] if c < 0]
        return towards, away

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to ``path`` atomically (a temporary file, then a rename).

        Returns the path written. The file is a joblib pickle with the metadata beside the
        pipeline; load it with :func:`load_learned_model`.
        """
        import joblib

        target = Path(path)
        if target.is_dir():
            raise LearnedModelError(
                f"{target} is a directory; give a file name such as model.joblib"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "metadata": self.metadata,
            "pipeline": self.pipeline,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                joblib.dump(payload, handle, compress=3)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.file_hash = hashlib.sha256(target.read_bytes()).hexdigest()
        return target


def build_pipeline(*, seed: int = 0, calibration_folds: int = CALIBRATION_FOLDS) -> Any:
    """The untrained learned-judge pipeline (see the module docstring for why these settings)."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    vectorizer = TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.95,
        sublinear_tf=True,
        strip_accents="unicode",
        dtype=np.float64,
    )
    classifier = LogisticRegression(
        C=1.0, class_weight="balanced", max_iter=5000, random_state=seed
    )
    calibrated = CalibratedClassifierCV(classifier, method="sigmoid", cv=calibration_folds)
    return Pipeline([("features", vectorizer), ("classifier", calibrated)])


def _min_per_class(cv: int) -> int:
    """Fewest labels of each class for ``cv`` outer folds and the 3 calibration folds inside."""
    m = max(cv, CALIBRATION_FOLDS)
    while m - -(-m // cv) < CALIBRATION_FOLDS:  # m minus the largest held-out share
        m += 1
    return m


def _check_training_data(
    outcomes: Sequence[Outcome], cv: int, group_by: str | None
) -> tuple[list[int], list[str] | None]:
    if cv < 2:
        raise TrainingDataError(f"cv must be at least 2 folds, got {cv}")
    labelled = [o for o in outcomes if o.label is not None]
    if len(labelled) < MIN_LABELS:
        raise TrainingDataError(
            f"need at least {MIN_LABELS} labelled outcomes to train, got {len(labelled)} "
            f"(of {len(outcomes)} outcomes); add 'label': {{'resolved': true|false}} to more"
        )
    y = [int(o.label.resolved) for o in labelled if o.label is not None]
    counts = Counter(y)
    if len(counts) < 2:
        only = "resolved" if y[0] else "not resolved"
        raise TrainingDataError(
            f"all {len(y)} labels say '{only}'; a classifier needs examples of both classes"
        )
    need = _min_per_class(cv)
    fewest = min(counts.values())
    if fewest < need:
        which = "resolved" if counts[1] < counts[0] else "not resolved"
        raise TrainingDataError(
            f"only {fewest} outcomes are labelled '{which}'; {cv}-fold cross-validation with "
            f"calibration needs at least {need} of each class: add labels or lower --cv"
        )
    groups: list[str] | None = None
    if group_by is not None:
        groups = []
        for o in labelled:
            if group_by not in o.metadata:
                raise TrainingDataError(
                    f"outcome {o.id!r} has no metadata key {group_by!r} to group folds by"
                )
            groups.append(str(o.metadata[group_by]))
        if len(set(groups)) < cv:
            raise TrainingDataError(
                f"grouping by {group_by!r} gives {len(set(groups))} groups, fewer than {cv} folds"
            )
    return y, groups


def train_learned_judge(
    outcomes: Iterable[Outcome],
    *,
    cv: int = 5,
    seed: int = 0,
    group_by: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Train the learned judge on labelled outcomes and measure it by cross-validation.

    Parameters
    ----------
    outcomes
        Outcomes; those without a ``label`` are ignored. At least 10 labelled ones, with both
        classes (enough of each for ``cv`` folds).
    cv
        Number of stratified folds for the reported metrics (the final model is fitted on all
        labelled outcomes).
    seed
        Seeds the fold shuffle and the classifier; the same data and seed give the same model.
    group_by
        A ``metadata`` key (for example ``task_id``): outcomes sharing its value stay in the same
        fold (``StratifiedGroupKFold``), which measures generalisation to unseen groups.
    progress
        Called with a short message before each slow step.

    Returns
    -------
    TrainedModel
        The fitted pipeline, with the cross-validated :class:`CVMetrics` in its metadata.

    Raises
    ------
    TrainingDataError
        Too few labels, a single class, too few of one class for ``cv`` folds, or a missing
        ``group_by`` key.
    """
    import sklearn
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        cohen_kappa_score,
        roc_auc_score,
    )
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    items = list(outcomes)
    y, groups = _check_training_data(items, cv, group_by)
    labelled = [o for o in items if o.label is not None]
    texts = outcome_texts(labelled)
    splitter: Any = (
        StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        if groups is None
        else StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    )
    if progress:
        progress(f"cross-validating on {len(labelled)} labelled outcomes ({cv} folds)")
    try:
        held_out = cross_val_predict(
            build_pipeline(seed=seed), texts, y, cv=splitter, groups=groups, method="predict_proba"
        )[:, 1]
    except ValueError as exc:  # e.g. a grouped fold left one class too small to calibrate
        raise TrainingDataError(f"cross-validation failed: {exc}") from exc
    predicted = [int(p >= 0.5) for p in held_out]
    positives = sum(y)
    rate = positives / len(y)
    metrics = CVMetrics(
        folds=cv,
        n=len(y),
        positives=positives,
        accuracy=float(accuracy_score(y, predicted)),
        kappa=float(cohen_kappa_score(y, predicted)),
        roc_auc=float(roc_auc_score(y, held_out)),
        brier=float(brier_score_loss(y, held_out)),
        baseline_accuracy=max(rate, 1 - rate),
        baseline_brier=rate * (1 - rate),
        grouped_by=group_by,
    )
    if progress:
        progress("fitting the final model on all labelled outcomes")
    pipeline = build_pipeline(seed=seed)
    pipeline.fit(texts, y)
    metadata = {
        "sklearn_version": sklearn.__version__,
        "feature_version": FEATURE_VERSION,
        "n": len(y),
        "class_balance": {"resolved": positives, "not_resolved": len(y) - positives},
        "kinds": sorted({o.kind for o in labelled}),
        "cv": metrics.to_dict(),
        "seed": seed,
        "trained_at": utcnow().isoformat(),
    }
    return TrainedModel(pipeline=pipeline, metadata=metadata)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def load_learned_model(path: str | os.PathLike[str]) -> TrainedModel:
    """Load a model written by :meth:`TrainedModel.save`.

    .. warning:: joblib files are pickles: loading one can run arbitrary code. Load only files
       you trust.

    Raises
    ------
    LearnedModelError
        The file is missing, not a learned-judge model (corrupt or another pickle), or was made
        by an incompatible scikit-learn (different major.minor) or feature version.
    """
    import joblib
    import sklearn

    source = Path(path)
    retrain = f"retrain it with `judge train LABELLED_OUTCOMES --out {source}`"
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise LearnedModelError(f"no learned-judge model at {source}; {retrain}") from None
    except OSError as exc:
        raise LearnedModelError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version mismatches are reported below, clearly
            payload = joblib.load(io.BytesIO(raw))
    except Exception as exc:  # unpickling can raise almost anything on a bad file
        raise LearnedModelError(
            f"{source} is not a readable learned-judge model ({type(exc).__name__}: {exc}); "
            f"the file is corrupt or of another kind; {retrain}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise LearnedModelError(f"{source} is not a learned-judge model file; {retrain}")
    if payload.get("format_version") != FILE_FORMAT_VERSION:
        raise LearnedModelError(
            f"{source} has model file format {payload.get('format_version')!r}, this version "
            f"reads {FILE_FORMAT_VERSION}; {retrain}"
        )
    metadata = payload.get("metadata") or {}
    trained_with = str(metadata.get("sklearn_version", "unknown"))
    if _minor(trained_with) != _minor(sklearn.__version__):
        raise LearnedModelError(
            f"{source} was trained with scikit-learn {trained_with}, but {sklearn.__version__} "
            f"is installed; {retrain}"
        )
    if metadata.get("feature_version") != FEATURE_VERSION:
        raise LearnedModelError(
            f"{source} uses features {metadata.get('feature_version')!r}, this version builds "
            f"{FEATURE_VERSION!r}; {retrain}"
        )
    return TrainedModel(
        pipeline=payload["pipeline"],
        metadata=metadata,
        file_hash=hashlib.sha256(raw).hexdigest(),
    )


class LearnedJudge:
    """Judge with a trained model (implements :class:`judge.protocols.Judge`).

    ``p_verified`` is the calibrated probability; the decision is ``verified`` when it is at least
    0.5. The model file is read once, on first use (or :meth:`load`); ``model`` is
    ``local:learned@<first 8 hex digits of the file's SHA-256>``. A missing or incompatible file,
    or an outcome kind the model never saw, gives ``status: error`` (never a vote).
    """

    def __init__(self, spec: LearnedJudgeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.weight = spec.weight
        self._model: TrainedModel | None = None

    def load(self) -> TrainedModel:
        """Load the model now (idempotent); raises :class:`LearnedModelError` on a bad file."""
        if self._model is None:
            self._model = load_learned_model(self.spec.path)
        return self._model

    @property
    def model_ref(self) -> str:
        if self._model is None or self._model.file_hash is None:
            return MODEL_PREFIX
        return f"{MODEL_PREFIX}@{self._model.file_hash[:8]}"

    async def __call__(self, outcome: Outcome, rubric: Rubric) -> Judgment:
        try:
            model = self.load()
        except LearnedModelError as exc:
            return self._error(str(exc))
        kinds = model.metadata.get("kinds") or []
        if outcome.kind not in kinds:
            return self._error(
                f"the model was trained on {', '.join(kinds) or 'no'} outcomes, not {outcome.kind}"
            )
        p = model.predict_proba([outcome])[0]
        decision: Decision = "verified" if p >= 0.5 else "not_verified"
        towards, away = model.top_terms(outcome)
        cv = model.metadata.get("cv", {})
        rationale = (
            f"calibrated P(verified) = {p:.2f} from a text classifier trained on "
            f"{model.metadata.get('n')} labelled outcomes (CV AUC {cv.get('roc_auc', 0):.2f})"
        )
        if towards:
            rationale += "; for: " + ", ".join(towards)
        if away:
            rationale += "; against: " + ", ".join(away)
        return Judgment(
            judge=self.name,
            model=self.model_ref,
            kind="learned",
            status="ok",
            decision=decision,
            p_verified=p,
            rationale=rationale,
            cost_usd=0.0,
        )

    def _error(self, reason: str) -> Judgment:
        return Judgment(
            judge=self.name,
            model=self.model_ref,
            kind="learned",
            status="error",
            reason=reason,
            cost_usd=0.0,
        )

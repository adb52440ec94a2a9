"""Panel models: which judges grade, how their judgments are combined, and when to escalate.

Loading YAML files lives in :mod:`judge.panel_loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.versioning import ContentVersioned

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Aggregation = Literal["majority", "weighted", "mean", "unanimous"]


class RetryWaits(BaseModel):
    """How long an LLM judge waits between retries (seconds); see :class:`judge.llm_judge.Backoff`.

    Exponential from ``initial`` up to ``maximum`` plus up to ``jitter`` of random jitter; a
    provider's ``retry-after`` replaces the computed wait, capped at ``retry_after_cap``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    initial: float = Field(default=1.0, ge=0, le=3600)
    maximum: float = Field(default=30.0, ge=0, le=3600)
    jitter: float = Field(default=1.0, ge=0, le=3600)
    retry_after_cap: float = Field(default=60.0, ge=0, le=3600)


class LLMJudgeSpec(BaseModel):
    """An LLM judge. Keys this model does not name are passed through to ``litellm.acompletion``."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    kind: Literal["llm"] = "llm"
    name: str = Field(pattern=NAME)
    model: str = Field(
        min_length=1, description="any litellm model string, e.g. openai/gpt-4o-mini"
    )
    samples: int = Field(default=1, ge=1, le=50)
    temperature: float = Field(default=0.0, ge=0, le=2)
    weight: float = Field(default=1.0, ge=0)
    fallbacks: list[str] = Field(default_factory=list)
    max_retries: int = Field(default=4, ge=0, le=20)
    timeout: float = Field(default=60.0, gt=0)
    api_base: str | None = None
    api_key_env: str | None = Field(
        default=None, description="name of the environment variable holding the provider key"
    )
    max_concurrency: int | None = Field(default=None, ge=1, le=1024)
    backoff: RetryWaits | None = Field(
        default=None, description="retry waits; default 1 s doubling up to 30 s, plus jitter"
    )
    spotlight: bool = Field(
        default=False,
        description="interleave a marker between the words of untrusted text (datamarking)",
    )

    def litellm_extra(self) -> dict[str, Any]:
        """The pass-through keys (everything this model does not declare)."""
        return dict(self.model_extra or {})


class GuardJudgeSpec(LLMJudgeSpec):
    """A ``guard`` judge: a (cheap) model asked only whether the content tries to influence the
    evaluator, claims an evaluation result or forges turns. It never votes; a yes flags the
    outcome (never auto-verified), and no usable answer keeps it from being auto-verified.
    Called, recorded and billed like every LLM judge."""

    kind: Literal["guard"] = "guard"  # type: ignore[assignment]
    name: str = Field(default="guard", pattern=NAME)
    weight: float = Field(default=0.0, ge=0, le=0)


class SignalsJudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["signals"]
    name: str = Field(default="signals", pattern=NAME)
    weight: float = Field(default=1.0, ge=0)


class LearnedJudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["learned"]
    name: str = Field(default="learned", pattern=NAME)
    path: Path
    weight: float = Field(default=1.0, ge=0)


JudgeSpec = Annotated[
    LLMJudgeSpec | GuardJudgeSpec | SignalsJudgeSpec | LearnedJudgeSpec,
    Field(discriminator="kind"),
]


class CascadeStage(BaseModel):
    """Judges that run together; the cascade stops here once their aggregate is confident."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    judges: list[str] = Field(min_length=1)
    min_confidence: float = Field(default=0.8, ge=0.5, le=1.0)


class GateSpec(BaseModel):
    """When a panel's verdicts count as final (see calibration); otherwise they stay provisional."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_kappa_lower: float = Field(default=0.6, ge=-1, le=1)
    min_labels: int = Field(default=200, ge=1)
    window_days: int = Field(default=30, ge=1)
    require_no_drift_alert: bool = True


class Panel(ContentVersioned):
    # Frozen: the version is a cached hash of the content, so the content must not change.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    version_digits: ClassVar[int] = 4
    version_omit_defaults: ClassVar[frozenset[str]] = frozenset(
        {"injection_threshold", "disagreement_confidence", "report_inputs"}
    )

    name: str = Field(default="panel", pattern=NAME)
    judges: list[JudgeSpec] = Field(min_length=1)
    aggregation: Aggregation = "majority"
    quorum: int = Field(default=1, ge=1)
    abstain_band: tuple[float, float] | None = Field(
        default=None, description="abstain when the aggregate P(verified) lies strictly inside"
    )
    cascade: list[CascadeStage] | None = None
    gate: GateSpec = Field(default_factory=GateSpec)
    disagreement_confidence: float = Field(
        default=0.9,
        ge=0.5,
        le=1.0,
        description="abstain when a local judge says not_verified with at least this "
        "confidence (1 - P(verified)) while an LLM judge says verified",
    )
    injection_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="flag an outcome when the injection detector's probability reaches this "
        "(default: OUTCOME_JUDGE_INJECTION_THRESHOLD, else the threshold the model was trained "
        "with)",
    )

    report_inputs: Literal["as_submitted", "attested"] = Field(
        default="as_submitted",
        description="`attested`: a report is auto-verified only when its brief and every source "
        "are documents the buyer attested (judge verify --attested FILE); see "
        "judge.attestation",
    )

    @model_validator(mode="before")
    @classmethod
    def _llm_is_the_default_kind(cls, data: Any) -> Any:
        # DESIGN's panel format writes LLM judges as {name, model, ...} without a kind.
        if isinstance(data, dict) and isinstance(data.get("judges"), list):
            data = dict(data)
            data["judges"] = [
                {**j, "kind": "llm"} if isinstance(j, dict) and "kind" not in j else j
                for j in data["judges"]
            ]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Panel:
        names = [j.name for j in self.judges]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"judge names must be unique; repeated: {', '.join(dupes)}")
        if self.abstain_band is not None:
            lo, hi = self.abstain_band
            if not 0 <= lo <= 0.5 <= hi <= 1:
                raise ValueError(
                    "abstain_band must be [low, high] around 0.5: 0 <= low <= 0.5 <= high <= 1"
                )
        guards = {j.name for j in self.judges if j.kind == "guard"}
        voters = [j for j in self.judges if j.kind != "guard"]
        if not voters:
            raise ValueError("a panel needs at least one judge that votes (guard judges do not)")
        if self.cascade:
            for stage in self.cascade:
                unknown = [n for n in stage.judges if n not in names]
                if unknown:
                    raise ValueError(f"cascade names unknown judges: {', '.join(unknown)}")
                if guards & set(stage.judges):
                    raise ValueError(
                        "guard judges run beside the cascade on every outcome; do not list them "
                        "in a stage"
                    )
        if self.quorum > len(voters):
            raise ValueError(f"quorum {self.quorum} exceeds the {len(voters)} judges that vote")
        return self

    @property
    def guards(self) -> list[GuardJudgeSpec]:
        """The panel's guard judges (they run beside the vote, see :class:`GuardJudgeSpec`)."""
        return [j for j in self.judges if isinstance(j, GuardJudgeSpec)]

    def judge(self, name: str) -> JudgeSpec:
        for j in self.judges:
            if j.name == name:
                return j
        raise KeyError(name)

    @property
    def has_llm(self) -> bool:
        return any(j.kind in ("llm", "guard") for j in self.judges)

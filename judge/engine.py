"""The verification engine: one outcome + rubric + panel -> one verdict.

Pure: no HTTP server, no SQL. Judge calls are recorded through the ``CallStore`` it is given
(the ledger's in production, a memory store in tests), which is also the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from statistics import fmean

from judge.aggregate import (
    Aggregate,
    aggregate,
    content_unjudged_reason,
    disagreement_reason,
    run_cascade,
)
from judge.attestation import unattested_reasons
from judge.guard_model import InjectionDetector, default_detector
from judge.limits import ProviderLimiter, process_limiter
from judge.models import Outcome
from judge.panel import CascadeStage, JudgeSpec, Panel
from judge.protocols import CallStore, Judge, MemoryCallStore
from judge.rubric import Rubric
from judge.scoring import score_rubric
from judge.screen_pool import ScreenPool
from judge.screening import screen
from judge.signal_rules import apply_signal_rules
from judge.verdict import (
    FLAG_CONTENT_UNJUDGED,
    FLAG_DISAGREEMENT,
    FLAG_GUARD_UNAVAILABLE,
    FLAG_INJECTION,
    FLAG_UNATTESTED,
    CriterionResult,
    Judgment,
    Verdict,
)


def build_judge(spec: JudgeSpec, *, store: CallStore, limiter: ProviderLimiter) -> Judge:
    """Instantiate the judge a panel entry describes."""
    if spec.kind == "guard":
        from judge.guard_judge import GuardJudge

        return GuardJudge(spec, store=store, limiter=limiter)
    if spec.kind == "llm":
        from judge.llm_judge import LLMJudge

        return LLMJudge(spec, store=store, limiter=limiter)
    if spec.kind == "signals":
        from judge.local.signals import SignalsJudge

        return SignalsJudge(spec)
    from judge.local.learned import LearnedJudge

    assert spec.kind == "learned"
    return LearnedJudge(spec)


class Engine:
    """Verifies outcomes with one panel under one rubric per outcome kind.

    Parameters
    ----------
    panel : Panel
        The judges and how their judgments combine.
    rubrics : Mapping[str, Rubric]
        The rubric to use for each outcome kind (``support_ticket``, ``report``).
    store : CallStore, optional
        Where judge calls are recorded and looked up (the cache). Memory by default.
    limiter : ProviderLimiter, optional
        Per-provider concurrency bound shared by every LLM judge of this engine; default the
        process's one (:func:`judge.limits.process_limiter`), shared by every engine.
    detector : InjectionDetector or None or "default", optional
        The trained injection detector (:mod:`judge.guard_model`); ``"default"`` loads the one
        the settings name (the shipped one), ``None`` runs without (no score recorded).
    injection_threshold : float, optional
        Flag at this detector probability; default the panel's ``injection_threshold``, else
        ``OUTCOME_JUDGE_INJECTION_THRESHOLD``, else the model's own.
    screen_pool : ScreenPool, optional
        Run the injection screen in these processes (:mod:`judge.screen_pool`) instead of on
        the event loop; it must hold this engine's detector. Same result, less work on the loop.
    attested : collection of str, optional
        Digests (:func:`judge.attestation.document_digest`) of the documents the buyer
        attested; read only by a panel with ``report_inputs: attested``, under which a report
        whose brief or a source is not among them abstains (``None``: none was given).
    """

    def __init__(
        self,
        panel: Panel,
        rubrics: Mapping[str, Rubric],
        *,
        store: CallStore | None = None,
        limiter: ProviderLimiter | None = None,
        detector: InjectionDetector | str | None = "default",
        injection_threshold: float | None = None,
        screen_pool: ScreenPool | None = None,
        attested: Collection[str] | None = None,
    ) -> None:
        self.panel = panel
        self.attested = attested
        self.rubrics = dict(rubrics)
        self.store: CallStore = store if store is not None else MemoryCallStore()
        self.limiter = limiter if limiter is not None else process_limiter()
        self.judges: dict[str, Judge] = {
            spec.name: build_judge(spec, store=self.store, limiter=self.limiter)
            for spec in panel.judges
        }
        self._weights = {spec.name: spec.weight for spec in panel.judges}
        chosen = default_detector() if detector == "default" else detector
        if isinstance(chosen, str):
            raise ValueError("detector must be an InjectionDetector, None or 'default'")
        self.detector: InjectionDetector | None = chosen
        self.injection_threshold = _threshold(panel, self.detector, injection_threshold)
        if screen_pool is not None and screen_pool.detector is not self.detector:
            raise ValueError(
                "the screen pool's detector is not this engine's: build the pool with "
                "ScreenPool(engine.detector) or pass the same detector to both"
            )
        self.screen_pool = screen_pool

    def rubric_for(self, outcome: Outcome) -> Rubric:
        try:
            return self.rubrics[outcome.kind]
        except KeyError:
            names = ", ".join(f"{k}: {r.name}" for k, r in self.rubrics.items()) or "none"
            raise ValueError(
                f"outcome {outcome.id!r} is a {outcome.kind} but no rubric for that kind was given "
                f"(rubrics: {names}); pass --rubric with a {outcome.kind} rubric"
            ) from None

    def warm_up(self) -> None:
        """Do the one-time work of the first outcome now (see :func:`judge.screening.warm_up`):
        in the screen pool's processes when there is one, else here."""
        from judge.screening import warm_up

        if self.screen_pool is not None:
            self.screen_pool.warm_up()
        else:
            warm_up(self.detector)

    def cache_keys(self, outcome: Outcome) -> list[str]:
        """The cache keys every model judge of the panel looks up for ``outcome``.

        What a worker fetches from the ledger in one query for a whole claimed batch, so that
        judging it asks the ledger nothing per outcome.
        """
        rubric = self.rubric_for(outcome)
        keys: list[str] = []
        for judge in self.judges.values():
            keys_of = getattr(judge, "cache_keys", None)
            if keys_of is not None:
                keys.extend(keys_of(outcome, rubric))
        return keys

    async def _run_judge(self, name: str, outcome: Outcome, rubric: Rubric) -> Judgment:
        judge = self.judges[name]
        try:
            return await judge(outcome, rubric)
        except Exception as exc:  # a broken judge abstains from the vote; it never passes
            spec = self.panel.judge(name)
            model = spec.model if spec.kind in ("llm", "guard") else f"local:{spec.kind}"
            return Judgment(
                judge=name,
                model=model,
                kind=spec.kind,
                status="error",
                reason=f"{type(exc).__name__}: {exc}",
            )

    def _aggregate(self, judgments: Sequence[Judgment]) -> Aggregate:
        return aggregate(
            judgments,
            method=self.panel.aggregation,
            weights=self._weights,
            quorum=self.panel.quorum,
            abstain_band=self.panel.abstain_band,
        )

    def _stages(self) -> list[CascadeStage]:
        if self.panel.cascade:
            return list(self.panel.cascade)
        # Without a cascade every judge runs at once; the single stage is always final.
        voters = [j.name for j in self.panel.judges if j.kind != "guard"]
        return [CascadeStage(judges=voters, min_confidence=0.5)]

    async def verify(self, outcome: Outcome) -> Verdict:
        """Verify one outcome; never raises for a judge failure (that judge is ``error``)."""
        rubric = self.rubric_for(outcome)

        async def judge_stage(names: list[str]) -> list[Judgment]:
            return list(await asyncio.gather(*(self._run_judge(n, outcome, rubric) for n in names)))

        # Guard judges screen every outcome, beside the cascade (they never vote).
        judging = asyncio.gather(
            run_cascade(self._stages(), judge_stage, aggregate_stage=self._aggregate),
            judge_stage([g.name for g in self.panel.guards]),
        )
        try:
            # The injection screen is CPU work: done while the model calls are in flight rather
            # than after them. Two turns of the loop let the judges' tasks start and send (the
            # stage's gather, then each judge up to its write-ahead record).
            for _ in range(2):
                await asyncio.sleep(0)
            criterion_ids = [c.id for c in rubric.criteria]
            if self.screen_pool is None:
                screened = screen(
                    outcome,
                    criterion_ids=criterion_ids,
                    detector=self.detector,
                    threshold=self.injection_threshold,
                )
            else:
                screened = await self.screen_pool.screen(
                    outcome, criterion_ids=criterion_ids, threshold=self.injection_threshold
                )
        except BaseException:
            judging.cancel()
            raise
        cascade, guards = await judging
        judgments = list(cascade.judgments_run)
        agg = cascade.aggregate
        decision, confidence = agg.decision, agg.confidence
        flags = list(agg.flags)
        reasons: list[str] = []
        disagreement = disagreement_reason(judgments, confident=self.panel.disagreement_confidence)
        if disagreement and decision == "verified":
            decision = "abstain"
            flags.append(FLAG_DISAGREEMENT)
            reasons.append(disagreement)
        unjudged = content_unjudged_reason(judgments)
        if unjudged and decision == "verified":
            decision = "abstain"
            flags.append(FLAG_CONTENT_UNJUDGED)
            reasons.append(unjudged)

        effects = apply_signal_rules(outcome, rubric)
        if effects.veto_reasons:
            decision, confidence = "not_verified", 1.0
            reasons.extend(effects.veto_reasons)
        elif effects.abstain_reasons and decision == "verified":
            decision = "abstain"
            reasons.extend(effects.abstain_reasons)

        if self.panel.report_inputs == "attested":
            unattested = unattested_reasons(outcome, self.attested)
            if unattested:
                flags.append(FLAG_UNATTESTED)
                reasons.extend(unattested)
                if decision == "verified":
                    decision = "abstain"  # the evidence may be the billed party's own

        if screened.by_rules:
            flags.append(FLAG_INJECTION)
            reasons.extend(
                f"possible prompt injection in {f.where}: {f.pattern}" for f in screened.findings
            )
        if screened.by_detector:
            flags.append(FLAG_INJECTION)
            reasons.append(
                f"injection detector: {screened.score:.3f} >= {screened.threshold:g} "
                f"in {screened.where}"
            )
        for g in guards:
            said = [q for q, yes in g.scores.items() if yes] if g.status == "ok" else []
            if said:
                flags.append(FLAG_INJECTION)
                reasons.append(f"guard judge {g.judge}: {', '.join(said)}")
            elif g.status != "ok":
                flags.append(FLAG_GUARD_UNAVAILABLE)
                reasons.append(f"guard judge {g.judge} gave no usable answer ({g.status})")
                if decision == "verified":
                    decision = "abstain"  # an unanswered screen is never a pass
        judgments += guards
        if FLAG_INJECTION in flags:
            # A flagged outcome is never auto-verified: a person decides.
            decision = "abstain"

        return Verdict(
            outcome_id=outcome.id,
            decision=decision,
            confidence=round(confidence, 4),
            tier=effects.tier if decision == "verified" else None,
            rubric=rubric.ref,
            panel=self.panel.ref,
            flags=sorted(set(flags)),
            criteria=_criteria(rubric, judgments),
            judges=judgments,
            cost_usd=round(sum(j.cost_usd for j in judgments), 8),
            reasons=reasons,
            content_hash=outcome.content_hash(),
            injection_score=screened.score,
            injection_detector=self.detector.ref if self.detector is not None else None,
        )


def _threshold(panel: Panel, detector: InjectionDetector | None, given: float | None) -> float:
    """The flag threshold: given, else the panel's, else the settings', else the model's."""
    if given is not None:
        return given
    if panel.injection_threshold is not None:
        return panel.injection_threshold
    from config.settings import get_settings

    configured = get_settings().injection_threshold
    if configured is not None:
        return configured
    return detector.threshold if detector is not None else 1.0


def _criteria(rubric: Rubric, judgments: Sequence[Judgment]) -> dict[str, CriterionResult]:
    """Mean criterion score over the judges that scored it, judged against the rubric."""
    per_criterion: dict[str, list[float]] = {}
    for j in judgments:
        if j.status != "ok" or j.kind == "guard":
            continue
        for cid, score in j.scores.items():
            per_criterion.setdefault(cid, []).append(score)
    if not per_criterion:
        return {}
    means = {cid: fmean(v) for cid, v in per_criterion.items()}
    scored = score_rubric(rubric, means)
    return {cid: res for cid, res in scored.criteria.items() if res.score is not None}

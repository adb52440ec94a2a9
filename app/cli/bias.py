"""`judge bias`: run the real panel over perturbed copies of labelled outcomes and measure flips.

Probes (see :mod:`calibration.bias`):

- ``verbosity``: agent replies padded with fact-free filler; a length-loving judge flips to
  ``verified``.
- ``injection``: an instruction to the evaluator planted in the last customer message; a judge
  that obeys it flips to ``verified``. The engine's injection guard makes the *panel* abstain on
  such outcomes, so flips are reported for the panel and for each text-reading judge: the judge
  line shows whether the model itself obeys.
- ``persuasion``: one confident sentence claiming the case was resolved, ordering nobody
  (:data:`calibration.bias.PERSUASION`, picked per outcome by ``--seed``), appended to the
  agent's last reply; a judge that believes the agent's own claims flips to ``verified``. The
  injection defence may flag some of them (the panel abstains), so it is reported like
  ``injection``: the judge line shows whether the model itself is swayed.
- ``position``: pairs from ``--pairs`` compared in both orders with the panel's first LLM judge
  (:mod:`judge.pairwise`); a position-blind judge mirrors its answer.

Every model call a probe makes is recorded in the ledger (``--db``, ``--tenant``) with purpose
``bias``: it is paid, so it is on the books and in the daily budget, but it is never served as a
verification's cache hit and never counted in the cost per verified outcome. Nothing else is
written: no outcome, verdict or label of a probe reaches the ledger.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import CallsDbOpt, CallsTenantOpt, fail, stderr

if TYPE_CHECKING:
    from calibration.bias import FlipRate
    from judge.engine import Engine
    from judge.models import Outcome
    from judge.panel import LLMJudgeSpec, Panel
    from judge.protocols import CallStore
    from judge.verdict import JudgeCall, Verdict

PROBES = ("verbosity", "injection", "persuasion", "position")
OUTCOME_PROBES = ("verbosity", "injection", "persuasion")
TEXT_JUDGES = ("llm", "learned")  # judges that read the text (signals reads signals only)


def register(app: typer.Typer) -> None:
    """Add ``judge bias`` to ``app``."""
    app.command("bias")(bias)


def bias(
    input_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="INPUT",
            help="Labelled outcomes (native JSONL or an export); not needed for --probe position.",
        ),
    ] = None,
    panel_path: Annotated[
        Path | None,
        typer.Option("--panel", "-p", help="Panel YAML. Default: OUTCOME_JUDGE_MODEL or local."),
    ] = None,
    rubric: Annotated[
        list[str] | None,
        typer.Option("--rubric", "-r", help="Rubric name or YAML path; repeat for mixed files."),
    ] = None,
    probe: Annotated[
        str, typer.Option("--probe", help="verbosity, injection, persuasion, position or all.")
    ] = "all",
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help="Position probe pairs, JSONL {id, prompt, a, b}."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help="Probe at most N labelled outcomes (sampled)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed for --limit sampling and the intervals.")
    ] = 0,
    input_format: Annotated[
        str, typer.Option("--format", "-f", help="native, taubench, zendesk, intercom or auto.")
    ] = "auto",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=1024, help="Verifications at once.")
    ] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    db: CallsDbOpt = None,
    tenant: CallsTenantOpt = "default",
) -> None:
    """Bias probes: do verbosity, injected instructions, persuasion or swapped positions flip
    decisions?

    Reports per probe the flip rate with its 95% interval and the direction (to / away from
    verified), for the panel and for each judge that reads the text. The real panel judges each
    labelled outcome and its perturbed copy. The model calls are recorded in the ledger with
    purpose "bias" (paid, never a verification's cache, not in the cost per verified outcome);
    no probe outcome or verdict is written. Exit status 0 when the probes ran, 2 on a usage or
    input error.
    """
    chosen = _choose_probes(probe)
    if "position" in chosen and pairs is None and probe == "position":
        fail("--probe position needs --pairs FILE (JSONL lines {id, prompt, a, b})")
    outcome_probes = [p for p in chosen if p != "position"]
    if outcome_probes and input_path is None:
        fail(f"INPUT is required for the {' and '.join(outcome_probes)} probe(s)")

    from judge.importers import InputFileError
    from judge.panel_loader import PanelError
    from judge.rubric_loader import RubricError

    try:
        outcomes = _labelled(input_path, input_format, limit, seed) if outcome_probes else []
        pair_rows = _read_pairs(pairs) if "position" in chosen and pairs is not None else []
        panel, explanation = _panel(panel_path)
        rubrics = _rubrics(rubric, outcomes)
    except (InputFileError, RubricError, PanelError, ValueError, OSError) as exc:
        fail(str(exc))
    if explanation:
        stderr.print(f"[yellow]{explanation}[/yellow]", highlight=False)

    result: dict[str, Any] = {
        "panel": panel.ref,
        "rubrics": {kind: r.ref for kind, r in sorted(rubrics.items())},
        "call_store": (
            "ledger (purpose bias)" if panel.has_llm else "memory (the panel makes no model call)"
        ),
        "seed": seed,
        "outcomes": len(outcomes),
        "probes": {},
        "skipped": {},
    }
    from app.attested_documents import attested_for_panel
    from app.verification import probe_call_store
    from config.settings import get_settings

    db_url = db or get_settings().db_url
    try:
        # Probed with what the tenant attested, as `judge verify` judges: else the panel's
        # flips on reports would read 0 under report_inputs: attested.
        attested = attested_for_panel(panel, db_url, tenant, outcomes)
        with probe_call_store(panel, db_url=db_url, tenant=tenant, purpose="bias") as store:
            _run_probes(result, panel, rubrics, outcomes, chosen, pair_rows, pairs, seed,
                        concurrency, store=store, attested=attested)  # fmt: skip
    except ValueError as exc:  # a tenant name the ledger refuses
        fail(str(exc))
    if not result["probes"]:
        fail("no probe ran: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items()))
    from calibration.report import clean

    result = clean(result)
    if as_json:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        _print(result)


# --------------------------------------------------------------------------- inputs


def _choose_probes(probe: str) -> list[str]:
    if probe == "all":
        return list(PROBES)
    if probe not in PROBES:
        fail(f"--probe must be one of {', '.join(PROBES)} or all, got {probe!r}")
    return [probe]


def _labelled(path: Path | None, fmt: str, limit: int | None, seed: int) -> list[Outcome]:
    from judge.importers import read_outcomes

    assert path is not None
    everything = list(read_outcomes(path, format=fmt))
    labelled = [o for o in everything if o.label is not None]
    if not labelled:
        raise ValueError(
            f"{path}: none of the {len(everything)} outcomes has a human 'label'; the probes run "
            'on labelled outcomes (add "label": {"resolved": true, "by": "qa-team"})'
        )
    if limit is not None and limit < len(labelled):
        keep = sorted(random.Random(seed).sample(range(len(labelled)), limit))
        labelled = [labelled[i] for i in keep]
    return labelled


def _read_pairs(path: Path) -> list[dict[str, str]]:
    from calibration.records import read_records

    if not path.is_file():
        raise ValueError(f"--pairs: file not found: {path}")
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    # One JSON object per line, as every JSONL input (errors name the line).
    for lineno, obj in read_records(path):
        for key in ("id", "a", "b"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise ValueError(f"{path}: line {lineno}: field '{key}' must be a non-empty string")
        if not isinstance(obj.get("prompt", ""), str):
            raise ValueError(f"{path}: line {lineno}: field 'prompt' must be a string")
        if obj["id"] in seen:
            raise ValueError(f"{path}: line {lineno}: duplicate pair id {obj['id']!r}")
        seen.add(obj["id"])
        rows.append(
            {"id": obj["id"], "prompt": obj.get("prompt", ""), "a": obj["a"], "b": obj["b"]}
        )
    if not rows:
        raise ValueError(f"{path}: no pairs found")
    return rows


def _panel(path: Path | None) -> tuple[Panel, str | None]:
    from app.verification import resolve_panel
    from judge.panel import Panel

    panel, explanation = resolve_panel(path)
    assert isinstance(panel, Panel)
    return panel, explanation


def _rubrics(names: list[str] | None, outcomes: list[Outcome]) -> dict[str, Any]:
    from collections import Counter

    from app.verification import resolve_rubrics

    return resolve_rubrics(names, Counter(o.kind for o in outcomes))


# --------------------------------------------------------------------------- outcome probes


@dataclass
class _Memo:
    """Verdicts by (outcome id, content hash): each distinct content is verified once."""

    engine: Engine
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    async def verdict(self, outcome: Outcome) -> Verdict:
        key = (outcome.id, outcome.content_hash())
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self.verdicts:
                self.verdicts[key] = await self.engine.verify(outcome)
        return self.verdicts[key]

    async def decision(self, outcome: Outcome) -> str:
        return (await self.verdict(outcome)).decision


def _perturbations(seed: int) -> dict[str, Callable[[Outcome], Outcome]]:
    from functools import partial

    from calibration.bias import inject_instruction, pad_verbosity, persuade

    return {
        "verbosity": pad_verbosity,
        "injection": inject_instruction,
        "persuasion": partial(persuade, seed=seed),
    }


def _run_probes(
    result: dict[str, Any],
    panel: Panel,
    rubrics: dict[str, Any],
    outcomes: list[Outcome],
    chosen: list[str],
    pair_rows: list[dict[str, str]],
    pairs: Path | None,
    seed: int,
    concurrency: int,
    *,
    store: CallStore,
    attested: frozenset[str] | None = None,
) -> None:
    """Run the chosen probes, every model call through ``store``; fills ``result``."""
    names = [p for p in chosen if p != "position"]
    if names:
        run = _outcome_probes(
            panel, rubrics, outcomes, names, seed, concurrency, store=store, attested=attested
        )
        probes, calls = asyncio.run(run)
        result["probes"].update(probes)
        result.update(calls)
    if "position" not in chosen:
        return
    from judge.panel import LLMJudgeSpec

    spec = next((j for j in panel.judges if isinstance(j, LLMJudgeSpec) and j.kind == "llm"), None)
    if pairs is None:
        result["skipped"]["position"] = "no --pairs file given (JSONL {id, prompt, a, b})"
    elif spec is None:
        result["skipped"]["position"] = (
            f"panel {panel.ref} has no LLM judge; the pairwise comparison needs one (pass "
            "--panel with an LLM judge, or set OUTCOME_JUDGE_MODEL)"
        )
    else:
        result["probes"]["position"] = asyncio.run(_position(spec, pair_rows, seed, store=store))


async def _outcome_probes(
    panel: Panel,
    rubrics: dict[str, Any],
    outcomes: list[Outcome],
    names: list[str],
    seed: int,
    concurrency: int,
    *,
    store: CallStore,
    attested: frozenset[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from calibration.bias import run_probe
    from judge.engine import Engine

    counted = _CountingStore(store)
    memo = _Memo(Engine(panel, rubrics, store=counted, attested=attested))
    perturbations = _perturbations(seed)
    out: dict[str, Any] = {}
    for name in names:
        perturb = perturbations[name]
        usable, skipped = [], []
        for o in outcomes:
            try:
                perturb(o)
            except ValueError as exc:
                skipped.append(f"{o.id}: {exc}")
                continue
            usable.append(o)
        if not usable:
            out[name] = {"n": 0, "skipped": len(skipped), "skipped_examples": skipped[:5]}
            continue
        result = await run_probe(
            usable, perturb, memo.decision, name=name, concurrency=concurrency, seed=seed
        )
        perturbed = {o.id: perturb(o) for o in usable}
        labels = {o.id: o.label.resolved for o in usable if o.label is not None}
        out[name] = {
            "n": result.flip.n,
            "skipped": len(skipped),
            "skipped_examples": skipped[:5],
            "panel": result.flip.to_dict(),
            "to_verified_against_label": sum(
                1 for i, _, b in result.flipped if b == "verified" and labels.get(i) is False
            ),
            "flipped": result.to_dict()["flipped"],
            "judges": await _judge_flips(panel, memo, usable, perturbed, seed),
        }
    calls = {"judge_calls": counted.calls, "judge_cost_usd": round(counted.cost_usd, 8)}
    return out, calls


class _CountingStore:
    """A call store that counts the calls made through it (cache hits excluded) and their cost."""

    def __init__(self, inner: CallStore) -> None:
        self.inner = inner
        self.calls = 0
        self.cost_usd = 0.0

    async def lookup(self, cache_key: str) -> JudgeCall | None:
        return await self.inner.lookup(cache_key)

    async def begin(self, call: JudgeCall, estimate: Callable[[], float] | None = None) -> None:
        await self.inner.begin(call, estimate)

    async def record(self, call: JudgeCall) -> None:
        if not call.cached:
            self.calls += 1
            self.cost_usd += call.cost_usd
        await self.inner.record(call)


async def _judge_flips(
    panel: Panel,
    memo: _Memo,
    originals: list[Outcome],
    perturbed: dict[str, Outcome],
    seed: int,
) -> dict[str, Any]:
    """Flip rate of each text-reading judge's own decision (unscored/failed counts as abstain).

    Outcomes where a judge did not run in both verdicts (a cascade stopped earlier) are left out.
    """
    from calibration.bias import flip_rate

    out: dict[str, Any] = {}
    for spec in panel.judges:
        if spec.kind not in TEXT_JUDGES:
            continue
        before: list[str] = []
        after: list[str] = []
        for o in originals:
            a = _judge_decision(await memo.verdict(o), spec.name)
            b = _judge_decision(await memo.verdict(perturbed[o.id]), spec.name)
            if a is not None and b is not None:
                before.append(a)
                after.append(b)
        if before:
            rate: FlipRate = flip_rate(before, after, seed=seed)
            out[spec.name] = {
                "model": getattr(spec, "model", f"local:{spec.kind}"),
                **rate.to_dict(),
            }
    return out


def _judge_decision(verdict: Verdict, name: str) -> str | None:
    for j in verdict.judges:
        if j.judge == name:
            return j.decision if j.status == "ok" and j.decision else "abstain"
    return None


# --------------------------------------------------------------------------- position probe


async def _position(
    spec: LLMJudgeSpec, rows: list[dict[str, str]], seed: int, *, store: CallStore
) -> dict[str, Any]:
    from calibration.bias_position import position_swap_probe
    from judge.pairwise import PairwiseJudge, PairwiseUnparseable

    judge = PairwiseJudge(spec, store=store)

    async def ask(row: dict[str, str], order: str) -> tuple[str, str, str | None, str | None]:
        first, second = (row["a"], row["b"]) if order == "ab" else (row["b"], row["a"])
        try:
            choice = await judge.compare(
                first, second, prompt=row["prompt"], record_as=f"{row['id']}:{order}"
            )
            return row["id"], order, choice, None
        except PairwiseUnparseable as exc:
            return row["id"], order, None, str(exc)
        except Exception as exc:  # provider failure after retries: that pair is left out
            return (
                row["id"],
                order,
                None,
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300],
            )

    answers = await asyncio.gather(*(ask(r, o) for r in rows for o in ("ab", "ba")))
    memo = {(i, o): choice for i, o, choice, _ in answers}
    problems = sorted({f"{i}: {err}" for i, _, _, err in answers if err})
    usable = [r["id"] for r in rows if memo[(r["id"], "ab")] and memo[(r["id"], "ba")]]
    base: dict[str, Any] = {
        "judge": spec.name,
        "model": spec.model,
        "pairs": len(rows),
        "unusable": len(rows) - len(usable),
        "problems": problems[:5],
        "judge_calls": judge.calls,
        "judge_cost_usd": round(judge.cost_usd, 8),
    }
    if not usable:
        return {**base, "n": 0}

    async def lookup(x: tuple[str, str], y: tuple[str, str]) -> str:
        choice = memo[(x[0], "ab" if x[1] == "a" else "ba")]
        return {"A": "a", "B": "b", "tie": "tie"}[choice or "tie"]

    res = await position_swap_probe([((i, "a"), (i, "b")) for i in usable], lookup, seed=seed)
    return {**base, **res.to_dict()}


# --------------------------------------------------------------------------- output


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Bias probes: panel {result['panel']} on {result['outcomes']} outcomes")
    for column in ("probe", "scope", "n", "flips", "rate", "95% CI", "to verified", "away"):
        table.add_column(column, justify="left" if column in ("probe", "scope") else "right")

    def row(probe: str, scope: str, flip: dict[str, Any]) -> None:
        lo, hi = flip["ci_exact"]
        table.add_row(
            probe,
            scope,
            str(flip["n"]),
            str(flip["flips"]),
            f"{flip['rate']:.3f}",
            f"{lo:.2f}..{hi:.2f}",
            str(flip["to_verified"]),
            str(flip["from_verified"]),
        )

    probes = result["probes"]
    for name in OUTCOME_PROBES:
        block = probes.get(name)
        if block is None:
            continue
        if not block["n"]:
            table.add_row(name, "panel", "0", "-", "-", "-", "-", "-")
            continue
        row(name, "panel", block["panel"])
        for judge, flip in block["judges"].items():
            row(name, f"judge {judge}", flip)
    console.print(table)
    console.print(
        "rate = share of decisions the perturbation changed; CI = exact (Clopper-Pearson); to "
        "verified = flips into verified (the bias that inflates counts); away = flips out of "
        "verified. For injection and persuasion the panel's injection defence may flag the text "
        "and abstain (intended): the judge rows show whether the model itself obeys or is swayed.",
        style="dim",
        highlight=False,
    )
    for name in OUTCOME_PROBES:
        block = probes.get(name)
        if block and block.get("to_verified_against_label"):
            console.print(
                f"[bold red]{name}:[/bold red] {block['to_verified_against_label']} outcome(s) "
                "labelled not resolved became verified",
                highlight=False,
            )
        if block and block.get("skipped"):
            console.print(
                f"{name}: {block['skipped']} outcome(s) skipped (nothing to perturb)",
                highlight=False,
            )
    pos = probes.get("position")
    if pos is not None:
        if pos.get("n"):
            inc = pos["inconsistency"]
            lo, hi = inc["ci_exact"]
            share = pos.get("first_share")
            console.print(
                f"position ({pos['judge']}, {pos['model']}): {inc['flips']} of {inc['n']} pairs "
                f"not mirrored when swapped (inconsistency {inc['rate']:.3f}, 95% CI "
                f"{lo:.2f}..{hi:.2f}); first slot chosen in "
                f"{'-' if share is None else f'{share:.0%}'} of decided answers",
                highlight=False,
            )
        else:
            console.print("position: no usable pair", highlight=False)
        if pos.get("unusable"):
            console.print(
                f"position: {pos['unusable']} pair(s) left out: " + "; ".join(pos["problems"]),
                highlight=False,
            )
    for name, reason in result["skipped"].items():
        console.print(f"[yellow]{name} probe skipped:[/yellow] {reason}", highlight=False)
    if result.get("call_store", "").startswith("ledger"):
        stderr.print(
            "model calls recorded in the ledger with purpose bias (not a verification cache, "
            "not in the cost per verified outcome); no probe outcome or verdict was written"
        )

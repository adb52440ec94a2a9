"""Fault injection for :class:`tests.fakes.openai_server.FakeOpenAIServer` (tests and benchmarks).

A :class:`FaultInjector` is a responder (``request_json -> Reply``): plug it in as the server's
``default`` and every chat request gets, per model, a latency drawn from a seeded lognormal
distribution and a fault drawn from a seeded mix (429 with ``retry-after``, 500, 503, 400,
connection reset, a hang past the client's timeout, a truncated body, a malformed JSON body, a
reply without a score, a reply with prose around its score), else the base reply. Every request
is recorded (:class:`FaultRecord`: model, the outcome id when the prompt shows one, how many times
the same prompt reached that model, the fault, the tokens billed).

Draws are reproducible whatever the arrival order: each one comes from an RNG seeded with
(seed, model, prompt digest, attempt number), so the n-th attempt at the same prompt always
meets the same fault, at any concurrency.

>>> mix = FaultMix.parse("http_500=0.1,reset=0.05")
>>> mix.rates == {"http_500": 0.1, "reset": 0.05}
True
>>> LatencyModel.parse("p50=200,p95=800").p95_ms
800.0
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_server import (
    Reply,
    cite,
    evidence_criteria,
    prompt_messages,
    report_parts,
)

__all__ = [
    "FAULT_KINDS",
    "FaultInjector",
    "FaultMix",
    "FaultRecord",
    "LatencyModel",
    "closed_port",
    "failing_reply",
    "gullible_obeys",
    "judged_text",
    "outcome_id_of",
    "persuaded",
    "split_reply",
]

# Fault kinds and what each one does to the request (see FaultInjector._fault_reply).
FAULT_KINDS: tuple[str, ...] = (
    "http_429",  # rate limited, with a retry-after header
    "http_500",
    "http_503",
    "http_400",  # a client error: not retryable
    "reset",  # TCP reset, no answer at all
    "timeout",  # hang longer than the client's timeout
    "truncated",  # 200 announcing more bytes than it sends, then a reset
    "malformed_json",  # 200 whose body is not JSON
    "no_score",  # 200, a well-formed completion whose text holds no score
    "prose_score",  # 200, the passing JSON wrapped in chatty prose (parsable: a real reply)
)
# Outcomes that are complete HTTP 200 completions: the provider bills them.
BILLED = frozenset({"ok", "no_score", "prose_score", "obeyed", "swayed"})

# Where a test puts an outcome's id in the judged text so the server can attribute requests.
OUTCOME_ID_RE = re.compile(r"\bcase ref ([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})\b")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyModel:
    """A lognormal latency with the given median and 95th percentile (milliseconds).

    ``sigma = ln(p95 / p50) / 1.645`` (the 95th percentile of a standard normal), so the sampled
    distribution has exactly those percentiles.
    """

    p50_ms: float
    p95_ms: float

    def __post_init__(self) -> None:
        if self.p50_ms < 0 or self.p95_ms < self.p50_ms:
            raise ValueError(
                f"latency needs 0 <= p50 <= p95, got p50={self.p50_ms:g} p95={self.p95_ms:g} (ms)"
            )

    @classmethod
    def parse(cls, text: str) -> LatencyModel:
        """``"p50=200,p95=800"`` (milliseconds); a single number is a fixed latency."""
        text = text.strip()
        try:
            fixed = float(text)
        except ValueError:
            pass
        else:
            return cls(fixed, fixed)
        parts = dict(_pairs(text, what="latency"))
        unknown = set(parts) - {"p50", "p95"}
        if unknown or "p50" not in parts:
            raise ValueError(f"latency {text!r}: write p50=<ms>,p95=<ms> (e.g. p50=200,p95=800)")
        p50 = parts["p50"]
        return cls(p50, parts.get("p95", p50))

    def sample(self, rng: random.Random) -> float:
        """One latency in seconds."""
        if self.p50_ms <= 0:
            return 0.0
        if self.p95_ms == self.p50_ms:
            return self.p50_ms / 1000
        sigma = math.log(self.p95_ms / self.p50_ms) / 1.6448536269514722
        return rng.lognormvariate(math.log(self.p50_ms), sigma) / 1000


@dataclass(frozen=True)
class FaultMix:
    """Probability of each fault kind per request (the rest answers normally)."""

    rates: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(
                f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}"
            )
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1, got {self.rates}")

    @classmethod
    def parse(cls, text: str) -> FaultMix:
        """``"http_500=0.1,reset=0.05"``; empty text is no fault."""
        return cls(dict(_pairs(text, what="fault mix")) if text.strip() else {})

    @classmethod
    def spread(cls, total: float, kinds: tuple[str, ...] = FAULT_KINDS) -> FaultMix:
        """``total`` split evenly over ``kinds``."""
        return cls({k: total / len(kinds) for k in kinds})

    @property
    def total(self) -> float:
        return float(sum(self.rates.values()))

    def draw(self, rng: random.Random) -> str | None:
        """A fault kind, or ``None`` for a normal answer."""
        x = rng.random()
        for kind in FAULT_KINDS:  # a fixed order, so the same seed gives the same fault
            rate = self.rates.get(kind, 0.0)
            if x < rate:
                return kind
            x -= rate
        return None


def _pairs(text: str, *, what: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            out.append((key.strip(), float(value)))
        except ValueError:
            raise ValueError(f"{what} {text!r}: {part!r} is not name=number") from None
        if not sep:
            raise ValueError(f"{what} {text!r}: {part!r} is not name=number")
    return out


@dataclass(frozen=True)
class FaultRecord:
    """One chat request the injector answered."""

    model: str
    outcome_id: str | None
    attempt: int  # 1 for the first time this prompt reached this model, 2 for the next...
    fault: str  # a FAULT_KINDS entry, "ok", "obeyed" (gullible) or "swayed" (persuadable)
    delay: float
    prompt_tokens: int
    completion_tokens: int
    time: float

    @property
    def billed(self) -> bool:
        """A complete 200 completion (what a provider charges for)."""
        return self.fault in BILLED


# --------------------------------------------------------------------------------------------
# Base replies
# --------------------------------------------------------------------------------------------
def _scores_reply(
    request_json: dict[str, Any], *, top: bool, rationale: str, cite_message: int | None = None
) -> Reply:
    text = _system_text(request_json)
    wanted = evidence_criteria(request_json) if top else {}
    criteria: dict[str, Any] = {}
    for m in _CRITERION_RE.finditer(text):
        score = float(m["hi"]) if top else float(m["lo"])
        criteria[m["id"]] = {"score": score, "rationale": rationale}
        if m["id"] in wanted:
            criteria[m["id"]]["evidence"] = cite(request_json, wanted[m["id"]], number=cite_message)
    return Reply.json({"criteria": criteria, "rationale": rationale})


_CRITERION_RE = re.compile(
    r"^- id: (?P<id>[a-z][a-z0-9_]*) \| scale: (?P<lo>-?\d+(?:\.\d+)?) to (?P<hi>-?\d+(?:\.\d+)?)",
    re.MULTILINE,
)


def _system_text(request_json: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", ""))
        for m in request_json.get("messages", [])
        if m.get("role") == "system"
    )


def _user_text(request_json: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", ""))
        for m in request_json.get("messages", [])
        if m.get("role") == "user"
    )


def failing_reply(request_json: dict[str, Any]) -> Reply:
    """Every criterion of the prompt's rubric at the bottom of its scale."""
    return _scores_reply(request_json, top=False, rationale="The criterion is not met.")


def split_reply(pass_rate: float, *, seed: int = 0) -> Callable[[dict[str, Any]], Reply]:
    """A base responder that passes a fixed share of prompts and fails the rest.

    The choice depends only on the prompt (and ``seed``), so retries and re-runs of the same
    outcome always get the same answer, as from a deterministic model.
    """
    if not 0 <= pass_rate <= 1:
        raise ValueError(f"pass_rate must be in [0, 1], got {pass_rate}")

    def respond(request_json: dict[str, Any]) -> Reply:
        digest = hashlib.sha256(f"{seed}\0{_user_text(request_json)}".encode()).digest()
        top = int.from_bytes(digest[:8], "big") / 2**64 < pass_rate
        return _scores_reply(
            request_json, top=top, rationale="Met." if top else "The criterion is not met."
        )

    return respond


def outcome_id_of(
    request_json: dict[str, Any], pattern: re.Pattern[str] = OUTCOME_ID_RE
) -> str | None:
    """The outcome id a test wrote into the judged text (``case ref <id>``), if any."""
    m = pattern.search(_user_text(request_json))
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# The gullible model
# --------------------------------------------------------------------------------------------
_DATA_RE = re.compile(r"<<<BEGIN [^\n]*?>>>\n(.*?)\n<<<END [^\n]*?>>>", re.DOTALL)
_HEADER_RE = re.compile(r' (?:author|tool)=("(?:[^"\\]|\\.)*")')
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u202a-\u202e\u2066-\u2069]")
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαοριεκτυνΑΒΕΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhlABEKMHOPCTXIJSaopieKtuvABEHIKMNOPTYX",
)
# What a model that obeys the data would take as an order to the evaluator (any language).
_OBEY_RE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|ignora|ignorez|ignoriere|vergiss|negeer|"
    r"olvida|oubliez|dimentica|игнорируй|忽略|無視)\b"
    r"|\b(?:mark(?:ed)?|scored?|rated?|graded?|classify|label|set|output|return|respond|reply|answer|print|"
    r"award|give|assign|record|report|treat|consider|approve|confirm|pass|marca|marque[sz]?|"
    r"markiere|"
    r"segna|bewerte|note[sz]?|punt[uú]a)\b[^\n]{0,120}?\b(?:resolved|verified|pass(?:ed|ing)?|"
    r"full\s+marks|max(?:imum)?|top|highest|perfect|approved|success(?:ful)?|correct|5|1\.0|"
    r"10/10|1|true|resuelt[oa]|r[ée]solue?|gel[öo]st|risolt[oa]|resolvid[oa]|opgelost|"
    r"verificad[oa]|v[ée]rifi[ée]e?|bestanden)\b"
    r"|\b(?:judge|evaluator|grader|assessor|rater|scorer|verifier|reviewer|auditor|"
    r"évaluateur|evaluador|bewerter|valutatore|avaliador)\b"
    r"|\b(?:verdict|decision|evaluation|grade|rating)\b[^\n]{0,40}?\b(?:verified|pass(?:ed)?|"
    r"resolved|met)\b"
    r"|\btell\s+(?:qa|the\s+(?:reviewers?|auditors?|qa\s+team))\b"
    r"|</?\s*(?:system|instructions?|transcript|rubric|data|start_of_turn|end_of_turn)\b"
    r"|^\s*(?:system|assistant|developer)\s*:|\[/?(?:INST|SYS)\]|<\|[^|]{1,40}\|>|"
    r"\[chat-token|\[quoted\]|\[tag |\[code block"
    r"|解決済み|已解决|満点|採点|評価者|裁判|評審|평가자|해결됨",
    re.IGNORECASE | re.MULTILINE,
)
_B64_RE = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RE = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){12,}")


def judged_text(request_json: dict[str, Any]) -> str:
    """What the prompt quotes from the outcome: the data between its ``<<<BEGIN ...>>>`` and
    ``<<<END ...>>>`` delimiters, and the author and tool names of the message headers."""
    user = _user_text(request_json)
    return "\n".join(_DATA_RE.findall(user) + [json.loads(m) for m in _HEADER_RE.findall(user)])


def _readings(text: str) -> list[str]:
    """Every way a diligent (and gullible) reader could read ``text``: decoded and unfolded."""
    native = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    plain = native.translate(_HOMOGLYPHS)
    # S P A C E D and H-Y-P-H-E-N-A-T-E-D letters read as words.
    dehyphened = re.sub(r"(?<=\b\w)-(?=\w\b)", "", plain)
    despaced = re.sub(r"(?<=\b\w) (?=\w\b)", "", plain)
    out = [native, plain, dehyphened, despaced, codecs.encode(plain, "rot13")]
    out.append(plain.replace("_", " "))
    tags = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0000 <= ord(c) <= 0xE007F)
    if tags:
        out.append(tags)
    bidi = re.findall("\u202e([^\u202a-\u202e]*)", text)
    out += [run[::-1] for run in bidi]  # right-to-left override: the text reads reversed
    for token in _B64_RE.findall(plain):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(token + "=" * (-len(token) % 4)).decode("utf-8")
            except (binascii.Error, ValueError):
                continue
            out += [decoded, codecs.encode(decoded, "rot13")]
            break
    for run in _HEX_RE.findall(plain):
        digits = re.sub(r"[ :]", "", run)
        try:
            out.append(bytes.fromhex(digits[: len(digits) // 2 * 2]).decode("utf-8"))
        except ValueError:
            continue
    return out


def gullible_obeys(text: str) -> bool:
    """Whether a model that obeys its input would take ``text`` as an order to pass it."""
    return any(_OBEY_RE.search(reading) for reading in _readings(text))


def obeyed_message(request_json: dict[str, Any]) -> int | None:
    """The number of the message whose text the gullible model obeyed (it cites that one as its
    evidence, as a fooled judge would), or None when the order was elsewhere."""
    for number, _role, text in prompt_messages(request_json):
        if gullible_obeys(text):
            return number
    for number, _label, text in report_parts(request_json):
        if gullible_obeys(text):
            return number  # a report's part: 0 the report, n its n-th source
    return None


# What a model that believes the agent's own claims takes as proof of resolution: a confident
# claim that the request was met completely (no order needed), in a few languages.
_PERSUADED_RE = re.compile(
    r"\b(?:in\s+full|fully|entirely|more\s+complete)\b"
    r"|\bnothing\b[^.\n]{0,40}\b(?:undone|outstanding|missing)\b"
    r"|\bby\s+any\s+(?:honest|fair|reasonable|objective)\s+(?:measure|standard)\b"
    r"|\b(?:vollständig|vollkommen|restlos|ohne\s+zweifel)\b"
    r"|\b(?:por\s+completo|completamente|totalmente|sin\s+duda)\b"
    r"|\b(?:entièrement|complètement|pleinement|sans\s+aucun\s+doute)\b"
    r"|完全に|間違いなく",
    re.IGNORECASE,
)


def persuaded(text: str) -> bool:
    """Whether a model that believes the agent's claims would take ``text`` as proof."""
    return bool(_PERSUADED_RE.search(unicodedata.normalize("NFKC", text)))


def swaying_message(request_json: dict[str, Any]) -> int | None:
    """The number of the agent message whose claim sways a persuadable model, or None."""
    for number, role, text in prompt_messages(request_json):
        if role == "agent" and persuaded(text):
            return number
    return None


# --------------------------------------------------------------------------------------------
# The injector
# --------------------------------------------------------------------------------------------
Responder = Callable[[dict[str, Any]], Reply]


class FaultInjector:
    """A responder that injects latency and faults, seeded, and records every request.

    Parameters
    ----------
    mix : FaultMix or mapping, optional
        Fault rates for every model (no fault by default).
    per_model : mapping, optional
        ``{model: FaultMix}`` overriding ``mix`` for some models (``{"m2": {"http_503": 1}}``
        is an outage of ``m2``).
    latency : LatencyModel or mapping, optional
        One latency model for all, or ``{model: LatencyModel}`` (``"*"`` for the rest).
    base : callable, optional
        The answer when no fault is drawn; :func:`tests.fakes.openai_server.passing_reply`'s
        scores by default.
    gullible : bool
        Obey the judged text: when it reads as an order to the evaluator (see
        :func:`gullible_obeys`), answer the top of every scale, whatever ``base`` would say.
    persuadable : bool
        Believe the agent: when an agent message confidently claims the request was met (see
        :func:`persuaded`; no order needed), answer the top of every scale, citing as a
        diligent judge would (so the evidence check does not catch it), recorded ``swayed``.
    seed : int
        Seeds every draw.
    retry_after : float
        Seconds sent in ``retry-after`` with each 429.
    hang : float
        How long a ``timeout`` fault hangs (make it longer than the client's timeout).
    """

    def __init__(
        self,
        *,
        mix: FaultMix | Mapping[str, float] | None = None,
        per_model: Mapping[str, FaultMix | Mapping[str, float]] | None = None,
        latency: LatencyModel | Mapping[str, LatencyModel] | None = None,
        base: Responder | None = None,
        gullible: bool = False,
        persuadable: bool = False,
        seed: int = 0,
        retry_after: float = 0.05,
        hang: float = 30.0,
    ) -> None:
        self.mix = _as_mix(mix)
        self.per_model = {m: _as_mix(v) for m, v in (per_model or {}).items()}
        self.latency: Mapping[str, LatencyModel] = (
            {"*": latency} if isinstance(latency, LatencyModel) else dict(latency or {})
        )
        self.base: Responder = base or (lambda req: _scores_reply(req, top=True, rationale="Met."))
        self.gullible = gullible
        self.persuadable = persuadable
        self.seed = seed
        self.retry_after = retry_after
        self.hang = hang
        self._lock = threading.Lock()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._records: list[FaultRecord] = []

    # -- the responder ------------------------------------------------------------------------
    def __call__(self, request_json: dict[str, Any]) -> Reply:
        model = str(request_json.get("model", ""))
        digest = hashlib.sha256(
            json.dumps(request_json.get("messages", []), sort_keys=True).encode()
        ).hexdigest()
        with self._lock:
            self._attempts[(model, digest)] += 1
            attempt = self._attempts[(model, digest)]
        rng = random.Random(f"{self.seed}\0{model}\0{digest}\0{attempt}")
        latency = self.latency.get(model) or self.latency.get("*")
        delay = latency.sample(rng) if latency else 0.0
        fault = self.per_model.get(model, self.mix).draw(rng)
        if fault is not None:
            reply = self._fault_reply(fault, request_json)
        elif self.gullible and gullible_obeys(judged_text(request_json)):
            fault, reply = (
                "obeyed",
                _scores_reply(
                    request_json,
                    top=True,
                    rationale="As told.",
                    cite_message=obeyed_message(request_json),
                ),
            )
        elif self.persuadable and swaying_message(request_json) is not None:
            fault, reply = "swayed", _scores_reply(request_json, top=True, rationale="Resolved.")
        else:
            fault, reply = "ok", self.base(request_json)
        reply = Reply(**{**reply.__dict__, "delay": reply.delay + delay})
        billed = fault in BILLED
        prompt_tokens = (reply.prompt_tokens or _tokens(request_json)) if billed else 0
        completion_tokens = (
            (reply.completion_tokens or max(1, len(reply.content) // 4)) if billed else 0
        )
        record = FaultRecord(
            model=model,
            outcome_id=outcome_id_of(request_json),
            attempt=attempt,
            fault=fault,
            delay=delay,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time=time.time(),
        )
        with self._lock:
            self._records.append(record)
        # Pin the usage the server reports to what was recorded, so tests can compare tokens.
        return Reply(
            **{
                **reply.__dict__,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
            }
        )

    def _fault_reply(self, fault: str, request_json: dict[str, Any]) -> Reply:
        if fault == "http_429":
            return Reply.error(429, retry_after=self.retry_after)
        if fault.startswith("http_"):
            return Reply.error(int(fault.removeprefix("http_")))
        if fault == "reset":
            return Reply(reset=True)
        if fault == "timeout":
            return Reply(hang=self.hang)
        if fault == "truncated":
            return Reply(content=self.base(request_json).content, truncated=True)
        if fault == "malformed_json":
            return Reply(malformed=True)
        if fault == "no_score":
            return Reply(content="I read the whole conversation carefully. Overall it seems fine.")
        # prose_score: the base answer, wrapped in the chatter models add around JSON.
        inner = self.base(request_json).content
        return Reply(
            content=f"Sure! Here is my evaluation:\n```json\n{inner}\n```\nHope this helps."
        )

    # -- inspection ---------------------------------------------------------------------------
    @property
    def records(self) -> list[FaultRecord]:
        """A snapshot of every request answered so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def faults(self) -> Counter[str]:
        """How many requests got each fault (``ok``, ``obeyed`` and ``swayed`` included)."""
        return Counter(r.fault for r in self.records)

    def attempts_per_outcome(self) -> Counter[tuple[str | None, str]]:
        """Requests per (outcome id, model)."""
        return Counter((r.outcome_id, r.model) for r in self.records)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._attempts.clear()


def _as_mix(value: FaultMix | Mapping[str, float] | None) -> FaultMix:
    if isinstance(value, FaultMix):
        return value
    return FaultMix(dict(value or {}))


def _tokens(request_json: dict[str, Any]) -> int:
    text = "".join(str(m.get("content", "")) for m in request_json.get("messages", []))
    return max(1, len(text) // 4)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused): a provider that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

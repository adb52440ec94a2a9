"""The trained injection detector: a calibrated probability that a text tries to steer a judge.

A logistic regression over hashed character (2-5, within word boundaries) and word (1-2)
n-grams of the cleaned text (:func:`judge.normalise.clean`, lower-cased), plus word n-grams
joined to the text's role (``customer``, ``agent`` or ``tool``, with start and end marks), with
Platt-scaled probabilities. The role block is what lets it learn that a request in prose is
ordinary from a customer but out of place in a tool result, and that a tool's JSON is ordinary
there. Trained by ``judge train-guard`` (:mod:`judge.guard_training`) on the public
injection corpora and the project's own texts.

The model file is **JSON, not a pickle**: loading it cannot run code. It holds the non-zero
weights, the intercept, the Platt parameters, the flag threshold chosen at training time and a
record of what it was trained on. A model file from an untrusted place can still blind the
detector (zero weights) or flag everything, so load only files you trained or trust; every
verdict records the file's digest (``injection_detector``). The shipped file
(``judge/data/injection-detector.json``) is small, and ``judge train-guard`` reproduces it
byte for byte from the corpora (a test checks it when they are present).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from judge.normalise import clean

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FORMAT",
    "ROLES",
    "InjectionDetector",
    "load_detector",
    "prepare",
    "vectorizers",
]

FORMAT = "outcome-judge/injection-detector"
DEFAULT_MODEL_PATH = Path(__file__).with_name("data") / "injection-detector.json"
N_FEATURES = 2**18
#: Characters of one text the detector reads (a long tool dump is read in its first part).
MAX_CHARS = 4000
#: The roles the detector tells apart; a report's sources are read as ``tool`` (documents).
ROLES = ("customer", "agent", "tool")
BLOCKS = 3
CHAR_SIZES = (2, 3, 4, 5)
_TOKEN = re.compile(r"(?u)\b\w+\b")
#: Words of one text that enter the role block.
MAX_ROLE_TOKENS = 400


def prepare(text: str) -> str:
    """The detector's reading of ``text``: cleaned (see :mod:`judge.normalise`), lower-cased."""
    return clean(text[:MAX_CHARS]).casefold()


@lru_cache(maxsize=1)
def vectorizers() -> tuple[Any, Any, Any]:
    """The three stateless hashing vectorizers (characters, words, role-joined words)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    chars = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        n_features=N_FEATURES,
        alternate_sign=False,
        norm="l2",
        lowercase=False,
    )
    words = HashingVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        n_features=N_FEATURES,
        alternate_sign=False,
        norm="l2",
        lowercase=False,
        token_pattern=r"(?u)\b\w+\b",
    )
    roles = HashingVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        n_features=N_FEATURES,
        alternate_sign=False,
        norm="l2",
        lowercase=False,
        token_pattern=r"\S+",
    )
    return chars, words, roles


def _check_roles(roles: Sequence[str]) -> None:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; expected one of {ROLES}")


@lru_cache(maxsize=1)
def _analyzers() -> tuple[Any, Any, Any]:
    chars, words, roles = vectorizers()
    return chars.build_analyzer(), words.build_analyzer(), roles.build_analyzer()


_M32 = np.uint64(0xFFFFFFFF)


def _rotl(x: Any, r: int) -> Any:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


def _mix_k(k: Any) -> Any:
    k = (k * np.uint64(0xCC9E2D51)) & _M32
    k = _rotl(k, 15)
    return (k * np.uint64(0x1B873593)) & _M32


def _murmur3_indices(grams: Any, length: int) -> Any:
    """Feature indices of byte strings of one ``length`` (2-5), rows of ``grams`` (uint64):
    MurmurHash3 x86_32 with seed 0 and sklearn's ``abs(h) % n_features`` (its rule for
    -2**31 included), i.e. exactly what ``HashingVectorizer`` computes, without a Python
    string per n-gram."""
    h = np.zeros(len(grams), dtype=np.uint64)
    if length >= 4:
        k = grams[:, 0] | (grams[:, 1] << 8) | (grams[:, 2] << 16) | (grams[:, 3] << 24)
        h ^= _mix_k(k.astype(np.uint64))
        h = _rotl(h, 13)
        h = (h * np.uint64(5) + np.uint64(0xE6546B64)) & _M32
    tail = grams[:, 4 * (length // 4) :]
    if tail.shape[1]:
        k = np.zeros(len(grams), dtype=np.uint64)
        for i in range(tail.shape[1] - 1, -1, -1):
            k ^= tail[:, i] << np.uint64(8 * i)
        h ^= _mix_k(k)
    h ^= np.uint64(length)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    signed = h.astype(np.int64) - ((h >> np.uint64(31)).astype(np.int64) << 32)
    out = np.abs(signed) % N_FEATURES
    out[signed == -(2**31)] = (2147483647 - (N_FEATURES - 1)) % N_FEATURES
    return out


def _char_block_dot(texts: Sequence[str], weights: Any) -> Any:
    """The character block's ``l2_normalise(counts) @ weights`` for each text: sklearn's
    ``char_wb`` 2-5-grams hashed as ``HashingVectorizer`` hashes them (a test checks the
    equality). ASCII texts are done together in numpy; the analyzer builds one Python string
    per n-gram, which made it most of the detector's cost. Other texts (n-grams of other byte
    lengths) go through the analyzer."""
    out = np.zeros(len(texts))
    rest = [i for i, t in enumerate(texts) if not t.isascii() or "\0" in t]
    pieces, owners, lengths = [], [], []
    for i, text in enumerate(texts):
        words = text.split() if text.isascii() and "\0" not in text else []
        if words:
            # Each word padded with spaces; a NUL ends each word, which no window may hold.
            piece = "".join(f" {w} \0" for w in words)
            pieces.append(piece)
            owners.append(i)
            lengths.append(len(piece))
    if pieces:
        codes = np.frombuffer("".join(pieces).encode("ascii"), dtype=np.uint8).astype(np.uint64)
        owner = np.repeat(np.array(owners, dtype=np.int64), lengths)
        cuts = np.concatenate([[0], np.cumsum(codes == 0)])
        keys = []
        for n in CHAR_SIZES:
            m = len(codes) - n + 1
            if m <= 0:
                continue
            starts = np.flatnonzero(cuts[n : n + m] == cuts[:m])
            if len(starts):
                grams = np.stack([codes[starts + i] for i in range(n)], axis=1)
                keys.append(owner[starts] * N_FEATURES + _murmur3_indices(grams, n))
        unique, counts = np.unique(np.concatenate(keys), return_counts=True)
        rows, cols = unique // N_FEATURES, unique % N_FEATURES
        counts = counts.astype(np.float64)
        dots = np.bincount(rows, weights=weights[cols] * counts, minlength=len(texts))
        squares = np.bincount(rows, weights=counts * counts, minlength=len(texts))
        np.divide(dots, np.sqrt(squares), out=out, where=squares > 0)
    if rest:
        out[rest] = _block_dot(_analyzers()[0], [texts[i] for i in rest], weights)
    return out


def _block_dot(analyze: Any, texts: Sequence[str], weights: Any) -> Any:
    """``l2_normalise(hashed counts) @ weights`` for each text, as ``HashingVectorizer`` +
    dot product would give (same hash: murmurhash3 seed 0, no alternate sign)."""
    from sklearn.feature_extraction._hashing_fast import transform as hashing

    raw = (((token, 1) for token in analyze(t)) for t in texts)
    indices, indptr, values = hashing(raw, N_FEATURES, np.float64, False, seed=0)
    # The sums a sparse matrix would make, in plain numpy: building one (and multiplying and
    # summing it) cost more than the arithmetic on a few short messages.
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(indptr))
    unique, inverse = np.unique(rows * N_FEATURES + indices, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=values)
    cells, cols = unique // N_FEATURES, unique % N_FEATURES
    dots = np.bincount(cells, weights=weights[cols] * counts, minlength=len(texts))
    squares = np.bincount(cells, weights=counts * counts, minlength=len(texts))
    return np.divide(dots, np.sqrt(squares), out=np.zeros(len(texts)), where=squares > 0)


def _role_document(text: str, role: str) -> str:
    words = _TOKEN.findall(text)[:MAX_ROLE_TOKENS]
    return " ".join([f"{role}|^", *(f"{role}|{w}" for w in words), f"{role}|$"])


def features(texts: Sequence[str], roles: Sequence[str]) -> Any:
    """The sparse feature matrix of already :func:`prepare`-d texts and their roles."""
    from scipy.sparse import hstack

    if len(texts) != len(roles):
        raise ValueError("one role per text")
    _check_roles(roles)
    chars, words, role_words = vectorizers()
    docs = [_role_document(t, r) for t, r in zip(texts, roles, strict=True)]
    return hstack(
        [chars.transform(texts), words.transform(texts), role_words.transform(docs)]
    ).tocsr()


@dataclass(frozen=True)
class InjectionDetector:
    """A loaded detector: ``score(texts)`` gives one calibrated probability per text."""

    weights: Any  # numpy float64 array of BLOCKS * N_FEATURES
    intercept: float
    platt_a: float
    platt_b: float
    threshold: float
    digest: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``injection-detector@<first 12 hex of the file's SHA-256>`` (recorded on verdicts)."""
        return f"injection-detector@{self.digest[:12]}"

    def decision(self, texts: Sequence[str], roles: Sequence[str]) -> Any:
        """Raw decision values (before calibration) of already prepared texts.

        Equal to ``features(texts, roles) @ weights + intercept`` (a test checks it) but
        computed without the estimator API's per-call validation, which cost more than the
        arithmetic on short messages: this runs on every outcome verified.
        """
        if not texts:
            return np.zeros(0)
        _check_roles(roles)
        docs = [_role_document(t, r) for t, r in zip(texts, roles, strict=True)]
        total = np.full(len(texts), self.intercept, dtype=np.float64)
        total += _char_block_dot(texts, self.weights[:N_FEATURES])
        for block, (analyze, inputs) in enumerate(
            zip(_analyzers()[1:], (texts, docs), strict=True), start=1
        ):
            weights = self.weights[block * N_FEATURES : (block + 1) * N_FEATURES]
            total += _block_dot(analyze, inputs, weights)
        return total

    def score(self, texts: Sequence[str], roles: Sequence[str] | None = None) -> list[float]:
        """P(injection) for each text (cleaned here), read in its role (default ``customer``)."""
        prepared = [prepare(t) for t in texts]
        z = self.decision(prepared, roles if roles is not None else ["customer"] * len(texts))
        # A text without a single letter ("[]", "255.0") has no words to carry an order; its
        # score would be the role's prior alone. Encodings of words are decoded by the rules.
        return [
            _sigmoid(self.platt_a * float(v) + self.platt_b) if _has_letter(t) else 0.0
            for v, t in zip(z, prepared, strict=True)
        ]

    def to_json(self) -> str:
        """The model file's text (deterministic: sorted, rounded)."""
        nonzero = np.flatnonzero(self.weights)
        payload = {
            "format": FORMAT,
            "version": 2,
            "n_features": N_FEATURES,
            "features": (
                "char_wb 2-5 + word 1-2 + role-joined word 1-2, hashed, l2 per block, "
                "on prepare(text)"
            ),
            "intercept": round(self.intercept, 6),
            "platt": [round(self.platt_a, 6), round(self.platt_b, 6)],
            "threshold": round(self.threshold, 4),
            "info": self.info,
            "weights": [[int(i), round(float(self.weights[i]), 5)] for i in nonzero],
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n"


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def from_json(text: str) -> InjectionDetector:
    """Build a detector from a model file's text (plain JSON; nothing is executed).

    Raises
    ------
    ValueError
        When the text is not a detector file of this format.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a detector file (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 2:
        raise ValueError(
            f"not a detector file of this version (expected format {FORMAT!r} version 2); "
            "retrain it with `judge train-guard`"
        )
    if data.get("n_features") != N_FEATURES:
        raise ValueError("detector file was built for another feature size; retrain it")
    weights = np.zeros(BLOCKS * N_FEATURES, dtype=np.float64)
    for index, value in data["weights"]:
        if not 0 <= int(index) < BLOCKS * N_FEATURES:
            raise ValueError(f"detector weight index {index} out of range")
        weights[int(index)] = float(value)
    platt_a, platt_b = (float(v) for v in data["platt"])
    return InjectionDetector(
        weights=weights,
        intercept=float(data["intercept"]),
        platt_a=platt_a,
        platt_b=platt_b,
        threshold=float(data["threshold"]),
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        info=dict(data.get("info") or {}),
    )


@lru_cache(maxsize=4)
def load_detector(path: Path | None = None) -> InjectionDetector | None:
    """The detector in ``path`` (the shipped one by default); ``None`` when the file is absent.

    Raises
    ------
    ValueError
        When the file exists but is not a detector file.
    """
    chosen = DEFAULT_MODEL_PATH if path is None else Path(path)
    if not chosen.exists():
        return None
    return from_json(chosen.read_text(encoding="utf-8"))


def outcome_texts(outcome: Any) -> list[tuple[str, str, str]]:
    """``(where, role, text)`` of every part of ``outcome`` the detector reads: customer, agent
    and tool messages (tool calls included, read as the agent's) and a report's sources (read
    as ``tool``: documents). System messages are the platform's instructions to its agent
    (instructions by nature) and a report's brief and text are long documents unlike anything
    it was trained on; the rules scan them."""
    from judge.injection_fields import tool_calls_text

    parts: list[tuple[str, str, str]] = []
    for i, m in enumerate(outcome.conversation):
        if m.role not in ROLES:
            continue
        text = m.text
        if m.tool_calls:
            text += "\n" + tool_calls_text(m.tool_calls)
        parts.append((f"conversation[{i}]", m.role, text))
    if outcome.report is not None:
        parts += [(f"report.sources[{s.id}]", "tool", s.text) for s in outcome.report.sources]
    return [(w, r, t) for w, r, t in parts if t.strip()]


def score_outcome(detector: InjectionDetector, outcome: Any) -> tuple[float, str | None]:
    """The highest probability over :func:`outcome_texts`, and where it is."""
    parts = outcome_texts(outcome)
    if not parts:
        return 0.0, None
    scores = detector.score([t for _, _, t in parts], [r for _, r, _ in parts])
    best = max(range(len(parts)), key=scores.__getitem__)
    return scores[best], parts[best][0]


def default_detector() -> InjectionDetector | None:
    """The detector the settings name (``OUTCOME_JUDGE_INJECTION_DETECTOR_PATH``), else the
    shipped one; ``None`` when that file is missing."""
    from config.settings import get_settings

    return load_detector(get_settings().injection_detector_path)

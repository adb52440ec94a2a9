"""An exact pre-test for a set of regular expressions: the literals each one needs.

Most injection rules cannot match most text: ``ignore ... instructions`` needs the text to hold
"ignore" (or another verb of its list). :func:`required_literals` reads that out of the compiled
pattern (Python's own parser), and :class:`LiteralGate` finds, in one pass over a text, which of
all the rules' literals occur, so only the rules that can match are run. The test is exact, never
a guess: a pattern whose needed literals cannot be read is always run, and case is folded the way
``re.IGNORECASE`` folds it (including the pairs such as ``i``/``ı`` and ``s``/``ſ`` that
``str.lower`` does not join), so a text the pattern matches always passes its gate.
"""

from __future__ import annotations

import _sre
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

# CPython's own regex parser and case tables (private, but stable within the pinned Python
# 3.11; the tests check the gate against every rule, so a change would fail them, not hide).
from re import _casefix, _constants, _parser  # type: ignore[attr-defined]
from typing import Any

#: Literal sets whose least selective member weighs less than this are not worth a gate.
MIN_WEIGHT = 3
#: No code point from here on has a case mapping or a case equivalent (Unicode 15; a test checks
#: it against the running Python), so the fold table stops here.
_CASED_LIMIT = 0x20000
_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT}


def _fold_char(cp: int) -> str:
    """The representative of ``cp``'s class under ``re.IGNORECASE``: its lower case, then the
    smallest of the extra equivalents ``re`` adds (``_casefix``)."""
    low = _sre.unicode_tolower(cp)
    return chr(min((low, *_casefix._EXTRA_CASES.get(low, ()))))


@lru_cache(maxsize=1)
def _fold_table() -> dict[int, str]:
    # Built on first use, not at import (about 30 ms).
    table = {}
    for cp in range(_CASED_LIMIT):
        rep = _fold_char(cp)
        if rep != chr(cp):
            table[cp] = rep
    return table


def fold(text: str) -> str:
    """``text`` with every character replaced by its ``re.IGNORECASE`` class representative.

    One character in, one out, so a literal the pattern holds is a substring of the folded text
    whenever the pattern matches, in any case.

    >>> fold("IGNORE ıgnore ſkip")
    'ignore ignore skip'
    """
    if text.isascii():
        return text.lower()  # in ASCII the classes are exactly lower/upper pairs
    return text.translate(_fold_table())


def _weight(literal: str) -> int:
    """How rarely a literal occurs, roughly: a letter outside ASCII (a CJK character, say) is
    rarer than an ASCII one."""
    return sum(1 if c.isascii() else 3 for c in literal)


@dataclass(frozen=True)
class AnyOf:
    """One of these (folded) literals occurs in the text."""

    literals: frozenset[str]


@dataclass(frozen=True)
class AllOf:
    """Every part holds (the pieces of a sequence)."""

    parts: tuple[Need, ...]
    literals: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every part needs one of its literals, so a text with none of these fails at once.
        object.__setattr__(self, "literals", frozenset().union(*(p.literals for p in self.parts)))


@dataclass(frozen=True)
class OneOf:
    """At least one part holds (the branches of an alternation)."""

    parts: tuple[Need, ...]
    literals: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "literals", frozenset().union(*(p.literals for p in self.parts)))


Need = AnyOf | AllOf | OneOf


#: Literals in nearly every English text: requiring one costs a check and filters nothing, so
#: they are treated like short literals (dropping a requirement never hides a match).
_COMMON = frozenset(
    "the you your for and are all any not this that from now new been with was have has "  # noqa: SIM905
    "ation ing ment tion ness ould ight ter ers ore ted".split()
)


def _literal(run: str) -> Need | None:
    useful = _weight(run) >= MIN_WEIGHT and run not in _COMMON
    return AnyOf(frozenset({run})) if useful else None


def _sequence(items: Iterable[tuple[Any, Any]]) -> Need | None:
    parts: list[Need] = []
    run: list[str] = []

    def flush() -> None:
        need = _literal("".join(run)) if run else None
        if need is not None:
            parts.append(need)
        run.clear()

    for op, av in items:
        if op is _constants.LITERAL:
            run.append(_fold_char(av))
            continue
        if op in _REPEATS and len(av[2]) == 1 and av[2][0][0] is _constants.LITERAL:
            low, high, ((_, char),) = av  # "<{3,}" needs "<<<"
            run.extend(_fold_char(char) for _ in range(low))
            if high != low:
                flush()
            continue
        flush()
        need = _node(op, av)
        if isinstance(need, AllOf):
            parts.extend(need.parts)
        elif need is not None:
            parts.append(need)
    flush()
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _node(op: Any, av: Any) -> Need | None:
    if op is _constants.SUBPATTERN:
        return _sequence(av[3])
    if op is _constants.ATOMIC_GROUP:
        return _sequence(av)
    if op is _constants.ASSERT:
        return _sequence(av[1])  # a lookaround's text is in the text, if not in the match
    if op in _REPEATS:
        low, _high, inner = av
        return _sequence(inner) if low >= 1 else None
    if op is _constants.BRANCH:
        literals: set[str] = set()
        others: list[Need] = []
        for branch in av[1]:
            need = _sequence(branch)
            if need is None:
                return None  # one branch needs nothing, so the alternation needs nothing
            if isinstance(need, AnyOf):
                literals |= need.literals
            else:
                others.append(need)
        if not others:
            return AnyOf(frozenset(literals))
        return OneOf(((AnyOf(frozenset(literals)),) if literals else ()) + tuple(others))
    if op is _constants.IN and len(av) == 1 and av[0][0] is _constants.LITERAL:
        return _literal(_fold_char(av[0][1]))
    return None  # classes, anchors, back-references, negative lookarounds: no literal


def required(pattern: re.Pattern[str]) -> Need | None:
    """What any text ``pattern`` matches must contain, as literals folded with :func:`fold`;
    ``None`` when nothing useful can be read (the pattern then always runs).

    >>> required(re.compile(r"\\b(?:ignore|forget)\\s+(?:all\\s+)?rules?", re.I))
    AllOf(parts=(AnyOf(literals=frozenset({...})), AnyOf(literals=frozenset({'rule'}))))
    >>> required(re.compile(r"^\\W*$")) is None
    True
    """
    return _sequence(_parser.parse(pattern.pattern, pattern.flags))


def holds(need: Need, present: set[str] | frozenset[str]) -> bool:
    """Whether a text holding exactly the literals ``present`` can satisfy ``need``."""
    if need.literals.isdisjoint(present):
        return False
    if isinstance(need, AnyOf):
        return True
    if isinstance(need, AllOf):
        return all(holds(p, present) for p in need.parts)
    return any(holds(p, present) for p in need.parts)


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching each word; at a position it takes the longest word starting there."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alternatives = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


class LiteralGate:
    """Which of several patterns can match a text, from one pass over it.

    >>> gate = LiteralGate([re.compile("ignore.*rules", re.I), re.compile(r"^\\d+$")])
    >>> gate.candidates("Please IGNORE the rules")
    [True, True]
    >>> gate.candidates("order 1234 shipped")
    [False, True]
    """

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self._needs = [required(p) for p in patterns]
        words: set[str] = set().union(*(n.literals for n in self._needs if n is not None))
        # Which patterns name each literal: a text's few literals pick the patterns worth a
        # closer look, instead of every pattern being looked at for every text.
        self._named_by: dict[str, list[int]] = {w: [] for w in words}
        for i, need in enumerate(self._needs):
            for literal in need.literals if need is not None else ():
                self._named_by[literal].append(i)
        # At each position the longest literal starting there; its prefixes that are literals
        # too occur as well, so every occurring literal is found.
        self._scan = re.compile(_trie_pattern(words)) if words else None
        self._prefixes: dict[str, frozenset[str]] = {
            w: frozenset(w[:i] for i in range(1, len(w) + 1) if w[:i] in words) for w in words
        }

    def present(self, text: str) -> set[str]:
        """The literals of any pattern that occur in ``text`` (folded)."""
        if self._scan is None:
            return set()
        found: set[str] = set()
        folded, search, prefixes = fold(text), self._scan.search, self._prefixes
        match = search(folded)
        while match is not None:
            # Searching again from the next character, not from the match's end, finds
            # literals that overlap this one.
            found |= prefixes[match.group()]
            match = search(folded, match.start() + 1)
        return found

    def candidates(self, text: str) -> list[bool]:
        """For each pattern, whether it can match ``text`` (``False`` means it cannot)."""
        present = self.present(text)
        named = {i for literal in present for i in self._named_by[literal]}
        return [
            need is None or (i in named and holds(need, present))
            for i, need in enumerate(self._needs)
        ]

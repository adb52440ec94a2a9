"""The rule prefilter is exact: a rule it skips could not have matched, on any text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judge.injection import ROLES, _apply_rules, _rules_for
from judge.injection_rules import Rule
from judge.regex_prefilter import _CASED_LIMIT, LiteralGate, _fold_char, fold, required
from tests.fakes.injection_corpus import attack_rows, public_available, public_rows

ALL_RULES: list[Rule] = list(
    {
        id(r): r for role in (*ROLES, None) for r in _rules_for(role, ("resolution_confirmed",))
    }.values()
)
#: Pieces of text the rules are about, in their case variants, plus the characters that
#: ``re.IGNORECASE`` joins with ASCII letters although ``str.lower`` does not.
_WORDS = sorted(
    {w for r in ALL_RULES if (n := required(r.pattern)) is not None for w in n.literals}
)
_PIECES = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_WORDS).map(str.upper),
    st.sampled_from([" ", "\n", ": ", "_", "\u0131", "\u017f", "\u212a", "\u0130", "\u00df"]),
    st.text(max_size=6),
)


def _unfiltered(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    return tuple(Rule(r.name, r.pattern, r.speaker_check) for r in rules)


#: Built once: building it costs 70 ms, which per example was most of the property's time.
_GATE = LiteralGate([r.pattern for r in ALL_RULES])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_a_rule_the_gate_skips_never_matches(text: str) -> None:
    for rule, can_match in zip(ALL_RULES, _GATE.candidates(text), strict=True):
        if not can_match:
            assert rule.pattern.search(text) is None, (rule.name, rule.pattern.pattern[:80])


def test_case_pairs_that_lower_does_not_join_still_pass() -> None:
    gate = LiteralGate([re.compile(r"\bignore\s+the\s+rules", re.IGNORECASE)])
    for text in ("IGNORE THE RULES", "\u0131gnore the rules", "ignore the rule\u017f"):
        assert re.search(r"\bignore\s+the\s+rules", text, re.IGNORECASE)
        assert gate.candidates(text) == [True], text
    assert gate.candidates("please reset the router") == [False]


def test_overlapping_literals_are_all_found() -> None:
    gate = LiteralGate([re.compile("abcd"), re.compile("cdef"), re.compile("bcdefg")])
    assert gate.present("xxabcdefgxx") == {"abcd", "cdef", "bcdefg"}


def test_the_fold_table_covers_every_cased_character() -> None:
    assert all(_fold_char(cp) == chr(cp) for cp in range(_CASED_LIMIT, 0x110000))
    assert fold("STRASSE \u212aelvin \u0130") == "strasse kelvin i"


def _texts() -> list[str]:
    texts = [row["text"] for row in attack_rows()] + [
        row.get("text2") or "" for row in attack_rows()
    ]
    if public_available():
        texts += [row["text"] for row in public_rows()][::7]
    return texts


@pytest.mark.parametrize("role", ["customer", "agent", "tool"])
def test_gated_rules_find_exactly_what_every_rule_finds(role: str) -> None:
    """On the fresh attacks and the public corpora, the scan with the gate and without it
    report the same findings."""
    rules = _rules_for(role, ("resolution_confirmed",))
    bare = _unfiltered(tuple(rules))
    for text in _texts():
        assert _apply_rules(text, rules) == _apply_rules(text, bare), text[:120]

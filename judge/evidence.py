"""Evidence-grounded verdicts: a passing LLM judgment must cite what it saw, and code checks it.

For every criterion a rubric marks ``evidence`` (:class:`judge.rubric.Criterion`), a judgment
that *verifies* must cite at least one message by its number in the prompt (1-based; 0 is the
recorded platform signals) with a verbatim quote, and the quote must really be in that message
(compared after the same normalisation on both sides: NFKC, case, whitespace, quotes and the
spotlight marker). For ``customer_state`` criteria (did the customer's problem go away, were the
promised actions done) the cited message must be a customer message, a tool result or the
platform signals, never an agent message: the billed party writes the agent's messages. A
judgment whose evidence fails is ``unscored`` with the reason, never a pass.

A report is cited by part: 0 is the report itself and ``n`` its ``n``-th source (1-based, as
its frame in the prompt is numbered). For ``source`` criteria (are its numbers and claims
backed by its sources, do its citations hold) the cited part must be a source: the report's
writer is the billed party, and the report's own words prove nothing about the report.
``customer_state`` and ``source`` are one requirement (text the billed party did not write)
under two names. The check proves a quote is in the part cited, not that it supports the
score, and a source is only as independent as whoever supplied it: an instruction planted in a
source passes this check and is the injection screen's to catch.
"""

from __future__ import annotations

import re
import unicodedata

from judge.customer_words import customer_turn
from judge.injection_structure import neutralise
from judge.models import Outcome, Report
from judge.prompts import SPOTLIGHT_MARK, signals_lines
from judge.reply_parsing import Citation, ParsedReply
from judge.rubric import INDEPENDENT_EVIDENCE, Rubric

__all__ = ["MIN_QUOTE_CHARS", "customer_last_word", "evidence_problems"]

#: A quote shorter than this (after normalisation) proves nothing ("ok", "yes").
MIN_QUOTE_CHARS = 8
_STATE_ROLES = frozenset({"customer", "tool"})
_QUOTES_RE = re.compile("[\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb]")


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace(SPOTLIGHT_MARK, " ")
    text = _QUOTES_RE.sub("", text.casefold())
    return " ".join(text.split()).strip(" .…")


def _message_text(outcome: Outcome, number: int) -> tuple[str, str] | None:
    """(role, text as the prompt shows it) of message ``number`` (1-based), or None."""
    if not 1 <= number <= len(outcome.conversation):
        return None
    m = outcome.conversation[number - 1]
    text = neutralise(m.text)
    if m.tool_calls:
        import json

        text += "\n" + neutralise(json.dumps(m.tool_calls, ensure_ascii=False, sort_keys=True))
    return m.role, text


def _citation_problem(outcome: Outcome, cite: Citation, independent: bool) -> str | None:
    """Why ``cite`` does not hold (None when it does): its quote, normalised once, checked for
    length here and then against the part it names (a message, or a report's part). A short
    quote holds when it is the whole message ("No.", "Thanks!"): it proves all it says."""
    quote = _norm(cite.quote)
    if len(quote) < MIN_QUOTE_CHARS and not _is_whole_message(outcome, cite.message, quote):
        return f"quote {cite.quote[:40]!r} is too short to prove anything"
    if outcome.kind == "report" and outcome.report is not None:
        return _report_part_problem(outcome.report, cite, quote, independent)
    return _message_problem(outcome, cite, quote, independent)


def _is_whole_message(outcome: Outcome, number: int, quote: str) -> bool:
    if outcome.kind == "report" or not quote:
        return False
    found = _message_text(outcome, number)
    return found is not None and _norm(found[1]) == quote


def customer_last_word(outcome: Outcome) -> int | None:
    """The number (1-based) of the customer's last message when nothing the agent wrote comes
    after it, else None (tool results and system lines after it do not count: they answer the
    agent, not the customer).

    >>> from judge.models import Message, Outcome
    >>> o = Outcome(id="T", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="Reset link?"), Message(role="agent", text="Sent."),
    ...     Message(role="customer", text="Still nothing.")])
    >>> customer_last_word(o)
    3
    >>> customer_last_word(o.model_copy(update={"conversation": o.conversation[:2]})) is None
    True
    """
    turn = customer_turn(outcome)
    return turn[-1] if turn else None


def _message_problem(outcome: Outcome, cite: Citation, quote: str, state: bool) -> str | None:
    if cite.message == 0:
        lines = signals_lines(outcome)
        if quote not in _norm("\n".join(lines)):
            return f"quote {cite.quote[:60]!r} is not in the recorded signals"
        if not _cites_a_value(lines, quote):
            return (
                f"quote {cite.quote[:60]!r} names a recorded signal but none of its values; "
                "a signal is evidence by its value (e.g. 'customer confirmed the resolution: "
                "True')"
            )
        return None
    found = _message_text(outcome, cite.message)
    if found is None:
        return f"message {cite.message} does not exist"
    role, text = found
    if quote not in _norm(text):
        return f"quote {cite.quote[:60]!r} is not in message {cite.message}"
    if state and role not in _STATE_ROLES:
        return (
            f"message {cite.message} was written by the {role}: the customer's state needs a "
            "customer message, a tool result or a platform signal"
        )
    return None


def _cites_a_value(lines: list[str], quote: str) -> bool:
    """Whether ``quote`` reaches into the value of a signal line ("- name: value") whose value
    is known: a signal's name alone ("customer confirmed the resolution") is shown whatever the
    value, ``unknown`` and ``False`` included, so quoting it proves nothing.

    >>> lines = ["- customer confirmed the resolution: unknown", "- CSAT (1-5): 5"]
    >>> _cites_a_value(lines, _norm("CSAT (1-5): 5"))
    True
    >>> _cites_a_value(lines, _norm("customer confirmed the resolution: unknown"))
    False
    >>> _cites_a_value(lines, _norm("customer confirmed the resolution"))
    False
    >>> _cites_a_value(lines, _norm("resolution: unknown - CSAT (1-5): 5"))
    True
    """
    values: list[tuple[int, int]] = []
    texts: list[str] = []
    at = 0
    for line in lines:
        name, _, value = line.removeprefix("- ").partition(": ")
        text = _norm(line)
        if value and _norm(value) != "unknown":
            values.append((at + len(_norm(f"- {name}:")), at + len(text)))
        texts.append(text)
        at += len(text) + 1
    shown = " ".join(texts)
    found = shown.find(quote)
    while found != -1:
        end = found + len(quote)
        if any(found < stop and end > start for start, stop in values):
            return True
        found = shown.find(quote, found + 1)
    return False


def _report_part_problem(report: Report, cite: Citation, quote: str, source: bool) -> str | None:
    sources = report.sources
    if cite.message == 0:
        if source:
            return "the report's own text was cited: these criteria need one of its sources"
        text, where = report.text, "the report"
    elif 1 <= cite.message <= len(sources):
        text, where = sources[cite.message - 1].text, f"source {cite.message}"
    else:
        return f"source {cite.message} does not exist (the report has {len(sources)})"
    if quote not in _norm(neutralise(text)):
        return f"quote {cite.quote[:60]!r} is not in {where}"
    return None


def evidence_problems(parsed: ParsedReply, outcome: Outcome, rubric: Rubric) -> list[str]:
    """Why the evidence of a passing judgment does not hold (empty when it does).

    Every criterion with an ``evidence`` requirement needs at least one citation that holds;
    citations that do not hold are reported only when none does.

    Parameters
    ----------
    parsed : ParsedReply
        The judge's parsed reply.
    outcome : Outcome
        The judged outcome (the messages the prompt numbered).
    rubric : Rubric
        The rubric, whose criteria say what evidence they need.

    Examples
    --------
    >>> from judge.models import Message, Outcome
    >>> from judge.rubric import Criterion, Rubric
    >>> o = Outcome(id="T", kind="support_ticket", conversation=[
    ...     Message(role="customer", text="Refund please"),
    ...     Message(role="agent", text="Done, and the customer confirmed it works.")])
    >>> r = Rubric(name="r", kind="support_ticket", criteria=[
    ...     Criterion(id="fixed", question="Fixed?", gate=True, evidence="customer_state")])
    >>> p = ParsedReply(scores={"fixed": 1.0}, evidence={"fixed": [
    ...     Citation(2, "the customer confirmed it works")]})
    >>> evidence_problems(p, o, r)  # doctest: +NORMALIZE_WHITESPACE
    ["criterion 'fixed': message 2 was written by the agent: the customer's state needs a
      customer message, a tool result or a platform signal"]
    """
    problems: list[str] = []
    for c in rubric.criteria:
        if c.evidence is None:
            continue
        cites = parsed.evidence.get(c.id, [])
        if not cites:
            what = "source" if outcome.kind == "report" else "message"
            problems.append(f"criterion '{c.id}': no evidence cited ({what} and verbatim quote)")
            continue
        independent = c.evidence in INDEPENDENT_EVIDENCE
        reasons = [_citation_problem(outcome, cite, independent) for cite in cites]
        if all(r is not None for r in reasons):
            problems.append(f"criterion '{c.id}': " + "; ".join(r for r in reasons if r))
            continue
        last = customer_last_word(outcome) if c.evidence == "customer_last" else None
        held = {cite.message for cite, r in zip(cites, reasons, strict=True) if r is None}
        if last is not None and last not in held:
            problems.append(
                f"criterion '{c.id}': the customer wrote last (message {last}) and that message "
                "is not cited: what the customer said last tells whether it failed"
            )
    return problems

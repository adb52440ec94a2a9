"""Structure of the judge prompt's untrusted parts: neutralising look-alike structure, wrapping.

- :func:`neutralise` defuses structure the content could use to pose as the prompt (delimiter
  tokens and their unicode look-alikes, chat-template tokens, ``system`` code fences, fake
  "END OF TRANSCRIPT" lines, fake role headers, invisible characters).
- :func:`wrap` puts content between delimiters carrying a nonce, so the content cannot close
  them (see :mod:`judge.prompts` for the per-call nonce in every message header).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from judge.injection_rules import (
    BOUNDARY_LINE_RE,
    CHAT_TOKEN_RE,
    FAKE_ROLE_LINE_RE,
    FENCE_RE,
    XML_TAG_RE,
)

__all__ = ["INVISIBLE_RE", "angles_to_ascii", "neutralise", "wrap"]

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
INVISIBLE_RE = re.compile(f"[{_ZERO_WIDTH}{_BIDI}\U000e0000-\U000e007f\u034f\ufe00-\ufe0f]")

# Look-alikes of "<" and ">" and how many of them each stands for (after NFKC, which already
# folds fullwidth and small forms).
# fmt: off
_ANGLE_OPEN = {"<": 1, "‹": 1, "〈": 1, "⟨": 1, "❮": 1, "ᐸ": 1,
               "«": 2, "≪": 2, "《": 2, "⟪": 2, "⋘": 3}
_ANGLE_CLOSE = {">": 1, "›": 1, "〉": 1, "⟩": 1, "❯": 1, "ᐳ": 1,
                "»": 2, "≫": 2, "》": 2, "⟫": 2, "⋙": 3}
# fmt: on
_ANGLE_RUN_RE = re.compile("[" + re.escape("".join(_ANGLE_OPEN) + "".join(_ANGLE_CLOSE)) + "]{1,}")


def neutralise(text: str) -> str:
    """Defuse structure in untrusted ``text`` that could pose as part of the judge's prompt.

    NFKC-normalises, drops invisible characters (zero-width, bidi controls, unicode tag
    characters), spaces out runs of ``<``/``>`` look-alikes (``<<<``, ``≪<``, ``⋘``), and
    replaces chat-template tokens, role-named code fences, role/instruction XML tags, fake
    transcript boundaries and fake role headers with inert, visible markers. Idempotent.

    Parameters
    ----------
    text : str
        Untrusted content (a message, report or source text).

    Returns
    -------
    str
        The text as the judge should see it.

    Examples
    --------
    >>> neutralise("thanks <<<END>>> now")
    'thanks < < <END> > > now'
    >>> neutralise("<|im_start|>system")
    '[chat-token im_start]system'
    >>> neutralise("END OF TRANSCRIPT")
    '[quoted] END OF TRANSCRIPT'
    """
    out = unicodedata.normalize("NFKC", text)
    out = INVISIBLE_RE.sub("", out)
    out = _ANGLE_RUN_RE.sub(_space_angle_run, out)
    out = CHAT_TOKEN_RE.sub(_chat_token_marker, out)
    out = FENCE_RE.sub(lambda m: f"[code block: {m.group(1).lower()}]", out)
    out = XML_TAG_RE.sub(lambda m: f"[tag {m.group(0).strip('<>').strip()}]", out)
    out = BOUNDARY_LINE_RE.sub(lambda m: f"[quoted] {m.group(0)}", out)
    out = FAKE_ROLE_LINE_RE.sub(lambda m: f"[quoted] {m.group(0)}", out)
    return out


_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:#/-]{0,79}$")


def wrap(text: str, *, label: str) -> str:
    """Neutralise ``text`` and put it between delimiters the content cannot close.

    The delimiters carry a nonce: the first 16 hex digits of the SHA-256 of the label and the
    neutralised content. Content cannot contain its own hash, and ``<<<`` never survives
    :func:`neutralise`; the same content always gives the same prompt (cache-friendly).

    Parameters
    ----------
    text : str
        Untrusted content.
    label : str
        What the content is, e.g. ``"customer message 3"`` (letters, digits, space, ``_.:#/-``).

    Returns
    -------
    str
        ``<<<BEGIN {label} {nonce}>>>``, the neutralised text, ``<<<END {label} {nonce}>>>``.

    Examples
    --------
    >>> print(wrap("hello", label="note"))  # doctest: +ELLIPSIS
    <<<BEGIN note ...>>>
    hello
    <<<END note ...>>>
    """
    if not _LABEL_RE.match(label):
        raise ValueError(
            f"wrap label {label!r} must be 1-80 characters of letters, digits, space and _.:#/-"
        )
    body = neutralise(text)
    nonce = hashlib.sha256(f"wrap\0{label}\0{body}".encode()).hexdigest()[:16]
    return f"<<<BEGIN {label} {nonce}>>>\n{body}\n<<<END {label} {nonce}>>>"


def _space_angle_run(match: re.Match[str]) -> str:
    run = match.group(0)
    opening = sum(_ANGLE_OPEN.get(ch, 0) for ch in run)
    closing = sum(_ANGLE_CLOSE.get(ch, 0) for ch in run)
    if max(opening, closing) < 3:
        return run
    units = "".join("<" * _ANGLE_OPEN.get(ch, 0) + ">" * _ANGLE_CLOSE.get(ch, 0) for ch in run)
    return " ".join(units)


def _chat_token_marker(match: re.Match[str]) -> str:
    inner = re.sub(r"[^A-Za-z0-9_ /.:-]", "", match.group(0)).strip(" /")
    return f"[chat-token {inner or 'token'}]"


def angles_to_ascii(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return "".join(
            "<" * _ANGLE_OPEN.get(c, 0) + ">" * _ANGLE_CLOSE.get(c, 0) for c in m.group(0)
        )

    return _ANGLE_RUN_RE.sub(repl, text)

"""A rule's regex widened into a Hyperscan pattern that matches at least as much.

The engine runs a rule's Python regex only around its keywords. Many keyword hits
(``password``, ``token``, ``key``) lead nowhere, and running hundreds of regexes on
their lines is most of the engine's time. So each rule's regex is also given to
Hyperscan, in the same pass as the keywords, as a *widened* pattern: whatever the
Python regex matches, the widened pattern matches too, ending at the same offset
(it may match more). A rule whose widened pattern matches nowhere in a buffer, or
only after a region ends, cannot match in that region, and its regex is not run
there (see :mod:`scanner.secrets.engine` for which regions may be skipped).

Widening, on the parse tree of Python's own regex parser (so the pattern is read
exactly as ``re`` reads it):

- every character, class, category and ``.`` becomes an explicit byte class, with
  ASCII case folding where ``re.IGNORECASE`` applies (so no flag scoping is needed);
- look-arounds, ``\\A``, ``\\Z`` and ``\\B`` are dropped (no constraint is a wider
  constraint); ``\\b`` is kept, as both engines read it the same way on bytes (ASCII
  word characters, the real neighbouring byte); ``^`` and ``$`` become line anchors
  (the pattern is compiled with ``HS_FLAG_MULTILINE``): ``^`` matches at least where
  ``re`` lets it, and ``$`` wherever a line ends, which covers ``re``'s ``$`` at the end
  of a region that ends where a line does;
- a back-reference becomes "any bytes"; atomic groups and possessive or lazy
  repeats become plain groups and repeats (Hyperscan reports every match end);
- a repeat's bounds are widened: a lower bound above :data:`MAX_MIN` is lowered to
  it and an upper bound above :data:`MAX_MAX` is dropped, which keeps Hyperscan's
  compile time and database small.

A construct not listed raises :class:`Unsupported`; so does a widened pattern that
can match the empty string. The rule's regex then always runs on its regions.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# re's own parser and opcodes (typeshed does not describe these modules)
C: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

MAX_MIN = 8  # a repeat's lower bound is lowered to this
MAX_MAX = 16  # a repeat's upper bound above this becomes unbounded
# Changes whenever the widening does (part of the compiled database's cache key).
WIDENED_VERSION = f"2; min {MAX_MIN}; max {MAX_MAX}"

_ALL = frozenset(range(256))
_DIGIT = frozenset(b"0123456789")
_SPACE = frozenset(b" \t\n\r\f\v")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CATEGORIES = {
    C.CATEGORY_DIGIT: _DIGIT,
    C.CATEGORY_NOT_DIGIT: _ALL - _DIGIT,
    C.CATEGORY_SPACE: _SPACE,
    C.CATEGORY_NOT_SPACE: _ALL - _SPACE,
    C.CATEGORY_WORD: _WORD,
    C.CATEGORY_NOT_WORD: _ALL - _WORD,
}
_KEPT_AT = {
    C.AT_BOUNDARY: rb"\b",
    C.AT_BEGINNING: b"^",  # a line start: at least re's (string start, or line start)
    C.AT_BEGINNING_LINE: b"^",
    C.AT_END: b"$",  # a line end: covers re's (string or region end, or a final newline)
    C.AT_END_LINE: b"$",
}
_DROPPED_AT = {C.AT_BEGINNING_STRING, C.AT_END_STRING, C.AT_NON_BOUNDARY}


class Unsupported(ValueError):
    """The regex has a construct this module does not widen (the rule always runs)."""


def widened(pattern: str) -> bytes:
    """The Hyperscan pattern (bytes) matching at least what ``pattern`` matches on bytes."""
    raw = pattern.encode("utf-8", "surrogateescape")
    try:
        tree = sre_parse.parse(raw, 0)
    except re.error as exc:
        raise Unsupported(f"not a valid regex: {exc}") from None
    # VERBOSE was applied by the parser; LOCALE and UNICODE cannot be on a bytes pattern
    out, width = _seq(list(tree), tree.state.flags)
    if width == 0:
        raise Unsupported("the widened pattern matches the empty string")
    return out


# Each node gives (its widened pattern, the least number of bytes it matches).
_Out = tuple[bytes, int]


def _seq(items: list[tuple[Any, Any]], flags: int) -> _Out:
    parts = [_node(op, av, flags) for op, av in items]
    return b"".join(p for p, _ in parts), sum(w for _, w in parts)


def _group(inner: _Out) -> _Out:
    return b"(?:" + inner[0] + b")", inner[1]


def _node(op: Any, av: Any, flags: int) -> _Out:
    icase = bool(flags & re.IGNORECASE)
    if op is C.LITERAL:
        return _class(_fold({av}, icase)), 1
    if op is C.NOT_LITERAL:
        return _class(_ALL - _fold({av}, icase)), 1
    if op is C.ANY:
        return _class(_ALL if flags & re.DOTALL else _ALL - {10}), 1
    if op is C.IN:
        return _class(_in(av, icase)), 1
    if op is C.BRANCH:
        subs = [_seq(list(sub), flags) for sub in av[1]]
        return b"(?:" + b"|".join(p for p, _ in subs) + b")", min(w for _, w in subs)
    if op is C.SUBPATTERN:
        _number, add, delete, sub = av
        return _group(_seq(list(sub), (flags | add) & ~delete))
    if op is C.ATOMIC_GROUP:
        return _group(_seq(list(av), flags))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        low, high, sub = av
        inner, width = _group(_seq(list(sub), flags))
        low = min(low, MAX_MIN)
        if high is C.MAXREPEAT or high > MAX_MAX:
            return inner + b"{%d,}" % low, low * width
        return inner + b"{%d,%d}" % (low, high), low * width
    if op is C.AT:
        if av in _KEPT_AT:
            return _KEPT_AT[av], 0
        if av in _DROPPED_AT:
            return b"", 0
    if op in (C.ASSERT, C.ASSERT_NOT):
        return b"", 0
    if op is C.GROUPREF:
        return rb"[\x00-\xff]*", 0
    if op is C.GROUPREF_EXISTS:
        _number, yes, no = av
        branches = [_seq(list(yes), flags), _seq(list(no), flags) if no else (b"", 0)]
        return b"(?:" + b"|".join(p for p, _ in branches) + b")", min(w for _, w in branches)
    raise Unsupported(f"regex construct {op} is not widened")


def _fold(chars: set[int] | frozenset[int], icase: bool) -> frozenset[int]:
    """``chars`` with the other ASCII case of each letter, under IGNORECASE."""
    if not icase:
        return frozenset(chars)
    out = set(chars)
    for c in chars:
        if 65 <= c <= 90 or 97 <= c <= 122:
            out.add(c ^ 0x20)
    return frozenset(out)


def _in(items: list[tuple[Any, Any]], icase: bool) -> frozenset[int]:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            chars.add(av)
        elif op is C.RANGE:
            chars.update(range(av[0], av[1] + 1))
        elif op is C.CATEGORY and av in _CATEGORIES:
            chars.update(_CATEGORIES[av])
        else:
            raise Unsupported(f"class item {op} is not widened")
    folded = _fold(chars, icase)
    return _ALL - folded if negate else folded


def _class(chars: frozenset[int]) -> bytes:
    if not chars:
        raise Unsupported("an empty character class")
    if len(chars) == 1:
        return b"\\x%02x" % next(iter(chars))
    parts: list[bytes] = []
    ordered = sorted(chars)
    start = prev = ordered[0]
    for c in [*ordered[1:], -2]:
        if c == prev + 1:
            prev = c
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        start = prev = c
    return b"[" + b"".join(parts) + b"]"

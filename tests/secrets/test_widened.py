"""Widened rule regexes: never narrower than the rule, and the engine finds the same.

The engine skips a rule's regex where its widened pattern (run by Hyperscan in the
keyword pass) matched nowhere; that is only right if the widened pattern matches
wherever the regex does. Checked on every built-in rule's examples, on constructs one
by one, and by comparing engines with and without the checks on text built to hit
the edges (long lines that clip regions, windows, case, binary bytes).
"""

from __future__ import annotations

import importlib.util
import random
import re

import pytest

from scanner.secrets.engine import LINE_REACH, SecretEngine
from scanner.secrets.prefilter import Checks, make_prefilter
from scanner.secrets.prefilter.widened import MAX_MAX, MAX_MIN, Unsupported, widened
from scanner.signatures import SignatureSet

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hyperscan") is None, reason="no hyperscan wheel"
)
SIGS = SignatureSet.builtin()


def fired(patterns: list[str], data: bytes) -> set[int]:
    """Which of ``patterns`` (rule regexes) have their widened form match in ``data``."""
    checks = Checks("test " + "\0".join(patterns), lambda: [widened(p) for p in patterns])
    prefilter = make_prefilter(["zzzzqqqq"], "hyperscan", checks)
    assert prefilter.with_checks == set(range(len(patterns)))
    return prefilter.scan(data, 0, len(data))[1]


def test_every_built_in_rule_is_widened_and_fires_on_its_examples() -> None:
    patterns = [r.pattern for r in SIGS.rules]
    for index, rule in enumerate(SIGS.rules):
        for example in rule.examples_match:
            assert index in fired(patterns, example.text.encode()), rule.id


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        (r"(?<![a-z])tok_[0-9]{4}(?![0-9])", b"xx tok_1234 yy"),
        (r"(?i)secret=(?P<v>[a-z]{3})", b"SECRET=AbC"),
        (r"(?i:api)KEY=[A-Z]{2}", b"ApIKEY=QQ"),
        (r"(?m)^key=([a-z]+)$", b"a\nkey=abc\nb"),
        (r"^start", b"start of data"),
        (r"end$", b"the end"),
        (r"(['\"])pw=[a-z]{3}\1", b"x 'pw=abc' y"),
        (r"(?>ab|a)c", b"abc"),
        (r"a++b", b"aaab"),
        (r"(a)?(?(1)b|c)", b"ab"),
        (r"\bword\b", b"a word here"),
        (r"\Bx\B", b"axb"),
        (r"x[^\n]{2,300}?y", b"x" + b"-" * 250 + b"y"),
        (r"z{1000,5000}", b"z" * 1200),
        (r"\d\s\w\D\S\W.", b"1 a_x!q"),
        (r"[\x80-\xff]{2}", "é".encode()),
    ],
)
def test_a_widened_pattern_matches_wherever_the_rule_does(pattern: str, subject: bytes) -> None:
    assert re.search(pattern.encode(), subject), "the case itself must match"
    assert fired([pattern], subject) == {0}


def test_widening_bounds_repeats_and_folds_case() -> None:
    out = widened(r"(?i)ab[c-d]{100,20000}")
    bounds = [int(n) for n in re.findall(rb"\{(\d+)", out)]
    assert bounds and max(bounds) <= MAX_MIN
    assert not re.search(rb"\{\d+,(\d+)\}", out) or all(
        int(m) <= MAX_MAX for m in re.findall(rb"\{\d+,(\d+)\}", out)
    )
    assert b"(?i" not in out  # case is in the classes, not in flags
    assert fired([r"(?i)ab[c-d]{100,20000}"], b"AB" + b"cD" * 60) == {0}


@pytest.mark.parametrize("pattern", [r"(?:x)?", r"(?=a)", r"a*", r"(?<=b)", "a{0}", "(unclosed"])
def test_patterns_that_could_match_anywhere_or_do_not_parse_are_not_widened(
    pattern: str,
) -> None:
    with pytest.raises(Unsupported):
        widened(pattern)


def _text(rng: random.Random) -> bytes:
    """Examples of every rule in noisy surroundings: long lines (clipped regions), no
    newline at all, binary bytes, upper case, keywords without secrets."""
    examples = [e.text for r in SIGS.rules for e in r.examples_match]
    examples += [t for r in SIGS.rules for t in r.examples_no_match]
    keywords = [k for r in SIGS.rules for k in r.keywords]
    parts: list[str] = []
    for _ in range(400):
        roll = rng.random()
        if roll < 0.5:
            parts.append(rng.choice(examples))
        elif roll < 0.7:
            parts.append(rng.choice(keywords) + rng.choice(["=", ": ", " ", '="']))
        elif roll < 0.8:
            parts.append("x" * rng.randrange(LINE_REACH - 50, LINE_REACH * 3))
        else:
            parts.append("".join(rng.choice("aZ9+/=_-. \t\"'") for _ in range(rng.randrange(80))))
        parts.append(rng.choice(["\n", "", " ", "\r\n", "\x00"]))
    text = "".join(parts)
    return text.upper().encode() if rng.random() < 0.2 else text.encode()


@pytest.mark.parametrize("seed", range(6))
def test_engines_with_and_without_checks_find_the_same(seed: int) -> None:
    data = _text(random.Random(seed))
    with_checks = SecretEngine(SIGS)
    without = SecretEngine(SIGS, checks=False)
    assert with_checks.scan(data) == without.scan(data)
    import io

    small = {"window": 1 << 17, "overlap": 1 << 16}
    assert list(with_checks.scan_stream(io.BytesIO(data), **small)) == list(
        without.scan_stream(io.BytesIO(data), **small)
    )

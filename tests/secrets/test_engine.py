"""The secret engine: prefilter, regions, streaming windows, filters and noise."""

from __future__ import annotations

import importlib.util
import io
import random
import string
import zlib

import pytest
from detect_secrets.plugins.aws import AWSKeyDetector

from scanner.findings import Severity
from scanner.secrets.engine import (
    LINE_REACH,
    MAX_REGION,
    KeywordPrefilter,
    PluginDetector,
    RulePlugin,
    SecretEngine,
    SecretMatch,
    _line_regions,
    _lines_end_in_reach,
)
from scanner.secrets.noise import NOISE_EXAMPLE
from scanner.secrets.validators import BASE62
from scanner.signatures import Rule, SignatureSet

SIGS = SignatureSet.builtin()
ENGINE = SecretEngine(SIGS)
RNG = random.Random(20240601)
B62 = string.ascii_letters + string.digits

WINDOW = 4 * MAX_REGION  # the smallest window scan_stream accepts with OVERLAP
OVERLAP = 2 * MAX_REGION
HALF = OVERLAP // 2


def rand(n: int, alphabet: str = B62) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def github_token() -> str:
    """A classic GitHub token whose last 6 characters are the CRC32 of the 30 before."""
    entropy = rand(30)
    value, check = zlib.crc32(entropy.encode()), ""
    while value:
        value, digit = divmod(value, 62)
        check = BASE62[digit] + check
    return "ghp_" + entropy + check.rjust(6, "0")


def filler(size: int, width: int = 60) -> bytes:
    """Text lines with no secret-looking content."""
    line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do\n"[:width] + b"\n"
    return (line * (size // len(line) + 1))[:size]


def ids(matches: list[SecretMatch]) -> list[str]:
    return [m.rule.id for m in matches]


def stream_scan(data: bytes) -> list[SecretMatch]:
    return list(ENGINE.scan_stream(io.BytesIO(data), window=WINDOW, overlap=OVERLAP))


def test_finds_offsets_and_lines() -> None:
    token = github_token()
    data = b"first line\nsecond line\nGITHUB_TOKEN=" + token.encode() + b"\n"
    [match] = ENGINE.scan(data)
    assert match.rule.id == "github-personal-access-token"
    assert match.secret == token
    assert data[match.start : match.end] == token.encode()
    assert match.line == 3
    assert match.noise is None


def test_empty_and_clean_data() -> None:
    assert ENGINE.scan(b"") == []
    assert ENGINE.scan(filler(10_000)) == []
    assert list(ENGINE.scan_stream(io.BytesIO(b""))) == []


def test_keywords_are_case_insensitive_but_regexes_decide() -> None:
    token = github_token()
    assert ids(ENGINE.scan(f"GHP_X {token}".encode())) == ["github-personal-access-token"]
    assert ENGINE.scan(token.upper().encode()) == []  # GHP_ is not a GitHub prefix


@pytest.mark.parametrize("shift", [-40, -20, -1, 0, 1, 17, 40])
@pytest.mark.parametrize("boundary", ["ownership", "window"])
def test_secret_across_a_window_boundary_is_found_once(shift: int, boundary: str) -> None:
    token = github_token().encode()
    # ownership boundary: where one window hands over to the next;
    # window boundary: the end of the first window's bytes
    edge = WINDOW - HALF if boundary == "ownership" else WINDOW
    start = edge + shift - len(token) // 2
    head = filler(start - len(b"token=")) + b"token="
    data = head + token + b"\n" + filler(3 * WINDOW)
    found = stream_scan(data)
    assert [(m.rule.id, m.start, m.end) for m in found] == [
        ("github-personal-access-token", start, start + len(token))
    ]
    assert found[0].line == head.count(b"\n") + 1
    assert found == ENGINE.scan(data)


def test_stream_equals_scan_on_many_secrets() -> None:
    parts = []
    expected = []
    size = 0
    for i in range(60):
        parts.append(filler(RNG.randrange(1, 9000), width=RNG.randrange(20, 70)))
        token = github_token() if i % 2 else "sk_live_" + rand(30)
        parts.append(f"KEY_{i}={token}\n".encode())
        expected.append(token)
        size += len(parts[-2]) + len(parts[-1])
    data = b"".join(parts)
    assert size > 2 * WINDOW
    streamed = stream_scan(data)
    assert [m.secret for m in streamed] == expected
    assert streamed == ENGINE.scan(data)
    assert all(data[m.start : m.end] == m.secret.encode() for m in streamed)
    lines = data.split(b"\n")
    for m in streamed:
        assert m.secret.encode() in lines[m.line - 1]


def test_pem_key_across_a_window_boundary() -> None:
    body = "\n".join(rand(64, B62 + "+/") for _ in range(25))
    key = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    start = WINDOW - HALF - 700
    data = filler(start) + key.encode() + b"\n" + filler(WINDOW)
    found = stream_scan(data)
    assert [(m.rule.id, m.start) for m in found] == [("rsa-private-key", start)]
    assert found[0].secret == key


def test_stream_memory_window_is_clamped() -> None:
    token = github_token()
    data = filler(300_000) + f"x={token}\n".encode() + filler(300_000)
    found = list(ENGINE.scan_stream(io.BytesIO(data), window=1024, overlap=16))
    assert [m.secret for m in found] == [token]


def test_token_in_the_middle_of_a_5mb_line() -> None:
    token = github_token().encode()
    half = 5 * 1024 * 1024 // 2
    # a minified bundle: one line, with keywords everywhere that must stay cheap
    noise = (b'var token="x",secret=null,password:void 0;' * (half // 40))[:half]
    data = noise + b' auth="' + token + b'";' + noise
    found = ENGINE.scan(data)
    assert [(m.rule.id, m.secret.encode()) for m in found] == [
        ("github-personal-access-token", token)
    ]
    assert found[0].line == 1 and found[0].start == len(noise) + 7


def test_line_regions_are_clipped() -> None:
    # a keyword far (more than LINE_REACH) from the secret on the same line does not
    # make the secret's region: the secret's own keyword does
    token = github_token().encode()
    data = b"password " + b"a" * (LINE_REACH * 3) + b" " + token
    assert [m.secret.encode() for m in ENGINE.scan(data)] == [token]


def test_lines_end_in_reach_only_when_no_line_region_is_cut() -> None:
    # the shortcut that skips building regions for rules whose check did not fire is
    # sound: when it says every line region ends at a newline or at the end of the
    # buffer, the regions do (it may say no when merging would rescue a cut region)
    rng = random.Random(7)
    said = set()
    for _ in range(2000):
        parts = []
        for _ in range(rng.randrange(1, 30)):
            long = rng.random() < 0.2
            length = rng.randrange(LINE_REACH * 2) if long else rng.randrange(200)
            parts.append(b"k" * length + (b"\n" if rng.random() < 0.7 else b""))
        buf = b"".join(parts)
        n = len(buf)
        if n < 4:
            continue
        ends = sorted(rng.sample(range(3, n + 1), min(n - 3, rng.randrange(1, 40))))
        regions = _line_regions(buf, ends, 3)
        uncut = all(e == n or buf[e] == 10 for _, e in regions)
        answer = _lines_end_in_reach(buf, ends)
        assert uncut or not answer, (ends, regions)
        said.add((answer, uncut))
    assert said == {(True, True), (False, False), (False, True)}


def test_secret_inside_binary_data() -> None:
    token = github_token().encode()
    data = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4 + token + b"\x00\xff\xfe"
    [match] = ENGINE.scan(data)
    assert match.secret.encode() == token
    assert data[match.start : match.end] == token


def test_non_utf8_bytes_around_a_secret() -> None:
    token = "sk_live_" + rand(30)
    data = b"\xff\xfe\x80 STRIPE=" + token.encode() + b" \xc3("
    [match] = ENGINE.scan(data)
    assert match.secret == token


def test_documented_aws_example_key_is_kept_as_noise() -> None:
    data = b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
    [match] = ENGINE.scan(data)
    assert match.rule.id == "aws-access-key-id"
    assert match.noise == NOISE_EXAMPLE


def test_documented_aws_secret_is_kept_as_noise() -> None:
    data = b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    matches = ENGINE.scan(data)
    assert ids(matches) == ["aws-secret-access-key"]
    assert matches[0].noise == NOISE_EXAMPLE


def test_placeholder_token_is_kept_as_noise() -> None:
    [match] = ENGINE.scan(b"GITHUB_TOKEN=ghp_" + b"x" * 36)
    assert match.noise == "placeholder"


@pytest.mark.parametrize(
    "text",
    [
        b"DATABASE_URL=postgres://app:${DB_PASSWORD}@db.internal:5432/app",
        b"DATABASE_URL=postgres://app:$DB_PASSWORD@db.internal:5432/app",
        b'url = "postgresql://{user}:{password}@{host}/db"',
        b"DATABASE_URL=postgres://app:{{ .Values.db.password }}@db/app",
    ],
)
def test_templated_connection_urls_are_not_reported(text: bytes) -> None:
    assert ENGINE.scan(text) == []


def test_placeholder_connection_url_is_kept_as_noise() -> None:
    [match] = ENGINE.scan(b"DATABASE_URL=postgres://app:password@localhost/app")
    assert match.noise == "placeholder"


def test_real_connection_url_is_reported() -> None:
    password = rand(20)
    [match] = ENGINE.scan(f"DATABASE_URL=postgres://app:{password}@db:5432/app".encode())
    assert (match.rule.id, match.secret, match.noise) == ("postgres-connection-url", password, None)


def test_generic_rules_yield_to_specific_ones() -> None:
    token = github_token()
    text = f'GITHUB_TOKEN="{token}"\nurl = https://x-access-token:{token}@github.com/a/b\n'
    assert ids(ENGINE.scan(text.encode())) == [
        "github-personal-access-token",
        "github-personal-access-token",
    ]
    password = "pscale_pw_" + rand(43)
    url = f"mysql://u:{password}@aws.connect.psdb.cloud/db"
    assert ids(ENGINE.scan(url.encode())) == ["planetscale-password"]


def test_generic_rules_report_what_specific_ones_miss() -> None:
    secret = rand(40)
    [match] = ENGINE.scan(f"SESSION_SECRET={secret}\n".encode())
    assert match.rule.id == "generic-secret-unquoted" and match.rule.generic


def test_repetitive_generic_values_are_kept_as_noise() -> None:
    assert [m.noise for m in ENGINE.scan(b'API_TOKEN="abababababababab1"')] == ["placeholder"]


def test_allow_patterns_drop_matches() -> None:
    assert ENGINE.scan(b"password = self.password1.value\n") == []


def test_values_failing_validation_are_kept_as_noise() -> None:
    fake = "eyJ" + rand(30) + ".eyJ" + rand(30) + "." + rand(43)
    assert [(m.rule.id, m.noise) for m in ENGINE.scan(fake.encode())] == [
        ("jwt", "structure mismatch")
    ]
    good = github_token()
    bad = good[:-1] + ("B" if good.endswith("A") else "A")
    [match] = ENGINE.scan(f"GITHUB_TOKEN={bad}".encode())
    assert (match.rule.id, match.noise) == ("github-personal-access-token", "checksum mismatch")


def test_rule_plugin_is_a_detect_secrets_plugin() -> None:
    rule = next(r for r in SIGS.rules if r.id == "github-personal-access-token")
    plugin = RulePlugin(rule)
    token = github_token()
    assert list(plugin.analyze_string(f"token: {token}")) == [token]
    assert plugin.denylist[0].search(token)
    assert plugin.json() == {"name": "RulePlugin", "rule": rule.id}
    assert plugin.secret_type == "Github: GitHub personal access token (classic)"


def test_detect_secrets_plugins_plug_in() -> None:
    rule = next(r for r in SIGS.rules if r.id == "aws-access-key-id")
    custom = Rule(
        id="ds-aws-key",
        detector="AWS",
        title="AWS key (detect-secrets plugin)",
        severity=Severity.HIGH,
        category=rule.category,
        keywords=("akia",),
        pattern=rule.pattern,
        secret_group=0,
        entropy_min=None,
        allow_patterns=(),
        description="",
        examples_match=(),
        examples_no_match=(),
        source="test",
    )
    engine = SecretEngine(SignatureSet.from_rules([]), plugins=[(AWSKeyDetector(), custom)])
    key = "AKIA" + rand(16, string.ascii_uppercase + "234567")
    data = f"line one\nexport AWS_ACCESS_KEY_ID={key}\n".encode()
    [match] = engine.scan(data)
    assert (match.rule.id, match.secret, match.line) == ("ds-aws-key", key, 2)
    assert data[match.start : match.end] == key.encode()
    assert isinstance(engine.detectors[0], PluginDetector)


def test_engine_without_rules() -> None:
    engine = SecretEngine(SignatureSet.from_rules([]))
    assert engine.scan(b"ghp_" + b"a1" * 18) == []


PREFILTER_KEYWORDS = ["token", "ghp_", "-----begin", "ok", "oke"]


def brute_force_hits(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    low = data.lower()
    found: dict[int, list[int]] = {}
    for kid, keyword in enumerate(PREFILTER_KEYWORDS):
        k = keyword.encode()
        i = low.find(k, start, end)
        while i >= 0:
            found.setdefault(kid, []).append(i + len(k))
            i = low.find(k, i + 1, end)
    return found


def test_prefilter_hits_are_overlapping_and_sorted() -> None:
    prefilter = KeywordPrefilter(PREFILTER_KEYWORDS, backend="pyahocorasick")
    data = b"TOKEN ghp_ tokenized OKE -----BEGIN"
    assert prefilter.hits(data, 0, len(data)) == brute_force_hits(data, 0, len(data))
    assert prefilter.hits(data, 0, len(data))[3] == [3, 14, 23]  # "ok" inside "token"
    assert prefilter.hits(data, 6, 20) == brute_force_hits(data, 6, 20)


@pytest.mark.skipif(importlib.util.find_spec("ahocorasick_rs") is None, reason="no ahocorasick-rs")
def test_prefilter_backends_agree() -> None:
    data = bytes(RNG.choice(b"tokeng hp_-TOKEN\n\x00") for _ in range(20_000))
    py = KeywordPrefilter(PREFILTER_KEYWORDS, backend="pyahocorasick")
    rs = KeywordPrefilter(PREFILTER_KEYWORDS, backend="ahocorasick-rs")
    assert py.hits(data, 100, 19_000) == rs.hits(data, 100, 19_000)
    assert py.hits(data, 100, 19_000) == brute_force_hits(data, 100, 19_000)


def test_unknown_prefilter_backend() -> None:
    with pytest.raises(ValueError, match="unknown prefilter"):
        KeywordPrefilter(["abc"], backend="regex")


def test_both_prefilter_backends_find_the_same_secrets() -> None:
    examples = [e.text for r in SIGS.rules for e in r.examples_match]
    examples += [t for r in SIGS.rules for t in r.examples_no_match]
    data = "\n".join(examples).encode()
    py_engine = SecretEngine(SIGS, prefilter="pyahocorasick")
    expected = py_engine.scan(data)
    assert len(expected) > len(SIGS.rules)
    assert ENGINE.scan(data) == expected
    streamed = py_engine.scan_stream(io.BytesIO(data), window=WINDOW, overlap=OVERLAP)
    assert list(streamed) == expected

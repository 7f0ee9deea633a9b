"""Is a candidate secret real? Placeholders, templates and documented example keys.

Two outcomes, decided per heuristic:

* **drop**: the value is a reference to a secret kept elsewhere, not a value
  (``${DB_PASSWORD}``, ``{{ .Token }}``, ``<your-key>``, ``%(password)s``; and for
  *generic* rules also ``$VAR``, ``os.environ["X"]`` and id-like keys). Nothing
  was leaked, so nothing is reported.
* **keep with a reason** (``noise``): the value may be a secret but looks like
  none: a documented example key, a placeholder (``changeme``, ``xxxx...``,
  ``your_api_key_here``, masks such as ``********``, repeated characters), a
  sequential string, or (generic rules) a UUID. The caller reports such matches
  as suppressed ``info`` findings (``noise: placeholder``): off in the table and
  the gate by default, counted in the summary, always in JSON. Never dropped.

detect-secrets' heuristic filters are called directly; its global settings are
never read or changed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from detect_secrets.filters import heuristic

NOISE_EXAMPLE = "documented example"
NOISE_PLACEHOLDER = "placeholder"
NOISE_SEQUENTIAL = "sequential string"
NOISE_UUID = "uuid-shaped value"
NOISE_LOW_ENTROPY = "low entropy"
DROP_TEMPLATED = "templated value"
DROP_VARIABLE = "variable reference"
DROP_INDIRECT = "indirect reference"
DROP_ID = "id-like key"

# Keys and tokens published in vendors' documentation, or well-known development keys.
DOCUMENTED_EXAMPLES = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAI44QH8DHBEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        # Azurite / storage emulator account key (devstoreaccount1)
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        # Stripe documentation test keys
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        "pk_test_TYooMQauvdEDq54NiTphI7jx",
        # Mailgun documentation key
        "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
        # Slack documentation token
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        # Google Maps documentation key
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        # Hugging Face's public CI token (hub-ci dummy user), in transformers' testing_utils
        "hf_94wBhPGp6KrrTH3KDchhKpRxZwd6dmHWLL",
    }
)
# Parts of documented examples that appear inside longer secrets (jwt.io's token).
DOCUMENTED_PARTS = (
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
)
EXAMPLE_WORD = re.compile(r"example", re.IGNORECASE)

PLACEHOLDER_WORDS = frozenset(
    {
        "changeme",
        "change_me",
        "change-me",
        "changeit",
        "changethis",
        "password",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "secrets",
        "mysecret",
        "supersecret",
        "topsecret",
        "mypassword",
        "yourpassword",
        "secretpassword",
        "token",
        "mytoken",
        "apikey",
        "api_key",
        "api-key",
        "key",
        "value",
        "example",
        "sample",
        "dummy",
        "fake",
        "test",
        "testing",
        "test123",
        "placeholder",
        "redacted",
        "[redacted]",
        "hidden",
        "none",
        "null",
        "nil",
        "undefined",
        "empty",
        "todo",
        "tbd",
        "fixme",
        "foo",
        "foobar",
        "bar",
        "baz",
        "qwerty",
        "letmein",
        "admin",
        "administrator",
        "root",
        "toor",
        "default",
        "guest",
        "user",
        "username",
        "tiger",
        "scott",
        "postgres",
        "mysql",
        "redis",
        "hunter2",
        "s3cr3t",
        "secret123",
        "password123",
        "password1",
        "admin123",
        "notasecret",
        "not-a-secret",
        "not_a_secret",
        "notsecret",
        "insecure",
    }
)
PLACEHOLDER_PATTERNS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        # your_api_key_here, YOUR-TOKEN, my_secret_key, your.password
        r"(?:^|[^a-z0-9])(?:your|my)(?:[_.\- ]?[a-z]+){0,3}?[_.\- ]?"
        r"(?:key|token|secret|password|passwd|pass|pwd|credentials?)(?:[_.\- ]?here)?"
        r"(?:$|[^a-z0-9])",
        r"(?:insert|replace|put|enter|add|paste)[_.\- ]?(?:[a-z0-9]+[_.\- ]?){0,4}here",
        r"replace[_.\- ]?(?:me|this|with)",
        r"change[_.\- ]?(?:me|it|this)",
        r"place[_.\- ]?holder|dummy|redacted|sample|fake|notreal|not[_.\- ]a[_.\- ]real",
        r"do[_.\- ]?not[_.\- ]?use",
        r"x{6,}|\*{3,}|\.{3,}|#{4,}|\u2026|_{6,}|-{6,}",
        r"0{10,}|1234567|abcdefg|qwerty",
    )
)
REPEATED_UNIT = re.compile(r"(.{1,4}?)\1{3,}", re.DOTALL)
TOKEN_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,11}[_\-.](?:[A-Za-z0-9]{1,8}[_\-.])?")

TEMPLATE_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"\$\{[^}]*\}?",  # ${VAR}, ${VAR:-x}, also cut-off ${VAR
        r"\{\{.*?(?:\}\}|$)",  # {{ var }}, {{ .Token }}
        r"\{%.*?(?:%\}|$)",  # {% tag %}
        r"%\([A-Za-z_][A-Za-z0-9_]*\)[sdr]",  # %(password)s
        r"\$\([^)]*\)?",  # $(cat /run/secrets/x)
        r"#\{[^}]*\}",  # #{var} (Ruby, Spring)
        r"^\$[A-Za-z_][A-Za-z0-9_]*$",  # $VAR
        r"^%[A-Za-z_][A-Za-z0-9_]*%$",  # %VAR%
        r"^@[A-Za-z_][A-Za-z0-9_]*@$",  # @VAR@ (autoconf, maven)
        r"^__[A-Z][A-Z0-9_]*__$",  # __VAR__
        r"^%[sd]$",
        r"^<[^<>]*>$",  # <your-key>
        r"^\[[A-Za-z_][A-Za-z0-9_ -]*\]$",  # [YOUR_KEY]
    )
)


@dataclass(frozen=True)
class Verdict:
    """What the heuristics say about one match: drop it, or keep it with a reason."""

    drop: bool
    reason: str


def shannon_entropy(data: str | bytes) -> float:
    """Shannon entropy in bits per character (per byte for ``bytes``)."""
    if not data:
        return 0.0
    n = len(data)
    counts = Counter(data).values()
    return -sum(c / n * math.log2(c / n) for c in counts)


def is_documented_example(secret: str) -> bool:
    if secret in DOCUMENTED_EXAMPLES or EXAMPLE_WORD.search(secret):
        return True
    return any(part in secret for part in DOCUMENTED_PARTS)


def is_templated(secret: str) -> bool:
    """A template or variable reference in place of the value (dropped)."""
    if not secret or heuristic.is_templated_secret(secret):
        return True
    return any(p.search(secret) for p in TEMPLATE_PATTERNS)


def is_placeholder(secret: str) -> bool:
    bare = secret.strip().strip("\"'`")
    if not bare:
        return True
    if bare.lower() in PLACEHOLDER_WORDS:
        return True
    if any(p.search(bare) for p in PLACEHOLDER_PATTERNS):
        return True
    return _is_repetitive(bare) or _is_repetitive(TOKEN_PREFIX.sub("", bare, count=1))


def _is_repetitive(value: str) -> bool:
    if len(value) < 4:
        return False
    if REPEATED_UNIT.fullmatch(value):
        return True
    if len(value) >= 12 and len(set(value)) <= 3:
        return True
    # Long tokens (macaroons, keys) naturally hold runs such as AAAAAAAA (zero bytes
    # in base64): for them only a run covering half the value counts.
    longest = max(len(m.group(0)) for m in re.finditer(r"(.)\1*", value, re.DOTALL))
    if longest * 2 >= len(value) and len(value) >= 8:
        return True
    return longest >= 8 and len(value) < 64


def placeholder_reason(value: str) -> str | None:
    """Why a value is not a real secret, or None when it may be one.

    For callers that judge a value by itself (``ENV DB_PASSWORD=...``): templates,
    documented example keys, placeholders and sequential strings all count.
    """
    bare = value.strip()
    if not bare:
        return NOISE_PLACEHOLDER
    if is_templated(bare):
        return DROP_TEMPLATED
    if is_documented_example(bare):
        return NOISE_EXAMPLE
    if is_placeholder(bare):
        return NOISE_PLACEHOLDER
    if len(bare) >= 6 and heuristic.is_sequential_string(bare):
        return NOISE_SEQUENTIAL
    return None


def assess(
    secret: str, context: str, *, generic: bool, uuid_expected: bool = False
) -> Verdict | None:
    """The heuristics' verdict on one match, or None for a plausible secret.

    ``context`` is the text the rule matched (key, assignment and value for
    generic rules); ``generic`` selects the stricter treatment described in the
    module docstring; ``uuid_expected`` is set for rules whose secrets are UUIDs.
    """
    if is_templated(secret):
        return Verdict(True, DROP_TEMPLATED)
    if generic:
        if heuristic.is_prefixed_with_dollar_sign(secret):
            return Verdict(True, DROP_VARIABLE)
        if heuristic.is_indirect_reference(context):
            return Verdict(True, DROP_INDIRECT)
        if heuristic.is_likely_id_string(secret, context):
            return Verdict(True, DROP_ID)
        if heuristic.is_not_alphanumeric_string(secret):
            return Verdict(False, NOISE_PLACEHOLDER)  # a mask such as ********
    reason = None
    if is_documented_example(secret):
        reason = NOISE_EXAMPLE
    elif is_placeholder(secret):
        reason = NOISE_PLACEHOLDER
    elif len(secret) >= 6 and heuristic.is_sequential_string(secret):
        reason = NOISE_SEQUENTIAL
    if reason is not None:
        return Verdict(False, reason)
    if generic and not uuid_expected and heuristic.is_potential_uuid(secret):
        return Verdict(False, NOISE_UUID)
    return None

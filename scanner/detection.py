"""Detection services shared by analyzers: the signature set, the secret engine,
turning matches into findings, and redacting secrets out of free text.

One :class:`Detection` is built per scan (and per worker process) and handed to
every analyzer explicitly; there is no global state.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scanner.archives.limits import DEFAULT_LIMITS, ArchiveLimits, ImageUsage
from scanner.blast import Clue, radius
from scanner.findings import Finding, Location, Severity, hash_secret, redact
from scanner.keys import key_id, load_key
from scanner.secrets.cmdline import SENSITIVE_FRAGMENT, credential_spans
from scanner.signatures import SignatureSet

if TYPE_CHECKING:
    from scanner.secrets.engine import SecretEngine, SecretMatch

# Words that make a variable's value a credential whatever it looks like. Names
# are split into words (FLY_API_TOKEN, apiKey, db.password) before matching.
SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "dsn",
        "privatekey",
        "pat",
    }
)
SENSITIVE_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("client", "secret"),
        ("database", "url"),
        ("connection", "string"),
        ("webhook", "url"),
        ("session", "key"),
    }
)
# A last word that says the value is about a credential, not the credential.
BENIGN_LAST_WORDS = frozenset(
    {
        "file",
        "path",
        "dir",
        "name",
        "user",
        "username",
        "id",
        "type",
        "length",
        "ttl",
        "header",
        "endpoint",
        "version",
        "expiry",
        "expires",
        "url",
        "uri",
        "host",
        "port",
        "method",
        "mode",
        "enabled",
        "required",
        "prefix",
        "realm",
        "scope",
        "provider",
    }
)
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def name_words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", CAMEL.sub("_", name).lower()) if w]


def is_sensitive_name(name: str) -> bool:
    words = name_words(name)
    if not words:
        return False
    pairs = set(itertools.pairwise(words))
    hit = bool(SENSITIVE_WORDS.intersection(words)) or bool(SENSITIVE_PAIRS & pairs)
    if not hit:
        return False
    if pairs & {("database", "url"), ("webhook", "url")} and words[-1] == "url":
        return True
    return words[-1] not in BENIGN_LAST_WORDS


# Bounded and anchored at the start of a name: linear on hostile text.
KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,256})="
    r"(?P<value>\"[^\"]{0,4096}\"?|'[^']{0,4096}'?|\S{1,4096})"
)


# Values shorter than this are masked only where they stand alone (not inside words).
MIN_ANYWHERE = 6
# Words of a multi-word secret value at least this long are masked on their own too.
MIN_WORD = 8


@dataclass
class Detection:
    signatures: SignatureSet
    reveal: bool = False
    archive_limits: ArchiveLimits = DEFAULT_LIMITS
    # Key of secret hashes and fingerprints; None: the installation's (scanner.keys).
    hash_key: bytes | None = None
    # archive bytes and entries of the image being scanned, shared with forked workers
    archive_usage: ImageUsage = field(init=False)

    def __post_init__(self) -> None:
        self.archive_usage = ImageUsage()
        if self.hash_key is None:
            self.hash_key = load_key()

    @functools.cached_property
    def engine(self) -> SecretEngine:
        """The secret engine, built on first use: a run whose layers all come from the
        cache may need it only for a few lines of history, or not at all."""
        from scanner.secrets.engine import SecretEngine

        return SecretEngine(self.signatures)

    def prepare(self) -> None:
        """Build now what is otherwise built on first use (the engine and its prefilter
        database): a parent process calls this before it forks workers, which then share
        it instead of each building its own. Rule regexes stay compiled on first use:
        the prefilter's checks keep most rules from ever running, so each worker compiles
        the few it needs (compiling all of them here delayed every worker's start)."""
        self.engine  # noqa: B018 - cached

    @property
    def key(self) -> bytes:
        assert self.hash_key is not None
        return self.hash_key

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    def hash(self, secret: str | bytes) -> str:
        """The keyed hash of a secret (what findings store instead of it)."""
        return hash_secret(secret, self.key)

    def scan_text(self, text: str) -> list[SecretMatch]:
        return self.engine.scan(text.encode("utf-8", "surrogateescape"))

    def finding(self, match: SecretMatch, location: Location) -> Finding:
        """The finding for one match, with its blast radius (:mod:`scanner.blast`): the
        decoded radius may set the severity (an organisation-wide Fly.io token is
        critical, an expired credential at most medium); noise still lowers it."""
        rule = match.rule
        severity = rule.severity
        suppressed = None
        decoded = radius(Clue(rule.id, rule.detector, match.secret, match.context))
        if decoded is not None:
            severity = decoded.applied_to(severity)
        if match.noise is not None:
            severity, suppressed = Severity.INFO, f"noise: {match.noise}"
        return Finding(
            rule_id=rule.id,
            title=rule.title,
            severity=Severity(severity),
            category=rule.category,
            location=location,
            match=redact(match.secret),
            secret_hash=self.hash(match.secret),
            detector=rule.detector,
            description=rule.description,
            secret=match.secret if self.reveal else None,
            noise=match.noise,
            suppressed=suppressed,
            blast_radius=decoded.as_blast_radius() if decoded is not None else None,
        )

    def redact_text(self, text: str, also: Iterable[str] = ()) -> str:
        """The text with every secret masked: the one redaction function.

        Masks what the signatures match, credentials by their place on a command
        line (:mod:`scanner.secrets.cmdline`: ``curl -u``, ``--password``, URL
        passwords, auth headers, ``.netrc`` lines...), the values of ``K=V`` pairs
        whose name says they are credentials, and every value in ``also`` (what
        findings made from this text hold, so display text is redacted at least
        as strongly as the findings).
        """
        if not text:
            return text
        spans = self._engine_spans(text)
        spans += credential_spans(text)
        spans += [_value_span(m) for m in KEY_VALUE.finditer(text) if _sensitive_value(m)]
        extra = {v.strip() for v in also}
        for value in list(extra):
            words = value.split()
            if len(words) > 1:  # a value with spaces: its long words are secret too
                extra.update(w for w in words if len(w) >= MIN_WORD)
        for value in extra:
            spans += _occurrences(text, value)
        out: list[str] = []
        pos = 0
        for start, end in _merge(spans):
            out.append(text[pos:start])
            out.append(_mask(text[start:end]))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _engine_spans(self, text: str) -> list[tuple[int, int]]:
        data = text.encode("utf-8", "surrogateescape")
        spans = []
        for m in self.engine.scan(data):
            start = len(data[: m.start].decode("utf-8", "surrogateescape"))
            end = start + len(data[m.start : m.end].decode("utf-8", "surrogateescape"))
            spans.append((start, end))
        return spans


def _sensitive_value(m: re.Match[str]) -> bool:
    key, value = m.group("key"), m.group("value")
    bare = value.strip("\"'")
    if not bare or "*" * 8 in bare or (bare.startswith("$") and " " not in bare):
        return False
    return is_sensitive_name(key) or bool(SENSITIVE_FRAGMENT.search(key))


def _value_span(m: re.Match[str]) -> tuple[int, int]:
    """The value's span, without the closing quote or bracket of a surrounding string
    (``echo 'K=secret' > f``: the quote is not part of the value)."""
    start, end = m.span("value")
    if m.group("value")[:1] not in "\"'":
        while end > start + 1 and m.string[end - 1] in "\"')];,":
            end -= 1
    return start, end


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    if not value:
        return []
    if len(value) >= MIN_ANYWHERE:
        pattern = re.escape(value)
    else:
        pattern = rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
    return [m.span() for m in re.finditer(pattern, text)]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _mask(value: str) -> str:
    """A masked value keeps its quotes, so the text still reads as a command."""
    quote = value[0] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else ""
    inner = value[1:-1] if quote else value
    return f"{quote}{redact(inner)}{quote}" if inner.strip() else value

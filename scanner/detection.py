"""Detection services shared by analyzers: the signature set, the secret engine,
turning matches into findings, and redacting secrets out of free text.

One :class:`Detection` is built per scan (and per worker process) and handed to
every analyzer explicitly; there is no global state.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from scanner.archives.limits import DEFAULT_LIMITS, ArchiveLimits, ImageUsage
from scanner.blast import Clue, radius
from scanner.findings import Finding, Location, Severity, hash_secret, redact
from scanner.secrets.engine import SecretEngine, SecretMatch
from scanner.signatures import SignatureSet

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


KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>\"[^\"]*\"|'[^']*'|\S+)")


@dataclass
class Detection:
    signatures: SignatureSet
    reveal: bool = False
    archive_limits: ArchiveLimits = DEFAULT_LIMITS
    engine: SecretEngine = field(init=False)
    # archive bytes and entries of the image being scanned, shared with forked workers
    archive_usage: ImageUsage = field(init=False)

    def __post_init__(self) -> None:
        self.engine = SecretEngine(self.signatures)
        self.archive_usage = ImageUsage()

    def scan_text(self, text: str) -> list[SecretMatch]:
        return self.engine.scan(text.encode("utf-8", "surrogateescape"))

    def finding(self, match: SecretMatch, location: Location) -> Finding:
        """The finding for one match, with its blast radius (:mod:`scanner.blast`): the
        decoded radius may set the severity (an organisation-wide Fly.io token is
        critical, an expired credential at most medium); noise still lowers it."""
        rule = match.rule
        severity = rule.severity
        decoded = radius(Clue(rule.id, rule.detector, match.secret, match.context))
        if decoded is not None:
            severity = decoded.applied_to(severity)
        if match.noise is not None:
            severity = min(severity, Severity.LOW)
        return Finding(
            rule_id=rule.id,
            title=rule.title,
            severity=Severity(severity),
            category=rule.category,
            location=location,
            match=redact(match.secret),
            secret_hash=hash_secret(match.secret),
            detector=rule.detector,
            description=rule.description,
            secret=match.secret if self.reveal else None,
            noise=match.noise,
            blast_radius=decoded.as_blast_radius() if decoded is not None else None,
        )

    def redact_text(self, text: str) -> str:
        """The text with every detected secret and every sensitive ``K=V`` value masked."""
        if not text:
            return text
        data = text.encode("utf-8", "surrogateescape")
        spans = sorted({(m.start, m.end) for m in self.engine.scan(data)})
        out = bytearray()
        pos = 0
        for start, end in spans:
            if start < pos:
                continue
            out += data[pos:start]
            out += redact(data[start:end].decode("utf-8", "surrogateescape")).encode()
            pos = end
        out += data[pos:]
        redacted = out.decode("utf-8", "surrogateescape")
        return KEY_VALUE.sub(_mask_sensitive_value, redacted)


def _mask_sensitive_value(m: re.Match[str]) -> str:
    key, value = m.group("key"), m.group("value")
    bare = value.strip("\"'")
    if not is_sensitive_name(key) or not bare or "*" * 8 in bare or bare.startswith("$"):
        return m.group(0)
    return f"{key}={redact(bare)}"

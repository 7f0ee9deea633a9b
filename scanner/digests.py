"""Content digests: the algorithms the OCI image spec registers, and nothing else.

The spec registers ``sha256`` (64 lowercase hex digits) and ``sha512`` (128). A digest
with any other algorithm cannot be verified, so content named by it is refused rather
than trusted unchecked: an unverified layer must never count as scanned, be cached or
be taken from the cache.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from scanner.errors import ManifestError

# algorithm -> number of hex digits of its encoded value
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_SHAPE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class UnsupportedDigest(ManifestError):
    """A digest whose algorithm layerleak cannot verify, or which is malformed."""


def parse_digest(digest: str, what: str = "digest") -> tuple[str, str]:
    """(algorithm, hex) of a registered, well-formed digest; UnsupportedDigest otherwise."""
    if DIGEST_RE.match(digest):
        algorithm, _, encoded = digest.partition(":")
        return algorithm, encoded
    shape = _SHAPE.match(digest)
    if shape and shape.group(1) not in ALGORITHMS:
        raise UnsupportedDigest(
            f"{what}: digest algorithm {shape.group(1)!r} is not one the OCI spec registers "
            f"({', '.join(ALGORITHMS)}); the content cannot be verified, so it is not read"
        )
    raise UnsupportedDigest(f"{what}: invalid digest {digest[:160]!r}")


def is_supported(digest: str) -> bool:
    return DIGEST_RE.match(digest) is not None


def hasher(digest: str, what: str = "digest") -> Any:
    """A fresh hashlib object for the algorithm of ``digest`` (UnsupportedDigest if none)."""
    algorithm, _ = parse_digest(digest, what)
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(data: bytes, digest: str, what: str) -> None:
    """ManifestError unless ``data`` (a manifest, index or config) hashes to ``digest``."""
    algorithm, expected = parse_digest(digest, what)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise ManifestError(f"{what}: digest mismatch: expected {digest}, got {algorithm}:{actual}")

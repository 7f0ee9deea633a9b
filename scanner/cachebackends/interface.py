"""The layer cache seam: where layer results are remembered between runs and hosts.

A :class:`CacheBackend` maps a layer blob digest to the :class:`LayerResult` of
scanning it, under a key that also covers everything that could change the result:
the signature set's digest, the file analyzers' ids and versions, the scanner version
and the serialised form's format (:func:`cache_key`, the same for every backend). An
entry is the result's one serialised form (:meth:`LayerResult.to_bytes`); backends
other than the local directory wrap it in :func:`seal` (a checksum over key and
payload) and a corrupt, truncated or misfiled entry is ignored, counted as an error,
and rewritten by the next complete scan. Only complete scans are written, and never a
result holding a raw secret (``--reveal`` scans neither read nor write).

Implementations, one module each: :mod:`.local` (a directory, the default) and
:mod:`.redis` (a Redis server shared by every client and worker).
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from scanner import __version__
from scanner.errors import LayerleakError
from scanner.results import LAYER_RESULT_FORMAT, LayerResult

DEFAULT_EXPIRY = 30 * 24 * 3600.0  # seconds an entry is kept (0: for ever)
SEAL_MAGIC = b"LLC1"


class CacheBackendError(LayerleakError):
    """A cache backend URL that cannot be used (bad scheme, missing extra)."""


def cache_key(digest: str, signatures_digest: str, analyzers: str) -> str:
    """The key of a layer's entry: the same formula for every backend."""
    salt = "\x1f".join([str(LAYER_RESULT_FORMAT), __version__, signatures_digest, analyzers])
    return hashlib.sha256(f"{salt}\x1f{digest}".encode()).hexdigest()


def seal(key: str, payload: bytes) -> bytes:
    """An entry: magic, sha256 over key and payload, payload."""
    return SEAL_MAGIC + hashlib.sha256(key.encode() + b"\0" + payload).digest() + payload


def unseal(key: str, entry: bytes) -> bytes:
    """The payload of a sealed entry; ValueError when it is not one for ``key``."""
    if len(entry) < 36 or not entry.startswith(SEAL_MAGIC):
        raise ValueError("not a layerleak cache entry")
    checksum, payload = entry[4:36], entry[36:]
    if not hmac.compare_digest(checksum, hashlib.sha256(key.encode() + b"\0" + payload).digest()):
        raise ValueError("checksum mismatch")
    return payload


def storable(result: LayerResult) -> bool:
    """Only complete scans without a raw secret are ever written."""
    return result.complete and not any(f.secret for f in result.findings)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: list[str] = field(default_factory=list)  # entries ignored as corrupt

    def to_dict(self) -> dict[str, object]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
            "errors": len(self.errors),
        }


@dataclass(frozen=True)
class CacheSpec:
    """A picklable description of a shared backend, for workers to open the same one.

    It may hold the Redis password (like a registry credential, it travels with the
    task); it is kept out of ``repr``.
    """

    url: str
    signatures_digest: str
    analyzers: str
    expiry: float = DEFAULT_EXPIRY
    password: str | None = field(default=None, repr=False)


class CacheBackend(ABC):
    name: str = "?"
    shared = False  # True when workers elsewhere see the same entries

    def __init__(self, signatures_digest: str, analyzers: str) -> None:
        self.signatures_digest = signatures_digest
        self.analyzers = analyzers
        self.stats = CacheStats()
        self.broken: str | None = None  # why the backend stopped being used, if it did

    def key(self, digest: str) -> str:
        return cache_key(digest, self.signatures_digest, self.analyzers)

    @property
    def hits(self) -> int:
        return self.stats.hits

    @property
    def errors(self) -> list[str]:
        return self.stats.errors

    @abstractmethod
    def get(self, digest: str) -> LayerResult | None:
        """The cached result for a layer blob (``cached=True``), or None."""

    @abstractmethod
    def put(self, result: LayerResult) -> bool:
        """Remember a complete result; False when it was not written."""

    def claim(self, digest: str, token: str) -> bool:
        """Take the right to scan a layer (False: someone else is scanning it now).

        Shared backends use it so that two sweeps running at once do not scan the same
        layer twice; ``token`` names the task (a retried task takes its own claim back).
        """
        return True

    def release(self, digest: str, token: str) -> None:  # noqa: B027 - optional hook
        """Give a claim up (after the result was stored, or the scan failed)."""

    def wait_for(self, digest: str, timeout: float) -> LayerResult | None:
        """The result another claimant stores within ``timeout`` seconds, else None."""
        return None

    def spec(self) -> CacheSpec | None:
        """How a worker opens this backend, or None when workers cannot share it."""
        return None

    def describe(self) -> str:
        """Where the entries are, without any password."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

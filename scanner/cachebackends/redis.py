"""A Redis server as the layer cache, shared by every client and worker of a sweep.

``--cache-backend redis://[:PASSWORD@]HOST:PORT/DB`` (``rediss://`` for TLS). The
password comes from the URL or from ``LAYERLEAK_REDIS_PASSWORD``; it is never logged,
printed or put in an error message (:meth:`describe` and ``repr`` leave it out).
Entries are ``layerleak:layer:<key>`` (see :func:`cache_key`) holding the sealed
serialised result, written with ``SET ... EX <expiry>``; a corrupt or tampered entry
fails its checksum or its decoding and is ignored (and overwritten by the next complete
scan). A server that cannot be reached costs time, never the scan: the first failure
is recorded and the cache is not used for the rest of the run.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scanner.blast import refreshed
from scanner.cachebackends.interface import (
    DEFAULT_EXPIRY,
    CacheBackend,
    CacheBackendError,
    CacheSpec,
    seal,
    storable,
    unseal,
)
from scanner.digests import is_supported
from scanner.results import LayerResult

PASSWORD_ENV = "LAYERLEAK_REDIS_PASSWORD"
PREFIX = "layerleak:layer:"
CLAIM_PREFIX = "layerleak:claim:"
CLAIM_SECONDS = 900  # a claim whose holder died lapses after this
POLL_SECONDS = 0.2
# Delete a claim only when it is still ours.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
SOCKET_TIMEOUT = 10.0
MAX_ENTRY = 256 << 20  # bytes: a bigger value is not a layer result


def safe_url(url: str) -> str:
    """``url`` without user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def without_password(url: str) -> str:
    """``url`` with the password removed (the user name, if any, kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = f"{parts.username}@" if parts.username else ""
    netloc = user + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class RedisBackend(CacheBackend):
    name = "redis"
    shared = True

    def __init__(
        self,
        url: str,
        signatures_digest: str,
        analyzers: str,
        expiry: float = DEFAULT_EXPIRY,
        password: str | None = None,
    ) -> None:
        super().__init__(signatures_digest, analyzers)
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss"):
            raise CacheBackendError(f"cache backend {safe_url(url)}: not a redis:// URL")
        try:
            import redis
        except ImportError:
            raise CacheBackendError(
                "--cache-backend redis:// needs the redis client: pip install 'layerleak[cluster]'"
            ) from None
        self.url = url
        self.expiry = expiry
        if password is None:
            password = urlsplit(url).password or os.environ.get(PASSWORD_ENV)
        self._password = password
        kwargs: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
        }
        if self._password and not urlsplit(url).password:
            kwargs["password"] = self._password
        self._client = redis.Redis.from_url(url, **kwargs)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def __repr__(self) -> str:
        return f"RedisBackend({safe_url(self.url)!r})"

    def describe(self) -> str:
        return f"redis {safe_url(self.url)}"

    def _fail(self, what: str, exc: BaseException) -> None:
        # The exception text of redis-py names host and port, not the password; keep
        # only its class to be sure.
        self.broken = f"{self.describe()}: {what} failed ({type(exc).__name__}); cache not used"
        self.stats.errors.append(self.broken)

    def get(self, digest: str) -> LayerResult | None:
        if self.broken is not None or not is_supported(digest):
            self.stats.misses += 1
            return None
        key = self.key(digest)
        try:
            entry = self._client.get(PREFIX + key)
        except self._errors as exc:
            self._fail("GET", exc)
            self.stats.misses += 1
            return None
        if entry is None:
            self.stats.misses += 1
            return None
        try:
            if not isinstance(entry, bytes) or len(entry) > MAX_ENTRY:
                raise ValueError("not bytes, or too large")
            result = LayerResult.from_bytes(unseal(key, entry), digest, cached=True)
            # a credential that expired since the layer was cached is lowered now
            result.findings = [refreshed(f) for f in result.findings]
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            self.stats.errors.append(f"redis entry for {digest[:19]} ignored ({exc})")
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return result

    def put(self, result: LayerResult) -> bool:
        if self.broken is not None or not storable(result) or not is_supported(result.digest):
            return False
        key = self.key(result.digest)
        data = seal(key, result.to_bytes())
        try:
            if self.expiry > 0:
                self._client.set(PREFIX + key, data, ex=max(1, int(self.expiry)))
            else:
                self._client.set(PREFIX + key, data)
        except self._errors as exc:
            self._fail("SET", exc)
            return False
        self.stats.writes += 1
        return True

    def claim(self, digest: str, token: str) -> bool:
        if self.broken is not None:
            return True
        name = CLAIM_PREFIX + self.key(digest)
        try:
            if self._client.set(name, token, nx=True, ex=CLAIM_SECONDS):
                return True
            return bool(self._client.get(name) == token.encode())  # our own earlier attempt
        except self._errors as exc:
            self._fail("claim", exc)
            return True

    def release(self, digest: str, token: str) -> None:
        if self.broken is not None:
            return
        try:
            self._client.eval(_RELEASE, 1, CLAIM_PREFIX + self.key(digest), token)
        except self._errors as exc:
            self._fail("release", exc)

    def wait_for(self, digest: str, timeout: float) -> LayerResult | None:
        """Poll until the entry appears, the claim goes away, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        claim = CLAIM_PREFIX + self.key(digest)
        while self.broken is None and time.monotonic() < deadline:
            try:
                present = self._client.exists(PREFIX + self.key(digest))
                claimed = self._client.exists(claim)
            except self._errors as exc:
                self._fail("wait", exc)
                return None
            if present:
                return self.get(digest)
            if not claimed:
                return None  # the claimant gave up without a complete result
            time.sleep(POLL_SECONDS)
        return None

    def spec(self) -> CacheSpec:
        return CacheSpec(
            without_password(self.url),
            self.signatures_digest,
            self.analyzers,
            self.expiry,
            self._password,
        )

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._client.close()

"""The local directory backend (the default): :class:`scanner.cache.LayerCache`.

The on-disk logic stays in :mod:`scanner.cache`; this adapter puts it behind the
backend interface and applies the expiry (an entry older than it is a miss).
"""

from __future__ import annotations

import time
from pathlib import Path

from scanner.cache import LayerCache
from scanner.cachebackends.interface import DEFAULT_EXPIRY, CacheBackend, storable
from scanner.results import LayerResult


class LocalDirectoryBackend(CacheBackend):
    name = "directory"

    def __init__(
        self,
        directory: Path,
        signatures_digest: str,
        analyzers: str,
        expiry: float = DEFAULT_EXPIRY,
    ) -> None:
        super().__init__(signatures_digest, analyzers)
        self.cache = LayerCache(directory, signatures_digest, analyzers)
        self.directory = directory
        self.expiry = expiry

    def _expired(self, digest: str) -> bool:
        if self.expiry <= 0:
            return False
        try:
            age = time.time() - self.cache._path(digest).stat().st_mtime
        except OSError:
            return False
        return age > self.expiry

    def get(self, digest: str) -> LayerResult | None:
        if self._expired(digest):
            self.stats.misses += 1
            return None
        errors = len(self.cache.errors)
        result = self.cache.get(digest)
        self.stats.errors.extend(self.cache.errors[errors:])
        if result is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return result

    def put(self, result: LayerResult) -> bool:
        if not storable(result):
            return False
        self.cache.put(result)
        self.stats.writes += 1
        return True

    def describe(self) -> str:
        return f"directory {self.directory}"

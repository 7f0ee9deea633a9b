"""Layer cache backends: :func:`open_backend` picks one from ``--cache-backend``."""

from __future__ import annotations

from pathlib import Path

from scanner.cachebackends.interface import (
    DEFAULT_EXPIRY,
    CacheBackend,
    CacheBackendError,
    CacheSpec,
    CacheStats,
    cache_key,
)

__all__ = [
    "DEFAULT_EXPIRY",
    "CacheBackend",
    "CacheBackendError",
    "CacheSpec",
    "CacheStats",
    "cache_key",
    "open_backend",
    "open_spec",
]


def open_backend(
    url: str | None,
    signatures_digest: str,
    analyzers: str,
    *,
    directory: Path | None = None,
    expiry: float = DEFAULT_EXPIRY,
) -> CacheBackend:
    """The backend for ``--cache-backend`` (None, ``dir``/``file://PATH``: the directory)."""
    from scanner.cache import default_cache_dir

    text = (url or "").strip()
    if text.startswith(("redis://", "rediss://")):
        from scanner.cachebackends.redis import RedisBackend

        return RedisBackend(text, signatures_digest, analyzers, expiry)
    from scanner.cachebackends.local import LocalDirectoryBackend

    if text.startswith("file://"):
        directory = Path(text[len("file://") :])
    elif text and text not in ("dir", "directory", "local"):
        raise CacheBackendError(
            f"--cache-backend {text.split('://')[0]}://...: use redis://HOST:PORT/DB, "
            "rediss://..., file://PATH or dir"
        )
    return LocalDirectoryBackend(
        directory or default_cache_dir(), signatures_digest, analyzers, expiry
    )


def open_spec(spec: CacheSpec) -> CacheBackend:
    """A worker's view of a shared backend."""
    from scanner.cachebackends.redis import RedisBackend

    return RedisBackend(
        spec.url, spec.signatures_digest, spec.analyzers, spec.expiry, spec.password
    )

"""Cache backends: the directory and a real redis-server; keys, integrity, hostile entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scanner.analyzers.builtin import analyzers_version
from scanner.cache import LayerCache
from scanner.cachebackends import CacheBackendError, cache_key, open_backend
from scanner.cachebackends.interface import seal, unseal
from scanner.cachebackends.local import LocalDirectoryBackend
from scanner.cachebackends.redis import PREFIX, RedisBackend
from scanner.detection import Detection
from scanner.image import Layer
from scanner.results import LayerResult
from scanner.runners import InProcessRunner
from scanner.scan import Scanner, ScanOptions
from scanner.signatures import SignatureSet
from scanner.sources.interface import SourceOptions
from scanner.sources.resolve import resolve
from tests.infra.cluster_plugin import REDIS_PASSWORD
from tests.infra.redis_server import RedisServer

SIG = SignatureSet.load(()).digest


def layers_of(path: Path) -> list[Layer]:
    with resolve(str(path), SourceOptions()) as source:
        return list(source.load().platforms[0].layers)


def scanned(path: Path, index: int, reveal: bool = False) -> LayerResult:
    runner = InProcessRunner(Detection(SignatureSet.load(()), reveal=reveal))
    return next(iter(runner.run([layers_of(path)[index]])))[1]


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """The session's server, emptied for this test."""
    redis_server.client().flushall()
    return redis_server


def redis_backend(server: RedisServer, **kw: object) -> RedisBackend:
    return RedisBackend(server.url, SIG, analyzers_version(), **kw)  # type: ignore[arg-type]


def test_one_key_formula_for_every_backend(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    local = LayerCache(tmp_path, SIG, "content-secrets@1")
    assert local.key(digest) == cache_key(digest, SIG, "content-secrets@1")
    assert cache_key(digest, SIG, "content-secrets@2") != local.key(digest)


def test_seal_rejects_tampering_and_misfiling() -> None:
    entry = seal("k1", b"payload")
    assert unseal("k1", entry) == b"payload"
    for bad in (entry[:-1] + b"X", entry[:20], b"LLC1", b"other" * 10):
        with pytest.raises(ValueError):
            unseal("k1", bad)
    with pytest.raises(ValueError, match="checksum"):
        unseal("k2", entry)  # a valid entry copied under another key


def test_redis_round_trip_stats_and_expiry(redis: RedisServer, images: dict[str, Path]) -> None:
    result = scanned(images["deleted_secret"], 1)
    assert result.complete and result.findings
    cache = redis_backend(redis, expiry=120)
    assert cache.get(result.digest) is None
    assert cache.put(result)
    back = cache.get(result.digest)
    assert back is not None and back.cached
    assert [f.fingerprint for f in back.findings] == [f.fingerprint for f in result.findings]
    assert cache.stats.to_dict() == {"hits": 1, "misses": 1, "writes": 1, "errors": 0}
    ttl = redis.client().ttl(PREFIX + cache.key(result.digest))
    assert 0 < ttl <= 120


def test_redis_never_stores_incomplete_or_raw_secrets(
    redis: RedisServer, images: dict[str, Path]
) -> None:
    cache = redis_backend(redis)
    revealed = scanned(images["deleted_secret"], 1, reveal=True)
    assert any(f.secret for f in revealed.findings)
    assert not cache.put(revealed)
    incomplete = scanned(images["deleted_secret"], 0)
    incomplete.error = "layer 0: cut short"
    assert not cache.put(incomplete)
    keys = {cache.key(revealed.digest), cache.key(incomplete.digest)}
    assert not any(redis.client().exists(PREFIX + k) for k in keys)


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "misfiled", "huge-json"])
def test_corrupt_or_tampered_redis_entry_is_ignored_and_rewritten(
    redis: RedisServer, images: dict[str, Path], damage: str
) -> None:
    layers = layers_of(images["deleted_secret"])
    result = scanned(images["deleted_secret"], 1)
    cache = redis_backend(redis)
    cache.put(result)
    name = PREFIX + cache.key(result.digest)
    raw = redis.client().get(name)
    assert isinstance(raw, bytes)
    if damage == "flip":
        bad = raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:]
    elif damage == "truncate":
        bad = raw[: len(raw) // 2]
    elif damage == "foreign":
        bad = b'{"format": 3, "digest": "' + result.digest.encode() + b'"}'
    elif damage == "misfiled":  # a valid entry of another layer, copied under this key
        other = scanned(images["deleted_secret"], 0)
        bad = seal(cache.key(result.digest), other.to_bytes())
        assert layers[0].digest != result.digest
    else:  # a correctly sealed entry whose content is not a result at all
        bad = seal(cache.key(result.digest), b"\x1f\x8b" + os.urandom(64))
    redis.client().set(name, bad)
    fresh = redis_backend(redis)
    assert fresh.get(result.digest) is None
    assert len(fresh.stats.errors) == 1 and fresh.stats.misses == 1
    # The next complete scan rewrites it.
    assert fresh.put(result)
    assert fresh.get(result.digest) is not None


def test_redis_password_from_env_is_used_and_never_shown(
    redis_with_password: RedisServer, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = scanned(images["deleted_secret"], 1)
    url = redis_with_password.url
    monkeypatch.delenv("LAYERLEAK_REDIS_PASSWORD", raising=False)
    anonymous = RedisBackend(url, SIG, analyzers_version())
    assert anonymous.get(result.digest) is None and anonymous.broken is not None
    assert REDIS_PASSWORD not in anonymous.broken
    monkeypatch.setenv("LAYERLEAK_REDIS_PASSWORD", REDIS_PASSWORD)
    cache = RedisBackend(url, SIG, analyzers_version())
    assert cache.put(result) and cache.get(result.digest) is not None
    # In the URL, too; never in repr, describe or the worker spec's repr.
    in_url = url.replace("redis://", f"redis://:{REDIS_PASSWORD}@")
    monkeypatch.delenv("LAYERLEAK_REDIS_PASSWORD")
    from_url = RedisBackend(in_url, SIG, analyzers_version())
    assert from_url.get(result.digest) is not None
    for text in (repr(from_url), from_url.describe(), repr(from_url.spec()), repr(cache.spec())):
        assert REDIS_PASSWORD not in text
    wrong = RedisBackend(url.replace("redis://", "redis://:wrong-password@"), SIG, "x")
    assert wrong.get(result.digest) is None and wrong.broken is not None
    assert "wrong-password" not in wrong.broken


def test_unreachable_redis_costs_time_not_the_scan(images: dict[str, Path], tmp_path: Path) -> None:
    options = ScanOptions(cache_backend="redis://127.0.0.1:1/0", jobs=1)
    with Scanner(options) as scanner:
        result = scanner.scan(str(images["deleted_secret"]))
        assert scanner.cache is not None and scanner.cache.stats.errors
    assert not result.problems and result.findings
    assert any("cache not used" in note for note in scanner.notes)


def test_backend_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend(None, SIG, "a", directory=tmp_path), LocalDirectoryBackend)
    local = open_backend(f"file://{tmp_path}/c", SIG, "a")
    assert isinstance(local, LocalDirectoryBackend) and local.directory == tmp_path / "c"
    with pytest.raises(CacheBackendError) as err:
        open_backend("memcached://user:hunter2secret@host:1", SIG, "a")
    assert "hunter2secret" not in str(err.value)
    assert isinstance(open_backend("rediss://:pw@127.0.0.1:1/0", SIG, "a"), RedisBackend)


def test_local_expiry_and_stats(tmp_path: Path, images: dict[str, Path]) -> None:
    result = scanned(images["deleted_secret"], 1)
    cache = LocalDirectoryBackend(tmp_path, SIG, analyzers_version(), expiry=60)
    assert cache.put(result) and cache.get(result.digest) is not None
    path = cache.cache._path(result.digest)
    os.utime(path, (1_000_000, 1_000_000))  # written long ago
    assert cache.get(result.digest) is None
    assert cache.stats.to_dict() == {"hits": 1, "misses": 1, "writes": 1, "errors": 0}
    forever = LocalDirectoryBackend(tmp_path, SIG, analyzers_version(), expiry=0)
    assert forever.get(result.digest) is not None


def test_a_second_client_without_a_local_cache_scans_nothing_again(
    redis: RedisServer, images: dict[str, Path]
) -> None:
    """Two runs through Redis: the second client has no directory cache at all."""
    url = redis.url
    sources = [str(images["deleted_secret"]), str(images["deleted_secret_opaque"])]
    with Scanner(ScanOptions(cache_backend=url, jobs=2)) as first:
        one = first.scan_many(sources)
    distinct = first.stats.scanned + first.stats.reused
    assert first.stats.reused == 0 and distinct == first.stats.scanned > 0
    assert first.cache is not None and first.cache.stats.writes == distinct
    with Scanner(ScanOptions(cache_backend=url, jobs=2)) as second:
        two = second.scan_many(sources)
    assert second.stats.scanned == 0 and second.stats.reused == distinct
    assert [[f.fingerprint for f in r.findings] for r in one] == [
        [f.fingerprint for f in r.findings] for r in two
    ]

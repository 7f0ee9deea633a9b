"""Digests and the layer cache against hostile images: every algorithm the OCI spec
registers is verified, others are refused, and a layer that does not match its digest is
never complete, never cached and never taken from the cache; cache entries are
checksummed and their directories private."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest

from scanner.cache import LayerCache
from scanner.cli import exit_code
from scanner.digests import UnsupportedDigest, check_digest, parse_digest
from scanner.errors import ManifestError
from scanner.results import ImageResult, Report
from scanner.scan import Scanner, ScanOptions
from tests.hostile_images import SECRET, build_image, digest, secret_layer, write_layout


def scan(layout: Path, cache: Path | None = None) -> tuple[ImageResult, Scanner]:
    options = ScanOptions(use_cache=cache is not None, cache_dir=cache, jobs=1)
    with Scanner(options) as scanner:
        return scanner.scan(f"oci:{layout}"), scanner


def found_secret(result: ImageResult) -> bool:
    return any(f.location.path == "app/.env" for f in result.findings)


def layer_errors(result: ImageResult) -> list[str]:
    return [layer.error for p in result.platforms for layer in p.layers if layer.error]


# --- the algorithms -------------------------------------------------------------------


def test_parse_digest_accepts_only_registered_algorithms() -> None:
    assert parse_digest("sha256:" + "a" * 64) == ("sha256", "a" * 64)
    assert parse_digest("sha512:" + "b" * 128) == ("sha512", "b" * 128)
    for bad in ("sha384:" + "c" * 96, "md5:" + "d" * 32, "blake3:" + "e" * 64):
        with pytest.raises(UnsupportedDigest, match="not one the OCI spec registers"):
            parse_digest(bad)
    for malformed in ("sha256:" + "A" * 64, "sha256:abc", "sha512:" + "f" * 64, "", "sha256"):
        with pytest.raises(UnsupportedDigest, match="invalid digest"):
            parse_digest(malformed)


def test_check_digest_verifies_sha512_documents() -> None:
    data = b'{"schemaVersion":2}'
    check_digest(data, digest(data, "sha512"), "manifest")
    with pytest.raises(ManifestError, match="digest mismatch"):
        check_digest(data + b" ", digest(data, "sha512"), "manifest")


def test_sha512_image_is_scanned_and_verified(tmp_path: Path) -> None:
    built = build_image([secret_layer(marker="ok512")], algorithm="sha512", diff_algorithm="sha512")
    result, _ = scan(write_layout(tmp_path / "ok", built))
    assert result.problems == [] and layer_errors(result) == []
    assert found_secret(result)
    assert exit_code(Report([result])) != 3


def test_sha512_layer_that_does_not_match_is_an_error(tmp_path: Path) -> None:
    """Before: only sha256 was checked, so a sha512-named layer was trusted unread."""
    real = secret_layer(marker="real")
    other = secret_layer(marker="swapped")
    built = build_image([real], algorithm="sha512", layer_digests=[digest(other, "sha512")])
    result, _ = scan(write_layout(tmp_path / "bad", built))
    [error] = layer_errors(result)
    assert "digest mismatch" in error and "sha512:" in error
    assert exit_code(Report([result])) == 3
    assert found_secret(result), "what was read is still reported"


def test_sha512_diff_id_that_does_not_match_is_an_error(tmp_path: Path) -> None:
    layer = secret_layer(marker="diff512")
    built = build_image([layer], diff_ids=[digest(b"something else", "sha512")])
    result, _ = scan(write_layout(tmp_path / "bad", built))
    [error] = layer_errors(result)
    assert "diff_id" in error and "digest mismatch" in error
    assert exit_code(Report([result])) == 3


def test_unregistered_layer_algorithm_is_refused(tmp_path: Path) -> None:
    """sha384 is a fine hash, but not one the spec registers: refused, not trusted unread."""
    layer = secret_layer(marker="sha384")
    built = build_image([layer], layer_digests=[digest(layer, "sha384")])
    result, _ = scan(write_layout(tmp_path / "l", built))
    messages = [p.message for p in result.problems] + layer_errors(result)
    assert any("'sha384' is not one the OCI spec registers" in m for m in messages), messages
    assert exit_code(Report([result])) == 3


def test_unregistered_diff_id_algorithm_is_refused(tmp_path: Path) -> None:
    layer = secret_layer(marker="blake")
    built = build_image([layer], diff_ids=["blake3:" + "0" * 64])
    result, _ = scan(write_layout(tmp_path / "l", built))
    [error] = layer_errors(result)
    assert "'blake3' is not one the OCI spec registers" in error
    assert exit_code(Report([result])) == 3


# --- the cache ----------------------------------------------------------------------------


def test_mismatching_layer_is_never_cached_nor_read_from_the_cache(tmp_path: Path) -> None:
    real = secret_layer(marker="nocache")
    built = build_image(
        [real], algorithm="sha512", layer_digests=[digest(b"not the layer", "sha512")]
    )
    layout = write_layout(tmp_path / "bad", built)
    cache = tmp_path / "cache"
    first, _ = scan(layout, cache)
    second, scanner = scan(layout, cache)
    assert list(cache.rglob("*.json.gz")) == []
    assert scanner.cache is not None and scanner.cache.hits == 0
    for result in (first, second):
        assert any("digest mismatch" in e for e in layer_errors(result))
        assert exit_code(Report([result])) == 3


def tamper(entry: Path) -> None:
    """Drop the findings of a cache entry, keeping it valid gzip and JSON."""
    doc = json.loads(gzip.decompress(entry.read_bytes()))
    if isinstance(doc.get("payload"), str):
        payload = json.loads(doc["payload"])
        payload["findings"] = []
        doc["payload"] = json.dumps(payload, sort_keys=True)
    else:
        doc["findings"] = []
    entry.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_tampered_cache_entry_is_ignored(tmp_path: Path) -> None:
    built = build_image([secret_layer(marker="tamper")])
    layout = write_layout(tmp_path / "img", built)
    cache = tmp_path / "cache"
    cold, _ = scan(layout, cache)
    assert found_secret(cold)
    [entry] = list(cache.rglob("*.json.gz"))
    tamper(entry)
    warm, scanner = scan(layout, cache)
    assert found_secret(warm), "a tampered entry must not hide the secret"
    assert scanner.cache is not None and scanner.cache.hits == 0
    assert any("checksum" in e for e in scanner.cache.errors)
    # ... and the entry was rewritten: a third scan is a clean hit.
    third, scanner = scan(layout, cache)
    assert scanner.cache is not None and scanner.cache.hits == 1 and found_secret(third)


def test_cache_directories_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        built = build_image([secret_layer(marker="mode")])
        cache = tmp_path / "new" / "cache"
        scan(write_layout(tmp_path / "img", built), cache)
    finally:
        os.umask(old)
    dirs = [cache, *[p for p in cache.rglob("*") if p.is_dir()], tmp_path / "new"]
    assert len(dirs) >= 3
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_cache_never_looks_up_an_unverifiable_digest(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path, "sigs", "analyzers")
    assert cache.get("sha384:" + "a" * 96) is None
    assert list(tmp_path.iterdir()) == []
    assert SECRET not in str(cache.errors)

"""The layer cache: hits, keys, corrupt entries, incomplete layers; parallel == serial."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from scanner.cache import LayerCache
from scanner.findings import FileState
from scanner.progress import ProgressBar
from scanner.scan import Progress, Scanner, ScanOptions
from tests.e2e.helpers import secrets_at


def scanner(cache: Path, **kw: object) -> Scanner:
    return Scanner(ScanOptions(cache_dir=cache, **kw))  # type: ignore[arg-type]


def summary(result: object) -> set[tuple[str, str, int | None, str]]:
    return {
        (f.fingerprint, f.platform, f.location.layer_index, f.status.describe())
        for f in result.findings  # type: ignore[attr-defined]
    }


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.json.gz"))


def test_warm_scan_comes_from_the_cache_with_the_same_findings(
    images: dict[str, Path], tmp_path: Path
) -> None:
    with scanner(tmp_path) as s:
        cold = s.scan(str(images["deleted_secret"]))
        assert s.cache is not None and s.cache.hits == 0
    assert len(entries(tmp_path)) == 4  # one per layer
    with scanner(tmp_path) as s:
        warm = s.scan(str(images["deleted_secret"]))
        assert s.cache is not None and s.cache.hits == 4
    assert all(layer.cached for layer in warm.platforms[0].layers)
    assert summary(warm) == summary(cold)
    # Status is recomputed per image, not cached: still "deleted in layer 2".
    rsa = secrets_at(warm, "app/secrets/id_rsa", layer=1)
    assert rsa and rsa[0].status.state is FileState.DELETED


def test_cached_layer_is_placed_in_another_image(images: dict[str, Path], tmp_path: Path) -> None:
    # deleted_secret and deleted_secret_opaque share layers 0 and 1; layer 2 differs.
    with scanner(tmp_path) as s:
        s.scan(str(images["deleted_secret"]))
    with scanner(tmp_path) as s:
        opaque = s.scan(str(images["deleted_secret_opaque"]))
        assert s.cache is not None and s.cache.hits >= 2
    rsa = secrets_at(opaque, "app/secrets/id_rsa", layer=1)
    assert rsa and {(f.status.state, f.status.changed_in_layer) for f in rsa} == {
        (FileState.DELETED, 2)
    }


def test_corrupt_entry_is_ignored_and_rewritten(images: dict[str, Path], tmp_path: Path) -> None:
    with scanner(tmp_path) as s:
        cold = s.scan(str(images["deleted_secret"]))
    victim, truncated = entries(tmp_path)[0], entries(tmp_path)[1]
    victim.write_bytes(b"not gzip at all")
    truncated.write_bytes(truncated.read_bytes()[:20])
    with scanner(tmp_path) as s:
        again = s.scan(str(images["deleted_secret"]))
        assert s.cache is not None and s.cache.hits == 2 and len(s.cache.errors) == 2
    assert summary(again) == summary(cold)
    assert gzip.decompress(victim.read_bytes())  # rewritten


def test_incomplete_layer_is_not_cached(images: dict[str, Path], tmp_path: Path) -> None:
    with scanner(tmp_path) as s:
        result = s.scan(str(images["broken_layer_truncated"]))
    assert result.problems
    assert len(entries(tmp_path)) == 3  # the truncated layer 1 is not there


def test_key_changes_with_signatures_and_analyzers(tmp_path: Path) -> None:
    base = LayerCache(tmp_path, "sha256:aaa", "content-secrets@1")
    assert base.key("sha256:1") != LayerCache(tmp_path, "sha256:bbb", "content-secrets@1").key(
        "sha256:1"
    )
    assert base.key("sha256:1") != LayerCache(tmp_path, "sha256:aaa", "content-secrets@2").key(
        "sha256:1"
    )
    assert base.key("sha256:1") != base.key("sha256:2")


def test_reveal_neither_reads_nor_writes_the_cache(images: dict[str, Path], tmp_path: Path) -> None:
    with scanner(tmp_path, reveal=True) as s:
        assert s.cache is None
        s.scan(str(images["deleted_secret"]))
    assert entries(tmp_path) == []


def test_parallel_workers_give_the_same_result(images: dict[str, Path], tmp_path: Path) -> None:
    with Scanner(ScanOptions(use_cache=False, jobs=1)) as s:
        serial = s.scan(str(images["multiplatform"]))
    with Scanner(ScanOptions(use_cache=False, jobs=2)) as s:
        parallel = s.scan(str(images["multiplatform"]))
    assert summary(serial) == summary(parallel) and summary(serial)


def test_progress_reports_every_layer(images: dict[str, Path]) -> None:
    seen: list[Progress] = []
    with Scanner(ScanOptions(use_cache=False, jobs=2), progress=seen.append) as s:
        s.scan(str(images["demo"]))
    assert [p.layers_done for p in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].bytes_done == seen[-1].bytes_total > 0


def test_progress_bar_draws_and_clears() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar.started -= 10  # as if the scan had been running for a while
    bar(Progress(1, 2, 50, 100, 3))
    bar.clear()
    assert "layers 1/2" in out.getvalue() and "findings 3" in out.getvalue()
    assert out.getvalue().endswith("\r\033[K")

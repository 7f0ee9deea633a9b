"""Nested archives: magic-byte sniffing, inner paths, depth, budget, corruption."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest
import zstandard

from scanner.archives import ArchiveLimits, ArchiveWalk, decompressed_name, sniff
from tests.archives.helpers import tar_bytes, zip_bytes


def leaves(
    data: bytes, name: str = "f", **limits: int
) -> tuple[dict[str | None, bytes], ArchiveWalk]:
    walk = ArchiveWalk(ArchiveLimits(**limits))
    out = {inner: stream.read() for inner, stream in walk.leaves(io.BytesIO(data), name)}
    return out, walk


def test_sniff_by_magic_bytes_not_name() -> None:
    assert sniff(zip_bytes({"a": b"x"})[:512]) == "zip"
    assert sniff(tar_bytes({"a": b"x"})[:512]) == "tar"
    assert sniff(gzip.compress(b"x")[:512]) == "gzip"
    assert sniff(zstandard.ZstdCompressor().compress(b"x")[:512]) == "zstd"
    assert sniff(b"plain text") is None
    assert sniff(b"\x7fELF\x02\x01") is None


def test_plain_file_is_one_leaf_with_all_its_bytes() -> None:
    data = b"hello\n" * 1000
    got, walk = leaves(data)
    assert got == {None: data}
    assert walk.skipped == []


def test_jar_members_get_inner_paths_whatever_the_file_is_called() -> None:
    jar = zip_bytes({"BOOT-INF/classes/application.properties": b"k=v\n", "META-INF/": b""})
    got, _ = leaves(jar, "app.bin")
    assert got == {"BOOT-INF/classes/application.properties": b"k=v\n"}


def test_nested_archives_join_inner_paths_with_bang() -> None:
    inner = zip_bytes({"x.properties": b"secret\n"})
    outer = zip_bytes({"lib/b.jar": inner, "readme": b"hi"})
    tgz = gzip.compress(tar_bytes({"etc/app.conf": b"conf", "a.jar": outer}))
    got, walk = leaves(tgz, "bundle.tar.gz")
    assert got == {
        "etc/app.conf": b"conf",
        "a.jar!lib/b.jar!x.properties": b"secret\n",
        "a.jar!readme": b"hi",
    }
    assert walk.skipped == []


def test_plain_gz_and_zst_name_their_content_after_themselves() -> None:
    got, _ = leaves(gzip.compress(b"log line\n"), "app.log.1.gz")
    assert got == {"app.log.1": b"log line\n"}
    got, _ = leaves(zstandard.ZstdCompressor().compress(b"dump"), "dump.sql.zst")
    assert got == {"dump.sql": b"dump"}


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("a.tar.gz", "gzip", "a.tar"),
        ("a.tgz", "gzip", "a.tar"),
        ("a.log.gz", "gzip", "a.log"),
        ("blob", "gzip", "blob"),
        ("x.tzst", "zstd", "x.tar"),
        ("x.sql.zst", "zstd", "x.sql"),
    ],
)
def test_decompressed_name(name: str, kind: str, expected: str) -> None:
    assert decompressed_name(name, kind) == expected


def test_depth_limit_is_reported_and_the_deepest_archive_scanned_raw() -> None:
    data = b"deep secret"
    for level in range(4):
        data = zip_bytes({f"l{level}.zip" if level else "s.txt": data}, zipfile.ZIP_STORED)
    got, walk = leaves(data, "top.zip", max_depth=2)
    assert list(got) == ["l3.zip!l2.zip"]
    assert b"deep secret" in got["l3.zip!l2.zip"]  # stored: still visible as raw bytes
    assert len(walk.skipped) == 1
    assert walk.skipped[0].inner_path == "l3.zip!l2.zip"
    assert "nested deeper than 2" in walk.skipped[0].reason


def test_gzip_bomb_stops_at_the_member_cap_and_says_so() -> None:
    bomb = gzip.compress(bytes(8 << 20))
    got, walk = leaves(bomb, "bomb.gz", member_cap=1 << 20)
    assert len(got["bomb"]) == 1 << 20
    assert [s.inner_path for s in walk.skipped] == ["bomb"]
    assert "per-member cap of 1 MB" in walk.skipped[0].reason


def test_budget_per_top_level_file_covers_all_members() -> None:
    z = zip_bytes({f"m{i}": bytes(600 << 10) for i in range(4)})
    got, walk = leaves(z, "x.zip", budget=1 << 20)
    assert sum(len(v) for v in got.values()) == 1 << 20
    assert any("budget" in s.reason for s in walk.skipped)
    assert any("not scanned" in s.reason for s in walk.skipped)


def test_corrupt_zip_is_scanned_raw_and_reported() -> None:
    data = b"PK\x03\x04" + b"garbage token=abc" * 10
    got, walk = leaves(data, "broken.jar")
    assert got == {None: data}
    assert walk.skipped[0].inner_path is None
    assert "unreadable zip" in walk.skipped[0].reason


def test_truncated_gzip_yields_what_it_could_and_reports() -> None:
    text = b"".join(b"line %d\n" % i for i in range(100_000))
    data = gzip.compress(text)
    data = data[: len(data) // 2]
    got, walk = leaves(data, "x.gz")
    assert got["x"].startswith(b"line 0\n")
    assert walk.skipped and "corrupt gzip" in walk.skipped[0].reason


def test_encrypted_zip_member_is_reported_not_scanned() -> None:
    data = bytearray(zip_bytes({"secret.txt": b"x"}, zipfile.ZIP_STORED))
    data[6] |= 1  # local header: general purpose flag, bit 0 = encrypted
    cd = data.find(b"PK\x01\x02")
    data[cd + 8] |= 1  # central directory header flag
    got, walk = leaves(bytes(data), "x.zip")
    assert got == {}
    assert walk.skipped[0].inner_path == "secret.txt"
    assert "encrypted" in walk.skipped[0].reason


def test_tar_member_names_are_cleaned() -> None:
    got, _ = leaves(tar_bytes({"../../etc/x": b"1", "/abs/y": b"2"}), "t.tar")
    assert got == {"etc/x": b"1", "abs/y": b"2"}


def test_zip_too_large_to_spool_is_scanned_raw_without_losing_a_byte() -> None:
    data = zip_bytes({"a.txt": b"a" * 5000, "b.txt": b"b" * 5000}, zipfile.ZIP_STORED)
    got, walk = leaves(data, "big.zip", zip_spool=4096)
    assert got == {None: data}
    assert "zip larger than 4 KB" in walk.skipped[0].reason


def test_open_archives_callback_is_asked_only_for_archives() -> None:
    asked: list[bool] = []

    def no() -> bool:
        asked.append(True)
        return False

    data = gzip.compress(b"x")
    walk = ArchiveWalk()
    got = [(i, s.read()) for i, s in walk.leaves(io.BytesIO(data), "a.gz", no)]
    assert got == [(None, data)] and asked == [True]
    got = [(i, s.read()) for i, s in walk.leaves(io.BytesIO(b"plain"), "a", no)]
    assert got == [(None, b"plain")] and asked == [True]

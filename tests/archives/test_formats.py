"""Each archive format, built in code, walked with its inner paths (nested too)."""

from __future__ import annotations

import io

import pytest

from scanner.archives import decompressed_name, sniff
from scanner.archives.ar import ar_members
from tests.archives.helpers import (
    COMPRESS,
    ar_bytes,
    ar_header,
    deb_bytes,
    leaves,
    seven_zip_bytes,
    tar_bytes,
    zip_bytes,
)

ENV = b"DATABASE_PASSWORD=hunter2-but-longer\n"


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_single_file_names_its_content_after_itself(kind: str) -> None:
    suffix = {"gzip": "gz", "zstd": "zst", "xz": "xz", "lzma": "lzma", "bzip2": "bz2"}[kind]
    data = COMPRESS[kind](ENV)
    assert sniff(data[:512]) == kind
    got, walk = leaves(data, f"app.env.{suffix}")
    assert got == {"app.env": ENV}
    assert walk.skipped == []


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_tar_adds_no_level(kind: str) -> None:
    data = COMPRESS[kind](tar_bytes({"./etc/app/.env": ENV}))
    got, walk = leaves(data, "backup.tar.x")
    assert got == {"etc/app/.env": ENV}
    assert walk.skipped == []


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_every_compression_inside_a_zip_inside_a_tar(kind: str) -> None:
    inner = zip_bytes({"conf/secret.env.c": COMPRESS[kind](ENV)})
    got, _ = leaves(tar_bytes({"srv/lib/app.jar": inner}), "layer.tar")
    assert got == {"srv/lib/app.jar!conf/secret.env.c!secret.env.c": ENV}


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("a.tar.xz", "xz", "a.tar"),
        ("a.txz", "xz", "a.tar"),
        ("a.sql.xz", "xz", "a.sql"),
        ("a.tar.lzma", "lzma", "a.tar"),
        ("a.tbz2", "bzip2", "a.tar"),
        ("a.log.bz2", "bzip2", "a.log"),
    ],
)
def test_decompressed_names(name: str, kind: str, expected: str) -> None:
    assert decompressed_name(name, kind) == expected


def test_seven_zip_members_with_inner_paths() -> None:
    data = seven_zip_bytes({"deploy/.env": ENV, "readme.txt": b"hello"})
    assert sniff(data[:512]) == "7z"
    got, walk = leaves(data, "backup.7z")
    assert got == {"deploy/.env": ENV, "readme.txt": b"hello"}
    assert walk.skipped == []


def test_seven_zip_nested_in_gzip_in_zip() -> None:
    seven = seven_zip_bytes({"keys/id.env": ENV})
    got, _ = leaves(zip_bytes({"dump/keys.7z.gz": COMPRESS["gzip"](seven)}), "x.zip")
    assert got == {"dump/keys.7z.gz!keys.7z!keys/id.env": ENV}


DEB_FIRST = {"debian-binary": b"2.0\n"}


def test_ar_parser_reads_gnu_long_names() -> None:
    files = {"a-very-long-member-name.env": ENV, "short": b"1"}
    data = ar_bytes(files, gnu_long_names=True)
    got = {name: member.read() for name, member in ar_members(io.BytesIO(data))}
    assert got == files


def test_deb_members_by_name() -> None:
    files = {**DEB_FIRST, "control.tar": b"c", "extra.env": ENV}
    data = ar_bytes(files, gnu_long_names=True)
    assert sniff(data[:512]) == "ar"
    got, walk = leaves(data, "x.deb")
    assert got == files
    assert walk.skipped == []


def test_ar_bsd_long_names() -> None:
    name = b"bsd-style-long-name.env"
    member = ar_header(b"#1/%d" % len(name), len(name) + len(ENV)) + name + ENV
    got, _ = leaves(ar_bytes(DEB_FIRST) + member, "x.deb")
    assert got["bsd-style-long-name.env"] == ENV


def test_static_library_is_scanned_as_it_is_not_opened() -> None:
    data = ar_bytes({"a.o": b"\x7fELF object " + ENV, "b.o": b"\x7fELF"})
    assert sniff(data[:512]) is None
    got, walk = leaves(data, "libx.a")
    assert got == {None: data} and walk.archives == 0


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "bzip2"])
def test_deb_data_tarball_holding_a_zip_holding_an_env(compression: str) -> None:
    data_tar = tar_bytes({"./opt/app/bundle.zip": zip_bytes({".env": ENV})})
    suffix = {"xz": "xz", "gzip": "gz", "zstd": "zst", "bzip2": "bz2"}[compression]
    deb = deb_bytes(COMPRESS[compression](data_tar), f"data.tar.{suffix}")
    got, walk = leaves(deb, "app_1.0_all.deb")
    assert got[f"data.tar.{suffix}!opt/app/bundle.zip!.env"] == ENV
    assert got["control.tar.gz!control"].startswith(b"Package: app")
    assert walk.skipped == []

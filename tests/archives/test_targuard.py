"""Extended tar headers of nested tars are bounded before tarfile reads them."""

from __future__ import annotations

import io
import tarfile
import time

import pytest

from scanner.archives.targuard import EXTENDED_LIMIT
from tests.archives.helpers import leaves, limits_hit, tar_bytes

SECRET = b"GITHUB_TOKEN=behind-a-big-header\n"


def tar_with(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **pax: str
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.pax_headers = dict(pax)
    return info, data


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_ordinary_tars_pass_the_guard(fmt: int) -> None:
    long_name = "d/" + "n" * 150 + ".env" if fmt != tarfile.USTAR_FORMAT else "d/x.env"
    data = tar_with(
        member("d", kind=tarfile.DIRTYPE),
        member(long_name, b"1" * 1000),
        member("d/link", kind=tarfile.SYMTYPE),
        member("d/é.txt" if fmt == tarfile.PAX_FORMAT else "d/e.txt", b"2"),
        member("d/last", SECRET),
        fmt=fmt,
    )
    got, walk = leaves(tar_bytes({"srv/t.tar": data}), "layer.tar")
    assert got[f"srv/t.tar!{long_name}"] == b"1" * 1000
    assert got["srv/t.tar!d/last"] == SECRET
    assert walk.skipped == []


def test_huge_pax_header_in_a_nested_tar_is_refused_as_a_limit() -> None:
    big = member("d/big", b"x", comment="c" * (1 << 20))  # a 1 MB PAX record
    data = tar_with(member("d/first", b"1"), big, member("d/after", SECRET))
    got, walk = leaves(tar_bytes({"t.tar": data}), "layer.tar")
    assert got["t.tar!d/first"] == b"1"
    (reason,) = limits_hit(walk)
    assert "extended tar header" in reason and str(EXTENDED_LIMIT) in reason
    assert SECRET in got["t.tar"]  # the rest is scanned as raw bytes


def test_pax_digit_run_is_refused_fast() -> None:
    """CVE-2024-6232: tarfile's hdrcharset regex is quadratic in a run of digits."""
    evil = member("d/evil", b"x", comment="1" * 60_000)
    data = tar_with(evil, member("d/after", SECRET))
    started = time.monotonic()
    got, walk = leaves(data, "t.tar")
    assert time.monotonic() - started < 2
    assert any("run of over 1000 digits" in r for r in limits_hit(walk))
    assert SECRET in got[None]


def test_gnu_long_name_over_the_limit_is_refused() -> None:
    data = tar_with(member("x" * (EXTENDED_LIMIT + 10), b"1"), fmt=tarfile.GNU_FORMAT)
    _, walk = leaves(data, "t.tar")
    assert any("extended tar header" in r for r in limits_hit(walk))


def test_guard_follows_the_pax_size_of_the_next_member() -> None:
    """A PAX ``size`` record overrides the header's size field: the guard must look for
    the next header where tarfile does, or the header after could slip through."""
    record = b"13 size=3000\n"
    pax = tarfile.TarInfo("PaxHeaders/a")
    pax.type = tarfile.XHDTYPE
    pax.size = len(record)
    plain = tarfile.TarInfo("a")
    plain.size = 0  # the header says 0, the PAX record 3000
    body = (
        pax.tobuf(tarfile.USTAR_FORMAT)
        + record.ljust(512, b"\x00")
        + plain.tobuf(tarfile.USTAR_FORMAT)
        + (b"A" * 3000).ljust(3072, b"\x00")
    )
    evil = tar_with(member("z", b"z", comment="c" * (1 << 20)))
    got, walk = leaves(body + evil, "t.tar")
    assert got["a"] == b"A" * 3000
    assert any("extended tar header" in r for r in limits_hit(walk))

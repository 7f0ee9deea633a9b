"""Archives built in code, and the walk over them."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile

import py7zr
import zstandard

from scanner.archives import ArchiveBudget, ArchiveLimits, ArchiveWalk


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seven_zip_bytes(files: dict[str, bytes], password: str | None = None) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=bool(password)) as z:
        for name, data in files.items():
            z.writestr(data, name)
    return buf.getvalue()


def ar_bytes(files: dict[str, bytes], gnu_long_names: bool = False) -> bytes:
    """An ar archive as ``ar``/``dpkg-deb`` write it (GNU long names optional)."""
    out = bytearray(b"!<arch>\n")
    names = b""
    entries: list[tuple[bytes, bytes]] = []
    for name, data in files.items():
        raw = name.encode()
        if len(raw) > 15 and gnu_long_names:
            entries.append((b"/%d" % len(names), data))
            names += raw + b"/\n"
        else:
            entries.append((raw + (b"/" if gnu_long_names else b""), data))
    if names:
        entries.insert(0, (b"//", names))
    for raw, data in entries:
        out += ar_header(raw, len(data)) + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def ar_header(name: bytes, size: int) -> bytes:
    return (
        name.ljust(16)
        + b"0".ljust(12)
        + b"0".ljust(6)
        + b"0".ljust(6)
        + b"100644".ljust(8)
        + str(size).encode().ljust(10)
        + b"`\n"
    )


def deb_bytes(data_tar: bytes, data_name: str = "data.tar.xz") -> bytes:
    control = tar_bytes({"./control": b"Package: app\nVersion: 1.0\nArchitecture: all\n"})
    return ar_bytes(
        {
            "debian-binary": b"2.0\n",
            "control.tar.gz": gzip.compress(control),
            data_name: data_tar,
        }
    )


COMPRESS = {
    "gzip": gzip.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "bzip2": bz2.compress,
}


def leaves(
    data: bytes, name: str = "f", layer: ArchiveBudget | None = None, **limits: int
) -> tuple[dict[str | None, bytes], ArchiveWalk]:
    """Every leaf's bytes by inner path (leaves sharing an inner path are joined)."""
    lim = layer.limits if layer is not None else ArchiveLimits(**limits)
    walk = ArchiveWalk(lim, layer)
    out: dict[str | None, bytes] = {}
    for inner, stream in walk.leaves(io.BytesIO(data), name):
        out[inner] = out.get(inner, b"") + stream.read()
    return out, walk


def limits_hit(walk: ArchiveWalk) -> list[str]:
    return [s.reason for s in walk.skipped if s.limit]

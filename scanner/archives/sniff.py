"""Archive kinds by magic bytes, and how their members are named."""

from __future__ import annotations

import posixpath
import re

from scanner.layers import ZSTD_MAGIC

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_HEAD = b"\x1f\x8b\x08"
TAR_MAGIC = b"ustar"
TAR_MAGIC_OFFSET = 257
XZ_MAGIC = b"\xfd7zXZ\x00"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
AR_MAGIC = b"!<arch>\n"
# A Debian package (.deb, also .ipk/.udeb) is an ar archive whose first member is
# "debian-binary". Other ar archives (static libraries: .a files of .o members) hold
# their members uncompressed, so they are scanned as they are, without opening.
DEB_FIRST_MEMBER = re.compile(rb"debian-binary/? *")
# "BZh" + block size, then a block (pi) or the end of stream (sqrt(pi)).
BZIP2_HEAD = re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)")

COMPRESSIONS = frozenset({"gzip", "zstd", "xz", "lzma", "bzip2"})
ARCHIVES = frozenset({"zip", "tar", "7z", "ar"})


def _lzma_alone(head: bytes) -> bool:
    """The legacy ``.lzma`` header: properties 0x5D, a power-of-two dictionary size,
    and an unknown (all 0xFF) or plausible uncompressed size."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dictionary = int.from_bytes(head[1:5], "little")
    if dictionary < 1 << 12 or dictionary & (dictionary - 1):
        return False
    size = head[5:13]
    return size == b"\xff" * 8 or int.from_bytes(size, "little") < 1 << 40


def sniff(head: bytes) -> str | None:
    """The archive kind of data starting with ``head`` (its first 512 bytes), or None."""
    if head[:4] in ZIP_MAGICS:
        return "zip"
    if head.startswith(GZIP_HEAD):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if BZIP2_HEAD.match(head):
        return "bzip2"
    if head.startswith(SEVEN_ZIP_MAGIC):
        return "7z"
    if head.startswith(AR_MAGIC) and DEB_FIRST_MEMBER.fullmatch(head[8:24]):
        return "ar"
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + len(TAR_MAGIC)] == TAR_MAGIC:
        return "tar"
    if _lzma_alone(head):
        return "lzma"
    return None


def join_inner(outer: str | None, name: str) -> str:
    return f"{outer}!{name}" if outer else name


def clean_member_name(name: str) -> str:
    """A member name as a relative path (no leading ``/``, no ``..``, forward slashes)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "?"


_SUFFIXES = {
    "gzip": ((".tgz", ".tar"), (".gz", ""), (".gzip", ""), (".z", "")),
    "zstd": ((".tzst", ".tar"), (".zst", ""), (".zstd", "")),
    "xz": ((".txz", ".tar"), (".xz", "")),
    "lzma": ((".tlz", ".tar"), (".lzma", "")),
    "bzip2": ((".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", ""), (".bz", "")),
}


def decompressed_name(name: str, kind: str) -> str:
    base = posixpath.basename(name)
    lower = base.lower()
    for suffix, replacement in _SUFFIXES[kind]:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base

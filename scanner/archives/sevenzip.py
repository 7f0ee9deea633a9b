"""7-Zip archives through ``py7zr``, bounded.

py7zr's own protections (1.1): header counts checked against the bytes that
declare them (at most 8M files), an encoded header decoded to at most 256 MB,
and ``max_extract_size`` for the total decompressed. On top of that, here: the
start header's next-header size is checked against the central-directory limit
before py7zr reads it; coders asking for more memory than the xz/lzma limit
(LZMA/LZMA2 dictionary, PPMd model) are refused before anything is decoded; the
number of entries against the entry budgets before anything is decompressed;
``max_extract_size`` set to what the byte budgets leave; every member written to
its own bounded spool (at most the per-member cap is kept; the rest is counted
and dropped), then handed to the walk one by one.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import py7zr
import py7zr.io

from scanner.archives.compressed import LZMA_MEMLIMIT
from scanner.archives.limits import human
from scanner.archives.sniff import SEVEN_ZIP_MAGIC

START_HEADER = 32
SPOOL_IN_MEMORY = 1 << 20


class SevenZipRefused(Exception):
    """A limit refused the archive before any member was decompressed."""


class SevenZipEncrypted(Exception):
    """Members or the header need a password."""


@dataclass
class Member:
    name: str
    spool: tempfile.SpooledTemporaryFile[bytes]
    size: int = 0  # bytes written by py7zr (kept: at most the cap)
    cap: int = 0

    @property
    def truncated(self) -> bool:
        return self.size > self.cap


class _Writer(py7zr.io.Py7zIO):
    def __init__(self, member: Member) -> None:
        self.member = member

    def write(self, s: bytes | bytearray) -> int:
        member = self.member
        room = member.cap - min(member.size, member.cap)
        if room > 0:
            member.spool.write(bytes(s[:room]))
        member.size += len(s)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.member.size


@dataclass
class _Factory(py7zr.io.WriterFactory):
    cap: int
    members: list[Member] = field(default_factory=list)

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        member = Member(filename, spool, cap=self.cap)
        self.members.append(member)
        return _Writer(member)


LZMA2 = b"!"
LZMA1 = b"\x03\x01\x01"
PPMD = b"\x03\x04\x01"


def coder_memory(method: bytes, properties: bytes | None) -> int:
    """The memory a 7z coder asks for in its properties (dictionary or model size)."""
    props = properties or b""
    if method == LZMA2 and props:
        code = min(props[0], 40)
        return (2 | (code & 1)) << (code // 2 + 11)
    if method in (LZMA1, PPMD) and len(props) >= 5:
        return int.from_bytes(props[1:5], "little")
    return 0


def check_memory(archive: py7zr.SevenZipFile) -> None:
    """Refuse coders that would allocate more than the xz/lzma memory limit."""
    unpack = getattr(getattr(archive.header, "main_streams", None), "unpackinfo", None)
    for folder in getattr(unpack, "folders", None) or []:
        for coder in folder.coders:
            need = coder_memory(coder.get("method", b""), coder.get("properties"))
            if need > LZMA_MEMLIMIT:
                raise SevenZipRefused(
                    f"7z coder needs {human(need)} of memory, more than the limit of "
                    f"{human(LZMA_MEMLIMIT)}"
                )


def next_header_size(f: IO[bytes]) -> int:
    f.seek(0)
    start = f.read(START_HEADER)
    if len(start) < START_HEADER or not start.startswith(SEVEN_ZIP_MAGIC):
        raise py7zr.Bad7zFile("no 7z start header")
    return int(struct.unpack("<Q", start[20:28])[0])


@dataclass
class Extraction:
    members: list[Member]
    entries: int
    error: str | None = None  # extraction stopped here (what came before is kept)
    over_budget: bool = False  # the byte budget stopped it


def extract(
    f: IO[bytes], *, header_limit: int, entries_left: int, bytes_left: int, cap: int
) -> Extraction:
    """Every regular member of the 7z in ``f`` (random access), within the limits.

    Raises :class:`SevenZipRefused`, :class:`SevenZipEncrypted`, or py7zr's errors
    when the archive cannot be opened at all.
    """
    size = next_header_size(f)
    if size > header_limit:
        raise SevenZipRefused(
            f"7z header of {human(size)} is larger than the limit of {human(header_limit)}"
        )
    f.seek(0)
    try:
        archive = py7zr.SevenZipFile(f, mode="r", max_extract_size=max(bytes_left, 0))
    except py7zr.PasswordRequired:
        raise SevenZipEncrypted("encrypted 7z header") from None
    with archive:
        if archive.needs_password():
            raise SevenZipEncrypted("encrypted 7z")
        files = [i for i in archive.list() if not i.is_directory]
        if len(files) > entries_left:
            raise SevenZipRefused(
                f"7z with {len(files)} entries: more than the entry budgets leave ({entries_left})"
            )
        check_memory(archive)
        factory = _Factory(cap)
        result = Extraction(factory.members, len(files))
        try:
            archive.extractall(factory=factory)
        except py7zr.exceptions.DecompressionBombError as exc:
            result.error, result.over_budget = str(exc), True
        except py7zr.PasswordRequired as exc:
            raise SevenZipEncrypted(str(exc) or "encrypted 7z") from None
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        return result


def members(result: Extraction) -> Iterator[Member]:
    for member in result.members:
        member.spool.seek(0)
        try:
            yield member
        finally:
            member.spool.close()

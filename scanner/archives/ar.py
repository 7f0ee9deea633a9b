"""Unix ``ar`` archives (Debian ``.deb`` packages), read as a stream.

Format: the magic ``!<arch>\\n``, then per member a 60-byte header (name 16,
mtime 12, uid 6, gid 6, mode 8, decimal size 10, ``` `\\n```) and the data,
padded to an even length. Names: GNU ends them with ``/`` and keeps long ones in
a ``//`` member (``/123`` is an offset into it); BSD writes ``#1/LEN`` and puts
the name before the data. A ``.deb`` holds ``debian-binary``,
``control.tar.{gz,xz,zst}`` and ``data.tar.{gz,xz,zst,bz2}``; the walk opens
those tarballs like any other archive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from scanner.archives.sniff import AR_MAGIC
from scanner.archives.streams import Reader, _RawReader, as_binary
from scanner.layers import READ_SIZE
from scanner.streams import read_up_to

HEADER_SIZE = 60
LONG_NAMES_LIMIT = 1 << 20  # a GNU long-name table larger than this is not read


class ArError(Exception):
    """A malformed ar archive (the walk scans what follows as raw bytes)."""


class Slice(_RawReader):
    """The next ``size`` bytes of ``stream``."""

    def __init__(self, stream: Reader, size: int) -> None:
        self._stream = stream
        self.left = size

    def read(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self._stream.read(want)
        if not data:
            raise ArError(f"ar member truncated ({self.left} bytes missing)")
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.read(READ_SIZE):
            pass


def ar_members(stream: Reader) -> Iterator[tuple[str, BinaryIO]]:
    """``(name, data)`` per member; each ``data`` must be used before the next.

    Raises :class:`ArError` on a malformed header or a truncated member.
    """
    if read_up_to(as_binary(stream), len(AR_MAGIC)) != AR_MAGIC:
        raise ArError("no ar magic")
    long_names = b""
    while True:
        header = read_up_to(as_binary(stream), HEADER_SIZE)
        if not header:
            return
        if len(header) < HEADER_SIZE or header[58:60] != b"`\n":
            raise ArError("malformed ar member header")
        raw_name = header[:16].rstrip(b" ")
        size_text = header[48:58].strip()
        if not size_text.isdigit():
            raise ArError(f"ar member size {size_text!r} is not a number")
        size = int(size_text)
        data = Slice(stream, size)
        if raw_name == b"//":
            long_names = data.read(LONG_NAMES_LIMIT)
            data.drain()
            _skip_padding(stream, size)
            continue
        if raw_name.startswith(b"#1/") and raw_name[3:].isdigit():
            length = int(raw_name[3:])
            if length > size:
                raise ArError("BSD ar name longer than its member")
            raw_name = data.read(length)
        elif raw_name.startswith(b"/") and raw_name[1:].isdigit():
            offset = int(raw_name[1:])
            end = long_names.find(b"/\n", offset)
            raw_name = long_names[offset : end if end >= 0 else None]
        elif raw_name in (b"/", b"/SYM64/", b"__.SYMDEF", b"__.SYMDEF SORTED"):
            data.drain()  # symbol table: no file content
            _skip_padding(stream, size)
            continue
        name = raw_name.decode("utf-8", "replace").removesuffix("/") or "?"
        yield name, as_binary(data)
        data.drain()
        _skip_padding(stream, size)


def _skip_padding(stream: Reader, size: int) -> None:
    if size % 2:
        stream.read(1)

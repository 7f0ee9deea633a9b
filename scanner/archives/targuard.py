"""A guard between a nested tar and ``tarfile``: extended headers are bounded.

CPython 3.11's ``tarfile`` reads a PAX extended header (``x``, ``g``, Solaris
``X``) or a GNU long name (``L``, ``K``) whole into memory, and runs a regex on
PAX data that is quadratic in a run of digits (CVE-2024-6232, fixed in later
patch releases). :class:`TarGuard` follows the tar's block structure as
``tarfile`` reads it (header, data rounded to 512 bytes, the PAX ``size`` record
that overrides the next member's size), holds each extended header back until
its data is checked, and ends the stream just before a refused one (``tarfile``
sees the end of the archive there; :attr:`TarGuard.refused` says why, and the
caller scans the rest as raw bytes): larger than :data:`EXTENDED_LIMIT`, holding
a run of more than :data:`DIGIT_RUN_LIMIT` digits, or describing something the
guard cannot follow (GNU sparse members, a ``size`` in a global header). Past the
first zero block or an invalid header (where ``tarfile`` stops) bytes pass as
they are.
"""

from __future__ import annotations

import re
import tarfile

from scanner.archives.streams import Reader, _RawReader

READ_CHUNK = 64 << 10
BLOCK = 512
EXTENDED_LIMIT = 64 << 10  # PAX records and GNU long names are a few hundred bytes
DIGIT_RUN_LIMIT = 1000
EXTENDED_TYPES = frozenset(b"xgXLK")
PAX_TYPES = frozenset(b"xgX")
SPARSE_TYPE = ord("S")
# tarfile skips a member's data only for regular files and unknown types
DATA_TYPES = frozenset(b"07\x00")
KNOWN_TYPES = frozenset(b"0123456\x007xgXLKS")
_DIGITS = re.compile(rb"\d{%d}" % (DIGIT_RUN_LIMIT + 1))
_SIZE = re.compile(rb"(?:^|\n)\d{1,20} size=(\d{1,20})\n")


class TarHeaderRefused(tarfile.ReadError):
    """An extended header the guard does not let through (a limit)."""


class TarGuard(_RawReader):
    """Passes a tar stream to ``tarfile`` block by block, holding back each extended
    header until its whole data has been checked."""

    def __init__(self, inner: Reader) -> None:
        self._inner = inner
        self._in = bytearray()  # read from inner, not yet checked
        self._in_at = 0  # stream position of _in[0]
        self._ready = bytearray()  # checked, for tarfile
        self._next = 0  # where the next header block starts
        self._member_size: int | None = None  # from a PAX "size" record
        self._through = False  # past the end-of-archive marker or an invalid header
        self._eof = False
        self.refused: TarHeaderRefused | None = None

    def read(self, size: int | None = -1) -> bytes:
        want = READ_CHUNK if size is None or size < 0 else size
        while len(self._ready) < want and not self._eof:
            if not self._advance():
                chunk = self._inner.read(max(want, READ_CHUNK))
                if not chunk:
                    self._ready += self._in  # truncated: tarfile says so itself
                    self._in.clear()
                    self._eof = True
                else:
                    self._in += chunk
        data = bytes(self._ready[:want])
        del self._ready[:want]
        return data

    def _move(self, n: int) -> None:
        self._ready += self._in[:n]
        del self._in[:n]
        self._in_at += n

    def _advance(self) -> bool:
        """Check and move what can be; False when more input is needed."""
        if self.refused is not None:
            self._eof = True  # tarfile sees the end of the archive before the refused header
            return True
        if self._through:
            if not self._in:
                return False
            self._move(len(self._in))
            return True
        if self._in_at < self._next:  # member data or padding
            if not self._in:
                return False
            self._move(min(len(self._in), self._next - self._in_at))
            return True
        if len(self._in) < BLOCK:
            return False
        header = bytes(self._in[:BLOCK])
        size = _size_field(header[124:136])
        if not header.strip(b"\x00") or size is None:
            self._through = True  # tarfile stops here: the end marker, or an invalid header
            return True
        kind = header[156]
        if kind in EXTENDED_TYPES:
            if size > EXTENDED_LIMIT:
                return self._refuse(f"extended tar header of {size} bytes (limit {EXTENDED_LIMIT})")
            total = BLOCK + _round_up(size)
            if len(self._in) < total:
                return False  # held back until its data is here
            why = self._check_extended(kind, bytes(self._in[BLOCK : BLOCK + size]))
            if why is not None:
                return self._refuse(why)
            self._next = self._in_at + total
            self._move(total)
            return True
        if kind == SPARSE_TYPE:
            return self._refuse("GNU sparse member in a nested tar")
        if self._member_size is not None:
            size, self._member_size = self._member_size, None
        data = kind in DATA_TYPES or kind not in KNOWN_TYPES
        self._next = self._in_at + BLOCK + (_round_up(size) if data else 0)
        self._move(BLOCK)
        return True

    def _refuse(self, why: str) -> bool:
        self.refused = TarHeaderRefused(why)
        self._eof = True
        return True

    def _check_extended(self, kind: int, data: bytes) -> str | None:
        if kind not in PAX_TYPES:
            return None
        if _DIGITS.search(data):
            return f"PAX header with a run of over {DIGIT_RUN_LIMIT} digits"
        if b"GNU.sparse." in data:
            return "GNU sparse member in a nested tar"
        found = _SIZE.search(data)
        if found is not None:
            if kind == ord("g"):
                return "member size in a global PAX header"
            self._member_size = int(found.group(1))
        return None


def _size_field(field: bytes) -> int | None:
    """A ustar numeric field: octal text, or base-256 when the first bit is set."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _round_up(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK * BLOCK

"""Tar headers parsed straight from the byte stream: ustar, GNU and PAX, with bounds.

Layers are walked with this parser rather than :mod:`tarfile`, for two reasons:
``tarfile`` costs several Python calls and objects per member (a third of a cold
scan went there), and CPython 3.11's reads a PAX extended header whole into memory
and searches it with a quadratic ``hdrcharset`` regex (CVE-2024-6232): a hostile
layer could make it take gigabytes or hours. Here every extension header is
bounded (:data:`MAX_EXTENSION_BYTES` each, :data:`MAX_EXTENSION_CHAIN` in a row) and
PAX records are split in one linear pass.

What a member is comes out as ``tarfile`` (3.11) says, and tests compare the two
on fixtures and random archives: ustar ``prefix`` joined to the name, V7
directories (a regular file whose name ends in ``/``), GNU long names and long
link names (``L``/``K``), PAX ``x``/``X`` and global ``g`` records (``path``,
``linkpath``, ``size``, ``uid``, ``gid``; the earliest extension header of a chain
wins, as ``tarfile``'s recursion makes it), base-256 numbers, both checksum
flavours, unknown entry types skipped by their size, and GNU sparse files (old
``S`` entries, PAX sparse formats 0.0, 0.1 and 1.0) read back with their holes.

Where ``tarfile`` gives up silently the walk ends and the caller reports what
follows as bytes not walked; where ``tarfile`` raises, :class:`TarHeaderError`.
An extension header over the bound is skipped unread and recorded in
``problems`` (the scan is then incomplete, never silently so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from zlib import adler32

BLOCK = 512
MAX_EXTENSION_BYTES = 1 << 20  # one PAX header or GNU long name/link: larger ones are skipped
MAX_EXTENSION_CHAIN = 64  # extension headers in a row before one member
MAX_SPARSE_ENTRIES = 1 << 16  # (offset, size) pairs in one sparse map

REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE = 0x30, 0x00, 0x31, 0x32
CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE = 0x33, 0x34, 0x35, 0x36, 0x37
LONGNAME, LONGLINK, SPARSE = 0x4C, 0x4B, 0x53  # GNU: L, K, S
PAX_LOCAL, PAX_GLOBAL, SOLARIS_LOCAL = 0x78, 0x67, 0x58  # x, g, X
REGULAR_TYPES = frozenset((REGTYPE, AREGTYPE, CONTTYPE, SPARSE))
SUPPORTED_TYPES = REGULAR_TYPES | {
    LNKTYPE,
    SYMTYPE,
    DIRTYPE,
    FIFOTYPE,
    CHRTYPE,
    BLKTYPE,
    LONGNAME,
    LONGLINK,
}
EXTENSION_TYPES = frozenset((LONGNAME, LONGLINK, PAX_LOCAL, PAX_GLOBAL, SOLARIS_LOCAL))
_HIGH = bytes(range(128, 256))
# Keys no PAX record can have (a record key never holds NUL): sparse 0.0 maps.
_OFFSETS, _SIZES = "\0sparse-offsets", "\0sparse-sizes"


class TarHeaderError(Exception):
    """The archive is corrupt where ``tarfile`` would raise (the walk cannot go on).

    ``at_start``: the first member could not be read (not a tar stream at all).
    """

    at_start = False


class _Invalid(Exception):
    """A header that is not one (bad checksum, bad number): ``tarfile`` stops there."""


class Stream(Protocol):
    """What the parser reads from: a forward-only stream that knows its position."""

    def read(self, size: int = -1) -> bytes: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...


@dataclass(slots=True)
class TarMember:
    name: str
    linkname: str
    type: int  # the type flag byte
    mode: int
    uid: int
    gid: int
    size: int  # content size (for a sparse file: with its holes)
    offset: int  # of the first header of this member (extension headers included)
    offset_data: int  # where the stored content starts
    sparse: list[tuple[int, int]] | None = None  # (offset, size) of each stored data run

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE


def byte_sum(block: bytes) -> int:
    """``sum(block)`` of a 512-byte block, in C: Adler-32's first half is one plus the
    sum of the bytes modulo 65521, and a 256-byte half sums to at most 65280."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _text(field: bytes) -> str:
    end = field.find(0)
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """A numeric field: octal text, or base-256 (GNU) when the high bit is set."""
    # The usual field ("0000644\0", "00000001750 ", a checksum's "012345\0 "): the text
    # before the first NUL. When int() takes it, it is ASCII digits within whitespace int()
    # skips, so it reads as below would read it; anything else goes below.
    end = field.find(0)
    try:
        return int((field if end < 0 else field[:end]) or b"0", 8)
    except ValueError:
        return _number_exact(field)


def _number_exact(field: bytes) -> int:
    first = field[0]
    if first == 0x80 or first == 0xFF:
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if first == 0xFF else n
    end = field.find(0)
    try:
        return int((field if end < 0 else field[:end]).decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        raise _Invalid("invalid number field") from None


def _block(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def pax_records(buf: bytes) -> tuple[list[tuple[str, str]], bool]:
    """Split PAX records (``"%d %s=%s\\n"``) in one pass: (records, clean?).

    ``clean`` is False when something other than NUL padding follows the last
    record that could be read. Each search is confined to its record, so a hostile
    header costs time linear in its size.
    """
    out: list[tuple[str, str]] = []
    pos, n = 0, len(buf)
    while pos < n:
        space = buf.find(b" ", pos, pos + 32)
        digits = buf[pos:space]
        if space <= pos or not digits.isdigit():
            break
        length = int(digits)
        if length == 0:
            raise _Invalid("PAX record of length 0")
        end = pos + length
        equals = buf.find(b"=", space + 1, end)
        if equals <= space + 1:
            break
        key = buf[space + 1 : equals].decode("utf-8", "surrogateescape")
        out.append((key, buf[equals + 1 : end - 1].decode("utf-8", "surrogateescape")))
        pos = end
    return out, pos >= n or not buf[pos:].strip(b"\0")


def _pax_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


@dataclass(slots=True)
class _Header:
    """One parsed 512-byte header, before extension headers are applied."""

    name: str
    linkname: str
    type: int
    mode: int
    uid: int
    gid: int
    size: int
    offset: int
    old_sparse: tuple[list[tuple[int, int]], bool, int] | None = None


class TarHeaderReader:
    """Members of a tar stream, one :meth:`next` call each.

    The caller may read a member's stored bytes (from ``offset_data``) before the
    next call; whatever it did not read is skipped. After :meth:`next` returned
    None, ``end_offset`` is where the walk stopped and ``end_block`` the bytes of
    the block that stopped it (zeros at a proper end; anything else was not walked).
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._next_offset = stream.tell()
        self._start = self._next_offset
        self._global: dict[str, str] = {}
        self.problems: list[str] = []
        self.end_offset: int | None = None
        self.end_block = b""

    # -- one header ---------------------------------------------------------------

    def _header(self, buf: bytes, offset: int) -> _Header:
        checksum = _number(buf[148:156])
        unsigned = byte_sum(buf) - sum(buf[148:156]) + 256
        if checksum != unsigned:
            high = BLOCK - len(buf.translate(None, _HIGH))
            high -= 8 - len(buf[148:156].translate(None, _HIGH))
            if checksum != unsigned - 256 * high:
                raise _Invalid("bad checksum")
        kind = buf[156]
        name = _text(buf[0:100])
        header = _Header(
            name,
            _text(buf[157:257]),
            kind,
            _number(buf[100:108]),
            _number(buf[108:116]),
            _number(buf[116:124]),
            _number(buf[124:136]),
            offset,
        )
        _number(buf[136:148])  # mtime, device numbers: unused, but tarfile checks them
        _number(buf[329:337])
        _number(buf[337:345])
        if kind == AREGTYPE and name.endswith("/"):
            header.type = kind = DIRTYPE
        if kind == SPARSE:
            structs = []
            for pos in range(386, 386 + 4 * 24, 24):
                try:
                    structs.append(
                        (_number(buf[pos : pos + 12]), _number(buf[pos + 12 : pos + 24]))
                    )
                except _Invalid:
                    break
            header.old_sparse = (structs, bool(buf[482]), _number(buf[483:495]))
        if kind == DIRTYPE:
            header.name = header.name.rstrip("/")
        if buf[345] and kind not in (LONGNAME, LONGLINK, SPARSE):
            prefix = _text(buf[345:500])
            if prefix:
                header.name = prefix + "/" + header.name
        return header

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:
            raise TarHeaderError(f"truncated {what}")
        return data

    def _skip_to(self, target: int) -> None:
        here = self._stream.tell()
        if here != target and (here > target or self._stream.seek(target) < target):
            raise TarHeaderError("unexpected end of data")

    # -- one member -------------------------------------------------------------------

    def next(self) -> TarMember | None:
        """The next member, or None at the end of the archive (or where it stops)."""
        if self.end_offset is not None:
            return None
        at_start = self._next_offset == self._start
        try:
            return self._next()
        except TarHeaderError as exc:
            exc.at_start = at_start
            raise

    def _next(self) -> TarMember | None:
        stream = self._stream
        self._skip_to(self._next_offset)
        first = self._next_offset == self._start
        member_offset = self._next_offset
        chain: list[tuple[int, object]] = []  # (type, bytes of L/K | (pax dict, local?))
        while True:
            offset = stream.tell()
            buf = stream.read(BLOCK)
            try:
                if len(buf) < BLOCK:
                    if chain:
                        raise TarHeaderError("archive ends inside a member's extension headers")
                    if first:
                        raise TarHeaderError("empty file" if not buf else "truncated header")
                    raise _Invalid("truncated header")
                if not buf.strip(b"\0"):
                    if chain:
                        raise TarHeaderError("end-of-archive block after an extension header")
                    self.end_offset, self.end_block = offset, b""
                    return None
                header = self._header(buf, offset)
            except _Invalid as exc:
                if chain or first:
                    raise TarHeaderError(str(exc)) from None
                self.end_offset, self.end_block = offset, buf
                return None
            if header.type not in EXTENSION_TYPES:
                break
            if len(chain) >= MAX_EXTENSION_CHAIN:
                raise TarHeaderError(
                    f"more than {MAX_EXTENSION_CHAIN} extension headers in a row at {member_offset}"
                )
            size = header.size
            if size < 0:
                raise TarHeaderError(f"extension header with negative size at {offset}")
            if size > MAX_EXTENSION_BYTES:
                self._skip_to(stream.tell() + _block(size))
                self.problems.append(
                    f"tar extension header ({chr(header.type)}) of {size} bytes at offset "
                    f"{offset} is over the {MAX_EXTENSION_BYTES}-byte bound: skipped unread, "
                    "so the entry after it may be misnamed or misread"
                )
                continue
            data = self._read_exact(_block(size), "extension header")
            if header.type in (LONGNAME, LONGLINK):
                chain.append((header.type, data))
                continue
            records, clean = self._pax(data, offset)
            if header.type == PAX_GLOBAL:
                self._global.update(records)
                merged = dict(self._global)
            else:
                merged = dict(self._global)
                merged.update(records)
            if "GNU.sparse.size" in merged:  # sparse format 0.0: repeated keys, in order
                for key, field in (
                    ("GNU.sparse.offset", _OFFSETS),
                    ("GNU.sparse.numbytes", _SIZES),
                ):
                    merged[field] = " ".join(
                        v for k, v in records if k == key and v.isascii() and v.isdigit()
                    )
            chain.append((header.type, merged))
            if not clean:
                self.problems.append(
                    f"tar PAX header at offset {offset}: malformed records after "
                    f"{len(records)} good ones were ignored"
                )
        return self._member(header, member_offset, chain)

    def _pax(self, data: bytes, offset: int) -> tuple[list[tuple[str, str]], bool]:
        try:
            return pax_records(data)
        except _Invalid as exc:
            raise TarHeaderError(f"PAX header at offset {offset}: {exc}") from None

    def _member(
        self, header: _Header, member_offset: int, chain: list[tuple[int, object]]
    ) -> TarMember:
        stream = self._stream
        data_offset = stream.tell()
        member = TarMember(
            header.name,
            header.linkname,
            header.type,
            header.mode,
            header.uid,
            header.gid,
            header.size,
            member_offset,
            data_offset,
        )
        if header.old_sparse is not None:
            self._old_sparse(member, header.old_sparse)
            return member
        if member.size < 0:
            raise TarHeaderError(f"negative size at offset {header.offset}")
        skips = member.isreg() or member.type not in SUPPORTED_TYPES
        self._next_offset = data_offset + (_block(member.size) if skips else 0)
        if self._global:
            self._apply(member, self._global)
        # The innermost extension header is applied first, so the outermost wins.
        for kind, value in reversed(chain):
            if kind == LONGNAME:
                assert isinstance(value, bytes)
                member.name = _text(value)
                if member.isdir():
                    member.name = member.name.removesuffix("/")
            elif kind == LONGLINK:
                assert isinstance(value, bytes)
                member.linkname = _text(value)
            else:
                assert isinstance(value, dict)
                self._pax_sparse(member, value)
                if kind == PAX_GLOBAL:
                    continue
                self._apply(member, value)
                if "size" in value:
                    if member.size < 0:
                        raise TarHeaderError(f"negative PAX size at offset {member_offset}")
                    skips = member.isreg() or member.type not in SUPPORTED_TYPES
                    self._next_offset = member.offset_data + (_block(member.size) if skips else 0)
        if member.size < 0:
            raise TarHeaderError(f"negative size at offset {member_offset}")
        return member

    @staticmethod
    def _apply(member: TarMember, pax: dict[str, str]) -> None:
        for key, value in pax.items():
            if key == "path":
                member.name = value.rstrip("/")
            elif key == "GNU.sparse.name":
                member.name = value
            elif key == "linkpath":
                member.linkname = value
            elif key in ("size", "GNU.sparse.size", "GNU.sparse.realsize"):
                member.size = _pax_int(value) if key == "size" else _strict_int(value)
            elif key == "uid":
                member.uid = _pax_int(value)
            elif key == "gid":
                member.gid = _pax_int(value)

    # -- sparse files -----------------------------------------------------------------

    def _old_sparse(self, member: TarMember, info: tuple[list[tuple[int, int]], bool, int]) -> None:
        structs, extended, realsize = info
        structs = list(structs)
        while extended:
            buf = self._read_exact(BLOCK, "sparse extension block")
            for pos in range(0, 21 * 24, 24):
                try:
                    start, size = _number(buf[pos : pos + 12]), _number(buf[pos + 12 : pos + 24])
                except _Invalid:
                    break
                if start and size:
                    structs.append((start, size))
            if len(structs) > MAX_SPARSE_ENTRIES:
                raise TarHeaderError(f"sparse map of more than {MAX_SPARSE_ENTRIES} entries")
            extended = bool(buf[504])
        if member.size < 0 or realsize < 0:
            raise TarHeaderError(f"negative size at offset {member.offset}")
        member.offset_data = self._stream.tell()
        self._next_offset = member.offset_data + _block(member.size)
        member.size = realsize
        member.sparse = structs

    def _pax_sparse(self, member: TarMember, pax: dict[str, str]) -> None:
        if "GNU.sparse.map" in pax:
            numbers = [_strict_int(x) for x in pax["GNU.sparse.map"].split(",")]
            member.sparse = list(zip(numbers[::2], numbers[1::2], strict=False))
        elif "GNU.sparse.size" in pax:
            member.sparse = list(
                zip(
                    [_strict_int(v) for v in pax.get(_OFFSETS, "").split()],
                    [_strict_int(v) for v in pax.get(_SIZES, "").split()],
                    strict=False,
                )
            )
        elif pax.get("GNU.sparse.major") == "1" and pax.get("GNU.sparse.minor") == "0":
            self._sparse_10(member)
        if member.sparse is not None and len(member.sparse) > MAX_SPARSE_ENTRIES:
            raise TarHeaderError(f"sparse map of more than {MAX_SPARSE_ENTRIES} entries")

    def _sparse_10(self, member: TarMember) -> None:
        """Format 1.0: the map is at the start of the data, decimal numbers, one a line."""
        self._skip_to(member.offset_data)
        buf = self._read_exact(BLOCK, "sparse map")
        count_text, buf = _split_line(buf)
        count = _strict_int(count_text)
        if not 0 <= count <= MAX_SPARSE_ENTRIES:
            raise TarHeaderError(f"sparse map of {count} entries")
        numbers: list[int] = []
        while len(numbers) < count * 2:
            if b"\n" not in buf:
                buf += self._read_exact(BLOCK, "sparse map")
            number, buf = _split_line(buf)
            numbers.append(_strict_int(number))
        member.offset_data = self._stream.tell()
        member.sparse = list(zip(numbers[::2], numbers[1::2], strict=False))


def _split_line(buf: bytes) -> tuple[bytes, bytes]:
    head, sep, rest = buf.partition(b"\n")
    if not sep:
        if len(buf) > 64:
            raise TarHeaderError("sparse map number too long")
        return buf, b""
    return head, rest


def _strict_int(value: str | bytes) -> int:
    try:
        return int(value)
    except ValueError:
        raise TarHeaderError(f"bad number {value[:40]!r} in a sparse header") from None

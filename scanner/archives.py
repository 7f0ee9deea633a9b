"""Nested archives: the files inside zip/jar/war/ear/whl/apk, tar, tar.gz/tgz, .gz and .zst.

:class:`ArchiveWalk` turns one top-level file into the *leaves* to scan: the file
itself when it is not an archive, otherwise every regular file inside it, opened
recursively. Archives are recognised by their magic bytes, never by their name
alone (a jar renamed ``.bin`` is still opened; a ``.zip`` that is not one is
scanned as bytes):

============  =================================  ====================================
kind          magic                              how it is read
============  =================================  ====================================
zip           ``PK\\x03\\x04`` / ``PK\\x05\\x06``     spooled (memory, then a temporary
                                                 file) for ``zipfile``'s random access
tar           ``ustar`` at offset 257            streamed (``tarfile`` ``r|``)
gzip          ``\\x1f\\x8b\\x08``                   streamed; the result is sniffed again
zstd          ``\\x28\\xb5\\x2f\\xfd``                streamed; the result is sniffed again
============  =================================  ====================================

A leaf is named by its *inner path*: the member names from the outermost archive
in, joined with ``!`` (``BOOT-INF/lib/b.jar!x.properties``); ``None`` for the
top-level file itself. A compressed file names its content after itself without
the suffix (``app.log.gz`` -> ``app.log``), except that a compressed tar or zip
adds no level (``x.tar.gz!etc/app.conf``).

Limits (:class:`ArchiveLimits`): archives are opened down to ``max_depth`` levels
(a compression wrapper around a tar does not count as a level); at most ``budget``
decompressed bytes are read from inside one top-level file, at most ``member_cap``
from any one inner stream (against zip and gzip bombs), at most ``max_members``
members per top-level file. Whatever is not scanned because of a limit, an
encrypted or unsupported member, or corruption is recorded in ``skipped`` (a
:class:`Skipped` with the inner path and the reason): never silently dropped. The
outer file's own read errors (a corrupt *layer*) are not caught here.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

import zstandard
from isal import igzip  # type: ignore[import-untyped,unused-ignore]

from scanner.layers import DECODE_ERRORS, READ_SIZE, ZSTD_MAGIC
from scanner.streams import read_up_to
from scanner.tarinfo import BoundedTarInfo

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_HEAD = b"\x1f\x8b\x08"
TAR_MAGIC = b"ustar"
TAR_MAGIC_OFFSET = 257
HEAD_SIZE = 8192  # enough to sniff archives (512) and binaries (8 KB)
SPOOL_IN_MEMORY = 32 << 20  # a zip bigger than this is spooled to a temporary file

# What reading a damaged archive can raise, beyond the layer's own decode errors.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    *DECODE_ERRORS,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # unsupported zip compression method
    RuntimeError,  # zipfile: encrypted member without a password
    ValueError,
    zlib.error,
    zstandard.ZstdError,
    EOFError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_depth: int = 3  # archives opened inside archives, counting the outermost
    budget: int = 256 << 20  # decompressed bytes read from inside one top-level file
    member_cap: int = 128 << 20  # bytes read from any one inner stream
    max_members: int = 100_000  # members looked at per top-level file
    zip_spool: int = 512 << 20  # largest top-level zip buffered for random access


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class Skipped:
    """Something inside a file that was not (fully) scanned, and why."""

    inner_path: str | None  # the archive or member concerned; None for the file itself
    reason: str


def sniff(head: bytes) -> str | None:
    """The archive kind of data starting with ``head`` (its first 512 bytes), or None."""
    if head[:4] in ZIP_MAGICS:
        return "zip"
    if head.startswith(GZIP_HEAD):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + len(TAR_MAGIC)] == TAR_MAGIC:
        return "tar"
    return None


def join_inner(outer: str | None, name: str) -> str:
    return f"{outer}!{name}" if outer else name


def clean_member_name(name: str) -> str:
    """A member name as a relative path (no leading ``/``, no ``..``, forward slashes)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "?"


def decompressed_name(name: str, kind: str) -> str:
    base = posixpath.basename(name)
    lower = base.lower()
    suffixes = {
        "gzip": ((".tgz", ".tar"), (".gz", ""), (".gzip", ""), (".z", "")),
        "zstd": ((".tzst", ".tar"), (".zst", ""), (".zstd", "")),
    }[kind]
    for suffix, replacement in suffixes:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base


class Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: un-reads the bytes sniffed.

    ``head`` stays readable as an attribute (for further sniffing without another
    read); ``at_eof`` says the stream ended within the head, so it is not read again.
    """

    def __init__(self, head: bytes, stream: BinaryIO, at_eof: bool = False) -> None:
        self.head = head
        self._pending = head
        self._stream = stream
        self._eof = at_eof

    def readable(self) -> bool:
        return True

    def _rest(self, size: int = -1) -> bytes:
        if self._eof:
            return b""
        return self._stream.read(size)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._pending = self._pending + self._rest(), b""
            return data
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            if len(data) < size:
                data += self._rest(size - len(data))
            return data
        return self._rest(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_head(stream: BinaryIO, n: int = HEAD_SIZE) -> tuple[bytes, BinaryIO]:
    """The first ``n`` bytes (fewer at EOF) and a stream that still starts with them.

    A stream that already is a :class:`Prefixed` with a long enough head is not
    read again.
    """
    if (
        isinstance(stream, Prefixed)
        and stream._pending is stream.head
        and (len(stream.head) >= n or stream._eof)
    ):
        return stream.head[:n], stream
    head = read_up_to(stream, n)
    return head, Prefixed(head, stream, at_eof=len(head) < n)  # type: ignore[return-value]


class _Limited(io.RawIOBase):
    """An inner stream within the walk's budget and a per-stream cap.

    Stops (EOF) at the cap or when the budget runs out, noting whether data was
    left (``truncated``); a decode error of the *inner* data also ends the stream
    and is kept in ``error``.
    """

    def __init__(self, inner: BinaryIO, walk: ArchiveWalk, cap: int) -> None:
        self._inner = inner
        self._walk = walk
        self._cap = cap
        self.count = 0
        self.truncated = False
        self.error: str | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._done:
            return b""
        room = min(self._cap - self.count, self._walk.remaining)
        want = room if size is None or size < 0 else min(size, room)
        try:
            if want <= 0:
                if size != 0 and self._inner.read(1):
                    self.truncated = True
                    self._done = True
                return b""
            data = self._inner.read(want)
        except ARCHIVE_ERRORS as exc:
            self.error = _why(exc)
            self._done = True
            return b""
        if not data:
            self._done = True
        self.count += len(data)
        self._walk.used += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def settle(self) -> None:
        """After the consumer is done: find out whether data or damage was left."""
        if self._done:
            return
        self._done = True
        try:
            more = self._inner.read(1)
        except ARCHIVE_ERRORS as exc:
            self.error = _why(exc)
            return
        if more and min(self._cap - self.count, self._walk.remaining) <= 0:
            self.truncated = True


class ArchiveWalk:
    """Expands one top-level file into leaves; see the module docstring.

    Leaves come from :meth:`leaves` as ``(inner_path, stream)``; each stream must
    be consumed before the next leaf is asked for. After iteration, ``skipped``
    says what was not (fully) scanned.
    """

    def __init__(self, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.used = 0
        self.members = 0
        self.skipped: list[Skipped] = []
        self.archives = 0  # archives opened

    @property
    def remaining(self) -> int:
        return self.limits.budget - self.used

    def leaves(
        self,
        stream: BinaryIO,
        name: str,
        open_archives: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        """The leaves of one file. ``open_archives`` is asked (only when the file is
        an archive) whether to open it; when it says no, the file is the one leaf."""
        if open_archives is not None:
            head, stream = read_head(stream)
            if sniff(head) is not None and not open_archives():
                yield None, stream
                return
        yield from self._expand(stream, name, None, 0, 0, top=True)

    # -- internals ------------------------------------------------------------------

    def _skip(self, inner: str | None, reason: str) -> None:
        self.skipped.append(Skipped(inner, reason))

    def _expand(
        self,
        stream: BinaryIO,
        name: str,
        inner: str | None,
        depth: int,
        wraps: int,
        top: bool = False,
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        head, stream = read_head(stream)
        kind = sniff(head)
        if kind is None:
            yield inner, stream
            return
        compression = kind in ("gzip", "zstd")
        if depth >= self.limits.max_depth or (compression and wraps >= 2):
            self._skip(
                inner,
                f"{kind} archive nested deeper than {self.limits.max_depth} levels: "
                "not opened, scanned as raw bytes",
            )
            yield inner, stream
            return
        self.archives += 1
        if kind == "zip":
            yield from self._zip(stream, inner, depth, top)
        elif kind == "tar":
            yield from self._tar(stream, inner, depth)
        else:
            yield from self._decompress(stream, kind, name, inner, depth, wraps)

    def _child(
        self, raw: BinaryIO, name: str, inner: str, depth: int, wraps: int
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        """Expand one inner stream (a member, or a decompressed file) within the limits."""
        limited = _Limited(raw, self, self.limits.member_cap)
        yield from self._expand(limited, name, inner, depth, wraps)  # type: ignore[arg-type]
        limited.settle()
        if limited.error is not None:
            self._skip(inner, f"corrupt: {limited.error}; scanned up to the damage")
        elif limited.truncated:
            self._skip(inner, self._truncated(limited, "larger than"))

    def _out_of_budget(self, inner: str | None, what: str) -> bool:
        if self.remaining <= 0:
            self._skip(
                inner,
                f"the byte budget of {_mb(self.limits.budget)} per file ran out: {what}",
            )
            return True
        if self.members >= self.limits.max_members:
            self._skip(inner, f"more than {self.limits.max_members} members: {what}")
            return True
        return False

    def _zip(
        self, stream: BinaryIO, inner: str | None, depth: int, top: bool
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        cap = self.limits.zip_spool if top else self.limits.member_cap
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            copied = _copy(stream, spool, cap)
            extra = stream.read(1) if copied >= cap else b""
            if extra:
                self._skip(
                    inner,
                    f"zip larger than {_mb(cap)}: members not scanned, scanned as raw bytes",
                )
                spool.seek(0)
                yield inner, _Chain([spool, io.BytesIO(extra), stream])  # type: ignore[misc]
                return
            spool.seek(0)
            try:
                archive = zipfile.ZipFile(spool)
            except ARCHIVE_ERRORS as exc:
                self._skip(inner, f"unreadable zip ({_why(exc)}): scanned as raw bytes")
                spool.seek(0)
                yield inner, spool  # type: ignore[misc]
                return
            with archive:
                infos = [i for i in archive.infolist() if not i.is_dir()]
                for position, info in enumerate(infos):
                    left = len(infos) - position
                    if self._out_of_budget(inner, f"{left} zip member(s) not scanned"):
                        return
                    self.members += 1
                    child = join_inner(inner, clean_member_name(info.filename))
                    if info.flag_bits & 0x1:
                        self._skip(child, "encrypted zip member: not scanned")
                        continue
                    try:
                        raw = archive.open(info)
                    except ARCHIVE_ERRORS as exc:
                        self._skip(child, f"unreadable zip member ({_why(exc)})")
                        continue
                    with raw:
                        yield from self._child(raw, info.filename, child, depth + 1, 0)  # type: ignore[arg-type]

    def _tar(
        self, stream: BinaryIO, inner: str | None, depth: int
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        try:
            archive = tarfile.open(  # noqa: SIM115 - closed below
                fileobj=stream, mode="r|", tarinfo=BoundedTarInfo
            )
        except ARCHIVE_ERRORS as exc:
            self._skip(inner, f"unreadable tar ({_why(exc)})")
            return
        try:
            while True:
                try:
                    member = archive.next()
                except ARCHIVE_ERRORS as exc:
                    self._skip(inner, f"corrupt tar ({_why(exc)}): scanned up to the damage")
                    return
                if member is None:
                    return
                archive.members.clear()  # type: ignore[attr-defined]  # keeps every member
                if not member.isreg():
                    continue
                if self._out_of_budget(inner, "the rest of the tar not scanned"):
                    return
                self.members += 1
                child = join_inner(inner, clean_member_name(member.name))
                raw = archive.extractfile(member)
                if raw is None:
                    continue
                yield from self._child(raw, member.name, child, depth + 1, 0)  # type: ignore[arg-type]
        finally:
            archive.close()

    def _decompress(
        self, stream: BinaryIO, kind: str, name: str, inner: str | None, depth: int, wraps: int
    ) -> Iterator[tuple[str | None, BinaryIO]]:
        if kind == "gzip":
            raw: BinaryIO = igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        else:
            reader = zstandard.ZstdDecompressor().stream_reader(
                stream, read_size=READ_SIZE, read_across_frames=True
            )
            raw = io.BufferedReader(reader, READ_SIZE)
        plain = decompressed_name(name, kind)
        limited = _Limited(raw, self, self.limits.member_cap)
        head, body = read_head(limited)  # type: ignore[arg-type]
        inner_kind = sniff(head)
        # A compressed tar or zip adds no level to the inner path, a compressed file does.
        child = inner if inner_kind in ("tar", "zip") else join_inner(inner, plain)
        child_depth = depth if inner_kind in ("tar", "zip") else depth + 1
        if limited.error is not None and not head:
            self._skip(inner, f"unreadable {kind} data ({limited.error})")
            return
        yield from self._expand(body, plain, child, child_depth, wraps + 1)
        limited.settle()
        where = child if child is not None else inner
        if limited.error is not None:
            self._skip(where, f"corrupt {kind} data ({limited.error}): scanned up to the damage")
        elif limited.truncated:
            self._skip(where, self._truncated(limited, "decompresses to more than"))

    def _truncated(self, limited: _Limited, verb: str) -> str:
        if limited.count >= self.limits.member_cap:
            why = f"{verb} the per-member cap of {_mb(self.limits.member_cap)}"
        else:
            why = f"the byte budget of {_mb(self.limits.budget)} per file ran out"
        return f"{why}: only the first {_mb(limited.count)} scanned"


class _Chain(io.RawIOBase):
    """Several streams read one after the other."""

    def __init__(self, streams: list[IO[bytes]]) -> None:
        self._streams = streams

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(s.read() for s in self._streams)
        while self._streams:
            data = self._streams[0].read(size)
            if data:
                return data
            self._streams.pop(0)
        return b""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _copy(src: BinaryIO, dst: IO[bytes], limit: int) -> int:
    copied = 0
    while copied < limit:
        chunk = src.read(min(READ_SIZE, limit - copied))
        if not chunk:
            break
        dst.write(chunk)
        copied += len(chunk)
    return copied


def _mb(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} bytes"


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "ARCHIVE_ERRORS",
    "DEFAULT_LIMITS",
    "ArchiveLimits",
    "ArchiveWalk",
    "Skipped",
    "clean_member_name",
    "decompressed_name",
    "join_inner",
    "read_head",
    "sniff",
]

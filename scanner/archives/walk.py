"""The walk: one top-level file expanded into the leaves to scan (see the package doc)."""

from __future__ import annotations

import io
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO

import zstandard

from scanner.archives.ar import ArError, Slice, ar_members
from scanner.archives.compressed import DECODE_ERRORS as CODEC_ERRORS
from scanner.archives.compressed import LZMA_MEMLIMIT, Decoded, gunzip_member
from scanner.archives.limits import DEFAULT_LIMITS, ArchiveBudget, ArchiveLimits, Skipped, human
from scanner.archives.sniff import (
    ARCHIVES,
    COMPRESSIONS,
    clean_member_name,
    decompressed_name,
    join_inner,
    sniff,
)
from scanner.archives.streams import (
    HEAD_SIZE,
    Chain,
    Limited,
    Reader,
    Recorder,
    Window,
    as_binary,
    copy_up_to,
    read_head,
    skip_zeros,
    why,
)
from scanner.archives.targuard import TarGuard, TarHeaderRefused
from scanner.archives.zipdir import (
    LOCAL,
    LOCAL_SIZE,
    DirectoryTooLarge,
    gaps,
    read_directory,
)
from scanner.layers import DECODE_ERRORS

SPOOL_IN_MEMORY = 32 << 20  # a zip or 7z bigger than this is spooled to a temporary file

# What reading a damaged archive can raise, beyond the layer's own decode errors.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    *DECODE_ERRORS,
    *CODEC_ERRORS,
    ArError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # unsupported zip compression method
    RuntimeError,  # zipfile: encrypted member without a password
    ValueError,
    zlib.error,
    zstandard.ZstdError,
    EOFError,
)

Leaves = Iterator[tuple[str | None, BinaryIO]]


class ArchiveWalk:
    """Expands one top-level file into leaves; see the package docstring.

    Leaves come from :meth:`leaves` as ``(inner_path, stream)``; each stream must
    be consumed before the next leaf is asked for. After iteration, ``skipped``
    says what was not (fully) scanned. ``budget`` is the layer's (and image's)
    budget; without one, only the per-file limits apply.
    """

    def __init__(
        self, limits: ArchiveLimits = DEFAULT_LIMITS, budget: ArchiveBudget | None = None
    ) -> None:
        self.limits = limits
        self.budget = budget if budget is not None else ArchiveBudget(limits)
        self.used = 0
        self.members = 0
        self.skipped: list[Skipped] = []
        self.archives = 0  # archives opened

    # -- the meter of Limited streams ------------------------------------------------

    def remaining(self) -> int:
        return min(self.limits.budget - self.used, self.budget.room())

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        self.budget.charge(nbytes)

    def entries_left(self) -> int:
        return min(self.limits.max_members - self.members, self.budget.entries_left())

    def _entry(self) -> None:
        self.members += 1
        self.budget.charge(entries=1)

    def _bytes_scope(self) -> str:
        if self.limits.budget - self.used <= self.budget.room():
            return f"the byte budget of {human(self.limits.budget)} per file"
        return self.budget.bytes_scope()

    def _entries_scope(self) -> str:
        if self.limits.max_members - self.members <= self.budget.entries_left():
            return f"the entry budget of {self.limits.max_members} per file"
        return self.budget.entries_scope()

    # -- the walk ------------------------------------------------------------------------

    def leaves(
        self,
        stream: Reader,
        name: str,
        open_archives: Callable[[], bool] | None = None,
    ) -> Leaves:
        """The leaves of one file. ``open_archives`` is asked (only when the file is
        an archive) whether to open it; when it says no, the file is the one leaf."""
        head, body = read_head(stream)
        if open_archives is not None and sniff(head) is not None and not open_archives():
            yield None, body
            return
        yield from self._expand(body, name, None, 0, 0, top=True)

    def small_gzip(self, data: bytes, name: str, limit: int) -> tuple[str, bytes] | None:
        """The one leaf of a whole gzip file held in memory, as :meth:`leaves` would give
        it, when nothing about it needs the walk: one member, no trailing bytes, intact,
        decompressing to at most ``limit`` bytes within the budgets, and not an archive.
        Else None, with nothing charged: walk it with :meth:`leaves`. Most compressed
        files in images (man pages, changelogs) are like this, and the walk's stream
        machinery costs more than their content."""
        room = min(self.limits.member_cap, self.remaining(), limit)
        if self.limits.max_depth <= 0 or room <= 0 or sniff(data[:HEAD_SIZE]) != "gzip":
            return None
        try:
            out = gunzip_member(data, room)
        except CODEC_ERRORS:
            return None
        if out is None or sniff(out[:HEAD_SIZE]) is not None:
            return None
        self.archives += 1
        self.charge(len(out))
        return join_inner(None, decompressed_name(name, "gzip")), out

    def _skip(self, inner: str | None, reason: str, limit: bool = False) -> None:
        self.skipped.append(Skipped(inner, reason, limit))

    def _expand(
        self,
        stream: Reader,
        name: str,
        inner: str | None,
        depth: int,
        wraps: int,
        top: bool = False,
    ) -> Leaves:
        head, body = read_head(stream)
        kind = sniff(head)
        if kind is None:
            yield inner, body
            return
        compression = kind in COMPRESSIONS
        what = f"{kind} data" if compression else f"{kind} archive"
        if depth >= self.limits.max_depth or (compression and wraps >= 2):
            self._skip(
                inner,
                f"{what} nested deeper than {self.limits.max_depth} levels: "
                "not opened, scanned as raw bytes",
                limit=True,
            )
            yield inner, body
            return
        if self.remaining() <= 0 or (kind in ARCHIVES and self.entries_left() <= 0):
            scope = self._bytes_scope() if self.remaining() <= 0 else self._entries_scope()
            self._skip(inner, f"{what} not opened: {scope} ran out; scanned as raw bytes", True)
            yield inner, body
            return
        self.archives += 1
        if kind == "zip":
            yield from self._zip(body, inner, depth, top)
        elif kind == "tar":
            yield from self._tar(body, inner, depth)
        elif kind == "ar":
            yield from self._ar(body, inner, depth)
        elif kind == "7z":
            yield from self._seven_zip(body, inner, depth, top)
        else:
            yield from self._decompress(body, kind, name, inner, depth, wraps)

    def _child(self, raw: Reader, name: str, inner: str, depth: int, wraps: int) -> Leaves:
        """Expand one inner stream (a member) within the limits."""
        limited = Limited(raw, self, self.limits.member_cap, ARCHIVE_ERRORS)
        yield from self._expand(limited, name, inner, depth, wraps)
        limited.settle()
        if limited.error is not None:
            self._skip(inner, f"corrupt: {limited.error}; scanned up to the damage")
        elif limited.truncated:
            self._skip(inner, self._truncated(limited, "larger than"), limit=True)

    def _out_of_budget(self, inner: str | None, what: str) -> bool:
        if self.remaining() <= 0:
            self._skip(inner, f"{self._bytes_scope()} ran out: {what}", limit=True)
            return True
        if self.entries_left() <= 0:
            self._skip(inner, f"{self._entries_scope()} ran out: {what}", limit=True)
            return True
        return False

    def _truncated(self, limited: Limited, verb: str) -> str:
        if limited.count >= self.limits.member_cap:
            why_ = f"{verb} the per-member cap of {human(self.limits.member_cap)}"
        else:
            why_ = f"{self._bytes_scope()} ran out"
        return f"{why_}: only the first {human(limited.count)} scanned"

    # -- formats -------------------------------------------------------------------------

    def _spool(
        self, stream: Reader, inner: str | None, kind: str, top: bool
    ) -> tuple[tempfile.SpooledTemporaryFile[bytes], int, BinaryIO | None]:
        """The archive copied for random access; the third item is set when it is too
        large (then it is the whole data as a stream, to scan raw)."""
        cap = self.limits.zip_spool if top else self.limits.member_cap
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        copied = copy_up_to(stream, spool, cap)
        extra = stream.read(1) if copied >= cap else b""
        spool.seek(0)
        if not extra:
            return spool, copied, None
        self._skip(
            inner,
            f"{kind} larger than {human(cap)}: members not scanned, scanned as raw bytes",
            limit=True,
        )
        return spool, copied, as_binary(Chain([spool, io.BytesIO(extra), stream]))

    def _zip(self, stream: Reader, inner: str | None, depth: int, top: bool) -> Leaves:
        spool, size, too_large = self._spool(stream, inner, "zip", top)
        with spool:
            if too_large is not None:
                yield inner, too_large
                return
            try:
                directory = read_directory(spool, size, self.limits.zip_directory)
            except DirectoryTooLarge as exc:
                self._skip(
                    inner,
                    f"zip central directory of {human(exc.size)} is larger than the limit "
                    f"of {human(self.limits.zip_directory)}: members not opened, scanned as "
                    "raw bytes",
                    limit=True,
                )
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            left = self.entries_left()
            if directory is not None and directory.entries > left:
                self._skip(
                    inner,
                    f"zip with {directory.entries} entries: more than {self._entries_scope()} "
                    f"leaves ({left}); members not opened, scanned as raw bytes",
                    limit=True,
                )
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            spool.seek(0)
            try:
                archive = zipfile.ZipFile(spool)
            except ARCHIVE_ERRORS as exc:
                self._skip(inner, f"unreadable zip ({why(exc)}): scanned as raw bytes")
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            with archive:
                yield from self._zip_members(archive, spool, inner, depth)
                infos = archive.infolist()
            if directory is not None:
                for at, stop in gaps(spool, infos, directory.start, directory.directory_at):
                    spool.seek(at)
                    hidden = skip_zeros(Slice(spool, stop - at))
                    if hidden is not None:  # bytes no entry covers: scanned raw
                        yield inner, hidden
                yield from self._outside(spool, directory.start, directory.comment_at, size, inner)

    def _zip_members(
        self, archive: zipfile.ZipFile, spool: IO[bytes], inner: str | None, depth: int
    ) -> Leaves:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        for position, info in enumerate(infos):
            if self._out_of_budget(inner, f"{len(infos) - position} zip member(s) not scanned"):
                return
            self._entry()
            child = join_inner(inner, clean_member_name(info.filename))
            if info.flag_bits & 0x1:
                self._skip(child, "encrypted zip member: not scanned")
                continue
            window = _member_data(spool, info)
            if window is not None:  # stored or deflated: read here, whatever the sizes claim
                yield from self._zip_member(window, info, child, depth)
                continue
            try:
                raw = archive.open(info)
            except ARCHIVE_ERRORS as exc:
                self._skip(child, f"unreadable zip member ({why(exc)})")
                continue
            with raw:
                yield from self._child(raw, info.filename, child, depth + 1, 0)

    def _zip_member(self, window: Window, info: zipfile.ZipInfo, child: str, depth: int) -> Leaves:
        """A stored or deflated member, read from its local header on: all of its stored
        bytes, or its deflate stream to the end (``file_size`` does not cut it short), then
        whatever follows the deflate stream inside the member's data (scanned raw)."""
        if info.compress_type == zipfile.ZIP_STORED:
            yield from self._child(window, info.filename, child, depth + 1, 0)
            return
        decoded = Decoded(window, "deflate")
        limited = Limited(decoded, self, self.limits.member_cap, ARCHIVE_ERRORS)
        yield from self._expand(limited, info.filename, child, depth + 1, 0)
        limited.settle()
        if limited.error is not None:
            self._skip(child, f"corrupt: {limited.error}; scanned up to the damage")
        elif limited.truncated:
            self._skip(child, self._truncated(limited, "larger than"), limit=True)
        elif decoded.trailing is not None:
            yield child, decoded.trailing  # inside the member, after its deflate stream

    def _outside(
        self, spool: IO[bytes], start: int, end: int, size: int, inner: str | None
    ) -> Leaves:
        """Bytes before a zip's first entry, and after its end record (the archive
        comment, anything appended): scanned raw."""
        if start > 0:
            spool.seek(0)
            yield inner, as_binary(Slice(spool, start))
        if end < size:
            spool.seek(end)
            rest = skip_zeros(Slice(spool, size - end))
            if rest is not None:
                yield inner, rest

    def _tar(self, stream: Reader, inner: str | None, depth: int) -> Leaves:
        source: Reader = stream
        while True:  # concatenated tars: one after the other
            recorder = Recorder(source)
            guard = TarGuard(recorder)
            try:
                archive = tarfile.open(fileobj=guard, mode="r|")  # noqa: SIM115 - closed below
            except ARCHIVE_ERRORS as exc:
                self._tar_damage(inner, guard.refused or exc, "unreadable tar", "scanned raw")
                raw = recorder.rest_from(0)
                if raw is not None:
                    yield inner, raw
                return
            try:
                yield from self._tar_members(archive, inner, depth)
                stop = archive.offset
            except _Stop:
                return
            finally:
                archive.close()
            if guard.refused is not None:
                self._tar_damage(inner, guard.refused, "", "the rest scanned as raw bytes")
            rest = recorder.rest_from(stop)
            if rest is None:
                self._skip(inner, "the data after the end of a tar could not be located")
                return
            after = skip_zeros(rest)
            if after is None:
                return
            head, after = read_head(after)
            if sniff(head) != "tar" or guard.refused is not None:
                yield inner, after  # hidden after the end-of-archive marker: scanned raw
                return
            source = after

    def _tar_members(self, archive: tarfile.TarFile, inner: str | None, depth: int) -> Leaves:
        while True:
            try:
                member = archive.next()
            except ARCHIVE_ERRORS as exc:
                self._tar_damage(inner, exc, "corrupt tar", "the rest scanned as raw bytes")
                return
            if member is None:
                return
            archive.members.clear()  # type: ignore[attr-defined]  # keeps every member
            if not member.isreg():
                continue
            if self._out_of_budget(inner, "the rest of the tar not scanned"):
                raise _Stop
            self._entry()
            child = join_inner(inner, clean_member_name(member.name))
            raw = archive.extractfile(member)
            if raw is None:
                continue
            yield from self._child(raw, member.name, child, depth + 1, 0)

    def _tar_damage(self, inner: str | None, exc: BaseException, what: str, then: str) -> None:
        if isinstance(exc, TarHeaderRefused):
            self._skip(inner, f"tar header refused ({exc}): {then}", limit=True)
        else:
            self._skip(inner, f"{what} ({why(exc)}): {then}")

    def _ar(self, stream: Reader, inner: str | None, depth: int) -> Leaves:
        members = ar_members(stream)
        try:
            for name, data in members:
                if self._out_of_budget(inner, "the rest of the ar archive not scanned"):
                    return
                self._entry()
                child = join_inner(inner, clean_member_name(name))
                yield from self._child(data, name, child, depth + 1, 0)
        except ArError as exc:
            self._skip(inner, f"malformed ar archive ({exc}): the rest scanned as raw bytes")
            yield inner, as_binary(stream)

    def _seven_zip(self, stream: Reader, inner: str | None, depth: int, top: bool) -> Leaves:
        # imported on the first 7z member: py7zr (and its codecs) is slow to import
        from scanner.archives import sevenzip

        spool, _, too_large = self._spool(stream, inner, "7z", top)
        with spool:
            if too_large is not None:
                yield inner, too_large
                return
            try:
                result = sevenzip.extract(
                    spool,
                    header_limit=self.limits.zip_directory,
                    entries_left=self.entries_left(),
                    bytes_left=self.remaining(),
                    cap=self.limits.member_cap,
                )
            except sevenzip.SevenZipRefused as exc:
                self._skip(inner, f"{exc}: members not opened, scanned as raw bytes", True)
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            except sevenzip.SevenZipEncrypted:
                self._skip(inner, "encrypted 7z: members not scanned")
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            except Exception as exc:
                self._skip(inner, f"unreadable 7z ({why(exc)}): scanned as raw bytes")
                spool.seek(0)
                yield inner, as_binary(spool)
                return
            for member in sevenzip.members(result):
                if self._out_of_budget(inner, "the rest of the 7z not scanned"):
                    return
                self._entry()
                child = join_inner(inner, clean_member_name(member.name))
                yield from self._child(member.spool, member.name, child, depth + 1, 0)
                if member.truncated:
                    self._skip(
                        child,
                        f"larger than the per-member cap of {human(self.limits.member_cap)}: "
                        f"only the first {human(member.cap)} scanned",
                        limit=True,
                    )
            if result.error is not None:
                what = self._bytes_scope() + " ran out" if result.over_budget else result.error
                self._skip(inner, f"7z extraction stopped ({what})", limit=result.over_budget)

    def _decompress(
        self, stream: Reader, kind: str, name: str, inner: str | None, depth: int, wraps: int
    ) -> Leaves:
        recorder = Recorder(stream, keep=1 << 20, head_only=True)
        decoded = Decoded(recorder, kind)
        plain = decompressed_name(name, kind)
        limited = Limited(decoded, self, self.limits.member_cap, ARCHIVE_ERRORS)
        head, body = read_head(limited)
        if limited.error is not None and not head:
            if "Memory usage limit" in limited.error:
                reason = (
                    f"{kind} data needs more than {human(LZMA_MEMLIMIT)} of memory to decode: "
                    "not decoded, scanned as raw bytes"
                )
                self._skip(inner, reason, limit=True)
            else:
                self._skip(inner, f"unreadable {kind} data ({limited.error}): scanned raw")
            raw = recorder.rest_from(0)
            if raw is not None:
                yield inner, raw
            return
        inner_kind = sniff(head)
        # A compressed tar or zip adds no level to the inner path, a compressed file does.
        container = inner_kind in ("tar", "zip")
        child = inner if container else join_inner(inner, plain)
        yield from self._expand(body, plain, child, depth if container else depth + 1, wraps + 1)
        limited.settle()
        where = child if child is not None else inner
        if limited.error is not None:
            self._skip(where, f"corrupt {kind} data ({limited.error}): scanned up to the damage")
        elif limited.truncated:
            self._skip(where, self._truncated(limited, "decompresses to more than"), limit=True)
        elif decoded.trailing is not None:
            yield inner, decoded.trailing  # appended after the compressed data: scanned raw


def _member_data(spool: IO[bytes], info: zipfile.ZipInfo) -> Window | None:
    """The compressed data of a stored or deflated member (from its local header), or
    None for other methods (zipfile reads those) and a missing local header."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    spool.seek(info.header_offset)
    local = spool.read(LOCAL_SIZE)
    if len(local) < LOCAL_SIZE or local[:4] != LOCAL:
        return None
    name, extra = struct.unpack("<2H", local[26:30])
    start = info.header_offset + LOCAL_SIZE + name + extra
    return Window(spool, start, info.compress_size)


class _Stop(Exception):
    """A budget ended the walk of a tar (and of any tar concatenated to it)."""

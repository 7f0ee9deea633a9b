"""Streaming a layer: verify, decompress, walk the tar, note whiteouts.

Nothing is extracted and no layer is held whole in memory: the blob is read once,
hashed as it goes (against the manifest digest), decompressed by magic bytes
(gzip, zstd or none), hashed again (against the config's diff_id) and walked with
:mod:`scanner.tarheaders` (bounded tar header parsing with ``tarfile``'s semantics,
without its per-member overhead or its unbounded PAX reads). Each member is handed
to the caller with its content stream, which must be consumed (or ignored) before
the next member.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO, cast

import zstandard
from isal import igzip  # inflates about twice as fast as zlib
from isal.igzip_lib import IsalError

from scanner.digests import hasher
from scanner.dpkg import Conffile
from scanner.errors import DigestMismatch, LayerError
from scanner.tarheaders import TarHeaderError, TarHeaderReader, TarMember

# Everything a corrupt or truncated layer can raise while being read.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,  # nested archives (scanner.archives) still use tarfile
    OSError,
    EOFError,
    zlib.error,
    zstandard.ZstdError,
    cast(type[BaseException], IsalError),
)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
READ_SIZE = 1 << 20
MAX_SPARSE_HOLES = 256 << 20  # zeros a sparse file's map may leave before holes are cut short
SPARSE_HOLE_KEPT = 4096  # zero bytes kept of each hole beyond that


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"  # deletes `path` from the layers below
    OPAQUE = "opaque"  # hides what the layers below had under directory `path`
    OTHER = "other"  # devices, fifos


@dataclass(frozen=True)
class FileInfo:
    path: str  # normalised, relative to the image root, no leading slash
    kind: EntryKind
    mode: int
    size: int
    uid: int
    gid: int
    linkname: str = ""  # symlink target as written; hardlink target normalised
    raw_name: str = ""  # the member name as it was in the tar
    occurrence: int = 1  # the n-th entry with this path in this layer (the last one wins)

    @property
    def is_setuid(self) -> bool:
        return self.kind is EntryKind.FILE and bool(self.mode & 0o4000)

    @property
    def is_setgid(self) -> bool:
        return self.kind is EntryKind.FILE and bool(self.mode & 0o2000)


@dataclass
class LayerIndex:
    """What one layer did to the filesystem; enough to compute forensic status."""

    added: set[str] = field(default_factory=set)  # non-directory entries
    dirs: set[str] = field(default_factory=set)
    whiteouts: set[str] = field(default_factory=set)  # paths deleted from lower layers
    opaque_dirs: set[str] = field(default_factory=set)
    hardlinks: dict[str, str] = field(default_factory=dict)  # link path -> target path
    # Paths written more than once in this layer, and how often: only the last copy
    # reaches the filesystem, the earlier ones are overwritten within the layer.
    duplicates: dict[str, int] = field(default_factory=dict)
    # The dpkg conffiles listed by this layer's var/lib/dpkg/status (when it has one),
    # and the MD5 of the files under etc/ that had findings: see scanner.dpkg.
    conffiles: dict[str, Conffile] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "added": sorted(self.added),
            "dirs": sorted(self.dirs),
            "whiteouts": sorted(self.whiteouts),
            "opaque_dirs": sorted(self.opaque_dirs),
            "hardlinks": dict(sorted(self.hardlinks.items())),
            "duplicates": dict(sorted(self.duplicates.items())),
            "conffiles": {k: [c.package, c.md5] for k, c in sorted(self.conffiles.items())},
            "md5": dict(sorted(self.md5.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LayerIndex:
        def strings(key: str) -> set[str]:
            value = data.get(key, [])
            if not isinstance(value, list):
                raise ValueError(f"layer index: {key} is not a list")
            return {str(v) for v in value}

        def mapping(key: str) -> dict[object, object]:
            value = data.get(key, {})
            if not isinstance(value, dict):
                raise ValueError(f"layer index: {key} is not a mapping")
            return value

        def conffile(value: object) -> Conffile:
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("layer index: a conffile is not [package, md5]")
            return Conffile(str(value[0]), str(value[1]))

        links, duplicates = mapping("hardlinks"), mapping("duplicates")
        conffiles, md5 = mapping("conffiles"), mapping("md5")
        return cls(
            added=strings("added"),
            dirs=strings("dirs"),
            whiteouts=strings("whiteouts"),
            opaque_dirs=strings("opaque_dirs"),
            hardlinks={str(k): str(v) for k, v in links.items()},
            duplicates={str(k): int(str(v)) for k, v in duplicates.items()},
            conffiles={str(k): conffile(v) for k, v in conffiles.items()},
            md5={str(k): str(v) for k, v in md5.items()},
        )


class HashingReader(io.RawIOBase):
    """Pass bytes through while hashing them; check the digest once at EOF."""

    def __init__(self, raw: BinaryIO, expected: str | None, what: str) -> None:
        self._raw = raw
        # An algorithm other than sha256/sha512 is refused (UnsupportedDigest), never
        # skipped: content that cannot be verified is not scanned as complete.
        self._hash = hasher(expected, what) if expected else hashlib.sha256()
        self._expected = expected or None
        self._what = what
        self.bytes_read = 0
        self.at_eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        data = self._raw.read(len(view))
        n = len(data)
        if n == 0:
            self.at_eof = True
            return 0
        view[:n] = data
        self._hash.update(data)
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        if not data:
            self.at_eof = True
            return b""
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    @property
    def digest(self) -> str:
        return f"{self._hash.name}:{self._hash.hexdigest()}"

    def drain(self) -> None:
        while self.read(READ_SIZE):
            pass

    def verify(self) -> None:
        """Raise DigestMismatch unless the stream was read to EOF and hashes right."""
        if self._expected is None:
            return
        self.drain()
        if self.digest != self._expected:
            raise DigestMismatch(self._what, self._expected, self.digest)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def decompressed(stream: io.RawIOBase) -> tuple[str, BinaryIO]:
    """Detect the compression by magic bytes and return (kind, decompressed stream)."""
    buffered = io.BufferedReader(stream, READ_SIZE)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        return "gzip", cast(BinaryIO, igzip.IGzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_size=READ_SIZE, read_across_frames=True
        )
        return "zstd", cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, reader), READ_SIZE))
    return "none", cast(BinaryIO, buffered)


def normalize_member_name(name: str) -> tuple[str, str | None]:
    """A member name as a path relative to the root, and what was wrong with it, if anything."""
    if (
        name
        and "//" not in name
        and "/." not in name
        and "\\" not in name
        and name[0] not in "./"
        and name[-1] != "/"
    ):
        return name, None  # no empty, "." or ".." part, not absolute: already normal
    return _normalize(name)


def _normalize(name: str) -> tuple[str, str | None]:
    problem = None
    if name.startswith("/"):
        problem = "absolute name"
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        problem = "name escapes the image root with '..'"
    return ("" if cleaned == "." else cleaned), problem


class LayerReader:
    """Walk one layer's tar as a stream, with integrity checks and whiteout accounting.

    Iterating yields ``(FileInfo, content)`` pairs; ``content`` is a stream over a
    regular file's bytes (None for other entries) valid until the next item.
    After iteration, :meth:`finish` checks the digests; ``problems`` lists
    non-fatal issues (hostile member names) found on the way.
    """

    def __init__(
        self,
        raw: BinaryIO,
        *,
        what: str,
        digest: str | None = None,
        diff_id: str | None = None,
    ) -> None:
        self.what = what
        self._blob = HashingReader(raw, digest, f"{what}: blob")
        self.compression, inflated = decompressed(self._blob)
        self._tar_stream = HashingReader(inflated, diff_id, f"{what}: uncompressed layer (diff_id)")
        self.index = LayerIndex()
        self.problems: list[str] = []
        self.entries = 0
        self._forward: ForwardReader | None = None
        self._headers: TarHeaderReader | None = None

    @property
    def compressed_bytes(self) -> int:
        return self._blob.bytes_read

    @property
    def uncompressed_bytes(self) -> int:
        return self._tar_stream.bytes_read

    def __iter__(self) -> Iterator[tuple[FileInfo, BinaryIO | None]]:
        # Held on self: collecting the buffered reader would close the hashing stream.
        forward = self._forward = ForwardReader(self._tar_stream)
        headers = self._headers = TarHeaderReader(forward)
        while True:
            try:
                member = headers.next()
            except TarHeaderError as exc:
                if exc.at_start:
                    raise LayerError(f"{self.what}: not a readable tar stream ({exc})") from None
                raise LayerError(
                    f"{self.what}: corrupt or truncated after {self.entries} entries ({exc})"
                ) from None
            except DECODE_ERRORS as exc:
                raise LayerError(
                    f"{self.what}: corrupt or truncated after {self.entries} entries ({_why(exc)})"
                ) from None
            finally:
                if headers.problems:
                    self.problems += [f"{self.what}: {p}" for p in headers.problems]
                    headers.problems.clear()
            if member is None:
                return
            self.entries += 1
            info = self._describe(member)
            if info is None:
                continue
            content = None
            if info.kind is EntryKind.FILE:
                reader: io.RawIOBase
                if member.sparse is not None:
                    max_hole = None
                    if SparseReader.holes(member) > MAX_SPARSE_HOLES:
                        max_hole = SPARSE_HOLE_KEPT
                        self.problems.append(
                            f"{self.what}: /{info.path}: sparse file whose holes add up to "
                            f"{SparseReader.holes(member)} bytes (bound {MAX_SPARSE_HOLES}): "
                            f"scanned with each hole cut to {SPARSE_HOLE_KEPT} zero bytes"
                        )
                    reader = SparseReader(forward, member, self.what, info.path, max_hole)
                else:
                    reader = MemberReader(
                        forward, member.offset_data, member.size, self.what, info.path
                    )
                content = cast(BinaryIO, reader)
            yield info, content

    def finish(self) -> None:
        """Read to the end and check both digests (raises DigestMismatch/LayerError).

        What follows the tar's end must be zero padding. tarfile stops at the first
        zero block or invalid header without a word, so anything else there (a
        corrupt header, or data hidden after the end-of-archive marker, which Docker
        ignores too) was not walked: that is a problem, and the scan is incomplete.
        """
        try:
            hidden = 0
            if self._forward is not None and self._headers is not None:
                # From the block that ended the walk (zeros at a proper end; a header
                # that is not one is itself not walked).
                start = self._forward.tell()
                end_block = self._headers.end_block
                if self._headers.end_offset is not None:
                    start = self._headers.end_offset
                    hidden = len(end_block) - end_block.count(0)
                while chunk := self._forward.read(READ_SIZE):
                    if chunk.count(0) != len(chunk):
                        hidden += len(chunk) - chunk.count(0)
                if hidden:
                    self.problems.append(
                        f"{self.what}: {hidden} non-zero bytes after the end of the tar archive "
                        f"(from offset {start}) were not walked: a corrupt header, or data "
                        "hidden past the end-of-archive marker"
                    )
            self._tar_stream.verify()
            self._blob.verify()
        except DECODE_ERRORS as exc:
            raise LayerError(
                f"{self.what}: corrupt or truncated at the end ({_why(exc)})"
            ) from None

    def blob_mismatch(self) -> DigestMismatch | None:
        """After a failed walk: read the rest of the blob; a wrong digest is the likely cause."""
        try:
            self._blob.verify()
        except DigestMismatch as exc:
            return exc
        except DECODE_ERRORS:
            return None
        return None

    def close(self) -> None:
        self._tar_stream.close()
        self._blob.close()

    def _describe(self, member: TarMember) -> FileInfo | None:
        path, problem = normalize_member_name(member.name)
        if problem:
            self.problems.append(
                f"{self.what}: tar member {member.name!r}: {problem}; scanned as /{path}"
            )
        if not path:
            return None
        parent, base = posixpath.split(path)
        index = self.index
        if base == OPAQUE_MARKER:
            index.opaque_dirs.add(parent)
            return FileInfo(
                parent,
                EntryKind.OPAQUE,
                member.mode,
                0,
                member.uid,
                member.gid,
                raw_name=member.name,
            )
        if base.startswith(WHITEOUT_PREFIX):
            target = posixpath.join(parent, base[len(WHITEOUT_PREFIX) :])
            index.whiteouts.add(target)
            return FileInfo(
                target,
                EntryKind.WHITEOUT,
                member.mode,
                0,
                member.uid,
                member.gid,
                raw_name=member.name,
            )
        linkname = member.linkname
        occurrence = 1
        if member.isdir():
            kind = EntryKind.DIR
            index.dirs.add(path)
        else:
            if path in index.added:
                occurrence = index.duplicates.get(path, 1) + 1
                index.duplicates[path] = occurrence
            index.added.add(path)
            if member.isreg():
                kind = EntryKind.FILE
            elif member.issym():
                kind = EntryKind.SYMLINK
            elif member.islnk():
                kind = EntryKind.HARDLINK
                linkname, _ = normalize_member_name(member.linkname)
                index.hardlinks[path] = linkname
            else:
                kind = EntryKind.OTHER
        return FileInfo(
            path,
            kind,
            member.mode,
            member.size,
            member.uid,
            member.gid,
            linkname=linkname,
            raw_name=member.name,
            occurrence=occurrence,
        )


class ForwardReader(io.RawIOBase):
    """A non-seekable stream that tarfile may treat as seekable: forward seeks skip."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self._buffered = io.BufferedReader(raw, READ_SIZE)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise OSError(f"cannot seek back in a layer stream (to {target} from {self._pos})")
        while self._pos < target:
            skipped = len(self._buffered.read(min(target - self._pos, READ_SIZE)))
            if not skipped:
                break  # past the end: the next read returns b"" and tarfile sees EOF
            self._pos += skipped
        return self._pos

    def read(self, size: int = -1) -> bytes:
        data = self._buffered.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._buffered.readinto(buffer)
        self._pos += n
        return n


class MemberReader(io.RawIOBase):
    """A member's content, read straight from the layer stream.

    Bypasses tarfile's per-member file objects (three wrappers deep) on the hot
    path; decompression errors become LayerErrors naming the file. A member whose
    data ends early (truncated layer) also raises, rather than reading short.
    """

    def __init__(self, forward: ForwardReader, offset: int, size: int, what: str, path: str):
        self._forward = forward
        self._offset = offset
        self._left = size
        self._what = what
        self._path = path

    def left(self) -> int:
        """The bytes still to read (the member's size from its header, exactly: a member
        ending early raises instead)."""
        return self._left

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        if n <= 0:
            return b""
        try:
            if self._forward.tell() != self._offset:
                self._forward.seek(self._offset)
            data = self._forward.read(n)
        except DECODE_ERRORS as exc:
            raise LayerError(
                f"{self._what}: corrupt or truncated inside /{self._path} ({_why(exc)})"
            ) from None
        if len(data) < n:
            raise LayerError(f"{self._what}: truncated inside /{self._path} (unexpected end)")
        self._offset += n
        self._left -= n
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class SparseReader(io.RawIOBase):
    """A GNU sparse file's content: its stored data runs, with the holes as zeros.

    The runs must come in order without overlapping (what GNU tar writes); anything
    else is a LayerError, since the stream cannot be read backwards. ``max_hole``
    shortens every hole to at most that many zero bytes (for a file whose holes
    add up to more than :data:`MAX_SPARSE_HOLES`: zeros hold no secret, and a
    hostile header can claim terabytes of them).
    """

    def __init__(
        self,
        forward: ForwardReader,
        member: TarMember,
        what: str,
        path: str,
        max_hole: int | None = None,
    ) -> None:
        self._forward = forward
        self._what = what
        self._path = path
        # (stored at or -1 for a hole, length), in content order
        segments: list[tuple[int, int]] = []
        stored, pos = member.offset_data, 0
        for start, length in member.sparse or []:
            if length == 0:
                continue  # unused slots of an old GNU header
            if start < pos or length < 0:
                raise LayerError(f"{what}: /{path}: sparse map out of order")
            if start >= member.size:
                break
            if start > pos:
                segments.append((-1, start - pos))
            length = min(length, member.size - start)
            segments.append((stored, length))
            stored += length
            pos = start + length
        if pos < member.size:
            segments.append((-1, member.size - pos))
        if max_hole is not None:
            segments = [(at, n if at >= 0 else min(n, max_hole)) for at, n in segments]
        self._segments = segments
        self._segment = 0
        self._offset = 0  # into the current segment

    def left(self) -> int:
        """The bytes still to read: the runs and (shortened) holes not read yet."""
        return sum(n for _, n in self._segments[self._segment :]) - self._offset

    @staticmethod
    def holes(member: TarMember) -> int:
        """How many bytes of zeros the map leaves (the content size minus the stored runs)."""
        return member.size - sum(max(0, n) for _, n in member.sparse or [])

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None or size < 0 else size
        out: list[bytes] = []
        while want != 0 and self._segment < len(self._segments):
            at, length = self._segments[self._segment]
            take = length - self._offset if want < 0 else min(want, length - self._offset)
            if at < 0:
                out.append(bytes(take))
            else:
                member = MemberReader(
                    self._forward, at + self._offset, take, self._what, self._path
                )
                out.append(member.read(take))
            self._offset += take
            if want > 0:
                want -= take
            if self._offset == length:
                self._segment += 1
                self._offset = 0
        return b"".join(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""Blob access for on-disk sources: a directory, or members of an uncompressed tar.

Names come from the image itself, so they are validated before use: a digest must
look like ``algorithm:hex`` and a member path may not escape the archive, so a
hostile manifest cannot make layerleak read arbitrary files.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from scanner.digests import parse_digest
from scanner.errors import ManifestError, SourceError
from scanner.image import BlobOpener

MAX_JSON_BYTES = 32 << 20  # manifests and configs larger than this are refused


def blob_path(digest: str) -> str:
    """The OCI layout path of a blob, refusing anything that is not a registered digest."""
    algorithm, encoded = parse_digest(digest)
    return f"blobs/{algorithm}/{encoded}"


def safe_member_path(name: str) -> str:
    cleaned = os.path.normpath(name.replace("\\", "/")).lstrip("/")
    if cleaned.startswith("..") or cleaned in ("", "."):
        raise ManifestError(f"path {name!r} points outside the archive")
    return cleaned


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular_file(root: str, member: str) -> BinaryIO:
    """Open ``root/member`` for reading, refusing anything but a regular file inside ``root``.

    The image names these files, so none of them is followed if it is a symlink (to a
    file elsewhere on the machine, to /dev/zero...), neither the file nor a directory
    on the way; a FIFO, device or socket is refused too. Each component is opened
    relative to its parent's descriptor with ``O_NOFOLLOW``, so nothing can swap a
    directory for a link between the check and the open.
    """
    parts = safe_member_path(member).split("/")
    where = f"{root}/{'/'.join(parts)}"
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW))
            for part in parts[:-1]:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fds[-1])
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SourceError(
                    f"{where}: a symbolic link or non-directory in the layout; links are "
                    "not followed (the layout may be hostile)"
                ) from None
            raise SourceError(f"cannot open {where}: {exc.strerror or exc}") from None
    finally:
        for d in fds:
            os.close(d)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SourceError(
            f"{where}: not a regular file ({_kind(mode)}); refused (the layout may be hostile)"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


@dataclass(frozen=True)
class FileOpener(BlobOpener):
    """A regular file ``member`` under the directory ``root`` (links refused)."""

    root: str
    member: str

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.member)

    def open(self) -> BinaryIO:
        return open_regular_file(self.root, self.member)

    def describe(self) -> str:
        return self.path


class _Window(io.RawIOBase):
    """Read-only view of ``size`` bytes of a file starting at ``offset``."""

    def __init__(self, f: IO[bytes], offset: int, size: int) -> None:
        self._f = f
        self._left = size
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass(frozen=True)
class TarMemberOpener(BlobOpener):
    archive: str
    member: str
    offset: int
    size: int

    def open(self) -> BinaryIO:
        try:
            f = open(self.archive, "rb")  # noqa: SIM115 - closed with the window
        except OSError as exc:
            raise SourceError(f"cannot open {self.archive}: {exc.strerror or exc}") from None
        return cast(BinaryIO, io.BufferedReader(_Window(f, self.offset, self.size), 1 << 20))

    def describe(self) -> str:
        return f"{self.archive}!{self.member}"


class BlobStore:
    """Files of an image on disk, by relative path."""

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def opener(self, path: str) -> BlobOpener:
        raise NotImplementedError

    def read(self, path: str, what: str) -> bytes:
        """Read a small file (manifest, config, index) whole, with a size limit."""
        if not self.exists(path):
            raise ManifestError(f"{what}: {path} is missing")
        with self.opener(path).open() as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise ManifestError(f"{what}: {path} is larger than {MAX_JSON_BYTES} bytes")
        return data

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DirStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _full(self, path: str) -> Path:
        return self.root / safe_member_path(path)

    def exists(self, path: str) -> bool:
        """Whether anything has that name: a link or device is refused when opened."""
        return os.path.lexists(self._full(path))

    def opener(self, path: str) -> BlobOpener:
        return FileOpener(str(self.root), safe_member_path(path))

    def describe(self) -> str:
        return str(self.root)


class TarStore(BlobStore):
    """Members of an uncompressed tar, read in place by offset (no extraction)."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.members: dict[str, tuple[int, int]] = {}
        with open(archive, "rb") as f:
            head = f.read(4)
        if head.startswith(b"\x1f\x8b") or head.startswith(b"\x28\xb5\x2f\xfd"):
            raise SourceError(
                f"{archive}: the archive itself is compressed; decompress it first "
                f"(for example: gunzip -k {archive.name})"
            )
        try:
            with tarfile.open(archive, "r:") as tar:
                for m in tar:
                    if m.isreg():
                        self.members[safe_member_or_none(m.name)] = (m.offset_data, m.size)
                    elif m.islnk():
                        target = self.members.get(safe_member_or_none(m.linkname))
                        if target:
                            self.members[safe_member_or_none(m.name)] = target
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SourceError(f"{archive}: not a readable tar archive ({exc})") from None
        self.members.pop("", None)

    def exists(self, path: str) -> bool:
        return safe_member_path(path) in self.members

    def opener(self, path: str) -> BlobOpener:
        name = safe_member_path(path)
        if name not in self.members:
            raise ManifestError(f"{self.archive}: {path} is missing")
        offset, size = self.members[name]
        return TarMemberOpener(str(self.archive), name, offset, size)

    def describe(self) -> str:
        return str(self.archive)


def safe_member_or_none(name: str) -> str:
    try:
        return safe_member_path(name)
    except ManifestError:
        return ""

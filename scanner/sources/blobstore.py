"""Blob access for on-disk sources: a directory, or members of an uncompressed tar.

Names come from the image itself, so they are validated before use: a digest must
look like ``algorithm:hex`` and a member path may not escape the archive, so a
hostile manifest cannot make layerleak read arbitrary files.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from scanner.errors import ManifestError, SourceError
from scanner.image import BlobOpener

MAX_JSON_BYTES = 32 << 20  # manifests and configs larger than this are refused
DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]{64,128})$")


def blob_path(digest: str) -> str:
    """The OCI layout path of a blob, refusing anything that is not a plain digest."""
    m = DIGEST_RE.match(digest)
    if not m:
        raise ManifestError(f"invalid digest {digest!r}")
    return f"blobs/{m.group(1)}/{m.group(2)}"


def safe_member_path(name: str) -> str:
    cleaned = os.path.normpath(name.replace("\\", "/")).lstrip("/")
    if cleaned.startswith("..") or cleaned in ("", "."):
        raise ManifestError(f"path {name!r} points outside the archive")
    return cleaned


@dataclass(frozen=True)
class FileOpener(BlobOpener):
    path: str

    def open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot open {self.path}: {exc.strerror or exc}") from None

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
        return self._full(path).is_file()

    def opener(self, path: str) -> BlobOpener:
        return FileOpener(str(self._full(path)))

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

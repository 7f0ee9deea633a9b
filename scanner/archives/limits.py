"""What nested archives may cost: per file, per layer and per image.

:class:`ArchiveLimits` is the frozen configuration (``ScanOptions.archive_limits``).
Three scopes count the decompressed bytes read from inside archives and the
archive entries looked at:

* one top-level file (:class:`scanner.archives.walk.ArchiveWalk` counts it);
* one layer (:class:`ArchiveBudget`, made per layer scan);
* one image (:class:`ImageUsage`, shared by every layer scan of the image,
  including those in forked worker processes, through shared memory).

Whichever runs out first stops the reading; what it kept from being scanned is a
:class:`Skipped` with ``limit=True`` (a problem: the scan is incomplete), unlike
what no scanner can open (encryption, corruption: ``limit=False``, an info finding).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ArchiveLimits:
    max_depth: int = 3  # archives opened inside archives, counting the outermost
    budget: int = 256 << 20  # decompressed bytes read from inside one top-level file
    member_cap: int = 128 << 20  # bytes read from any one inner stream
    max_members: int = 100_000  # members looked at per top-level file
    zip_spool: int = 512 << 20  # largest top-level zip or 7z buffered for random access
    zip_directory: int = 32 << 20  # largest zip central directory (or 7z header) parsed
    layer_budget: int = 2 << 30  # decompressed bytes from all archives of one layer
    layer_members: int = 500_000  # archive entries looked at in one layer
    image_budget: int = 8 << 30  # decompressed bytes from all archives of one image
    image_members: int = 2_000_000  # archive entries looked at in one image

    def with_settings(self, settings: dict[str, str]) -> ArchiveLimits:
        """A copy with ``name=value`` settings (CLI names: ``layer-budget=1G``)."""
        known = {f.name.replace("_", "-"): f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, text in settings.items():
            name = known.get(key.strip().lower().replace("_", "-"))
            if name is None:
                raise ValueError(f"unknown archive limit {key!r} (one of: {', '.join(known)})")
            changes[name] = parse_size(text)
        return ArchiveLimits(**{**self.__dict__, **changes})


DEFAULT_LIMITS = ArchiveLimits()
LOCK_TIMEOUT = 1.0  # seconds to wait for the shared image counts' lock

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``1048576``, ``512K``, ``64M``, ``2G`` (binary units): a non-negative integer."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (a number, optionally with K, M, G or T)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def human(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.0f} GB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} bytes"


@dataclass(frozen=True)
class Skipped:
    """Something inside a file that was not (fully) scanned, and why.

    ``limit`` is True when a limit stopped the scanning (a problem: the scan is
    incomplete), False when the content cannot be opened by any scanner
    (encrypted, corrupt, unsupported: an info finding).
    """

    inner_path: str | None  # the archive or member concerned; None for the file itself
    reason: str
    limit: bool = False


class ImageUsage:
    """Bytes and entries read from archives across one image's layers.

    Kept in shared memory so that worker processes forked from the scanner add to
    the same counts; :meth:`reset` starts a new image. Pickled (a remote worker),
    it becomes a local count of that worker.
    """

    def __init__(self) -> None:
        self._shared = multiprocessing.Array("q", 2)
        # raw access (the lock is taken in _locked); a ctypes array of two int64
        self._counts: Any = self._shared.get_obj()
        self._lock = self._shared.get_lock()

    def add(self, nbytes: int, entries: int) -> tuple[int, int]:
        # called for every archive member and small gzip file: the lock is taken as in
        # _locked, without the context manager's cost
        lock = self._lock
        held = lock.acquire(timeout=LOCK_TIMEOUT)
        try:
            counts = self._counts
            counts[0] += nbytes
            counts[1] += entries
            return counts[0], counts[1]
        finally:
            if held:
                lock.release()

    def totals(self) -> tuple[int, int]:
        with self._locked():
            return int(self._counts[0]), int(self._counts[1])

    def reset(self) -> None:
        with self._locked():
            self._counts[0] = 0
            self._counts[1] = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The lock, unless a worker killed while holding it (out of memory) keeps it:
        then the counts are updated without it (at worst a count is lost), never hung."""
        lock = self._lock
        held = lock.acquire(timeout=LOCK_TIMEOUT)
        try:
            yield
        finally:
            if held:
                lock.release()

    def __getstate__(self) -> tuple[int, int]:
        return self.totals()

    def __setstate__(self, state: tuple[int, int]) -> None:
        self.__init__()  # type: ignore[misc]
        self._counts[0], self._counts[1] = state


class ArchiveBudget:
    """The archive budget of one layer scan, charged to its image as well."""

    def __init__(self, limits: ArchiveLimits = DEFAULT_LIMITS, image: ImageUsage | None = None):
        self.limits = limits
        self.image = image
        self.bytes = 0
        self.entries = 0
        self.problems = 0  # limits hit in this layer (the analyzer lists the first few)
        self.summary = ""  # the problem line that counts the rest
        self._image_bytes = 0  # the image totals as of the last charge
        self._image_entries = 0
        if image is not None:
            self._image_bytes, self._image_entries = image.totals()

    def charge(self, nbytes: int = 0, entries: int = 0) -> None:
        self.bytes += nbytes
        self.entries += entries
        if self.image is not None and (nbytes or entries):
            self._image_bytes, self._image_entries = self.image.add(nbytes, entries)

    def room(self) -> int:
        """Decompressed bytes that may still be read (layer and image)."""
        return min(
            self.limits.layer_budget - self.bytes,
            self.limits.image_budget - self._image_bytes,
        )

    def entries_left(self) -> int:
        return min(
            self.limits.layer_members - self.entries,
            self.limits.image_members - self._image_entries,
        )

    def bytes_scope(self) -> str:
        """Which byte budget is the tighter one now (for messages)."""
        layer = self.limits.layer_budget - self.bytes
        if layer <= self.limits.image_budget - self._image_bytes:
            return f"the archive byte budget of {human(self.limits.layer_budget)} per layer"
        return f"the archive byte budget of {human(self.limits.image_budget)} per image"

    def entries_scope(self) -> str:
        layer = self.limits.layer_members - self.entries
        if layer <= self.limits.image_members - self._image_entries:
            return f"the archive entry budget of {self.limits.layer_members} per layer"
        return f"the archive entry budget of {self.limits.image_members} per image"


__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveBudget",
    "ArchiveLimits",
    "ImageUsage",
    "Skipped",
    "human",
    "parse_size",
]

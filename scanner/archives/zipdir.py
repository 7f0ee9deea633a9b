"""A zip's central directory, measured before ``zipfile`` parses it.

``zipfile.ZipFile`` reads the whole central directory into memory and makes an
object per entry (400,000 entries cost 261 MB). :func:`read_directory` finds
the end-of-central-directory record (and its zip64 form) the way ``zipfile``
does, and counts the entries by walking the 46-byte headers, so the walk can
refuse a directory that is too large, or has more entries than the budgets
leave, before ``zipfile`` sees it. It also says where the archive starts and
ends in the file, so data prepended or appended to a zip is scanned too.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import IO

EOCD = b"PK\x05\x06"
EOCD_SIZE = 22
EOCD64_LOCATOR = b"PK\x06\x07"
EOCD64_LOCATOR_SIZE = 20
EOCD64 = b"PK\x06\x06"
EOCD64_SIZE = 56
CENTRAL = b"PK\x01\x02"
CENTRAL_SIZE = 46
MAX_COMMENT = 0xFFFF


class DirectoryTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"central directory of {size} bytes")
        self.size = size


@dataclass(frozen=True)
class ZipDirectory:
    entries: int  # central directory headers
    size: int  # bytes of the central directory
    start: int  # where the archive starts (bytes before it were prepended)
    comment_at: int  # where the end record ends: the archive comment and anything appended
    directory_at: int  # where the central directory starts


def read_directory(f: IO[bytes], file_size: int, max_size: int) -> ZipDirectory | None:
    """The directory of the zip in ``f``, None when there is none that zipfile would find.

    Raises :class:`DirectoryTooLarge` when the directory is larger than ``max_size``.
    """
    tail_len = min(file_size, EOCD_SIZE + MAX_COMMENT)
    f.seek(file_size - tail_len)
    tail = f.read(tail_len)
    if tail[-EOCD_SIZE:].startswith(EOCD) and tail[-2:] == b"\x00\x00":
        pos = len(tail) - EOCD_SIZE
    else:
        pos = tail.rfind(EOCD)
        if pos < 0 or len(tail) - pos < EOCD_SIZE:
            return None
    eocd_at = file_size - tail_len + pos
    fields = struct.unpack("<4s4H2LH", tail[pos : pos + EOCD_SIZE])
    size_cd, offset_cd = fields[5], fields[6]
    cd_end = eocd_at
    if eocd_at >= EOCD64_LOCATOR_SIZE + EOCD64_SIZE:
        f.seek(eocd_at - EOCD64_LOCATOR_SIZE)
        if f.read(4) == EOCD64_LOCATOR:
            f.seek(eocd_at - EOCD64_LOCATOR_SIZE - EOCD64_SIZE)
            record = f.read(EOCD64_SIZE)
            if record[:4] == EOCD64:
                size_cd, offset_cd = struct.unpack("<2Q", record[40:56])
                cd_end = eocd_at - EOCD64_LOCATOR_SIZE - EOCD64_SIZE
    if size_cd > max_size:
        raise DirectoryTooLarge(size_cd)
    cd_start = cd_end - size_cd
    if cd_start < 0:
        return None
    f.seek(cd_start)
    data = f.read(size_cd)
    comment_at = eocd_at + EOCD_SIZE
    return ZipDirectory(_count(data), size_cd, max(0, cd_start - offset_cd), comment_at, cd_start)


def _count(data: bytes) -> int:
    """Central directory headers in ``data``, read as zipfile reads them."""
    count = 0
    pos = 0
    while pos < len(data):
        header = data[pos : pos + CENTRAL_SIZE]
        if len(header) < CENTRAL_SIZE or header[:4] != CENTRAL:
            break  # zipfile fails here; the walk reports that
        name, extra, comment = struct.unpack("<3H", header[28:34])
        pos += CENTRAL_SIZE + name + extra + comment
        count += 1
    return count


LOCAL = b"PK\x03\x04"
LOCAL_SIZE = 30
DESCRIPTOR = b"PK\x07\x08"
MAX_GAPS = 1000  # gaps reported one by one; the rest are merged into the last


def gaps(f: IO[bytes], infos: list[zipfile.ZipInfo], start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges between ``start`` and ``end`` (the central directory) that no entry
    covers (local header, name, extra field, data, data descriptor): where bytes can
    hide in a zip without any tool listing them."""
    spans: list[tuple[int, int]] = []
    for info in infos:
        at = info.header_offset
        f.seek(at)
        local = f.read(LOCAL_SIZE)
        if len(local) < LOCAL_SIZE or local[:4] != LOCAL:
            continue
        name, extra = struct.unpack("<2H", local[26:30])
        stop = at + LOCAL_SIZE + name + extra + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows the data
            f.seek(stop)
            wide = 8 if max(info.compress_size, info.file_size) >= 0xFFFFFFFF else 0
            stop += (16 if f.read(4) == DESCRIPTOR else 12) + wide
        spans.append((at, stop))
    found: list[tuple[int, int]] = []
    pos = start
    for at, stop in sorted(spans):
        if at > pos:
            found.append((pos, min(at, end)))
        pos = max(pos, stop)
    if end > pos:
        found.append((pos, end))
    found = [(a, b) for a, b in found if b > a]
    if len(found) > MAX_GAPS:
        found = [*found[: MAX_GAPS - 1], (found[MAX_GAPS - 1][0], found[-1][1])]
    return found

"""``tarfile.TarInfo`` with bounded extension headers, for archives read with ``tarfile``.

Layers are walked with :mod:`scanner.tarheaders`; tar files nested inside a layer
are still read with ``tarfile`` (by :mod:`scanner.archives`), which is given this
class as ``tarinfo=``. It keeps ``tarfile``'s behaviour except where that is
unbounded: a GNU long name/link or PAX header larger than
:data:`~scanner.tarheaders.MAX_EXTENSION_BYTES` (or with a negative size) is a
``tarfile.ReadError`` rather than being read whole into memory; PAX records are
split by :func:`~scanner.tarheaders.pax_records` in one linear pass instead of
CPython 3.11's quadratic ``hdrcharset`` and sparse-map searches (CVE-2024-6232);
a sparse 1.0 map may not hold more than ``MAX_SPARSE_ENTRIES`` entries.
"""

from __future__ import annotations

import tarfile
from typing import Any

from scanner.tarheaders import (
    MAX_EXTENSION_BYTES,
    MAX_SPARSE_ENTRIES,
    TarHeaderError,
    _Invalid,
    pax_records,
)

# tarfile's "a header after an extension header is bad": always a ReadError, never
# a silent end of the archive (not in typeshed's stubs).
SubsequentHeaderError: type[tarfile.HeaderError] = tarfile.SubsequentHeaderError  # type: ignore[attr-defined]


def _bounded(info: tarfile.TarInfo) -> None:
    if not 0 <= info.size <= MAX_EXTENSION_BYTES:
        raise SubsequentHeaderError(
            f"tar extension header of {info.size} bytes (bound: {MAX_EXTENSION_BYTES})"
        )


class BoundedTarInfo(tarfile.TarInfo):
    def _proc_gnulong(self, tar: Any) -> tarfile.TarInfo:
        _bounded(self)
        return super()._proc_gnulong(tar)  # type: ignore[misc]

    def _proc_pax(self, tar: Any) -> tarfile.TarInfo:
        """CPython 3.11's ``_proc_pax`` with a bounded read and a linear record split."""
        _bounded(self)
        buf = tar.fileobj.read(self._block(self.size))  # type: ignore[attr-defined]
        pax_headers = tar.pax_headers if self.type == tarfile.XGLTYPE else tar.pax_headers.copy()
        try:
            records, _clean = pax_records(buf)
        except _Invalid as exc:
            raise SubsequentHeaderError(f"PAX header: {exc}") from None
        for key, value in records:
            pax_headers[key] = value
        try:
            following = self.fromtarfile(tar)
        except tarfile.HeaderError as exc:
            raise SubsequentHeaderError(str(exc)) from None
        try:
            if "GNU.sparse.map" in pax_headers:
                self._proc_gnusparse_01(following, pax_headers)  # type: ignore[attr-defined]
            elif "GNU.sparse.size" in pax_headers:
                offsets = [int(v) for k, v in records if k == "GNU.sparse.offset" and _digits(v)]
                sizes = [int(v) for k, v in records if k == "GNU.sparse.numbytes" and _digits(v)]
                following.sparse = list(zip(offsets, sizes, strict=False))  # type: ignore[assignment]
            elif (
                pax_headers.get("GNU.sparse.major") == "1"
                and pax_headers.get("GNU.sparse.minor") == "0"
            ):
                self._proc_gnusparse_10(following, pax_headers, tar)
            if self.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                following._apply_pax_info(pax_headers, tar.encoding, tar.errors)  # type: ignore[attr-defined]
                following.offset = self.offset
                if "size" in pax_headers:
                    offset = following.offset_data
                    if following.isreg() or following.type not in tarfile.SUPPORTED_TYPES:
                        offset += following._block(following.size)  # type: ignore[attr-defined]
                    tar.offset = offset
        except (ValueError, TarHeaderError) as exc:  # a bad number in a sparse map
            raise SubsequentHeaderError(f"bad sparse header ({exc})") from None
        return following

    def _proc_gnusparse_10(self, following: tarfile.TarInfo, pax: Any, tar: Any) -> None:
        buf = tar.fileobj.read(tarfile.BLOCKSIZE)
        count_text, _, buf = buf.partition(b"\n")
        count = int(count_text)
        if not 0 <= count <= MAX_SPARSE_ENTRIES:
            raise TarHeaderError(f"sparse map of {count} entries")
        numbers: list[int] = []
        while len(numbers) < count * 2:
            if b"\n" not in buf:
                more = tar.fileobj.read(tarfile.BLOCKSIZE)
                if not more or len(buf) > 64:
                    raise TarHeaderError("truncated sparse map")
                buf += more
            number, _, buf = buf.partition(b"\n")
            numbers.append(int(number))
        following.offset_data = tar.fileobj.tell()
        following.sparse = list(zip(numbers[::2], numbers[1::2], strict=False))  # type: ignore[assignment]


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()

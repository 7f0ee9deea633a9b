"""Compressed streams (gzip, zstd, xz, lzma, bzip2) decoded member by member.

:class:`Decoded` reads concatenated members (``cat a.gz b.gz``) as one stream,
with the decompressor asked for at most what the reader wants (no bomb is ever
held whole in memory). Whatever follows the last member that is not another
member nor zero padding is kept as :attr:`Decoded.trailing`: data appended to a
compressed file is scanned as the rest of the file is, never silently dropped.
"""

from __future__ import annotations

import bz2
import lzma
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import zstandard
from isal import isal_zlib  # type: ignore[import-untyped,unused-ignore]

from scanner.archives.sniff import sniff
from scanner.archives.streams import Prefixed, Reader, _RawReader, read_head, skip_zeros
from scanner.layers import READ_SIZE

LZMA_MEMLIMIT = 256 << 20  # an xz/lzma header may ask for a dictionary of gigabytes
ZSTD_FEED = 4096  # compressed bytes first fed at once (then adapted to the ratio)
ZSTD_MIN_FEED = 64  # a zstd bomb's 64 bytes decode to at most ~2 MB


class _Codec:
    """One member's decompressor behind one interface."""

    def step(self, data: bytes, limit: int) -> bytes:
        raise NotImplementedError

    def wants_input(self) -> bool:
        raise NotImplementedError

    @property
    def eof(self) -> bool:
        raise NotImplementedError

    def leftover(self) -> bytes:
        """After ``eof``: the input that followed the member."""
        raise NotImplementedError


def gunzip_member(data: bytes, limit: int) -> bytes | None:
    """The content of ``data`` when it is exactly one whole gzip member (nothing after
    it, not even zeros) decompressing to at most ``limit`` bytes; else None. Raises
    the codec's error on damaged data."""
    d = isal_zlib.decompressobj(wbits=31)
    out: bytes = d.decompress(data, limit + 1)
    if not d.eof or d.unused_data or d.unconsumed_tail or len(out) > limit:
        return None
    return out


class _Tailed(_Codec):
    """A decompressor object (``_d``: ``eof``, ``unused_data``) fed from ``_tail``, the
    input not given to it yet."""

    _d: Any
    _tail: bytes

    def wants_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    def leftover(self) -> bytes:
        return bytes(self._d.unused_data) + self._tail


class _Gzip(_Tailed):
    """gzip members (``wbits=31``), or a raw deflate stream (``wbits=-15``: zip members)."""

    def __init__(self, wbits: int = 31) -> None:
        self._d = isal_zlib.decompressobj(wbits=wbits)
        self._tail = b""

    def step(self, data: bytes, limit: int) -> bytes:
        out: bytes = self._d.decompress(self._tail + data, limit)
        self._tail = self._d.unconsumed_tail
        return out


class _Buffered(_Codec):
    """lzma/xz and bzip2: the decompressor keeps input it has not decoded yet."""

    def __init__(self, d: lzma.LZMADecompressor | bz2.BZ2Decompressor) -> None:
        self._d = d

    def step(self, data: bytes, limit: int) -> bytes:
        return self._d.decompress(data, limit)

    def wants_input(self) -> bool:
        return self._d.needs_input

    @property
    def eof(self) -> bool:
        return self._d.eof

    def leftover(self) -> bytes:
        return self._d.unused_data


class _Zstd(_Tailed):
    """zstd's decompressobj has no output limit: it is fed a little input at a time,
    less the more the data expands (a bomb's 4 KB can decode to 128 MB)."""

    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._tail = b""
        self._feed = ZSTD_FEED

    def step(self, data: bytes, limit: int) -> bytes:
        data = self._tail + data
        piece, self._tail = data[: self._feed], data[self._feed :]
        out: bytes = self._d.decompress(piece)
        ratio = max(1, len(out) // max(1, len(piece)))
        self._feed = max(ZSTD_MIN_FEED, min(READ_SIZE, max(limit, READ_SIZE) // ratio))
        return out


CODECS: dict[str, Callable[[], _Codec]] = {
    "gzip": _Gzip,
    "deflate": lambda: _Gzip(wbits=-15),
    "zstd": _Zstd,
    "xz": lambda: _Buffered(lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=LZMA_MEMLIMIT)),
    "lzma": lambda: _Buffered(lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMLIMIT)),
    "bzip2": lambda: _Buffered(bz2.BZ2Decompressor()),
}
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    lzma.LZMAError,
    zstandard.ZstdError,
    cast(type[BaseException], isal_zlib.error),
)


class Decoded(_RawReader):
    """The decompressed content of ``source``, a stream of ``kind`` members.

    Raises ``EOFError`` when the input ends inside a member (truncated). After the
    last member, :attr:`trailing` is the rest of the input from its first non-zero
    byte, or None.
    """

    def __init__(self, source: Reader, kind: str) -> None:
        self.kind = kind
        self.trailing: BinaryIO | None = None
        self.members = 1
        self.produced = 0
        self._source: Reader = source
        self._codec = CODECS[kind]()
        self._out = b""
        self._at = 0  # what of _out was read already (no copying of the rest)
        self._finished = False
        self._fed = False

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(READ_SIZE):
                chunks.append(chunk)
            return b"".join(chunks)
        while self._at >= len(self._out) and not self._finished:
            self._step(max(size, 1))
        data = self._out[self._at : self._at + size]
        self._at += len(data)
        return data

    def _step(self, limit: int) -> None:
        codec = self._codec
        chunk = b""
        if codec.wants_input():
            chunk = self._source.read(READ_SIZE)
            if not chunk:
                pending = codec.step(b"", limit) if self._fed and not codec.eof else b""
                if pending:  # output the decoder still held back
                    self.produced += len(pending)
                    self._out, self._at = pending, 0
                    if codec.eof:
                        self._next_member()
                    return
                self._finished = True
                if self._fed and not codec.eof:
                    raise EOFError(f"{self.kind} data ends inside a compressed member")
                return
            self._fed = True
        out = codec.step(chunk, limit)
        self.produced += len(out)
        self._out, self._at = out, 0
        if codec.eof:
            self._next_member()

    def _next_member(self) -> None:
        rest = skip_zeros(Prefixed(self._codec.leftover(), self._source))
        if rest is None:
            self._finished = True
            return
        head, rest = read_head(rest, 512)
        if sniff(head) == self.kind:
            self._source = rest
            self._codec = CODECS[self.kind]()
            self._fed = False
            self.members += 1
            return
        self.trailing = rest
        self._finished = True

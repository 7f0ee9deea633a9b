"""Small helpers for reading binary streams."""

from __future__ import annotations

from typing import IO, Protocol, runtime_checkable

CHUNK = 1 << 20

# What the secret engine reads: bytes, or the bytearray of :func:`read_buffer`.
ByteData = bytes | bytearray


def read_up_to(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream (reads may be short)."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(min(size - got, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_buffer(stream: IO[bytes], size: int) -> bytearray:
    """:func:`read_up_to` into one growing buffer: a large read is held once, not twice
    (chunks, then their join). Callers treat it as read-only bytes."""
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(min(size - len(buf), CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf


@runtime_checkable
class KnowsLeft(Protocol):
    """A stream that knows exactly how many bytes it will still yield (a layer's member,
    or the head-and-rest wrapper of the archive walk over one)."""

    def left(self) -> int | None: ...


def known_left(stream: object) -> int | None:
    """The bytes ``stream`` will still yield, when it knows; else None (read to find out)."""
    return stream.left() if isinstance(stream, KnowsLeft) else None

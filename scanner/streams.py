"""Small helpers for reading binary streams."""

from __future__ import annotations

from typing import IO

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

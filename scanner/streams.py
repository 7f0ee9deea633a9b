"""Small helpers for reading binary streams."""

from __future__ import annotations

from typing import IO

CHUNK = 1 << 20


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

"""Stream wrappers for the archive walk: un-reading a head, limits, chains, tails."""

from __future__ import annotations

import io
from typing import IO, BinaryIO, Protocol, cast

from scanner.layers import READ_SIZE
from scanner.streams import known_left, read_up_to

HEAD_SIZE = 8192  # enough to sniff archives (512) and binaries (8 KB)


class Reader(Protocol):
    """Anything with ``read(size) -> bytes``: files, members, the wrappers here."""

    def read(self, size: int = -1, /) -> bytes: ...


def as_binary(stream: Reader) -> BinaryIO:
    """A reader handed to code typed for files (it only ever calls ``read``)."""
    return cast(BinaryIO, stream)


class _RawReader(io.RawIOBase):
    """``readinto`` in terms of ``read``."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Prefixed(_RawReader):
    """``head`` followed by the rest of ``stream``: un-reads the bytes sniffed.

    ``head`` stays readable as an attribute (for further sniffing without another
    read); ``at_eof`` says the stream ended within the head, so it is not read again.
    """

    def __init__(self, head: bytes, stream: Reader, at_eof: bool = False) -> None:
        self.head = head
        self._pos = 0  # bytes of head already read (head may be large: never re-sliced)
        self._stream = stream
        self._eof = at_eof

    def _rest(self, size: int = -1) -> bytes:
        if self._eof:
            return b""
        return self._stream.read(size)

    def left(self) -> int | None:
        """The bytes still to read, when the stream after the head knows its own."""
        rest = 0 if self._eof else known_left(self._stream)
        return None if rest is None else len(self.head) - self._pos + rest

    def read(self, size: int | None = -1) -> bytes:
        pos, head = self._pos, self.head
        if size is None or size < 0:
            self._pos = len(head)
            return (head[pos:] if pos else head) + self._rest()
        if pos < len(head):
            data = head[pos : pos + size] if pos or size < len(head) else head
            self._pos = pos + len(data)
            if len(data) < size:
                # not +=: data may be the head itself, a bytearray that must not grow
                data = data + self._rest(size - len(data))
            return data
        return self._rest(size)


def read_head(stream: Reader, n: int = HEAD_SIZE) -> tuple[bytes, BinaryIO]:
    """The first ``n`` bytes (fewer at EOF) and a stream that still starts with them.

    A stream that already is a :class:`Prefixed` with a long enough head is not
    read again.
    """
    if isinstance(stream, Prefixed) and stream._pos == 0 and (len(stream.head) >= n or stream._eof):
        return stream.head[:n], as_binary(stream)
    head = read_up_to(as_binary(stream), n)
    return head, as_binary(Prefixed(head, stream, at_eof=len(head) < n))


class Meter(Protocol):
    """What a :class:`Limited` stream charges its bytes to (the walk)."""

    def remaining(self) -> int: ...

    def charge(self, nbytes: int) -> None: ...


class Limited(_RawReader):
    """An inner stream within a meter's budget and a per-stream cap.

    Stops (EOF) at the cap or when the budget runs out, noting whether data was
    left (``truncated``); a decode error of the *inner* data also ends the stream
    and is kept in ``error``.
    """

    def __init__(
        self, inner: Reader, meter: Meter, cap: int, errors: tuple[type[BaseException], ...]
    ) -> None:
        self._inner = inner
        self._meter = meter
        self._cap = cap
        self._errors = errors
        self.count = 0
        self.truncated = False
        self.error: str | None = None
        self._done = False

    def read(self, size: int | None = -1) -> bytes:
        if self._done:
            return b""
        room = min(self._cap - self.count, self._meter.remaining())
        want = room if size is None or size < 0 else min(size, room)
        try:
            if want <= 0:
                if size != 0 and self._inner.read(1):
                    self.truncated = True
                    self._done = True
                return b""
            data = self._inner.read(want)
        except self._errors as exc:
            self.error = why(exc)
            self._done = True
            return b""
        if not data:
            self._done = True
        self.count += len(data)
        self._meter.charge(len(data))
        return data

    def settle(self) -> None:
        """After the consumer is done: find out whether data or damage was left."""
        if self._done:
            return
        self._done = True
        try:
            more = self._inner.read(1)
        except self._errors as exc:
            self.error = why(exc)
            return
        if more and min(self._cap - self.count, self._meter.remaining()) <= 0:
            self.truncated = True


class Chain(_RawReader):
    """Several streams read one after the other."""

    def __init__(self, streams: list[Reader]) -> None:
        self._streams = streams

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(s.read() for s in self._streams)
        while self._streams:
            data = self._streams[0].read(size)
            if data:
                return data
            self._streams.pop(0)
        return b""


class Recorder(_RawReader):
    """Counts what is read from ``inner`` and keeps the last ``keep`` bytes of it.

    For readers that buffer ahead (``tarfile``'s stream mode) or fail after reading
    (a decompressor on data that only looked compressed): :meth:`rest_from` un-reads
    what they had read beyond a position. ``head_only`` keeps only the first
    ``keep`` bytes (for falling back to the start).
    """

    def __init__(self, inner: Reader, keep: int = 64 << 10, head_only: bool = False) -> None:
        self._inner = inner
        self._keep = keep
        self._head_only = head_only
        self.pos = 0
        self._kept = bytearray()
        self._kept_from = 0  # stream position of the first kept byte

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read(-1 if size is None else size)
        self.pos += len(data)
        if self._head_only:
            if len(self._kept) < self._keep:
                self._kept += data
        else:
            self._kept += data
            if len(self._kept) > 2 * self._keep:
                cut = len(self._kept) - self._keep
                del self._kept[:cut]
                self._kept_from += cut
        return data

    def rest_from(self, pos: int) -> BinaryIO | None:
        """The stream from ``pos`` on, or None when those bytes are no longer kept."""
        end = self._kept_from + len(self._kept)
        if pos >= self.pos:  # nothing read beyond pos (a truncated archive ends here)
            return as_binary(self._inner) if pos == self.pos else as_binary(Prefixed(b"", self))
        if pos < self._kept_from or self.pos > end:
            return None
        return as_binary(Prefixed(bytes(self._kept[pos - self._kept_from :]), self._inner))


class Window(_RawReader):
    """``length`` bytes of a random-access file from ``start``, seeking before every
    read (so that other readers of the same file do not disturb it)."""

    def __init__(self, f: IO[bytes], start: int, length: int) -> None:
        self._f = f
        self._pos = start
        self._left = max(0, length)

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        self._f.seek(self._pos)
        data = self._f.read(want)
        self._pos += len(data)
        self._left = self._left - len(data) if data else 0
        return data


def skip_zeros(stream: Reader) -> BinaryIO | None:
    """The stream from its first non-zero byte on, or None when only zeros remain."""
    while chunk := stream.read(READ_SIZE):
        stripped = chunk.lstrip(b"\x00")
        if stripped:
            return as_binary(Prefixed(stripped, stream))
    return None


def copy_up_to(src: Reader, dst: IO[bytes], limit: int) -> int:
    copied = 0
    while copied < limit:
        chunk = src.read(min(READ_SIZE, limit - copied))
        if not chunk:
            break
        dst.write(chunk)
        copied += len(chunk)
    return copied


def why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

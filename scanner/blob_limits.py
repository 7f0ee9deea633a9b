"""A layer blob read within its bounds: the run's deadline and the descriptor's size.

Wraps whatever a :class:`~scanner.image.BlobOpener` returned (a registry stream, a
file, a tar member) before the layer walker sees it, so every source gets the same
rules: a read after the deadline raises :class:`DeadlineExceeded`, a byte past the
descriptor's ``size`` raises :class:`BlobTooLarge` as soon as it arrives, and a blob
that ends short of its size is reported as such. A failure is sticky (later reads
raise it again), so that an analyzer swallowing it cannot make the walk look
complete.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from scanner.deadline import NO_DEADLINE, Deadline, DeadlineExceeded
from scanner.errors import LayerError


class BlobTooLarge(LayerError):
    """The blob sent more bytes than its descriptor's size."""


class BlobTooShort(LayerError):
    """The blob ended before its descriptor's size."""


class LimitedBlob(io.RawIOBase):
    def __init__(
        self,
        raw: BinaryIO,
        what: str,
        size: int | None = None,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self._raw = raw
        self._what = what
        self._size = size if size is not None and size >= 0 else None
        self._deadline = deadline
        self.bytes_read = 0
        self.failure: LayerError | None = None

    def readable(self) -> bool:
        return True

    def _fail(self, exc: LayerError) -> LayerError:
        self.failure = exc
        return exc

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.failure is not None:
            raise self.failure
        try:
            self._deadline.check(f"{self._what} (after {self.bytes_read} bytes of the blob)")
        except DeadlineExceeded as exc:
            raise self._fail(exc) from None
        view = memoryview(buffer)
        want = len(view)
        if self._size is not None:
            want = min(want, self._size + 1 - self.bytes_read)  # one past: to see an excess
        data = self._raw.read(max(want, 1))
        n = len(data)
        if self._size is not None and self.bytes_read + n > self._size:
            raise self._fail(
                BlobTooLarge(
                    f"{self._what}: the blob is longer than the {self._size} bytes its "
                    "descriptor says; stopped at the first excess byte (content longer than "
                    "its descriptor must not be trusted)"
                )
            )
        if n == 0 and want > 0 and self._size is not None and self.bytes_read < self._size:
            raise self._fail(
                BlobTooShort(
                    f"{self._what}: the blob ended after {self.bytes_read} of the "
                    f"{self._size} bytes its descriptor says"
                )
            )
        view[:n] = data
        self.bytes_read += n
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()

"""The whole-run deadline (``--deadline``), on top of the per-request ``--timeout``.

A :class:`Deadline` is an absolute wall-clock time (``time.time()``), so that it means
the same in worker processes (forked here, or on another machine) as in the process
that set it. It is checked while streaming a blob (from a registry or from disk), per
tar entry while walking a layer, before each request and each retry, and before each
image and layer: a registry that streams a blob forever, or one byte a second, ends in
a :class:`DeadlineExceeded` naming what was being read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from scanner.errors import LayerError

DEFAULT_DEADLINE = "30m"
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class DeadlineExceeded(LayerError):
    """The run's deadline passed while something was being read or scanned."""


def parse_duration(text: str) -> float | None:
    """Seconds from ``30m``, ``90s``, ``1h30m``, ``1.5s``, ``250ms`` or a bare number of
    seconds; ``0`` (in any unit) means no deadline (None). ValueError otherwise."""
    value = text.strip().lower()
    if not value:
        raise ValueError("an empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pos = 0
        seconds = 0.0
        for m in _PART.finditer(value):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(value):
            raise ValueError(
                f"{text!r} is not a duration (examples: 30m, 90s, 1h30m, 0 for none)"
            ) from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a duration")
    return None if seconds == 0 else seconds


def describe_seconds(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Deadline:
    """``at``: wall-clock seconds since the epoch, or None for no deadline; ``seconds``:
    the duration the user gave (for messages)."""

    at: float | None = None
    seconds: float | None = None

    @classmethod
    def after(cls, seconds: float | None, now: float | None = None) -> Deadline:
        if seconds is None:
            return NO_DEADLINE
        start = time.time() if now is None else now
        return cls(start + seconds, seconds)

    @property
    def label(self) -> str:
        return f"the --deadline of {describe_seconds(self.seconds or 0)}"

    def remaining(self) -> float | None:
        """Seconds left (0 when passed), or None without a deadline."""
        if self.at is None:
            return None
        return max(self.at - time.time(), 0.0)

    def expired(self) -> bool:
        return self.at is not None and time.time() >= self.at

    def check(self, what: str) -> None:
        """Raise DeadlineExceeded naming ``what`` when the deadline has passed."""
        if self.expired():
            raise DeadlineExceeded(f"{what}: stopped: {self.label} passed")

    def clamp(self, timeout: float) -> float:
        """``timeout``, shortened to what is left before the deadline (at least 0.05 s)."""
        left = self.remaining()
        if left is None:
            return timeout
        return max(min(timeout, left), 0.05)


NO_DEADLINE = Deadline()

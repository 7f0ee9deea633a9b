"""Bounded retries for registry requests.

oras-py's own retry decorator sleeps ``2 + 3**attempt`` seconds up to five times
(about two minutes) whatever the error, including a plain misconfiguration; we
replace it with this: a few attempts, a few seconds of backoff in all, ``Retry-After``
honoured on 429 and 503 as long as it fits in the time budget, and no retry at all
for answers that will not change (401, 403, 404, other 4xx).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; between them ``first_delay`` doubling up to ``max_delay``
    (0.5 + 1 + 2 = 3.5 s by default); a ``Retry-After`` longer than ``max_wait`` seconds,
    or one that would take the total waiting past ``max_wait``, ends the retries."""

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 2.0
    max_wait: float = 30.0

    @classmethod
    def for_timeout(cls, timeout: float) -> RetryPolicy:
        """The default policy, with ``--timeout`` as the longest total wait."""
        return cls(max_wait=max(float(timeout), 1.0))


class Retrier:
    """The retry state of one logical request."""

    def __init__(
        self,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        remaining: Callable[[], float | None] | None = None,
    ) -> None:
        self.policy = policy
        self._remaining = remaining  # seconds left before the run's deadline, if any
        self._sleep = sleep
        self._clock = clock
        self.attempt = 1
        self.waited = 0.0
        self.stop_reason = ""

    def backoff(self) -> float:
        delay = self.policy.first_delay * (2 ** (self.attempt - 1))
        return min(delay, self.policy.max_delay)

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next attempt and return True, or False (with ``stop_reason``)."""
        if self.attempt >= self.policy.attempts:
            self.stop_reason = f"gave up after {self.attempt} attempts"
            return False
        delay = self.backoff() if retry_after is None else max(retry_after, 0.0)
        if self.waited + delay > self.policy.max_wait:
            if retry_after is not None:
                self.stop_reason = (
                    f"the registry asked to retry after {retry_after:g}s, longer than the "
                    f"{self.policy.max_wait:g}s --timeout allows"
                )
            else:
                self.stop_reason = f"gave up after {self.attempt} attempts"
            return False
        left = self._remaining() if self._remaining is not None else None
        if left is not None and delay >= left:
            self.stop_reason = (
                f"gave up after {self.attempt} attempts: the --deadline passes before the next"
            )
            return False
        self._sleep(delay)
        self.waited += delay
        self.attempt += 1
        return True


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)

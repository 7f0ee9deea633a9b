"""The blast-radius seam: one decoder per credential family, all offline.

A :class:`Decoder` names the rule ids (or detector names) it understands and turns
one found secret into a :class:`Radius`: a summary sentence, decoded facts, and
optionally a severity that replaces the rule's (an organisation-wide Fly.io deploy
token is critical, an expired one medium). Decoders read only the secret and the
text around it (:class:`Clue`); they never touch the network, never raise on hostile
input (the dispatcher in :mod:`scanner.blast` turns any error into "not decodable")
and never put the secret, or any part of it that grants access, in what they return.

Every string a decoder copies out of a credential is image data: :func:`clean` keeps
it printable and short.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from scanner.findings import BlastRadius, Severity

MAX_SECRET = 64 << 10  # longer secrets are not decoded (no real credential is this long)
MAX_TEXT = 200  # characters of any one string copied out of a credential
MAX_ITEMS = 50  # entries of any one list copied out of a credential


@dataclass(frozen=True)
class Clue:
    """What a decoder may read: the secret, the text it was found in, and the time."""

    rule_id: str
    detector: str | None
    secret: str
    context: str = ""  # the rule's whole match plus a little text before it
    now: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Radius:
    """A decoder's answer: ``severity`` (when set) replaces the rule's severity, and
    ``at_most`` caps it (an expired credential is at most medium)."""

    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None
    at_most: Severity | None = None

    def applied_to(self, severity: Severity) -> Severity:
        result = self.severity if self.severity is not None else severity
        if self.at_most is not None:
            result = min(result, self.at_most)
        return Severity(result)

    def as_blast_radius(self) -> BlastRadius:
        return BlastRadius(summary=self.summary, details=dict(self.details))


class Decoder(ABC):
    """Reads one credential family. ``rule_ids`` select it first, then ``detectors``."""

    name: ClassVar[str]
    rule_ids: ClassVar[frozenset[str]] = frozenset()
    detectors: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def decode(self, clue: Clue) -> Radius | None:
        """The radius of ``clue.secret``, or None when this decoder has nothing to say."""


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as printable text of at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    text = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_list(values: object, limit: int = MAX_ITEMS) -> list[str]:
    if not isinstance(values, list | tuple | set | frozenset):
        return []
    return [clean(v) for v in list(values)[:limit]]


def iso_date(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC timestamp; out-of-range values say so."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def expiry_note(not_after: float | None, now: float) -> tuple[str, bool]:
    """("expires 2027-01-01" or "expired on ..." or "", expired?)."""
    if not_after is None:
        return "", False
    date = iso_date(not_after)[:10]
    if not_after <= now:
        return f"expired on {date}", True
    return f"expires {date}", False


def expired_cap(expired: bool) -> Severity | None:
    """An expired credential is still reported, but at most medium."""
    return Severity.MEDIUM if expired else None

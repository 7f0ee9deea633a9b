"""The keyword prefilter seam: every occurrence of a fixed set of keywords.

A prefilter is built from keywords that are already lower-case, one character per
byte (latin-1), and finds them ASCII case-insensitively in bytes, without the
caller lower-casing anything. ``hits(buf, start, end)`` returns, per keyword id
(its index in ``keywords``), the sorted exclusive end offsets (into ``buf``) of
its occurrences inside ``buf[start:end]``, overlapping ones included. Every
implementation gives the same hits; tests compare them with a brute-force search.
A prefilter must pickle (worker processes receive the engine), and should do so
without being rebuilt from scratch in each worker.

A backend may also take *checks* (:class:`Checks`): patterns (see :mod:`.widened`) that
it runs in the same pass, telling which of them match anywhere in the buffer
(:meth:`Prefilter.scan`). ``with_checks`` holds the ids of the checks a backend runs
(none for a backend that cannot): only those may be judged absent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from scanner.streams import ByteData


class PrefilterUnavailable(Exception):
    """The backend's library is not installed (or does not load) here."""


@dataclass(frozen=True)
class Checks:
    """Check patterns, made only when needed: ``patterns()`` gives one per id (None: no
    check for that id); ``key`` names them all (a backend may cache its compiled form
    under it, and then never calls ``patterns``)."""

    key: str
    patterns: Callable[[], Sequence[bytes | None]]


class Prefilter(ABC):
    name: ClassVar[str]

    def __init__(self, keywords: Sequence[str], checks: Checks | None = None) -> None:
        if any(not k for k in keywords):
            raise ValueError("a prefilter keyword is empty")
        self.keywords = tuple(keywords)
        self.lengths = tuple(len(k) for k in self.keywords)
        self.with_checks: frozenset[int] = frozenset()  # ids of the checks this one runs

    @property
    def backend(self) -> str:
        return self.name

    @abstractmethod
    def hits(self, buf: ByteData, start: int, end: int) -> dict[int, list[int]]:
        """Per keyword id, the sorted end offsets of its occurrences in ``buf[start:end]``."""

    def scan(self, buf: ByteData, start: int, end: int) -> tuple[dict[int, list[int]], set[int]]:
        """:meth:`hits`, and the ids of the checks matching anywhere in ``buf`` (all of
        it, not only ``buf[start:end]``); a check not in :attr:`with_checks` never is."""
        return self.hits(buf, start, end), set()

    def fired(self, buf: ByteData, start: int, end: int) -> set[int]:
        """The checks matching in ``buf[start:end]`` taken as a whole buffer (its end is
        the end of the data), with the byte before ``start`` in view, as a regex run with
        ``pos=start, endpos=end`` sees it; a check not in :attr:`with_checks` never is."""
        return set()

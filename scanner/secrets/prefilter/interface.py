"""The keyword prefilter seam: every occurrence of a fixed set of keywords.

A prefilter is built from keywords that are already lower-case, one character per
byte (latin-1), and finds them ASCII case-insensitively in bytes, without the
caller lower-casing anything. ``hits(buf, start, end)`` returns, per keyword id
(its index in ``keywords``), the sorted exclusive end offsets (into ``buf``) of
its occurrences inside ``buf[start:end]``, overlapping ones included. Every
implementation gives the same hits; tests compare them with a brute-force search.
A prefilter must pickle (worker processes receive the engine), and should do so
without being rebuilt from scratch in each worker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar


class PrefilterUnavailable(Exception):
    """The backend's library is not installed (or does not load) here."""


class Prefilter(ABC):
    name: ClassVar[str]

    def __init__(self, keywords: Sequence[str]) -> None:
        if any(not k for k in keywords):
            raise ValueError("a prefilter keyword is empty")
        self.keywords = tuple(keywords)
        self.lengths = tuple(len(k) for k in self.keywords)

    @property
    def backend(self) -> str:
        return self.name

    @abstractmethod
    def hits(self, buf: bytes, start: int, end: int) -> dict[int, list[int]]:
        """Per keyword id, the sorted end offsets of its occurrences in ``buf[start:end]``."""

"""Aho-Corasick prefilters: ahocorasick-rs (a DFA on bytes) or pyahocorasick.

Both need the buffer lower-cased first (one copy per call); used when Hyperscan
is not available. Neither runs rule checks (every rule runs around its keywords).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import ahocorasick

from scanner.secrets.prefilter.interface import Checks, Prefilter, PrefilterUnavailable
from scanner.streams import ByteData


class RustAhoCorasick(Prefilter):
    name = "ahocorasick-rs"

    def __init__(self, keywords: Sequence[str], checks: Checks | None = None) -> None:
        super().__init__(keywords)
        try:
            rs = importlib.import_module("ahocorasick_rs")
        except ImportError as exc:
            raise PrefilterUnavailable(f"ahocorasick-rs: {exc}") from None
        self._rs: Any = rs.BytesAhoCorasick(
            [k.encode("latin-1") for k in self.keywords],
            implementation=rs.Implementation.DFA,
        )

    def __getstate__(self) -> dict[str, object]:
        return {"keywords": self.keywords}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keywords"])  # type: ignore[misc]

    def hits(self, buf: ByteData, start: int, end: int) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        low = buf[start:end].lower()
        triples = self._rs.find_matches_as_indexes(low, overlapping=True)
        for kid, _, e in sorted(triples, key=lambda t: t[2]):
            found.setdefault(kid, []).append(start + e)
        return found


class PyAhoCorasick(Prefilter):
    name = "pyahocorasick"

    def __init__(self, keywords: Sequence[str], checks: Checks | None = None) -> None:
        super().__init__(keywords)
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for kid, keyword in enumerate(self.keywords):
            automaton.add_word(keyword, kid)
        automaton.make_automaton()
        self._py = automaton

    def hits(self, buf: ByteData, start: int, end: int) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        text = buf.lower().decode("latin-1")
        for last, kid in self._py.iter(text, start, end):
            ends = found.get(kid)
            if ends is None:
                found[kid] = [last + 1]
            else:
                ends.append(last + 1)
        return found

"""The Hyperscan prefilter: one compiled database of keywords and rule checks.

Hyperscan (the ``hyperscan`` wheel bundles the library) matches every keyword
ASCII case-insensitively in one pass over the bytes as they are, with no
lower-cased copy, several times faster than the Aho-Corasick automatons here.
It reports every occurrence (overlapping ones included) in order of end offset.

With *checks* (the rules' widened regexes, :mod:`.widened`), the same pass also
tells which rules can match anywhere in the buffer. Each check is compiled with
``HS_FLAG_SINGLEMATCH`` (one report per scan at most, so checks cost no more
callbacks than there are rules) and ``HS_FLAG_MULTILINE`` (its anchors are line
anchors); keywords become escaped caseless patterns of the same database. A check
Hyperscan refuses is left out: its rule always runs.

Compiling several hundred checks takes about a second, so the serialised database
is kept in the user's cache directory (:mod:`scanner.compiled_cache`), keyed by
everything it was compiled from; the next run loads it in a millisecond. The
compiled database pickles as its serialised bytes (``hyperscan.dumpb``), so worker
processes load it instead of compiling it again; a scratch space is made per process.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from scanner import compiled_cache
from scanner.secrets.prefilter.interface import Checks, Prefilter, PrefilterUnavailable
from scanner.streams import ByteData


def _library() -> Any:
    try:
        return importlib.import_module("hyperscan")
    except ImportError as exc:  # no wheel for this platform, or the library fails to load
        raise PrefilterUnavailable(f"hyperscan: {exc}") from None


def _escaped(keyword: str) -> bytes:
    """A keyword (one character per byte) as a pattern matching only itself."""
    return b"".join(b"\\x%02x" % b for b in keyword.encode("latin-1"))


class HyperscanPrefilter(Prefilter):
    name = "hyperscan"

    def __init__(
        self,
        keywords: Sequence[str],
        checks: Checks | None = None,
        serialized: bytes | None = None,
        with_checks: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(keywords)
        hs = _library()
        self._nk = len(self.keywords)
        if serialized is not None:
            self._db = hs.loadb(serialized, hs.HS_MODE_BLOCK)
            self.with_checks = with_checks
        elif checks is None:
            self._db = hs.Database(mode=hs.HS_MODE_BLOCK)
            self._db.compile(
                expressions=[k.encode("latin-1") for k in self.keywords],
                ids=list(range(self._nk)),
                elements=self._nk,
                flags=[hs.HS_FLAG_CASELESS] * self._nk,
                literal=True,
            )
        else:
            self._db, self.with_checks = self._with(hs, checks)
        self._scratch = hs.Scratch(self._db)

    def _with(self, hs: Any, checks: Checks) -> tuple[Any, frozenset[int]]:
        """The database of keywords and checks: from the cache, or compiled and cached."""
        key = hashlib.sha256(
            b"\0".join(
                [f"hyperscan {hs.__version__}; checks {checks.key}".encode()]
                + [k.encode("latin-1") for k in self.keywords]
            )
        ).hexdigest()
        blob = compiled_cache.load(key)
        if blob is not None:
            try:
                state = json.loads(blob[: blob.index(b"\n")])
                return hs.loadb(blob[blob.index(b"\n") + 1 :], hs.HS_MODE_BLOCK), frozenset(
                    int(i) for i in state["with_checks"]
                )
            except (ValueError, KeyError, TypeError, hs.error):
                pass  # another Hyperscan build or platform, or damaged: compile again
        patterns = list(checks.patterns())
        usable = [i for i, c in enumerate(patterns) if c is not None]
        db, usable = self._compile(hs, patterns, usable)
        header = json.dumps({"with_checks": usable}).encode()
        compiled_cache.store(key, header + b"\n" + hs.dumpb(db))
        return db, frozenset(usable)

    def _compile(
        self, hs: Any, patterns: list[bytes | None], usable: list[int]
    ) -> tuple[Any, list[int]]:
        keyword_flag = hs.HS_FLAG_CASELESS
        check_flag = hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_PREFILTER | hs.HS_FLAG_MULTILINE
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        expressions = [_escaped(k) for k in self.keywords] + [patterns[i] for i in usable]
        try:
            db.compile(
                expressions=expressions,
                ids=list(range(self._nk)) + [self._nk + i for i in usable],
                elements=len(expressions),
                flags=[keyword_flag] * self._nk + [check_flag] * len(usable),
            )
        except hs.error:
            # A check Hyperscan refuses (a rule file's odd regex): find it, leave it out.
            kept = [i for i in usable if _compiles(hs, patterns[i], check_flag)]
            if kept == usable:
                raise
            return self._compile(hs, patterns, kept)
        return db, usable

    def __getstate__(self) -> dict[str, object]:
        return {
            "keywords": self.keywords,
            "with_checks": sorted(self.with_checks),
            "db": _library().dumpb(self._db),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["keywords"],
            serialized=state["db"],
            with_checks=frozenset(state["with_checks"]),
        )

    def hits(self, buf: ByteData, start: int, end: int) -> dict[int, list[int]]:
        data = buf if start == 0 and end == len(buf) else buf[start:end]
        found, _ = self._run(data)
        if start:
            return {kid: [start + e for e in ends] for kid, ends in found.items()}
        return found

    def scan(self, buf: ByteData, start: int, end: int) -> tuple[dict[int, list[int]], set[int]]:
        found, checked = self._run(buf)
        if start or end != len(buf):  # keep the occurrences wholly inside buf[start:end]
            lengths = self.lengths
            found = {
                kid: kept
                for kid, ends in found.items()
                if (kept := [e for e in ends if start + lengths[kid] <= e <= end])
            }
        return found, checked

    def fired(self, buf: ByteData, start: int, end: int) -> set[int]:
        checked: set[int] = set()
        nk = self._nk

        def on_match(kid: int, _from: int, _to: int, _flags: int, _context: object) -> None:
            if kid >= nk:
                checked.add(kid - nk)

        # one byte before start: a \b or line anchor at start sees what re sees there
        self._scan(memoryview(buf)[max(0, start - 1) : end], on_match)
        return checked

    def _run(self, data: ByteData) -> tuple[dict[int, list[int]], set[int]]:
        found: dict[int, list[int]] = {}
        checked: set[int] = set()
        nk = self._nk

        def on_match(kid: int, _from: int, to: int, _flags: int, _context: object) -> None:
            if kid >= nk:
                checked.add(kid - nk)
                return
            ends = found.get(kid)
            if ends is None:
                found[kid] = [to]
            else:
                ends.append(to)

        self._scan(data, on_match)
        return found, checked

    def _scan(
        self, data: ByteData | memoryview, on_match: Callable[[int, int, int, int, object], None]
    ) -> None:
        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)


def _compiles(hs: Any, pattern: bytes | None, flag: int) -> bool:
    if pattern is None:
        return False
    try:
        hs.Database(mode=hs.HS_MODE_BLOCK).compile(
            expressions=[pattern], ids=[0], elements=1, flags=[flag]
        )
    except hs.error:
        return False
    return True

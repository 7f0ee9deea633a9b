"""Keyword prefilters (see :mod:`.interface`): Hyperscan when it loads, else Aho-Corasick.

``make_prefilter(keywords, backend)``: ``"auto"`` takes the first that works of
``hyperscan``, ``ahocorasick-rs``, ``pyahocorasick``; naming one forces it (and
fails if it is not installed).
"""

from __future__ import annotations

from collections.abc import Sequence

from scanner.secrets.prefilter.aho_corasick import PyAhoCorasick, RustAhoCorasick
from scanner.secrets.prefilter.hyperscan_db import HyperscanPrefilter
from scanner.secrets.prefilter.interface import Checks, Prefilter, PrefilterUnavailable

BACKENDS: dict[str, type[Prefilter]] = {
    cls.name: cls for cls in (HyperscanPrefilter, RustAhoCorasick, PyAhoCorasick)
}
AUTO_ORDER = ("hyperscan", "ahocorasick-rs", "pyahocorasick")


def make_prefilter(
    keywords: Sequence[str], backend: str = "auto", checks: Checks | None = None
) -> Prefilter:
    """A prefilter of ``keywords``; ``checks`` are run where the backend can (Hyperscan)."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"unknown prefilter backend {backend!r}")
        return BACKENDS[backend](keywords, checks)
    for name in AUTO_ORDER:
        try:
            return BACKENDS[name](keywords, checks)
        except PrefilterUnavailable:
            continue
    raise PrefilterUnavailable("no prefilter backend loads")  # pyahocorasick always does


def active_backend() -> str:
    """The backend ``auto`` picks here, and why the faster ones were passed over."""
    skipped = []
    for name in AUTO_ORDER:
        try:
            BACKENDS[name](["probe"])
        except PrefilterUnavailable as exc:
            skipped.append(str(exc))
            continue
        return name + (f" (unavailable: {'; '.join(skipped)})" if skipped else "")
    return "none"


__all__ = [
    "BACKENDS",
    "Checks",
    "Prefilter",
    "PrefilterUnavailable",
    "active_backend",
    "make_prefilter",
]

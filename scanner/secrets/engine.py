"""The secret-matching engine: keywords first, regexes only where a keyword occurs.

1. The buffer is run once through the keyword prefilter holding every rule's
   keywords (:mod:`scanner.secrets.prefilter`: a Hyperscan database of caseless
   literals, or an Aho-Corasick automaton over a lower-cased copy where Hyperscan
   does not load). Adding rules adds keywords to it: no code changes.
2. Each keyword hit gives a small region: for single-line rules the hit's line,
   clipped to :data:`LINE_REACH` bytes either side (a minified bundle can be one
   5 MB line); for multi-line rules (PEM blocks, JSON key files) a larger window
   after the hit. Regions of the same rule are merged, and the rule's regex runs
   on those regions only, and only where it can match: the same Hyperscan pass runs
   each rule's *widened* regex (:mod:`scanner.secrets.prefilter.widened`, never
   narrower than the rule), and a region is skipped for a rule whose widened regex
   matched nowhere in the buffer (when the region ends where a line or the buffer
   does) or does not match in the region as ``re`` sees it (checked by one more
   Hyperscan scan of the region). Tests compare engines with and without the checks.
3. Every candidate goes through the rule's ``allow`` patterns and ``validate``
   check, detect-secrets' heuristic filters and :mod:`scanner.secrets.noise`,
   then ``entropy_min``. Only references to a secret kept elsewhere are dropped
   (templates, variables, code expressions an ``allow`` pattern names, ids);
   every value that may be a secret is kept, with ``noise`` saying why it looks
   like none (placeholder, documented example, checksum mismatch, low entropy...):
   callers report those as suppressed ``info`` findings, never drop them.

Each rule is wrapped as a detect-secrets :class:`RegexBasedDetector`
(:class:`RulePlugin`), and any other detect-secrets plugin can be plugged in the
same way with a rule giving its id, keywords and severity (:class:`PluginDetector`).
Data is bytes throughout: printable runs inside binaries match like text.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from detect_secrets.filters.heuristic import is_potential_uuid
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector

from scanner.secrets.noise import NOISE_LOW_ENTROPY, assess, shannon_entropy
from scanner.secrets.prefilter import Checks, Prefilter, make_prefilter
from scanner.secrets.prefilter.widened import WIDENED_VERSION, Unsupported, widened
from scanner.secrets.validators import REASONS, VALIDATORS, credentials_password
from scanner.signatures import Rule, SignatureSet
from scanner.streams import ByteData, read_up_to

STREAM_WINDOW = 4 << 20  # scan_stream reads this much at a time; less is one scan()
LINE_REACH = 4096  # single-line rules: bytes kept either side of a keyword, within its line
BLOCK_BEFORE = 4096  # multi-line rules: bytes before a keyword
BLOCK_AFTER = 24576  # multi-line rules: bytes after a keyword (a PEM or PGP block)
MAX_REGION = BLOCK_BEFORE + BLOCK_AFTER  # no match is longer than a region
CONTEXT_LIMIT = 1000  # characters of matched text handed to the heuristics
CONTEXT_BEFORE = 256  # bytes before a match kept in SecretMatch.context (blast radius)
CONTEXT_AFTER = 256  # and after it (a URL's port and database follow the rule's match)

# (secret start, secret end, match start, match end), offsets into the buffer
Span = tuple[int, int, int, int]


@dataclass(frozen=True)
class SecretMatch:
    """One secret found by one rule.

    ``start``/``end`` are absolute byte offsets of the secret in the scanned data;
    ``line`` is the 1-based line of the secret's first byte. ``noise`` says why the
    match looks like a placeholder or an example (callers lower such findings).
    """

    rule: Rule
    secret: str  # utf-8, undecodable bytes kept with surrogateescape
    start: int
    end: int
    line: int
    noise: str | None = None
    # The rule's match (up to CONTEXT_LIMIT) with CONTEXT_BEFORE/AFTER bytes around it:
    # what a blast-radius decoder may read (a URL's host, a config.json's registry).
    context: str = ""


class Detector(Protocol):
    """What the engine runs on a region: a rule's metadata and a way to find spans."""

    @property
    def rule(self) -> Rule: ...

    def find(self, data: ByteData, start: int, end: int) -> Iterator[Span]: ...


class RulePlugin(RegexBasedDetector):
    """A :class:`Rule` as a detect-secrets plugin.

    detect-secrets callers get ``analyze_string`` (secrets of one string); the
    engine uses :meth:`find`, which works on bytes and keeps offsets.
    """

    secret_type = "layerleak rule"

    def __init__(self, rule: Rule) -> None:
        self._rule = rule
        self.secret_type = f"{rule.detector}: {rule.title}"
        self._group = rule.secret_group
        self._str_regex: re.Pattern[str] | None = None

    @property
    def rule(self) -> Rule:
        return self._rule

    @property
    def denylist(self) -> tuple[re.Pattern[str], ...]:
        if self._str_regex is None:
            self._str_regex = re.compile(self._rule.pattern, re.ASCII)
        return (self._str_regex,)

    def find(self, data: ByteData, start: int, end: int) -> Iterator[Span]:
        group = self._group
        for m in self._rule.regex.finditer(data, start, end):
            s, e = m.span(group)
            if s < e:
                yield s, e, m.start(), m.end()

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        data = string.encode("utf-8", "surrogateescape")
        for s, e, _, _ in self.find(data, 0, len(data)):
            yield data[s:e].decode("utf-8", "surrogateescape")

    def json(self) -> dict[str, object]:
        return {"name": type(self).__name__, "rule": self._rule.id}


class PluginDetector:
    """Any detect-secrets plugin, run on the lines around its rule's keywords.

    The rule gives id, title, severity, keywords and noise settings; its regex is
    not used. Secrets the plugin yields are located back in the line to get offsets.
    """

    def __init__(self, plugin: BasePlugin, rule: Rule) -> None:
        self.plugin = plugin
        self._rule = rule

    @property
    def rule(self) -> Rule:
        return self._rule

    def find(self, data: ByteData, start: int, end: int) -> Iterator[Span]:
        offset = start
        for line in data[start:end].split(b"\n"):
            text = line.decode("latin-1")  # one char per byte: offsets carry over
            searched: dict[str, int] = {}
            for secret in self.plugin.analyze_string(text):
                raw = secret.encode("utf-8", "surrogateescape").decode("latin-1")
                idx = text.find(raw, searched.get(raw, 0))
                if idx < 0 or not raw:
                    continue
                searched[raw] = idx + len(raw)
                yield offset + idx, offset + idx + len(raw), offset, offset + len(line)
            offset += len(line) + 1


# The keyword prefilter (see scanner.secrets.prefilter): Hyperscan when it loads.
KeywordPrefilter = make_prefilter


class SecretEngine:
    """Finds secrets in bytes with a :class:`SignatureSet`.

    ``plugins`` adds detect-secrets plugins, each with the rule that describes it.
    ``prefilter`` picks the keyword prefilter backend (see :func:`make_prefilter`);
    ``checks`` gives it each rule's widened regex (see :meth:`_scan_buffer`; off only to
    compare results with and without them). An engine holds no per-scan state: one
    instance can scan many files.
    """

    def __init__(
        self,
        signatures: SignatureSet,
        plugins: Sequence[tuple[BasePlugin, Rule]] = (),
        *,
        prefilter: str = "auto",
        checks: bool = True,
    ) -> None:
        detectors: list[Detector] = [RulePlugin(rule) for rule in signatures.rules]
        detectors.extend(PluginDetector(plugin, rule) for plugin, rule in plugins)
        self._detectors: tuple[Detector, ...] = tuple(detectors)
        self._uuid_expected = tuple(
            any(e.secret and is_potential_uuid(e.secret) for e in d.rule.examples_match)
            for d in detectors
        )
        keyword_ids: dict[str, int] = {}
        line_rules: list[list[int]] = []
        block_rules: list[list[int]] = []
        for index, detector in enumerate(detectors):
            for keyword in detector.rule.keywords:
                key = keyword.encode("utf-8", "surrogateescape").lower().decode("latin-1")
                if key not in keyword_ids:
                    keyword_ids[key] = len(keyword_ids)
                    line_rules.append([])
                    block_rules.append([])
                kid = keyword_ids[key]
                (block_rules if detector.rule.multiline else line_rules)[kid].append(index)
        self._line_rules = tuple(tuple(r) for r in line_rules)
        self._block_rules = tuple(tuple(r) for r in block_rules)
        self._prefilter: Prefilter | None = (
            make_prefilter(
                list(keyword_ids),
                backend=prefilter,
                checks=_checks(self._detectors) if checks else None,
            )
            if keyword_ids
            else None
        )

    @property
    def prefilter_backend(self) -> str:
        return self._prefilter.backend if self._prefilter is not None else "none"

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return self._detectors

    def scan(self, data: ByteData) -> list[SecretMatch]:
        """Every secret in ``data``, in order of position."""
        return self._scan_buffer(data, 0, len(data), 0, 1)

    def scan_with_hits(self, data: ByteData) -> tuple[list[SecretMatch], dict[str, list[int]]]:
        """:meth:`scan`, and the end offsets of every keyword occurrence in ``data`` (by
        keyword, lower-cased one character per byte), which the same pass found."""
        hits: dict[int, list[int]] = {}
        matches = self._scan_buffer(data, 0, len(data), 0, 1, hits)
        keywords = self._prefilter.keywords if self._prefilter is not None else ()
        return matches, {keywords[kid]: ends for kid, ends in hits.items()}

    def scan_stream(
        self, stream: BinaryIO, window: int = STREAM_WINDOW, overlap: int = 64 << 10
    ) -> Iterator[SecretMatch]:
        """Every secret in a stream, read in overlapping windows.

        Each match belongs to the window whose middle part holds its first byte, so
        a secret crossing a window boundary is found once, with absolute offsets and
        line numbers. ``overlap`` is raised to twice the largest region a rule can
        see and ``window`` to twice the overlap. Memory is a few times ``window``.
        """
        overlap = max(overlap, 2 * MAX_REGION)
        window = max(window, 2 * overlap)
        half = overlap // 2
        buf = read_up_to(stream, window)
        base, line_base, lo = 0, 1, 0
        previous: set[tuple[str, int]] = set()
        while True:
            eof = len(buf) < window
            hi = len(buf) if eof else len(buf) - half
            current: set[tuple[str, int]] = set()
            for match in self._scan_buffer(buf, lo, hi, base, line_base):
                key = (match.rule.id, match.end)
                if key in previous:
                    continue
                current.add(key)
                yield match
            if eof:
                return
            more = read_up_to(stream, window - overlap)
            if not more:  # the stream ended exactly at the window's end
                for match in self._scan_buffer(buf, hi, len(buf), base, line_base):
                    if (match.rule.id, match.end) not in current:
                        yield match
                return
            keep = len(buf) - overlap
            line_base += buf.count(b"\n", 0, keep)
            base += keep
            buf = buf[keep:] + more
            lo = half
            previous = current

    # -- internals ------------------------------------------------------------------

    def _scan_buffer(
        self,
        buf: ByteData,
        lo: int,
        hi: int,
        base: int,
        line_base: int,
        keep_hits: dict[int, list[int]] | None = None,
    ) -> list[SecretMatch]:
        """Matches whose secret starts in ``buf[lo:hi]``; ``base`` and ``line_base``
        are the absolute offset and line number of ``buf[0]``; ``keep_hits`` receives
        the keyword hits."""
        if self._prefilter is None or lo >= hi:
            return []
        n = len(buf)
        hits, checked = self._prefilter.scan(buf, max(0, lo - MAX_REGION), min(n, hi + MAX_REGION))
        if keep_hits is not None:
            keep_hits.update(hits)
        if not hits:
            return []
        with_checks = self._prefilter.with_checks
        # A rule whose check matched nowhere in buf is skipped in every region that ends
        # where a line or buf ends (below). So its regions are not even built unless one
        # of them may end elsewhere: a line region cut at LINE_REACH, or a multi-line one
        # ending before buf does. Most keyword hits (documentation mentioning "token" or
        # "password") are of such rules only.
        maybe_cut: set[int] = set()
        for kid, ends in hits.items():
            if self._line_rules[kid] and not _lines_end_in_reach(buf, ends):
                maybe_cut.update(self._line_rules[kid])
            if self._block_rules[kid] and ends[0] + BLOCK_AFTER < n:
                maybe_cut.update(self._block_rules[kid])

        regions: dict[int, list[tuple[int, int]]] = {}
        for kid, ends in hits.items():
            klen = self._prefilter.lengths[kid]
            rules = [
                i
                for i in self._line_rules[kid]
                if i not in with_checks or i in checked or i in maybe_cut
            ]
            if rules:
                spans = _line_regions(buf, ends, klen)
                for index in rules:
                    regions.setdefault(index, []).extend(spans)
            rules = [
                i
                for i in self._block_rules[kid]
                if i not in with_checks or i in checked or i in maybe_cut
            ]
            if rules:
                spans = _block_regions(n, ends, klen)
                for index in rules:
                    regions.setdefault(index, []).extend(spans)

        raw: set[tuple[int, int, int, int, int]] = set()
        fired: dict[tuple[int, int], set[int]] = {}  # per region: the checks matching in it
        for index, spans in regions.items():
            detector = self._detectors[index]
            has_check = index in with_checks
            # The rule's widened regex matched nowhere in buf: its regex cannot match in
            # a region ending where a line or the buffer ends (no truncated match there).
            absent = has_check and index not in checked
            for start, end in _merge(spans):
                if end <= lo or start >= hi:
                    continue
                if absent and (end == n or buf[end] == 10):
                    continue
                if has_check:
                    # The region as re sees it (ending at its end, the byte before it in
                    # view): the widened regex must match in it for the rule to.
                    here = fired.get((start, end))
                    if here is None:
                        here = fired[start, end] = self._prefilter.fired(buf, start, end)
                    if index not in here:
                        continue
                for s, e, ms, me in detector.find(buf, start, end):
                    if lo <= s < hi:
                        raw.add((s, e, index, ms, me))
        if not raw:
            return []
        return self._finish(buf, sorted(raw), base, line_base)

    def _finish(
        self,
        buf: ByteData,
        raw: list[tuple[int, int, int, int, int]],
        base: int,
        line_base: int,
    ) -> list[SecretMatch]:
        specific = sorted(
            (s, e) for s, e, index, _, _ in raw if not self._detectors[index].rule.generic
        )
        starts = [s for s, _ in specific]
        max_end: list[int] = []
        for _, e in specific:
            max_end.append(max(e, max_end[-1]) if max_end else e)

        out: list[SecretMatch] = []
        line, counted = line_base, 0
        for s, e, index, ms, me in raw:  # sorted by secret start
            rule = self._detectors[index].rule
            if rule.generic and specific:
                i = bisect.bisect_left(starts, e)
                if i and max_end[i - 1] > s:
                    continue  # a specific rule matched these bytes
            keep, noise = self._judge(index, bytes(buf[s:e]), buf, ms, me)
            if not keep:
                continue
            line += buf.count(b"\n", counted, s)
            counted = s
            out.append(
                SecretMatch(
                    rule=rule,
                    secret=buf[s:e].decode("utf-8", "surrogateescape"),
                    start=base + s,
                    end=base + e,
                    line=line,
                    noise=noise,
                    context=_context(buf, ms, me),
                )
            )
        return out

    def _judge(
        self, index: int, secret: bytes, buf: ByteData, ms: int, me: int
    ) -> tuple[bool, str | None]:
        """(keep the match?, its noise reason or None)."""
        rule = self._detectors[index].rule
        if rule.allow and any(p.search(secret) for p in rule.allow):
            return False, None  # a reference in code (config.db.password), not a value
        failed = rule.validate is not None and not VALIDATORS[rule.validate](secret)
        context = buf[ms : min(me, ms + CONTEXT_LIMIT)].decode("utf-8", "surrogateescape")
        generic, uuid_expected = rule.generic, self._uuid_expected[index]
        verdict = assess(
            secret.decode("utf-8", "surrogateescape"),
            context,
            generic=generic,
            uuid_expected=uuid_expected,
        )
        if verdict is None and rule.validate == "base64-credentials" and not failed:
            # judge the password inside, not its base64 form ("user:changeme")
            password = credentials_password(secret)
            if password is not None:
                verdict = assess(password, "", generic=generic, uuid_expected=uuid_expected)
        if verdict is not None:
            return not verdict.drop, verdict.reason
        if failed and rule.validate is not None:
            return True, REASONS[rule.validate]
        if rule.entropy_min is not None and shannon_entropy(secret) < rule.entropy_min:
            return True, NOISE_LOW_ENTROPY
        return True, None


def _checks(detectors: Sequence[Detector]) -> Checks:
    """Each detector's check (its id is the detector's index): the rule's widened regex
    (:mod:`scanner.secrets.prefilter.widened`), None for a detect-secrets plugin."""
    sources = [d.rule.pattern if isinstance(d, RulePlugin) else None for d in detectors]
    key = hashlib.sha256(
        "\0".join(
            ["widened", WIDENED_VERSION, *(s if s is not None else "-" for s in sources)]
        ).encode("utf-8", "surrogateescape")
    ).hexdigest()

    def patterns() -> list[bytes | None]:
        out: list[bytes | None] = []
        for source in sources:
            try:
                out.append(widened(source) if source is not None else None)
            except Unsupported:
                out.append(None)
        return out

    return Checks(key, patterns)


def _context(buf: ByteData, ms: int, me: int) -> str:
    end = min(me, ms + CONTEXT_LIMIT) + CONTEXT_AFTER
    return buf[max(0, ms - CONTEXT_BEFORE) : end].decode("utf-8", "surrogateescape")


def _line_regions(buf: ByteData, ends: list[int], klen: int) -> list[tuple[int, int]]:
    """Merged regions around keyword hits (``ends`` are exclusive end offsets, sorted):
    each hit's line, clipped to :data:`LINE_REACH` bytes either side."""
    n = len(buf)
    out: list[tuple[int, int]] = []
    cur_s = cur_e = -1
    closed = False  # cur_e sits on the line's end: later hits before it add nothing
    for q in ends:
        if closed and q <= cur_e:
            continue
        p = q - klen
        left = p - LINE_REACH if p > LINE_REACH else 0
        i = buf.rfind(b"\n", left, p)
        s = i + 1 if i >= 0 else left
        right = q + LINE_REACH if q + LINE_REACH < n else n
        j = buf.find(b"\n", q, right)
        e, at_end = (j, True) if j >= 0 else (right, right == n)
        if s <= cur_e:
            if e > cur_e:
                cur_e, closed = e, at_end
        else:
            if cur_e >= 0:
                out.append((cur_s, cur_e))
            cur_s, cur_e, closed = s, e, at_end
    if cur_e >= 0:
        out.append((cur_s, cur_e))
    return out


def _lines_end_in_reach(buf: ByteData, ends: list[int]) -> bool:
    """True only if every line region :func:`_line_regions` makes for these hits (sorted
    end offsets) ends where its line or ``buf`` ends, none cut at :data:`LINE_REACH`. A
    cautious answer: False also where a cut region would be merged into one that is not."""
    n = len(buf)
    i, count = 0, len(ends)
    while i < count:
        q = ends[i]
        if q + LINE_REACH >= n:
            return True  # this region and every later one reach the end of buf
        j = buf.find(b"\n", q, q + LINE_REACH)
        if j < 0:
            return False
        i = bisect.bisect_right(ends, j, i + 1)  # hits up to j end their region at j
    return True


def _block_regions(n: int, ends: list[int], klen: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cur_s = cur_e = -1
    for q in ends:
        s = max(0, q - klen - BLOCK_BEFORE)
        e = min(n, q + BLOCK_AFTER)
        if s <= cur_e:
            cur_e = max(cur_e, e)
        else:
            if cur_e >= 0:
                out.append((cur_s, cur_e))
            cur_s, cur_e = s, e
    if cur_e >= 0:
        out.append((cur_s, cur_e))
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if len(spans) < 2:
        return spans
    spans.sort()
    out = [spans[0]]
    for s, e in spans[1:]:
        ls, le = out[-1]
        if s <= le:
            if e > le:
                out[-1] = (ls, e)
        else:
            out.append((s, e))
    return out

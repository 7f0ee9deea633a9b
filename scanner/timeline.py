"""Exposure window: since which release, and until which, did each finding ship?

``layerleak timeline REPOSITORY`` lists the repository's tags through the registry API
(``GET /v2/<name>/tags/list``, following ``Link: <...>; rel="next"`` pages), keeps the
ones that match ``--match`` (shell globs such as ``deployment-*``), orders the releases
by the image's creation time (config ``created``; the tag name breaks ties and orders
releases without one), scans each (tags that point at the same image are scanned
once, and layers releases share are scanned once), and reports, for every finding
fingerprint, the first and the last release that contained it and whether the newest
release still does. That is what a responder needs to decide what to rotate and since
when a secret was exposed.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin

from scanner.errors import LayerleakError, RegistryError, UsageError
from scanner.findings import Finding
from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.image import Image
from scanner.outcome import Outcome
from scanner.results import ImageResult, ScanProblem

if TYPE_CHECKING:
    import requests

TIMELINE_SCHEMA_VERSION = 1
PAGE_SIZE = 100
MAX_PAGES = 1000  # 100,000 tags: a registry that keeps paging past that is broken
MAX_TAGS = 20_000  # a timeline past this many releases is cut short (a problem, exit 3)
MAX_TAG_LIST_BYTES = 16 << 20  # tag list bodies, all pages together
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")  # the distribution spec's


@dataclass(frozen=True)
class Release:
    tag: str
    ref: str  # what is scanned: name:tag@digest when the digest is known
    digest: str | None = None  # of the root manifest or index
    created: str | None = None  # config "created", as written
    aliases: tuple[str, ...] = ()  # other matching tags of the same image

    @property
    def created_at(self) -> datetime | None:
        return parse_time(self.created)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "aliases": list(self.aliases),
            "ref": self.ref,
            "digest": self.digest,
            "created": self.created,
        }


@dataclass
class ReleaseScan:
    release: Release
    result: ImageResult

    @property
    def complete(self) -> bool:
        return not self.result.problems


@dataclass(frozen=True)
class Exposure:
    """One fingerprint across the releases."""

    fingerprint: str
    finding: Finding  # as seen in the last release that contained it
    releases: tuple[int, ...]  # indexes into Timeline.releases (oldest first)

    @property
    def first(self) -> int:
        return self.releases[0]

    @property
    def last(self) -> int:
        return self.releases[-1]

    @property
    def continuous(self) -> bool:
        return self.releases == tuple(range(self.first, self.last + 1))


@dataclass
class Timeline(Outcome):
    repository: str
    patterns: tuple[str, ...]
    releases: list[ReleaseScan]
    exposures: list[Exposure] = field(default_factory=list)
    list_problems: list[ScanProblem] = field(default_factory=list)  # listing and resolving
    skipped: list[str] = field(default_factory=list)  # tags not matching --match
    reveal: bool = False
    ignore_files: dict[str, int] = field(default_factory=dict)  # summed over releases
    kind: ClassVar[str] = "timeline"

    @property
    def images(self) -> list[ImageResult]:
        return [r.result for r in self.releases]

    @property
    def problems(self) -> list[ScanProblem]:
        """Listing and resolving problems first, then each release's."""
        return self.all_problems()

    @property
    def complete(self) -> bool:
        return not self.list_problems and all(r.complete for r in self.releases)

    @property
    def newest(self) -> ReleaseScan | None:
        return self.releases[-1] if self.releases else None

    def in_newest(self, exposure: Exposure) -> bool:
        return bool(self.releases) and exposure.last == len(self.releases) - 1

    def removed_in(self, exposure: Exposure) -> ReleaseScan | None:
        """The first release after the last one that contained it."""
        if self.in_newest(exposure):
            return None
        return self.releases[exposure.last + 1]

    def uncertain(self, exposure: Exposure) -> bool:
        """An incomplete scan next to or inside the window: first/last may be off."""
        lo, hi = max(exposure.first - 1, 0), min(exposure.last + 1, len(self.releases) - 1)
        return any(not self.releases[i].complete for i in range(lo, hi + 1))

    @property
    def newest_findings(self) -> list[Finding]:
        newest = self.newest
        return list(newest.result.findings) if newest else []

    def exit_code(self, gate: Gate) -> int:
        return gate.timeline_exit_code(self.newest_findings, self.complete)

    def all_problems(self) -> list[ScanProblem]:
        return [*self.list_problems, *(p for r in self.releases for p in r.result.problems)]

    def summary_line(self, gate: Gate) -> str:
        still = [e for e in self.exposures if self.in_newest(e)]
        state = "complete" if self.complete else "INCOMPLETE"
        return (
            f"layerleak timeline {self.repository}: {len(self.releases)} release(s); "
            f"{len(self.exposures)} finding fingerprint(s), {len(still)} still in the newest; "
            f"gating {len(gate.failing(self.newest_findings))} ({gate.describe()}); "
            f"errors={len(self.all_problems())} ({state})" + summary_note(self.ignore_files)
        )


# --- time -------------------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 as image configs write it (``Z``, up to nanoseconds) -> aware datetime."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    date, sep, rest = value.partition(".")
    if sep:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{date}.{(rest[:digits] + '000000')[:6]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- tags ---------------------------------------------------------------------------------


def list_tags(
    client: Any,
    repository: str,
    page_size: int = PAGE_SIZE,
    problems: list[str] | None = None,
    *,
    max_tags: int = MAX_TAGS,
    max_bytes: int = MAX_TAG_LIST_BYTES,
) -> list[str]:
    """Every tag of ``repository``, following ``Link`` pagination, in the registry's order.

    ``client`` is a :class:`scanner.registry.client.RegistryClient`; its ``request``
    authenticates (Basic or a Bearer token scoped to the repository) and retries, and
    refuses a ``Link`` to another origin (the credential goes only to the registry).
    Bounded: ``max_tags`` tags, ``max_bytes`` of tag list bodies in all, MAX_PAGES
    pages; names that are not valid tags are left out; duplicates are dropped in
    linear time. When a bound is hit or a later page fails, the tags listed so far are
    returned and the reason is appended to ``problems`` (raised when it is None).
    """
    where = f"{client.endpoint.registry}/{repository}"
    base = client.endpoint.base_url
    url: str | None = f"{base}/v2/{repository}/tags/list?n={page_size}"
    tags: list[str] = []
    seen: set[str] = set()
    seen_urls: set[str] = set()
    pages = 0
    received = 0
    invalid = 0

    def stop(message: str) -> list[str]:
        if problems is None:
            raise RegistryError(message)
        problems.append(f"{message}; the timeline covers the {len(tags)} tag(s) listed before")
        return tags

    while url:
        if url in seen_urls or pages >= MAX_PAGES:
            return stop(f"{where}: the tag list keeps paging ({pages} pages); giving up")
        seen_urls.add(url)
        pages += 1

        def read(resp: requests.Response, left: int = max_bytes - received) -> Any:
            data = client.read_body(resp, "tag list", repository, left)
            try:
                body = json.loads(data)
            except ValueError:
                raise RegistryError(f"{where}: the tag list is not JSON") from None
            return body, resp.headers.get("Link"), len(data)

        try:
            body, link, size = client.request(
                "GET",
                url,
                headers={"Accept": "application/json"},
                repository=repository,
                what="tag list",
                consume=read,
            )
        except LayerleakError as exc:
            if pages == 1:
                raise
            return stop(f"{where}: page {pages} of the tag list: {exc}")
        received += size
        page = body.get("tags") if isinstance(body, dict) else None
        if page is None:
            page = []
        if not isinstance(page, list):
            raise RegistryError(f"{where}: unexpected tag list shape")
        for tag in page:
            if not isinstance(tag, str) or not TAG_RE.match(tag):
                invalid += 1
            elif tag not in seen:
                seen.add(tag)
                tags.append(tag)
                if len(tags) >= max_tags:
                    return stop(f"{where}: more than {max_tags} tags")
        url = next_link(link, url)
    if invalid:
        message = f"{where}: {invalid} entr(y/ies) of the tag list are not valid tag names"
        if problems is None:
            raise RegistryError(message)
        problems.append(message + "; left out")
    return tags


def next_link(header: str | None, current: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against ``current``."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        rels = [
            p.split("=", 1)[1].strip().strip('"').lower()
            for p in params.split(";")
            if p.strip().lower().startswith("rel=")
        ]
        if any("next" in r.split() for r in rels):
            return urljoin(current, target[1:-1])
    return None


def match_tags(tags: Iterable[str], patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """(matching, skipped) for shell-glob ``patterns`` (case-sensitive); no patterns: all."""
    matching: list[str] = []
    skipped: list[str] = []
    for tag in tags:
        if not patterns or any(fnmatch.fnmatchcase(tag, p) for p in patterns):
            matching.append(tag)
        else:
            skipped.append(tag)
    return matching, skipped


# --- releases ---------------------------------------------------------------------------


def image_created(image: Image) -> str | None:
    """The newest ``created`` of the image's platforms (they are normally equal)."""
    best: tuple[datetime, str] | None = None
    for platform in image.platforms:
        text = platform.config.get("created")
        when = parse_time(text) if isinstance(text, str) else None
        if when is not None and isinstance(text, str) and (best is None or when > best[0]):
            best = (when, text)
    return best[1] if best else None


def image_digest(image: Image) -> str | None:
    if image.index_digest:
        return image.index_digest
    if len(image.platforms) == 1:
        return image.platforms[0].manifest_digest
    return None


def order_releases(releases: Iterable[Release]) -> list[Release]:
    """Oldest first by creation time; the tag (ULIDs sort by time) breaks ties and
    orders releases without a creation time, which come first (unknown is not newest)."""
    far_past = datetime.min.replace(tzinfo=UTC)
    return sorted(releases, key=lambda r: (r.created_at or far_past, r.tag))


def merge_aliases(releases: Iterable[Release]) -> list[Release]:
    """Tags of the same image become one release (named by the first tag, in tag order)."""
    by_digest: dict[str, list[Release]] = {}
    single: list[Release] = []
    for r in releases:
        if r.digest:
            by_digest.setdefault(r.digest, []).append(r)
        else:
            single.append(r)
    merged = []
    for group in by_digest.values():
        group.sort(key=lambda r: r.tag)
        first = group[0]
        merged.append(
            Release(
                first.tag,
                first.ref,
                first.digest,
                first.created,
                tuple(r.tag for r in group[1:]),
            )
        )
    return merged + single


# --- exposures --------------------------------------------------------------------------


def exposures(scans: Sequence[ReleaseScan]) -> list[Exposure]:
    """Per fingerprint: the releases (indexes) that contain it; most severe first."""
    where: dict[str, list[int]] = {}
    latest: dict[str, Finding] = {}
    for i, scan in enumerate(scans):
        for f in scan.result.findings:
            if f.suppressed:
                continue  # noise (placeholders, example keys): not an exposure
            fp = f.fingerprint
            found = where.setdefault(fp, [])
            if not found or found[-1] != i:
                found.append(i)
                latest[fp] = f  # first occurrence in a newer release
            elif f.severity > latest[fp].severity:
                latest[fp] = f
    result = [Exposure(fp, latest[fp], tuple(idx)) for fp, idx in where.items()]
    result.sort(key=lambda e: (-e.finding.severity, e.first, e.finding.rule_id, e.fingerprint))
    return result


# --- the run ----------------------------------------------------------------------------

LoadImage = Callable[[str], Image]
ScanRef = Callable[[str], ImageResult]
ScanRefs = Callable[[list[str]], list[ImageResult]]


def build_timeline(
    repository: str,
    tags: Sequence[str],
    patterns: Sequence[str],
    load: LoadImage,
    scan: ScanRef,
    *,
    reveal: bool = False,
    last: int | None = None,
    notify: Callable[[str], None] | None = None,
    scan_many: ScanRefs | None = None,
) -> Timeline:
    """Resolve, order and scan the matching tags of ``repository`` (``host/name``).

    ``load(ref)`` reads an image's manifests and configs (for its digest and creation
    time); ``scan(ref)`` scans it. A tag that cannot be loaded is a problem in the
    timeline, and makes it incomplete. ``last``: scan only the newest N releases.
    ``scan_many(refs)``, when given, scans every release at once (their layers fanned
    out together) instead of one ``scan(ref)`` after another.
    """
    matching, skipped = match_tags(tags, patterns)
    problems: list[ScanProblem] = []
    releases: list[Release] = []
    for tag in matching:
        ref = f"{repository}:{tag}"
        try:
            image = load(ref)
        except LayerleakError as exc:
            problems.append(ScanProblem(ref, None, None, str(exc)))
            continue
        digest = image_digest(image)
        scan_ref = f"{ref}@{digest}" if digest else ref
        releases.append(Release(tag, scan_ref, digest, image_created(image)))
        for message in image.problems:
            problems.append(ScanProblem(ref, None, None, message))
    ordered = order_releases(merge_aliases(releases))
    if last is not None and last > 0:
        ordered = ordered[-last:]
    scans: list[ReleaseScan] = []
    if scan_many is not None and ordered:
        if notify:
            notify(f"layerleak timeline: scanning {len(ordered)} release(s) of {repository}")
        results = scan_many([r.ref for r in ordered])
        scans = [ReleaseScan(r, result) for r, result in zip(ordered, results, strict=True)]
        ordered = []
    for n, release in enumerate(ordered, 1):
        if notify:
            notify(f"layerleak timeline: scanning {release.tag} ({n}/{len(ordered)})")
        scans.append(ReleaseScan(release, scan(release.ref)))
    return Timeline(
        repository=repository,
        patterns=tuple(patterns),
        releases=scans,
        exposures=exposures(scans),
        list_problems=problems,
        skipped=skipped,
        reveal=reveal,
    )


def repository_name(text: str) -> str:
    """``HOST/NAME`` from what the user typed (a tag or digest is refused)."""
    from scanner.reference import parse_reference

    ref = parse_reference(text)
    if "@" in text or ":" in text.rsplit("/", 1)[-1]:
        raise UsageError(
            f"{text!r}: give a repository without tag or digest (e.g. registry.fly.io/APP); "
            "use --match to pick tags"
        )
    return ref.name

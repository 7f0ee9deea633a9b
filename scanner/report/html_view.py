"""The view model of the HTML report: plain, already-cleaned data for the template.

Everything an image controls (paths, build steps, labels, names, tags, messages) is
cleaned here (one line, control and bidirectional characters shown as escapes, cut
to a bounded width) and escaped by the template's autoescaping; secrets are shown
exactly as in the other formats (redacted unless ``--reveal``). Sizes are bounded:
at most :data:`MAX_ROWS` findings listed in all, :data:`MAX_SPANS` spans drawn per
platform, :data:`MAX_GRID_ROWS` x :data:`MAX_GRID_RELEASES` cells in a timeline grid;
what is left out is counted and said.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scanner.findings import Category, FileState, Finding, LocationKind, Severity
from scanner.results import ImageResult, LayerSummary, PlatformResult, ScanProblem

MAX_ROWS = 2000
MAX_SPANS = 40
MAX_BANDS = 200  # layers drawn per platform: the bottom and the top half of this many
MAX_PROBLEMS = 200  # problems listed per image and in the header
MAX_IMAGES = 50  # image sections drawn in detail
MAX_GRID_ROWS = 300
MAX_GRID_RELEASES = 60
TEXT_WIDTH = 300
STEP_WIDTH = 52  # characters of a build step that fit in a band, with its size

SEVERITIES = [s.label for s in sorted(Severity, reverse=True)]
CATEGORIES = [c.value for c in Category]
STATUSES = [s.value for s in FileState]

_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def clean(value: object, width: int = TEXT_WIDTH) -> str:
    """One line of visible text: control, zero-width and bidi characters escaped, cut."""
    text = "" if value is None else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", " ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    counter = Counter(f.severity.label for f in findings)
    return {label: counter.get(label, 0) for label in SEVERITIES}


class Budget:
    """How many more findings may be listed in the document (and images drawn)."""

    def __init__(self, rows: int = MAX_ROWS) -> None:
        self.left = rows
        self.omitted = 0
        self.images = 0  # image sections drawn so far

    def take(self, items: Sequence[Finding]) -> list[Finding]:
        shown = list(items[: max(self.left, 0)])
        self.left -= len(shown)
        self.omitted += len(items) - len(shown)
        return shown


# --- findings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    severity: str
    category: str
    status: str  # FileState value: the status filter's key
    status_text: str
    recoverable: bool
    rule_id: str
    title: str
    where: str
    layer: str
    evidence: str
    note: str
    opens: str
    verification: str
    fingerprint: str
    created_by: str


def where(f: Finding) -> str:
    loc = f.location
    text = loc.display_path() or loc.field or loc.kind.value
    if loc.line:
        text += f":{loc.line}"
    return text


def row(f: Finding, reveal: bool) -> Row:
    loc = f.location
    status_text = f.status.describe() if loc.kind is LocationKind.FILE else ""
    if f.status.recoverable:
        status_text += f"; recoverable from layer {loc.layer_index}"
    opens = ""
    if f.blast_radius is not None:
        opens = f.blast_radius.summary
        if f.blast_radius.verified_identity:
            who = ", ".join(f"{k}={v}" for k, v in f.blast_radius.verified_identity.items())
            opens += f" (verified as {who})"
    evidence = f.secret if (reveal and f.secret) else f.match
    return Row(
        severity=f.severity.label,
        category=f.category.value,
        status=f.status.state.value,
        status_text=clean(status_text),
        recoverable=f.status.recoverable,
        rule_id=clean(f.rule_id, 100),
        title=clean(f.title, 200),
        where=clean(where(f), 500),
        layer="" if loc.layer_index is None else str(loc.layer_index),
        evidence=clean(evidence, 200),
        note=clean(f.noise or "", 200),
        opens=clean(opens),
        verification=clean(f.verification or "", 40),
        fingerprint=f.fingerprint,
        created_by=clean(loc.created_by or "", 200),
    )


# --- layers and spans ----------------------------------------------------------------------

LEFT = 56  # the layer index column
BAND_WIDTH = 560
LANES_X = LEFT + BAND_WIDTH + 20
LANE = 16
TOP = 28
MIN_BAND = 24
EXTRA_BAND = 56  # the largest layer is MIN_BAND + EXTRA_BAND high


@dataclass(frozen=True)
class Band:
    index: int
    y: int
    height: int
    label: str
    digest: str
    size: str
    findings: int
    error: str
    cached: bool

    @property
    def mid(self) -> int:
        return self.y + self.height // 2


@dataclass(frozen=True)
class Span:
    x: int
    y_top: int
    y_bottom: int
    severity: str
    category: str
    status: str
    from_layer: int
    to_layer: int | None  # the layer that deleted or overwrote it; None: still present
    label: str  # tooltip: rule, path, what happened
    recoverable: bool


@dataclass
class Stack:
    width: int
    height: int
    bands: list[Band]
    spans: list[Span]
    omitted: int = 0  # secrets not drawn
    hidden_layers: int = 0  # layers in the middle of a very tall stack, not drawn


def stack(layers: Sequence[LayerSummary], findings: Sequence[Finding]) -> Stack:
    """Layer 0 at the bottom; band heights grow with the square root of the bytes.

    At most MAX_BANDS layers are drawn (the bottom and the top half); a secret is drawn
    when the layers it starts and ends in are, and at most MAX_SPANS of them.
    """
    hidden = max(len(layers) - MAX_BANDS, 0)
    if hidden:
        layers = [*layers[: MAX_BANDS // 2], *layers[-(MAX_BANDS // 2) :]]
    largest = max((max(layer.uncompressed_bytes, 0) for layer in layers), default=0) or 1
    heights = [
        MIN_BAND + round(EXTRA_BAND * math.sqrt(max(layer.uncompressed_bytes, 0) / largest))
        for layer in layers
    ]
    y = TOP
    bands_by_index: dict[int, Band] = {}
    for layer, height in reversed(list(zip(layers, heights, strict=True))):
        step = clean(layer.created_by or "(no history)", STEP_WIDTH)
        bands_by_index[layer.index] = Band(
            index=layer.index,
            y=y,
            height=height,
            label=step,
            digest=clean(layer.digest, 80),
            size=human_bytes(layer.uncompressed_bytes),
            findings=layer.findings,
            error=clean(layer.error or "", 200),
            cached=layer.cached,
        )
        y += height + 2
    bands = [bands_by_index[layer.index] for layer in reversed(layers)]
    candidates = [
        f
        for f in findings
        if f.location.kind is LocationKind.FILE
        and f.category in (Category.SECRET, Category.SENSITIVE_FILE)
    ]
    drawable = [
        f
        for f in candidates
        if f.location.layer_index in bands_by_index
        and (not f.status.recoverable or f.status.changed_in_layer in bands_by_index)
    ]
    drawable.sort(key=lambda f: (-f.severity, f.location.layer_index or 0, where(f)))
    spans: list[Span] = []
    for lane, f in enumerate(drawable[:MAX_SPANS]):
        start = bands_by_index[f.location.layer_index or 0]
        end = bands_by_index[f.status.changed_in_layer or 0] if f.status.recoverable else None
        y_top = end.mid if end is not None else TOP - 14
        what = f.status.describe() if end is not None else "still present at the top"
        spans.append(
            Span(
                x=LANES_X + lane * LANE,
                y_top=y_top,
                y_bottom=start.mid,
                severity=f.severity.label,
                category=f.category.value,
                status=f.status.state.value,
                from_layer=start.index,
                to_layer=end.index if end is not None else None,
                label=clean(
                    f"{f.rule_id} {where(f)}: added in layer {start.index}, {what}",
                    400,
                ),
                recoverable=f.status.recoverable,
            )
        )
    width = max(LANES_X + LANE * len(spans) + 24, LANES_X + 120)
    return Stack(width, y + 24, bands, spans, len(candidates) - len(spans), hidden)


# --- images --------------------------------------------------------------------------------


@dataclass
class Group:
    """Findings of one layer (``layer`` None: config, history and build)."""

    layer: int | None
    heading: str
    rows: list[Row]


@dataclass
class PlatformView:
    name: str
    manifest_digest: str
    config_digest: str
    layers: int
    bytes: str
    stack: Stack
    groups: list[Group]
    counts: dict[str, int]


@dataclass
class ProblemView:
    where: str
    message: str


@dataclass
class ImageView:
    anchor: str
    name: str
    source_kind: str
    index_digest: str
    tags: str
    platforms: list[PlatformView]
    problems: list[ProblemView]
    counts: dict[str, int]
    findings: int
    rules_digest: str
    unplaced: list[Row] = field(default_factory=list)  # findings of no listed platform
    hidden_problems: int = 0


def problem_view(p: ScanProblem) -> ProblemView:
    text = p.image
    if p.platform:
        text += f" {p.platform}"
    if p.layer_index is not None:
        text += f" layer {p.layer_index}"
    return ProblemView(clean(text, 300), clean(p.message, 1000))


def image_view(image: ImageResult, reveal: bool, budget: Budget, anchor: str) -> ImageView:
    by_platform: dict[str, list[Finding]] = {}
    for f in image.findings:
        by_platform.setdefault(f.platform, []).append(f)
    platforms = []
    for platform in image.platforms:
        found = by_platform.pop(platform.platform, [])
        platforms.append(_platform_view(platform, found, reveal, budget))
    unplaced = [row(f, reveal) for fs in by_platform.values() for f in budget.take(fs)]
    return ImageView(
        anchor=anchor,
        name=clean(image.name, 500),
        source_kind=clean(image.source_kind, 40),
        index_digest=clean(image.index_digest or "", 140),
        tags=clean(", ".join(image.tags), 500),
        platforms=platforms,
        problems=[problem_view(p) for p in image.problems[:MAX_PROBLEMS]],
        hidden_problems=max(len(image.problems) - MAX_PROBLEMS, 0),
        counts=severity_counts(image.findings),
        findings=len(image.findings),
        rules_digest=clean(image.rules_digest or "", 140),
        unplaced=unplaced,
    )


def _platform_view(
    platform: PlatformResult, findings: list[Finding], reveal: bool, budget: Budget
) -> PlatformView:
    by_layer: dict[int | None, list[Finding]] = {}
    for f in findings:
        key = f.location.layer_index if f.location.kind is LocationKind.FILE else None
        by_layer.setdefault(key, []).append(f)
    groups = []
    for layer in platform.layers:
        found = by_layer.pop(layer.index, [])
        rows = _rows(found, reveal, budget) if found else []
        if rows:
            step = clean(layer.created_by or "(no history)", 200)
            groups.append(Group(layer.index, f"Layer {layer.index}: {step}", rows))
    rest = [f for key, fs in by_layer.items() if key is not None for f in fs]
    config = by_layer.get(None, []) + rest
    rows = _rows(config, reveal, budget) if config else []
    if rows:
        groups.append(Group(None, "Config, history and build", rows))
    total = sum(max(layer.uncompressed_bytes, 0) for layer in platform.layers)
    return PlatformView(
        name=clean(platform.platform, 80),
        manifest_digest=clean(platform.manifest_digest or "", 140),
        config_digest=clean(platform.config_digest or "", 140),
        layers=len(platform.layers),
        bytes=human_bytes(total),
        stack=stack(platform.layers, findings),
        groups=groups,
        counts=severity_counts(findings),
    )


def _rows(findings: list[Finding], reveal: bool, budget: Budget) -> list[Row]:
    ordered = sorted(findings, key=lambda f: -f.severity)
    return [row(f, reveal) for f in budget.take(ordered)]

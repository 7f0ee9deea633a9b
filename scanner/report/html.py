"""``--format html``: one self-contained page for people reviewing a leak.

Rendered with Jinja2 (autoescaping on) from ``templates/report.html.j2``, with its
stylesheet and its one small script inlined. A Content-Security-Policy meta tag
allows that script and that stylesheet by their sha256 hashes and nothing else:
no other script (injected markup cannot run), no external load of any kind (the
file opens offline, from a CI artefact or an e-mail attachment). The view model
(:mod:`scanner.report.html_view`) has already cleaned and bounded every string an
image controls; secrets are redacted unless ``--reveal``, as in every format.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from scanner import __version__
from scanner.diff import Diff, DiffEntry
from scanner.findings import Finding
from scanner.fly import FlyScan
from scanner.fly.org import OrgScan
from scanner.gate import EXIT_CLEAN, EXIT_INCOMPLETE, Gate
from scanner.outcome import Outcome, ScanOutcome
from scanner.report.html_view import (
    CATEGORIES,
    MAX_GRID_RELEASES,
    MAX_GRID_ROWS,
    MAX_IMAGES,
    MAX_PROBLEMS,
    SEVERITIES,
    STATUSES,
    Budget,
    ImageView,
    ProblemView,
    Row,
    clean,
    image_view,
    problem_view,
    row,
    severity_counts,
)
from scanner.report.interface import Formatter
from scanner.results import ImageResult, Report
from scanner.timeline import Timeline
from scanner.timelines import TimelineSet

if TYPE_CHECKING:
    import jinja2

TEMPLATES = "scanner.report"
MAX_DEPLOYMENTS = 500  # images listed in a fly report's "what runs where" table
MAX_MACHINES = 500  # Machines listed per image
MAX_APPS = 500  # apps listed in a fly --org report's "what runs where" sections


@dataclass
class Section:
    """A group of images: open (``expanded``) or folded in a ``<details>``."""

    title: str
    images: list[ImageView]
    expanded: bool = True
    hidden: int = 0  # images beyond MAX_IMAGES, not drawn


@dataclass(frozen=True)
class Card:
    row: Row
    occurrences: int
    gates: bool


@dataclass
class DiffView:
    old: str
    new: str
    columns: list[tuple[str, str, list[Card]]]  # (key, title, cards)


@dataclass(frozen=True)
class ReleaseView:
    tag: str
    aliases: str
    created: str
    counts: dict[str, int]
    complete: bool


@dataclass(frozen=True)
class GridRow:
    row: Row
    cells: list[str]  # per release shown: "first", "last", "only", "in", ""
    in_newest: bool
    removed_in: str
    first: str
    last: str
    uncertain: bool
    continuous: bool


@dataclass
class TimelineView:
    repository: str
    releases: list[ReleaseView]
    grid: list[GridRow]
    hidden_releases: int
    hidden_rows: int


@dataclass(frozen=True)
class MachineView:
    id: str
    name: str
    region: str
    process_group: str
    state: str


@dataclass(frozen=True)
class DeploymentView:
    image: str
    digest: str
    tags: str
    process_groups: str
    regions: str
    machines: list[MachineView]  # the first MAX_MACHINES
    machine_count: int
    counts: dict[str, int]
    complete: bool
    anchor: str


@dataclass
class FlyView:
    app: str
    api_url: str
    machines: int
    deployments: list[DeploymentView]
    hidden: int = 0
    note: str = ""  # fly --org: the app has no Machines, or they could not be read


@dataclass
class Page:
    kind: str
    title: str
    generated: str
    version: str
    rules_digests: list[str]
    gate: str
    verdict: str
    verdict_class: str
    complete: bool
    counts: dict[str, int]
    counts_label: str
    total: int
    recoverable: int
    reveal: bool
    suppressed: list[tuple[str, int]]
    problems: list[ProblemView]
    hidden_problems: int
    sections: list[Section]
    omitted: int
    filters: dict[str, list[str]] = field(default_factory=dict)
    diff: DiffView | None = None
    timelines: list[TimelineView] = field(default_factory=list)
    flies: list[FlyView] = field(default_factory=list)  # fly: one; fly --org: one per app
    hidden_apps: int = 0


class HtmlFormatter(Formatter):
    """``scan --format html`` behind the common formatter interface (gate: ``fail_on``)."""

    name = "html"

    def render(self, report: Report) -> str:
        return render(ScanOutcome(report), Gate(report.fail_on))


# --- the page of each outcome --------------------------------------------------------------


def render(outcome: Outcome, gate: Gate, now: datetime | None = None) -> str:
    """The whole HTML document for ``outcome``."""
    page = build_page(outcome, gate, now or datetime.now(UTC))
    css, script = _asset("report.css"), _asset("report.js")
    return _template().render(page=page, css=css, script=script, csp=csp(script, css)) + "\n"


def build_page(outcome: Outcome, gate: Gate, now: datetime) -> Page:
    budget = Budget()
    if isinstance(outcome, ScanOutcome):
        report = outcome.report
        page = _page(outcome, gate, now, report.visible(report.findings), "findings", report.reveal)
        page.suppressed = sorted(report.suppressed_reasons().items())
        page.sections = [_section("Images", _visible_images(report), report.reveal, budget)]
        page.title = "scan of " + ", ".join(clean(i.name, 200) for i in report.images)
    elif isinstance(outcome, Diff):
        page = _diff_page(outcome, gate, now, budget)
    elif isinstance(outcome, Timeline):
        page = _timeline_page(outcome, gate, now, budget)
    elif isinstance(outcome, TimelineSet):
        page = _timelines_page(outcome, gate, now, budget)
    elif isinstance(outcome, FlyScan):
        page = _fly_page(outcome, gate, now, budget)
    elif isinstance(outcome, OrgScan):
        page = _fly_org_page(outcome, gate, now, budget)
    else:
        raise ValueError(f"no HTML page for a {outcome.kind!r} outcome")
    page.omitted = budget.omitted
    return page


def _page(
    outcome: Outcome,
    gate: Gate,
    now: datetime,
    headline: list[Finding],
    counts_label: str,
    reveal: bool,
) -> Page:
    code = outcome.exit_code(replace(gate, exit_zero=False))
    if code == EXIT_INCOMPLETE:
        verdict, verdict_class = "INCOMPLETE: parts could not be scanned (see below)", "bad"
    elif code == EXIT_CLEAN:
        verdict, verdict_class = f"nothing gates ({gate.describe()})", "good"
    else:
        verdict, verdict_class = f"findings gate ({gate.describe()})", "bad"
    digests = sorted({i.rules_digest for i in outcome.images if i.rules_digest})
    return Page(
        kind=outcome.kind,
        title="",
        generated=now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=__version__,
        rules_digests=digests,
        gate=gate.describe(),
        verdict=verdict,
        verdict_class=verdict_class,
        complete=outcome.complete,
        counts=severity_counts(headline),
        counts_label=counts_label,
        total=len(headline),
        recoverable=sum(1 for f in headline if f.status.recoverable),
        reveal=reveal,
        suppressed=[],
        problems=[problem_view(p) for p in outcome.problems[:MAX_PROBLEMS]],
        hidden_problems=max(len(outcome.problems) - MAX_PROBLEMS, 0),
        sections=[],
        omitted=0,
        filters={
            "severity": SEVERITIES,
            "category": CATEGORIES,
            "status": [s for s in STATUSES if s != "unknown"],
        },
    )


def _section(
    title: str,
    images: list[ImageResult],
    reveal: bool,
    budget: Budget,
    prefix: str = "img",
    expanded: bool = True,
) -> Section:
    """At most MAX_IMAGES images drawn (shared by the whole page), the rest counted."""
    room = max(MAX_IMAGES - budget.images, 0)
    shown = images[:room]
    budget.images += len(shown)
    views = [image_view(i, reveal, budget, f"{prefix}-{n}") for n, i in enumerate(shown)]
    return Section(title, views, expanded, len(images) - len(shown))


def _diff_page(diff: Diff, gate: Gate, now: datetime, budget: Budget) -> Page:
    reveal = diff.new.reveal
    new_findings = [f for e in diff.added for f in e.findings]
    page = _page(diff, gate, now, new_findings, "new findings", reveal)
    page.suppressed = sorted(diff.new.suppressed_reasons().items())
    old = ", ".join(clean(i.name, 200) for i in diff.old.images)
    new = ", ".join(clean(i.name, 200) for i in diff.new.images)
    page.title = f"diff {old} → {new}"
    gating = {e.fingerprint for e in diff.failing(gate)}

    def cards(entries: list[DiffEntry]) -> list[Card]:
        shown = budget.take([e.finding for e in entries])
        return [
            Card(row(f, reveal), len(e.findings), e.fingerprint in gating)
            for f, e in zip(shown, entries, strict=False)
        ]

    page.diff = DiffView(
        old,
        new,
        [
            ("new", "New in NEW", cards(diff.added)),
            ("fixed", "Fixed since OLD", cards(diff.fixed)),
            ("unchanged", "Unchanged", cards(diff.unchanged)),
        ],
    )
    page.sections = [
        _section("NEW: " + new, diff.new.images, reveal, budget, "new"),
        _section("OLD: " + old, diff.old.images, reveal, budget, "old", expanded=False),
    ]
    return page


def _timeline_page(timeline: Timeline, gate: Gate, now: datetime, budget: Budget) -> Page:
    reveal = timeline.reveal
    page = _page(timeline, gate, now, timeline.newest_findings, "in the newest release", reveal)
    page.title = "timeline of " + clean(timeline.repository, 300)
    page.timelines = [_timeline_view(timeline)]
    releases = timeline.releases
    newest = [r.result for r in releases[-1:]]
    older = [r.result for r in reversed(releases[:-1])]
    page.sections = [
        _section("Newest release", newest, reveal, budget, "newest"),
        _section("Older releases, newest first", older, reveal, budget, "rel", expanded=False),
    ]
    return page


def _timelines_page(many: TimelineSet, gate: Gate, now: datetime, budget: Budget) -> Page:
    """``timeline --from-file``: one grid per repository, then each newest release."""
    reveal = many.reveal
    headline = [f for t in many.timelines for f in t.newest_findings]
    page = _page(many, gate, now, headline, "in the newest releases", reveal)
    page.title = f"timelines of {len(many.timelines)} repositories"
    page.timelines = [_timeline_view(t) for t in many.timelines]
    newest = [t.releases[-1].result for t in many.timelines if t.releases]
    page.sections = [
        _section("Newest release of each repository", newest, reveal, budget, "newest")
    ]
    return page


def _timeline_view(timeline: Timeline) -> TimelineView:
    reveal = timeline.reveal
    releases = timeline.releases
    shown_from = max(len(releases) - MAX_GRID_RELEASES, 0)
    grid = []
    for e in timeline.exposures[:MAX_GRID_ROWS]:
        present = set(e.releases)
        cells = []
        for i in range(shown_from, len(releases)):
            if i not in present:
                cells.append("")
            elif e.first == e.last == i:
                cells.append("only")
            elif i == e.first:
                cells.append("first")
            elif i == e.last:
                cells.append("last")
            else:
                cells.append("in")
        removed = timeline.removed_in(e)
        grid.append(
            GridRow(
                row=row(e.finding, reveal),
                cells=cells,
                in_newest=timeline.in_newest(e),
                removed_in=clean(removed.release.tag, 130) if removed else "",
                first=clean(releases[e.first].release.tag, 130),
                last=clean(releases[e.last].release.tag, 130),
                uncertain=timeline.uncertain(e),
                continuous=e.continuous,
            )
        )
    return TimelineView(
        repository=clean(timeline.repository, 300),
        releases=[
            ReleaseView(
                tag=clean(r.release.tag, 130),
                aliases=clean(", ".join(r.release.aliases), 300),
                created=clean(r.release.created or "", 40),
                counts=severity_counts(r.result.findings),
                complete=r.complete,
            )
            for r in releases[shown_from:]
        ],
        grid=grid,
        hidden_releases=shown_from,
        hidden_rows=max(len(timeline.exposures) - MAX_GRID_ROWS, 0),
    )


def _visible_images(report: Report) -> list[ImageResult]:
    """The images with their suppressed noise findings left out (unless shown)."""
    return [replace(i, findings=report.visible(i.findings)) for i in report.images]


def _fly_page(scan: FlyScan, gate: Gate, now: datetime, budget: Budget) -> Page:
    report = scan.report
    page = _page(scan, gate, now, report.visible(report.findings), "findings", report.reveal)
    page.suppressed = sorted(report.suppressed_reasons().items())
    page.title = f"Fly.io app {clean(scan.app, 100)}"
    anchors = {i.name: f"img-{n}" for n, i in enumerate(report.images)}
    page.flies = [_fly_view(scan, anchors)]
    page.sections = [_section("Images", _visible_images(report), report.reveal, budget)]
    return page


def _fly_org_page(scan: OrgScan, gate: Gate, now: datetime, budget: Budget) -> Page:
    report = scan.report
    page = _page(scan, gate, now, report.visible(report.findings), "findings", report.reveal)
    page.suppressed = sorted(report.suppressed_reasons().items())
    page.title = f"Fly.io organization {clean(scan.org, 100)}"
    anchors = {i.name: f"img-{n}" for n, i in enumerate(report.images)}
    for section in scan.apps[:MAX_APPS]:
        view = _fly_view(section.scan, anchors)
        if section.error:
            view.note = "error: " + clean(section.error, 500)
        elif not section.scan.machines:
            view.note = "no Machines"
        page.flies.append(view)
    page.hidden_apps = max(len(scan.apps) - MAX_APPS, 0)
    page.sections = [_section("Images", _visible_images(report), report.reveal, budget)]
    return page


def _fly_view(scan: FlyScan, anchors: dict[str, str]) -> FlyView:
    """What one app runs where: its images, Machines, regions and process groups."""
    deployments = []
    for d in scan.deployed[:MAX_DEPLOYMENTS]:
        result = scan.results.get(d.ref)
        deployments.append(
            DeploymentView(
                image=clean(d.display, 500),
                digest=clean(d.digest or "", 140),
                tags=clean(", ".join(d.tags), 300),
                process_groups=clean(", ".join(d.process_groups), 300),
                regions=clean(", ".join(d.regions), 300),
                machines=[
                    MachineView(
                        clean(m.id, 64),
                        clean(m.name, 100),
                        clean(m.region, 20),
                        clean(m.process_group, 100),
                        clean(m.state, 40),
                    )
                    for m in d.machines[:MAX_MACHINES]
                ],
                machine_count=len(d.machines),
                counts=severity_counts(result.findings if result else []),
                complete=result is not None and not result.problems,
                anchor=anchors.get(result.name, "") if result else "",
            )
        )
    return FlyView(
        clean(scan.app, 100),
        clean(scan.api_url, 200),
        len(scan.machines),
        deployments,
        max(len(scan.deployed) - MAX_DEPLOYMENTS, 0),
    )


# --- template, assets and policy -----------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # only HTML reports need it, and it is slow to import

    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATES, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _template() -> jinja2.Template:
    return _environment().get_template("report.html.j2")


@cache
def _asset(name: str) -> str:
    return (resources.files(TEMPLATES) / "templates" / name).read_text(encoding="utf-8")


def sha256_source(text: str) -> str:
    """A CSP hash source for an inline element's exact content."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def csp(script: str, css: str) -> str:
    """Only our script and stylesheet (by hash); nothing loaded from anywhere."""
    return (
        "default-src 'none'; "
        f"script-src {sha256_source(script)}; "
        f"style-src {sha256_source(css)}; "
        "img-src 'none'; font-src 'none'; connect-src 'none'; media-src 'none'; "
        "object-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )

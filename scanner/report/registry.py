"""Every renderer, keyed by (outcome kind, format): the one place a format is chosen.

A renderer takes the outcome and a :class:`RenderContext` (the gate and whether to
color) and returns the whole text. :func:`formats` lists a command's ``--format``
choices; :func:`render` renders. A duplicate key fails loudly at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from scanner.diff import Diff
from scanner.fly import FlyScan
from scanner.fly.org import OrgScan
from scanner.gate import Gate
from scanner.outcome import Outcome, ScanOutcome
from scanner.report import diff as diff_formats
from scanner.report import fly as fly_formats
from scanner.report import fly_org as fly_org_formats
from scanner.report import html
from scanner.report import timeline as timeline_formats
from scanner.report.formats import FORMATTERS
from scanner.timeline import Timeline
from scanner.timelines import TimelineSet


@dataclass(frozen=True)
class RenderContext:
    gate: Gate
    color: bool = False


Renderer = Callable[[Any, RenderContext], str]

KINDS = ("scan", "diff", "timeline", "timelines", "fly", "fly-org")


def _scan(name: str) -> Renderer:
    def render(outcome: ScanOutcome, ctx: RenderContext) -> str:
        return FORMATTERS[name](color=ctx.color).render(outcome.report)

    return render


def _diff_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    def table(d: Diff, ctx: RenderContext) -> str:
        return diff_formats.render_table(d, ctx.gate, ctx.color)

    def json_(d: Diff, ctx: RenderContext) -> str:
        return diff_formats.render_json(d, ctx.gate)

    def markdown(d: Diff, ctx: RenderContext) -> str:
        return diff_formats.render_markdown(d, ctx.gate)

    def sarif(d: Diff, ctx: RenderContext) -> str:
        return diff_formats.render_sarif(d)

    for name, fn in (("table", table), ("json", json_), ("markdown", markdown), ("sarif", sarif)):
        yield ("diff", name), fn


def _timeline_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    def table(t: Timeline, ctx: RenderContext) -> str:
        return timeline_formats.render_table(t, ctx.gate, ctx.color)

    def json_(t: Timeline, ctx: RenderContext) -> str:
        return timeline_formats.render_json(t, ctx.gate)

    def markdown(t: Timeline, ctx: RenderContext) -> str:
        return timeline_formats.render_markdown(t, ctx.gate)

    for name, fn in (("table", table), ("json", json_), ("markdown", markdown)):
        yield ("timeline", name), fn


def _timelines_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    """``timeline --from-file``: the same formats as ``timeline``."""

    def table(t: TimelineSet, ctx: RenderContext) -> str:
        return timeline_formats.render_many_table(t, ctx.gate, ctx.color)

    def json_(t: TimelineSet, ctx: RenderContext) -> str:
        return timeline_formats.render_many_json(t, ctx.gate)

    def markdown(t: TimelineSet, ctx: RenderContext) -> str:
        return timeline_formats.render_many_markdown(t, ctx.gate)

    for name, fn in (("table", table), ("json", json_), ("markdown", markdown)):
        yield ("timelines", name), fn


def _fly_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    def table(f: FlyScan, ctx: RenderContext) -> str:
        return fly_formats.render_table(f, ctx.color)

    def json_(f: FlyScan, ctx: RenderContext) -> str:
        return fly_formats.render_json(f)

    def markdown(f: FlyScan, ctx: RenderContext) -> str:
        return fly_formats.render_markdown(f)

    def sarif(f: FlyScan, ctx: RenderContext) -> str:
        return fly_formats.render_sarif(f)

    for name, fn in (("table", table), ("json", json_), ("markdown", markdown), ("sarif", sarif)):
        yield ("fly", name), fn


def _fly_org_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    """``fly --org``: the same formats as ``fly``."""

    def table(f: OrgScan, ctx: RenderContext) -> str:
        return fly_org_formats.render_table(f, ctx.color)

    def json_(f: OrgScan, ctx: RenderContext) -> str:
        return fly_org_formats.render_json(f)

    def markdown(f: OrgScan, ctx: RenderContext) -> str:
        return fly_org_formats.render_markdown(f)

    def sarif(f: OrgScan, ctx: RenderContext) -> str:
        return fly_org_formats.render_sarif(f)

    for name, fn in (("table", table), ("json", json_), ("markdown", markdown), ("sarif", sarif)):
        yield ("fly-org", name), fn


def _html_entries() -> Iterable[tuple[tuple[str, str], Renderer]]:
    """One page renderer for every kind (for ``scan`` too: it shows the whole gate,
    ``--fail-on-category`` included, which :class:`HtmlFormatter` cannot know)."""

    def page(outcome: Outcome, ctx: RenderContext) -> str:
        return html.render(outcome, ctx.gate)

    for kind in KINDS:
        yield (kind, "html"), page


def _table(entries: Iterable[tuple[tuple[str, str], Renderer]]) -> dict[tuple[str, str], Renderer]:
    table: dict[tuple[str, str], Renderer] = {}
    for key, fn in entries:
        if key in table:
            raise RuntimeError(f"duplicate renderer for {key!r}")
        table[key] = fn
    return table


RENDERERS: dict[tuple[str, str], Renderer] = _table(
    [
        *((("scan", name), _scan(name)) for name in FORMATTERS if name != "html"),
        *_diff_entries(),
        *_timeline_entries(),
        *_timelines_entries(),
        *_fly_entries(),
        *_fly_org_entries(),
        *_html_entries(),
    ]
)


def formats(kind: str) -> tuple[str, ...]:
    """The ``--format`` choices of a command (the outcome kind it produces)."""
    return tuple(name for k, name in RENDERERS if k == kind)


def render(outcome: Outcome, fmt: str, gate: Gate, color: bool = False) -> str:
    """The outcome in format ``fmt`` (ValueError naming the choices when unknown)."""
    renderer = RENDERERS.get((outcome.kind, fmt))
    if renderer is None:
        choices = ", ".join(formats(outcome.kind))
        raise ValueError(f"unknown {outcome.kind} format {fmt!r} (choose from {choices})")
    return renderer(outcome, RenderContext(gate, color))

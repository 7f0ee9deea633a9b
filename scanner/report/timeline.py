"""Renderers of a ``timeline`` outcome, and of several (``timeline --from-file``):
table, json, markdown (html: :mod:`.html`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from scanner.findings import Finding, Severity
from scanner.gate import Gate
from scanner.report.interface import tool_info
from scanner.report.markdown import code, escape, severity_cell
from scanner.report.terminal import safe
from scanner.timeline import TIMELINE_SCHEMA_VERSION, Exposure, Timeline
from scanner.timelines import TimelineSet


def _counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
    for f in findings:
        if not f.suppressed:  # noise: kept in scan reports, not in the history of leaks
            counts[f.severity.label] += 1
    return counts


def _where(f: Finding) -> str:
    loc = f.location
    text = loc.display_path() or loc.field or loc.kind.value
    if loc.line:
        text += f":{loc.line}"
    return text


def exposure_dict(timeline: Timeline, e: Exposure) -> dict[str, Any]:
    first = timeline.releases[e.first].release
    last = timeline.releases[e.last].release
    removed = timeline.removed_in(e)
    return {
        "fingerprint": e.fingerprint,
        "rule_id": e.finding.rule_id,
        "title": e.finding.title,
        "severity": e.finding.severity.label,
        "category": e.finding.category.value,
        "where": _where(e.finding),
        "match": e.finding.match,
        "first_release": first.tag,
        "first_created": first.created,
        "last_release": last.tag,
        "last_created": last.created,
        "in_newest": timeline.in_newest(e),
        "removed_in": removed.release.tag if removed else None,
        "removed_created": removed.release.created if removed else None,
        "releases": [timeline.releases[i].release.tag for i in e.releases],
        "continuous": e.continuous,
        "uncertain": timeline.uncertain(e),
        "finding": e.finding.to_dict(reveal=timeline.reveal),
    }


def render_json(timeline: Timeline, gate: Gate) -> str:
    doc = {
        "schema_version": TIMELINE_SCHEMA_VERSION,
        "tool": tool_info(),
        **timeline_doc(timeline, gate),
    }
    return json.dumps(doc, indent=2) + "\n"


def timeline_doc(timeline: Timeline, gate: Gate) -> dict[str, Any]:
    """One repository's timeline as the JSON report holds it."""
    return {
        "repository": timeline.repository,
        "match": list(timeline.patterns),
        "fail_on": gate.fail_on.label,
        "complete": timeline.complete,
        "newest": timeline.newest.release.tag if timeline.newest else None,
        "releases": [
            {
                **r.release.to_dict(),
                "findings": _counts(r.result.findings),
                "complete": r.complete,
                "problems": [p.to_dict() for p in r.result.problems],
            }
            for r in timeline.releases
        ],
        "exposures": [exposure_dict(timeline, e) for e in timeline.exposures],
        "problems": [p.to_dict() for p in timeline.list_problems],
        "skipped_tags": timeline.skipped,
    }


def render_many_json(many: TimelineSet, gate: Gate) -> str:
    doc = {
        "schema_version": TIMELINE_SCHEMA_VERSION,
        "tool": tool_info(),
        "fail_on": gate.fail_on.label,
        "complete": many.complete,
        "timelines": [timeline_doc(t, gate) for t in many.timelines],
    }
    return json.dumps(doc, indent=2) + "\n"


def render_many_table(many: TimelineSet, gate: Gate, color: bool = False) -> str:
    """Each repository's table, one after another."""
    return "\n".join(render_table(t, gate, color) for t in many.timelines)


def render_many_markdown(many: TimelineSet, gate: Gate) -> str:
    incomplete = sum(1 for t in many.timelines if not t.complete)
    head = [
        f"# layerleak timelines of {len(many.timelines)} repositories",
        "",
        f"{incomplete} incomplete" if incomplete else "every repository complete",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(render_markdown(t, gate) for t in many.timelines)


def render_table(timeline: Timeline, gate: Gate, color: bool = False) -> str:
    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    match = f" matching {', '.join(timeline.patterns)}" if timeline.patterns else ""
    lines = [
        style(f"Timeline of {safe(timeline.repository)}", bold=True)
        + f": {len(timeline.releases)} release(s){match}, oldest first"
    ]
    for n, r in enumerate(timeline.releases, 1):
        counts = ", ".join(f"{v} {k}" for k, v in _counts(r.result.findings).items() if v)
        alias = f" (= {', '.join(r.release.aliases)})" if r.release.aliases else ""
        state = "" if r.complete else style("  [incomplete]", fg="red")
        lines.append(
            safe(
                f"  {n:>3}  {r.release.tag}{alias}  {r.release.created or '(no creation time)'}  "
                f"{counts or 'no findings'}"
            )
            + state
        )
    lines.append("")
    lines.append(style(f"Exposures ({len(timeline.exposures)})", bold=True))
    for e in timeline.exposures:
        d = exposure_dict(timeline, e)
        evidence = e.finding.secret if (timeline.reveal and e.finding.secret) else e.finding.match
        now = (
            style("STILL IN NEWEST", fg="red", bold=True)
            if d["in_newest"]
            else f"removed in {d['removed_in']}"
        )
        gaps = "" if e.continuous else f" (in {len(e.releases)} releases, with gaps)"
        unsure = " (uncertain: a neighbouring scan is incomplete)" if d["uncertain"] else ""
        lines.append(
            safe(
                f"  {e.finding.severity.label.upper():<8} {e.finding.rule_id:<28} {d['where']}  "
                f"{evidence}"
            )
        )
        lines.append(
            safe(
                f"           first {d['first_release']} ({d['first_created'] or '?'}), "
                f"last {d['last_release']} ({d['last_created'] or '?'}); "
            )
            + now
            + safe(f"{gaps}{unsure}")
        )
    for p in timeline.all_problems():
        lines.append(style("  ERROR ", fg="red", bold=True) + safe(f"{p.image}: {p.message}"))
    return "\n".join(lines) + "\n"


def render_markdown(timeline: Timeline, gate: Gate) -> str:
    out = [
        f"## layerleak timeline {escape(timeline.repository)}",
        "",
        f"{len(timeline.releases)} release(s)"
        + (
            f" matching {', '.join(code(p, table=False) for p in timeline.patterns)}"
            if timeline.patterns
            else ""
        )
        + (", scan **incomplete**" if not timeline.complete else ""),
        "",
        "| # | Release | Created | Findings |",
        "| ---: | --- | --- | --- |",
    ]
    for n, r in enumerate(timeline.releases, 1):
        counts = ", ".join(f"{v} {k}" for k, v in _counts(r.result.findings).items() if v)
        out.append(
            f"| {n} | {code(r.release.tag)} | {escape(r.release.created or '?')} | "
            f"{counts or 'none'}{'' if r.complete else ' (incomplete)'} |"
        )
    out += [
        "",
        "### Exposures",
        "",
        "| Severity | Rule | Location | First release | Last release | In newest |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in timeline.exposures:
        d = exposure_dict(timeline, e)
        newest = "**yes**" if d["in_newest"] else f"no (removed in {code(d['removed_in'])})"
        out.append(
            f"| {severity_cell(e.finding.severity)} | {code(e.finding.rule_id)} | "
            f"{code(d['where'], 100)} | {code(d['first_release'])} "
            f"{escape(d['first_created'] or '')} | {code(d['last_release'])} "
            f"{escape(d['last_created'] or '')} | {newest} |"
        )
    problems = timeline.all_problems()
    if problems:
        out += ["", "### ⚠️ Errors", ""]
        out += [f"- {escape(p.image)}: {escape(p.message)}" for p in problems]
    return "\n".join(out) + "\n"

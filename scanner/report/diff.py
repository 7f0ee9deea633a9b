"""Renderers of a ``diff`` outcome: table, json, markdown, sarif (html: :mod:`.html`)."""

from __future__ import annotations

import json
from typing import Any

import click

from scanner.diff import DIFF_SCHEMA_VERSION, Diff, DiffEntry, severity_counts
from scanner.gate import Gate
from scanner.report.interface import summary, tool_info
from scanner.report.markdown import findings_table, problem_lines, recoverable_callout
from scanner.report.sarif import sarif_log
from scanner.report.terminal import safe


def render_json(diff: Diff, gate: Gate) -> str:
    reveal = diff.new.reveal
    doc = {
        "schema_version": DIFF_SCHEMA_VERSION,
        "tool": tool_info(),
        "fail_on": gate.fail_on.label,
        "fail_on_category": sorted(c.value for c in gate.categories),
        "complete": diff.complete,
        "summary": {
            "new": severity_counts(diff.added),
            "fixed": severity_counts(diff.fixed),
            "unchanged": severity_counts(diff.unchanged),
            "gating": len(diff.failing(gate)),
        },
        "old": {
            "images": [i.name for i in diff.old.images],
            "summary": summary(diff.old),
            "problems": [p.to_dict() for p in diff.old.problems],
        },
        "new": {
            "images": [i.name for i in diff.new.images],
            "summary": summary(diff.new),
            "problems": [p.to_dict() for p in diff.new.problems],
        },
        "added": [e.to_dict(reveal) for e in diff.added],
        "fixed": [e.to_dict(reveal) for e in diff.fixed],
        "unchanged": [e.to_dict(reveal) for e in diff.unchanged],
    }
    return json.dumps(doc, indent=2) + "\n"


def render_sarif(diff: Diff) -> str:
    """NEW's findings with ``baselineState`` new/unchanged, and the fixed ones as absent."""
    log = sarif_log(diff.new, baseline=diff.baseline_states(), absent=diff.fixed_findings)
    return json.dumps(log, indent=2) + "\n"


def render_markdown(diff: Diff, gate: Gate) -> str:
    reveal = diff.new.reveal
    failing = diff.failing(gate)
    if not diff.complete:
        verdict = "⚠️ **incomplete**: a scan of either release had errors"
    elif failing:
        verdict = f"❌ **{len(failing)} new finding(s) gate** ({gate.describe()})"
    else:
        verdict = f"✅ nothing new gates ({gate.describe()})"
    old_names = ", ".join(i.name for i in diff.old.images)
    new_names = ", ".join(i.name for i in diff.new.images)
    out = [
        "## layerleak diff",
        "",
        f"`{old_names}` → `{new_names}`",
        "",
        f"{verdict} — **{len(diff.added)} new**, {len(diff.fixed)} fixed, "
        f"{len(diff.unchanged)} unchanged",
        "",
    ]

    def section(title: str, entries: list[DiffEntry]) -> list[str]:
        if not entries:
            return [f"### {title}: none", ""]
        reps = [e.finding for e in entries]
        return [
            f"### {title} ({len(entries)})",
            "",
            *findings_table(reps, reveal, layer_column=True),
            "",
        ]

    out += section("New", diff.added)
    callout = recoverable_callout([e.finding for e in diff.added], reveal)
    if callout:
        out += [*callout, ""]
    out += section("Fixed", diff.fixed)
    if diff.unchanged:
        out += [
            f"<details><summary>Unchanged ({len(diff.unchanged)})</summary>",
            "",
            *findings_table([e.finding for e in diff.unchanged], reveal, layer_column=True),
            "",
            "</details>",
            "",
        ]
    out += problem_lines(diff.old) + problem_lines(diff.new)
    return "\n".join(out) + "\n"


def render_table(diff: Diff, gate: Gate, color: bool = False) -> str:
    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    reveal = diff.new.reveal
    old_names = safe(", ".join(i.name for i in diff.old.images))
    new_names = safe(", ".join(i.name for i in diff.new.images))
    lines = [style(f"Diff {old_names} -> {new_names}", bold=True)]
    marks = {"new": ("+", "red"), "fixed": ("-", "green"), "unchanged": ("=", "white")}
    gating = {e.fingerprint for e in diff.failing(gate)}
    for title, entries in (("New", diff.added), ("Fixed", diff.fixed)):
        lines.append(style(f"  {title} ({len(entries)})", bold=True))
        for e in entries:
            lines.append(_entry_line(e, marks, reveal, style, e.fingerprint in gating))
    lines.append(style(f"  Unchanged ({len(diff.unchanged)})", dim=True))
    for e in diff.unchanged:
        lines.append(style(_entry_line(e, marks, reveal, lambda t, **k: t, False), dim=True))
    for report in (diff.old, diff.new):
        for p in report.problems:
            lines.append(style("  ERROR ", fg="red", bold=True) + safe(f"{p.image}: {p.message}"))
    lines.append(
        f"{len(diff.added)} new, {len(diff.fixed)} fixed, {len(diff.unchanged)} unchanged; "
        f"{len(gating)} new at or above the gate ({gate.describe()})"
        + ("" if diff.complete else style("; INCOMPLETE", fg="red"))
    )
    return "\n".join(lines) + "\n"


def _entry_line(
    e: DiffEntry, marks: dict[str, tuple[str, str]], reveal: bool, style: Any, gates: bool
) -> str:
    f = e.finding
    mark, color = marks[e.change]
    loc = f.location
    where = loc.display_path() or loc.field or loc.kind.value
    if loc.line:
        where += f":{loc.line}"
    if loc.layer_index is not None:
        where += f" (layer {loc.layer_index})"
    if f.status.recoverable:
        where += f" [{f.status.describe()}]"
    evidence = f.secret if (reveal and f.secret) else f.match
    more = f" x{len(e.findings)}" if len(e.findings) > 1 else ""
    flag = " GATES" if gates else ""
    return (
        "    "
        + style(f"{mark} {f.severity.label.upper():<8}", fg=color, bold=True)
        + safe(f" {f.rule_id:<28} {where}  {evidence}{more}{flag}")
    )

"""Release-to-release diff: what is new in NEW, what was fixed since OLD, what stayed.

Findings are matched by :attr:`Finding.fingerprint`, which is built from what a finding
is (rule, path or config field, secret hash) and not from where it sits in this build,
so a rebuild that moves a file to another layer does not make it "new". A fingerprint
can occur more than once in one report (the same file in several platforms or
layers); the diff works on fingerprints and keeps every occurrence.

Gating: ``layerleak diff`` exits 1 only when a *new* finding reaches ``--fail-on``
(see :meth:`scanner.gate.Gate.diff_exit_code`); incomplete scans of either side exit 3.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scanner.findings import Finding, Severity
from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.report.interface import summary, tool_info
from scanner.report.terminal import safe
from scanner.results import Report

Change = Literal["new", "fixed", "unchanged"]
DIFF_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DiffEntry:
    """One fingerprint and its occurrences (in NEW for new/unchanged, in OLD for fixed)."""

    fingerprint: str
    change: Change
    findings: tuple[Finding, ...]

    @property
    def finding(self) -> Finding:
        """The representative occurrence: the most severe, then the first."""
        return max(self.findings, key=lambda f: f.severity)

    @property
    def severity(self) -> Severity:
        return self.finding.severity

    def to_dict(self, reveal: bool = False) -> dict[str, Any]:
        f = self.finding
        return {
            "fingerprint": self.fingerprint,
            "change": self.change,
            "rule_id": f.rule_id,
            "title": f.title,
            "severity": f.severity.label,
            "category": f.category.value,
            "occurrences": [o.to_dict(reveal=reveal) for o in self.findings],
        }


@dataclass
class Diff:
    old: Report
    new: Report
    added: list[DiffEntry] = field(default_factory=list)
    fixed: list[DiffEntry] = field(default_factory=list)
    unchanged: list[DiffEntry] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.old.complete and self.new.complete

    @property
    def new_findings(self) -> list[Finding]:
        return [f for e in self.added for f in e.findings]

    @property
    def fixed_findings(self) -> list[Finding]:
        return [f for e in self.fixed for f in e.findings]

    @property
    def unchanged_findings(self) -> list[Finding]:
        return [f for e in self.unchanged for f in e.findings]

    def baseline_states(self) -> dict[str, str]:
        """fingerprint -> SARIF ``baselineState`` for the findings of NEW."""
        states = {e.fingerprint: "new" for e in self.added}
        states.update({e.fingerprint: "unchanged" for e in self.unchanged})
        return states

    def failing(self, gate: Gate) -> list[DiffEntry]:
        return [e for e in self.added if any(gate.gates(f) for f in e.findings)]

    def exit_code(self, gate: Gate) -> int:
        return gate.diff_exit_code(self.new_findings, self.complete)


def _group(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.fingerprint, []).append(f)
    return groups


def _order(entries: list[DiffEntry]) -> list[DiffEntry]:
    return sorted(entries, key=lambda e: (-e.severity, e.finding.rule_id, e.fingerprint))


def diff_reports(old: Report, new: Report) -> Diff:
    """Match OLD's and NEW's findings by fingerprint."""
    old_groups = _group(old.findings)
    new_groups = _group(new.findings)
    result = Diff(old=old, new=new)
    for fp, found in new_groups.items():
        change: Change = "unchanged" if fp in old_groups else "new"
        entry = DiffEntry(fp, change, tuple(found))
        (result.unchanged if change == "unchanged" else result.added).append(entry)
    for fp, found in old_groups.items():
        if fp not in new_groups:
            result.fixed.append(DiffEntry(fp, "fixed", tuple(found)))
    result.added = _order(result.added)
    result.fixed = _order(result.fixed)
    result.unchanged = _order(result.unchanged)
    return result


# --- rendering ---------------------------------------------------------------------------


def _counts(entries: Sequence[DiffEntry]) -> dict[str, int]:
    return {s.label: sum(1 for e in entries if e.severity == s) for s in sorted(Severity)[::-1]}


def summary_line(diff: Diff, gate: Gate) -> str:
    """The one-line summary on stderr."""

    def counts(entries: Sequence[DiffEntry]) -> str:
        return " ".join(f"{k}={v}" for k, v in _counts(entries).items() if v) or "none"

    state = "complete" if diff.complete else "INCOMPLETE"
    errors = len(diff.old.problems) + len(diff.new.problems)
    return (
        f"layerleak diff: new {len(diff.added)} ({counts(diff.added)}); fixed "
        f"{len(diff.fixed)}; unchanged {len(diff.unchanged)}; gating "
        f"{len(diff.failing(gate))} ({gate.describe()}); suppressed="
        f"{sum(diff.new.suppressed.values())}; errors={errors} ({state})" + summary_note(diff.new)
    )


def render_json(diff: Diff, gate: Gate) -> str:
    reveal = diff.new.reveal
    doc = {
        "schema_version": DIFF_SCHEMA_VERSION,
        "tool": tool_info(),
        "fail_on": gate.fail_on.label,
        "fail_on_category": sorted(c.value for c in gate.categories),
        "complete": diff.complete,
        "summary": {
            "new": _counts(diff.added),
            "fixed": _counts(diff.fixed),
            "unchanged": _counts(diff.unchanged),
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
    from scanner.report.sarif import sarif_log

    log = sarif_log(diff.new, baseline=diff.baseline_states(), absent=diff.fixed_findings)
    return json.dumps(log, indent=2) + "\n"


def render_markdown(diff: Diff, gate: Gate) -> str:
    from scanner.report.markdown import findings_table, problem_lines, recoverable_callout

    reveal = diff.new.reveal
    failing = diff.failing(gate)
    if not diff.complete:
        verdict = "⚠️ **incomplete**: a scan of either release had errors"
    elif failing:
        verdict = f"❌ **{len(failing)} new finding(s) gate** ({gate.describe()})"
    else:
        verdict = f"✅ nothing new gates ({gate.describe()})"
    old_names = safe(", ".join(i.name for i in diff.old.images))
    new_names = safe(", ".join(i.name for i in diff.new.images))
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
    import click

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


DIFF_FORMATS = ("table", "json", "markdown", "sarif")


def render(diff: Diff, fmt: str, gate: Gate, color: bool = False) -> str:
    if fmt == "json":
        return render_json(diff, gate)
    if fmt == "sarif":
        return render_sarif(diff)
    if fmt == "markdown":
        return render_markdown(diff, gate)
    if fmt == "table":
        return render_table(diff, gate, color)
    raise ValueError(f"unknown diff format {fmt!r} (choose from {', '.join(DIFF_FORMATS)})")

"""Release-to-release diff: what is new in NEW, what was fixed since OLD, what stayed.

Findings are matched by :attr:`Finding.fingerprint`, which is built from what a finding
is (rule, path or config field, secret hash) and not from where it sits in this build,
so a rebuild that moves a file to another layer does not make it "new". A fingerprint
can occur more than once in one report (the same file in several platforms or
layers); the diff works on fingerprints and keeps every occurrence.

Gating: ``layerleak diff`` exits 1 only when a *new* finding reaches ``--fail-on``
(see :meth:`scanner.gate.Gate.diff_exit_code`); incomplete scans of either side exit 3.
Renderers are in :mod:`scanner.report.diff`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from scanner.findings import Finding, Severity
from scanner.gate import Gate
from scanner.ignore import summary_note
from scanner.outcome import Outcome
from scanner.results import ImageResult, Report, ScanProblem

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
class Diff(Outcome):
    old: Report
    new: Report
    added: list[DiffEntry] = field(default_factory=list)
    fixed: list[DiffEntry] = field(default_factory=list)
    unchanged: list[DiffEntry] = field(default_factory=list)
    kind: ClassVar[str] = "diff"

    @property
    def images(self) -> list[ImageResult]:
        return [*self.old.images, *self.new.images]

    @property
    def problems(self) -> list[ScanProblem]:
        return [*self.old.problems, *self.new.problems]

    @property
    def complete(self) -> bool:
        return self.old.complete and self.new.complete

    def problem_lines(self) -> list[str]:
        return [
            f"layerleak: error: {label} {p.image}: {p.message}"
            for label, report in (("OLD", self.old), ("NEW", self.new))
            for p in report.problems
        ]

    def summary_line(self, gate: Gate) -> str:
        """The one-line summary on stderr."""

        def counts(entries: Sequence[DiffEntry]) -> str:
            return " ".join(f"{k}={v}" for k, v in severity_counts(entries).items() if v) or "none"

        state = "complete" if self.complete else "INCOMPLETE"
        errors = len(self.old.problems) + len(self.new.problems)
        return (
            f"layerleak diff: new {len(self.added)} ({counts(self.added)}); fixed "
            f"{len(self.fixed)}; unchanged {len(self.unchanged)}; gating "
            f"{len(self.failing(gate))} ({gate.describe()}); suppressed="
            f"{sum(self.new.suppressed.values())}; errors={errors} ({state})"
            + summary_note(self.new)
        )

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


def severity_counts(entries: Sequence[DiffEntry]) -> dict[str, int]:
    """Entries per severity label, most severe first."""
    return {s.label: sum(1 for e in entries if e.severity == s) for s in sorted(Severity)[::-1]}

"""Gating: which findings fail a run, and the exit code of every command.

Pure functions over results; the CLI parses the options and calls these.

Exit codes (the same for ``scan``, ``diff``, ``fly`` and ``timeline``):

====  ===================================================================
0     nothing that gates was found (or ``--exit-zero``)
1     a finding gates: severity at or above ``--fail-on`` and, with
      ``--fail-on-category``, in one of those categories. ``diff`` gates
      on new findings only, ``timeline`` on findings in the newest release
2     usage error (bad option, unreadable ``--from-file``, missing token)
3     incomplete: some image, platform or layer could not be scanned, or
      the Fly API / registry could not be read. Takes precedence over 1,
      and ``--exit-zero`` does not hide it: an incomplete scan never looks
      clean
====  ===================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scanner.findings import Category, Finding, Severity
from scanner.results import Report

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3

EXIT_CODES: dict[int, str] = {
    EXIT_CLEAN: "nothing at or above --fail-on (or --exit-zero was given)",
    EXIT_FINDINGS: "a finding at or above --fail-on (diff: a new one; timeline: one still in "
    "the newest release), within --fail-on-category when given",
    EXIT_USAGE: "usage error: bad option or argument, unreadable --from-file, missing token",
    EXIT_INCOMPLETE: "incomplete: something could not be scanned or listed (takes precedence "
    "over 1; not hidden by --exit-zero)",
}


def parse_categories(values: str | Iterable[str] | None) -> frozenset[Category]:
    """``--fail-on-category secret,misconfig`` (repeatable, comma-separated) -> categories.

    Empty (or ``all``) means every category. Raises ValueError naming the bad one.
    """
    if values is None:
        return frozenset()
    items = [values] if isinstance(values, str) else list(values)
    found: set[Category] = set()
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "all":
                return frozenset()
            found.add(Category.parse(part))
    return frozenset(found)


@dataclass(frozen=True)
class Gate:
    """What fails a run: ``fail_on`` severity, optionally only in ``categories``."""

    fail_on: Severity = Severity.HIGH
    categories: frozenset[Category] = frozenset()  # empty: every category
    exit_zero: bool = False

    @classmethod
    def from_cli(
        cls,
        fail_on: str | Severity = "high",
        fail_on_category: str | Iterable[str] | None = None,
        exit_zero: bool = False,
    ) -> Gate:
        """Build from option values; raises ValueError with a message fit for the user."""
        severity = fail_on if isinstance(fail_on, Severity) else Severity.parse(fail_on)
        return cls(severity, parse_categories(fail_on_category), exit_zero)

    def gates(self, finding: Finding) -> bool:
        if finding.suppressed or finding.severity < self.fail_on:
            return False
        return not self.categories or finding.category in self.categories

    def failing(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if self.gates(f)]

    def describe(self) -> str:
        text = f"--fail-on {self.fail_on.label}"
        if self.categories:
            text += " --fail-on-category " + ",".join(sorted(c.value for c in self.categories))
        return text

    # --- exit codes -------------------------------------------------------------------

    def exit_code(self, findings: Iterable[Finding], complete: bool) -> int:
        """The one rule: incomplete -> 3, else gating findings -> 1 unless --exit-zero."""
        if not complete:
            return EXIT_INCOMPLETE
        if self.exit_zero:
            return EXIT_CLEAN
        return EXIT_FINDINGS if self.failing(findings) else EXIT_CLEAN

    def scan_exit_code(self, report: Report) -> int:
        return self.exit_code(report.findings, report.complete)

    def diff_exit_code(self, new_findings: Sequence[Finding], complete: bool) -> int:
        """``diff``: only findings new in NEW can fail it."""
        return self.exit_code(new_findings, complete)

    def fly_exit_code(self, report: Report, api_complete: bool = True) -> int:
        return self.exit_code(report.findings, report.complete and api_complete)

    def timeline_exit_code(self, newest_findings: Sequence[Finding], complete: bool) -> int:
        """``timeline``: findings still in the newest release fail it; old ones are history."""
        return self.exit_code(newest_findings, complete)


def scan_exit_code(
    report: Report,
    fail_on_category: str | Iterable[str] | None = None,
    exit_zero: bool = False,
) -> int:
    """Exit code of ``scan`` using ``report.fail_on`` as the severity threshold."""
    return Gate(report.fail_on, parse_categories(fail_on_category), exit_zero).scan_exit_code(
        report
    )


def exit_code_table() -> str:
    """The exit-code table as Markdown, for the README and ``--help`` epilogs."""
    rows = ["| Code | Meaning |", "| ---: | --- |"]
    rows += [f"| {code} | {text} |" for code, text in EXIT_CODES.items()]
    return "\n".join(rows) + "\n"

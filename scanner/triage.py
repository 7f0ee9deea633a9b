"""Triage: what happens to a report between the scan and the renderer, in this order.

1. the ignore file(s) suppress known findings (counted per reason);
2. the baseline suppresses findings recorded before (counted as "in baseline");
3. ``--verify`` asks providers whether the remaining secrets are live.

``--verify`` needs the raw secrets, so a triage with ``verify`` scans with
``reveal=True`` (:meth:`Triage.scan_reveal`) and drops them again after verifying
unless the user asked for ``--reveal``. Pure policy: no Click, no printing; the
warnings come back as strings for the CLI to print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.baseline import Baseline
from scanner.baseline import apply as apply_baseline
from scanner.baseline import load as load_baseline
from scanner.ignore import IgnoreList
from scanner.ignore import apply as apply_ignores
from scanner.ignore import default_files as default_ignore_files
from scanner.ignore import load as load_ignores
from scanner.results import Report


@dataclass(frozen=True)
class Triage:
    ignores: IgnoreList
    baseline: Baseline | None
    verify: bool
    show_suppressed: bool = False  # list suppressed noise in the table, Markdown and HTML

    @classmethod
    def load(
        cls,
        ignore_files: Sequence[Path] = (),
        baseline_file: Path | None = None,
        verify: bool = False,
        show_suppressed: bool = False,
    ) -> Triage:
        """Read the ignore files (default: those in the current directory) and baseline.

        Raises :class:`scanner.errors.ConfigError` (a LayerleakError) on a bad file.
        """
        files = list(ignore_files) or default_ignore_files()
        ignores = load_ignores(files)
        baseline = load_baseline(baseline_file) if baseline_file is not None else None
        return cls(ignores, baseline, verify, show_suppressed)

    def scan_reveal(self, reveal: bool) -> bool:
        """Whether the scan must keep raw secrets: for ``--reveal`` or ``--verify``."""
        return reveal or self.verify

    def apply(self, report: Report, reveal: bool) -> list[str]:
        """Ignore file, then baseline, then verification; returns warnings.

        Secrets kept for ``--verify`` are dropped unless ``reveal``; the report is
        marked with the user's ``reveal``.
        """
        warnings = apply_ignores(report, self.ignores)
        if self.baseline is not None:
            apply_baseline(report, self.baseline)
        if self.verify:
            from scanner.verify import verify_report  # its providers: only for --verify

            verify_report(report, keep_secrets=reveal)
        report.reveal = reveal
        report.show_suppressed = self.show_suppressed
        return warnings

"""``layerleak diff OLD NEW``: what the new release adds, fixes and keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from scanner.commands import (
    deliver,
    finish_and_warn,
    gate_options,
    make_gate,
    make_scanner,
    options_from_cli,
    output_options,
    scan_options,
    triage_and_options,
    triage_options,
    warn_notes,
)
from scanner.diff import diff_reports
from scanner.report.registry import formats
from scanner.results import Report

EPILOG = """\b
Exit codes: 0 nothing new at or above --fail-on; 1 a NEW finding reaches it (findings
already in OLD never fail a diff); 2 usage error; 3 either image could not be fully
scanned (not hidden by --exit-zero).
"""


@click.command("diff", epilog=EPILOG)
@click.argument("old")
@click.argument("new")
@scan_options
@triage_options
@gate_options
@output_options(formats("diff"))
def diff_command(
    old: str,
    new: str,
    fail_on: str,
    fail_on_category: tuple[str, ...],
    exit_zero: bool,
    fmt: str | None,
    output: Path | None,
    quiet: bool,
    **scan_args: Any,
) -> None:
    """Compare two images: findings new in NEW, fixed since OLD, and unchanged.

    OLD and NEW are anything `scan` accepts (registry references, oci:PATH,
    docker-archive:PATH...). Findings are matched by fingerprint, so a rebuild that
    moves a file to another layer is not "new". Layers the two images share are
    scanned once.
    """
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    options = options_from_cli(scan_args, gate.fail_on)
    triage, options, reveal = triage_and_options(scan_args, options)
    with make_scanner(options) as scanner:
        old_result, new_result = scanner.scan_many([old, new])  # layers fanned out together
        old_report = Report([old_result], fail_on=gate.fail_on, reveal=reveal)
        new_report = Report([new_result], fail_on=gate.fail_on, reveal=reveal)
    warn_notes(scanner)
    seen: set[str] = set()
    for report in (old_report, new_report):
        finish_and_warn(report, triage, reveal, seen)
    deliver(diff_reports(old_report, new_report), gate, fmt, output, quiet)

"""``layerleak baseline SOURCE... -o baseline.json``: record today's findings.

Scans like ``scan`` (same source options), applies the ignore file, and writes the
fingerprints of every remaining finding (no secrets) for ``scan --baseline``.
Exit 0 when written; 3 when some part of an image could not be scanned (the
baseline is still written, but it may miss findings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from scanner.baseline import write as write_baseline
from scanner.commands import (
    exit_on_error,
    ignore_file_option,
    make_scanner,
    options_from_cli,
    say,
    scan_options,
    triage_from_cli,
)
from scanner.findings import Severity
from scanner.gate import EXIT_CLEAN, EXIT_INCOMPLETE, EXIT_USAGE


@click.command("baseline")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the baseline (JSON).",
)
@ignore_file_option
@scan_options
@click.pass_context
def baseline_command(ctx: click.Context, **args: Any) -> None:
    """Write the fingerprints of the current findings of SOURCES to a baseline file."""
    triage = triage_from_cli(args)
    options = options_from_cli(args, Severity.HIGH)
    scanner = make_scanner(options)
    with scanner:
        report = scanner.scan_all(list(args["sources"]))
    for warning in triage.apply(report, reveal=False):
        say(f"layerleak: warning: {warning}")
    with exit_on_error(EXIT_USAGE):
        count = write_baseline(args["output"], report.findings, list(args["sources"]))
    for problem in report.problems:
        say(f"layerleak: error: {problem.message}")
    click.echo(
        f"layerleak: wrote {count} fingerprint(s) to {args['output']}"
        + ("" if report.complete else " (scan INCOMPLETE: the baseline may miss findings)"),
        err=True,
    )
    ctx.exit(EXIT_CLEAN if report.complete else EXIT_INCOMPLETE)

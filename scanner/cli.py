"""The command line. Parses options, builds ScanOptions, renders; no scanning logic.

Exit codes: 0 nothing at or above --fail-on; 1 something was; 2 usage error;
3 some part of an image could not be scanned (takes precedence over 1: an
incomplete scan never looks clean).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import cast

import click

from scanner import __version__
from scanner.commands import (
    emit,
    fail,
    finish_and_warn,
    gate_options,
    make_gate,
    options_from_cli,
    output_options,
    pick_format,
    scan_options,
    triage_and_options,
    triage_options,
)
from scanner.commands.baseline import baseline_command
from scanner.commands.batch import read_refs
from scanner.commands.diff import diff_command
from scanner.commands.fly import fly_command
from scanner.commands.rules import rules_command
from scanner.commands.timeline import timeline_command
from scanner.errors import LayerleakError
from scanner.gate import EXIT_USAGE, scan_exit_code
from scanner.progress import ProgressBar
from scanner.report.formats import FORMATTERS
from scanner.report.interface import summary
from scanner.results import Report
from scanner.scan import Scanner


def exit_code(report: Report) -> int:
    """The exit code of ``scan`` for a report, with the default gate."""
    return scan_exit_code(report)


def one_line_summary(report: Report) -> str:
    s = summary(report)
    counts = " ".join(f"{sev}={n}" for sev, n in s["findings"].items())
    state = "complete" if s["complete"] else "INCOMPLETE"
    return (
        f"layerleak: {s['images']} image(s), {s['platforms']} platform(s), {s['layers']} "
        f"layer(s); findings {counts}; suppressed={s['suppressed']}; "
        f"errors={s['problems']} ({state})"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="layerleak")
def main() -> None:
    """layerleak: forensic scanner for container images, per layer."""


@main.command()
@click.argument("sources", nargs=-1)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also scan the references listed in this file, one per line "
    "(- for standard input; blank lines and # comments skipped).",
)
@click.option(
    "--dockerfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The Dockerfile the image was built from, to check each FROM is pinned.",
)
@scan_options
@triage_options
@gate_options
@output_options(sorted(FORMATTERS))
@click.pass_context
def scan(ctx: click.Context, **args: object) -> None:
    """Scan images: oci:PATH[:TAG], docker-archive:PATH[:REFERENCE|:@N], docker:IMAGE,
    a registry reference (host/repo:tag, host/repo@sha256:..., nginx), or a bare path."""
    sources = list(args["sources"])  # type: ignore[call-overload]
    from_file = args["from_file"]
    if from_file is not None:
        if from_file == "-" and args["password_stdin"]:
            raise click.UsageError("--from-file - and --password-stdin both read standard input")
        try:
            sources += read_refs(str(from_file))
        except LayerleakError as exc:
            fail(str(exc), EXIT_USAGE)
    if not sources:
        raise click.UsageError("give at least one SOURCE (or --from-file)")
    gate = make_gate(str(args["fail_on"]), args["fail_on_category"], bool(args["exit_zero"]))  # type: ignore[arg-type]
    options = options_from_cli(args, gate.fail_on)
    options = replace(options, dockerfile=cast(Path | None, args["dockerfile"]))
    triage, options, reveal = triage_and_options(args, options)
    quiet = bool(args["quiet"])
    progress = ProgressBar() if not quiet and sys.stderr.isatty() else None
    try:
        scanner = Scanner(options, progress=progress)
    except LayerleakError as exc:
        fail(str(exc), EXIT_USAGE)
    report = scanner.scan_all(sources)
    if progress is not None:
        progress.clear()
    finish_and_warn(report, triage, reveal)
    output = args["output"]
    name, color = pick_format(args["fmt"], output)  # type: ignore[arg-type]
    emit(FORMATTERS[name](color=color).render(report), output)  # type: ignore[arg-type]
    for problem in report.problems:
        click.echo(f"layerleak: error: {problem.message}", err=True)
    if not quiet:
        click.echo(one_line_summary(report), err=True)
    ctx.exit(gate.scan_exit_code(report))


main.add_command(diff_command)
main.add_command(fly_command)
main.add_command(timeline_command)
main.add_command(rules_command)
main.add_command(baseline_command)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The command line. Parses options, builds ScanOptions, renders; no scanning logic.

Exit codes: 0 nothing at or above --fail-on; 1 something was; 2 usage error;
3 some part of an image could not be scanned (takes precedence over 1: an
incomplete scan never looks clean).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import cast

import click

from scanner import __version__
from scanner.commands import (
    deliver,
    exit_on_error,
    finish_and_warn,
    gate_options,
    make_gate,
    make_scanner,
    options_from_cli,
    output_options,
    say,
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
from scanner.gate import EXIT_USAGE, scan_exit_code
from scanner.outcome import ScanOutcome, scan_summary_line
from scanner.progress import ProgressBar
from scanner.report.registry import formats
from scanner.results import Report


def exit_code(report: Report) -> int:
    """The exit code of ``scan`` for a report, with the default gate."""
    return scan_exit_code(report)


def one_line_summary(report: Report) -> str:
    return scan_summary_line(report)


EXIT_INTERRUPTED = 130


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: unwind (temporary files removed), then exit."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


class Main(click.Group):
    """The command group, ending cleanly on Ctrl-C and SIGTERM.

    Either one unwinds the scan (sources close and delete their temporary files,
    worker processes are stopped), prints one line saying so and exits 130. Click's
    own handling would print ``Aborted!`` and exit 1, which a CI log cannot tell
    from a failure of the gate.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (embedded): leave signals alone
            previous = None
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            if previous is not None:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # no second interruption now
            for child in multiprocessing.active_children():  # our own workers only
                child.terminate()
            what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
            say(f"layerleak: {what}: scan stopped, nothing reported, temporary files removed")
            sys.exit(EXIT_INTERRUPTED)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from scanner.secrets.prefilter import active_backend

    click.echo(f"layerleak, version {__version__}")
    click.echo(f"keyword prefilter: {active_backend()}")
    ctx.exit()


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and the active keyword prefilter, and exit.",
)
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
@output_options(sorted(formats("scan")))
def scan(**args: object) -> None:
    """Scan images: oci:PATH[:TAG], docker-archive:PATH[:REFERENCE|:@N], docker:IMAGE,
    a registry reference (host/repo:tag, host/repo@sha256:..., nginx), or a bare path."""
    sources = list(args["sources"])  # type: ignore[call-overload]
    from_file = args["from_file"]
    if from_file is not None:
        if from_file == "-" and args["password_stdin"]:
            raise click.UsageError("--from-file - and --password-stdin both read standard input")
        with exit_on_error(EXIT_USAGE):
            sources += read_refs(str(from_file))
    if not sources:
        raise click.UsageError("give at least one SOURCE (or --from-file)")
    gate = make_gate(str(args["fail_on"]), args["fail_on_category"], bool(args["exit_zero"]))  # type: ignore[arg-type]
    options = options_from_cli(args, gate.fail_on)
    options = replace(options, dockerfile=cast(Path | None, args["dockerfile"]))
    triage, options, reveal = triage_and_options(args, options)
    quiet = bool(args["quiet"])
    progress = ProgressBar() if not quiet and sys.stderr.isatty() else None
    scanner = make_scanner(options, progress=progress)
    report = scanner.scan_all(sources)
    if progress is not None:
        progress.clear()
    for note in scanner.notes:
        click.echo(f"layerleak: warning: {note}", err=True)
    finish_and_warn(report, triage, reveal)
    deliver(ScanOutcome(report), gate, args["fmt"], args["output"], quiet)  # type: ignore[arg-type]


main.add_command(diff_command)
main.add_command(fly_command)
main.add_command(timeline_command)
main.add_command(rules_command)
main.add_command(baseline_command)


if __name__ == "__main__":  # pragma: no cover
    main()

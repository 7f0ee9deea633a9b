"""``layerleak timeline REPOSITORY``: each finding's first and last release.

``--from-file FILE``: several repositories in one run, through one scanner (a layer
shared by releases or repositories is scanned once); the outcome is a
:class:`~scanner.timelines.TimelineSet`, and a repository that cannot be read is a
problem of its own timeline (exit 3) rather than the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from scanner.commands import (
    deliver,
    error_exit_code,
    exit_on_error,
    fail,
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
    warn_notes,
)
from scanner.commands.batch import read_refs
from scanner.errors import LayerleakError
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE
from scanner.image import Image
from scanner.reference import parse_reference
from scanner.registry.credentials import resolve_credential
from scanner.report.registry import formats
from scanner.results import ImageResult, Report, ScanProblem
from scanner.scan import ScanOptions
from scanner.timeline import Timeline, build_timeline, list_tags, repository_name
from scanner.timelines import TimelineSet

EPILOG = """\b
Exit codes: 0 the newest release has nothing at or above --fail-on (older releases
are history: see the report); 1 the newest release has a finding that reaches it;
2 usage error; 3 the tags could not be listed or a release could not be fully scanned.
With --from-file: 3 if any repository is incomplete, else 1 if any newest release
has a finding that reaches --fail-on, else 0.
"""

ScanReleases = Callable[[list[str]], list[ImageResult]]


class Stop(Exception):
    """One repository's timeline cannot be built: the message and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@click.command("timeline", epilog=EPILOG)
@click.argument("repository", required=False)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Build the timelines of the repositories listed in FILE too, one per line "
    "(- for standard input; # comments): one shared scan, a layer shared between "
    "releases or repositories scanned once.",
)
@click.option(
    "--match",
    "patterns",
    multiple=True,
    metavar="GLOB",
    help="Only tags matching this shell glob, e.g. 'deployment-*' (repeatable). "
    "Default: every tag.",
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Scan only the N newest matching releases.",
)
@scan_options
@triage_options
@gate_options
@output_options(formats("timeline"))
def timeline_command(
    repository: str | None,
    from_file: str | None,
    patterns: tuple[str, ...],
    last: int | None,
    fail_on: str,
    fail_on_category: tuple[str, ...],
    exit_zero: bool,
    fmt: str | None,
    output: Path | None,
    quiet: bool,
    **scan_args: Any,
) -> None:
    """Exposure window of every finding across a repository's releases.

    Lists REPOSITORY's tags in its registry (e.g. registry.fly.io/APP), orders the
    releases by image creation time, scans each (shared layers once), and reports for
    every finding the first and the last release that contained it and whether the
    newest still does: what to rotate, and since when it was exposed.
    """
    repositories = [repository] if repository else []
    if from_file is not None:
        if from_file == "-" and scan_args.get("password_stdin"):
            raise click.UsageError("--from-file - and --password-stdin both read standard input")
        with exit_on_error(EXIT_USAGE):
            repositories += [r for r in read_refs(from_file) if r not in repositories]
    if not repositories:
        raise click.UsageError("give a REPOSITORY (or --from-file)")
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    options = options_from_cli(scan_args, gate.fail_on)
    source_options = options
    triage, options, reveal = triage_and_options(scan_args, options)
    warned: set[str] = set()
    timelines: list[Timeline] = []
    with make_scanner(options) as scanner:
        for text in repositories:
            ignored: dict[str, int] = {}  # ignore-file counts summed over the releases

            def scan_releases(
                refs: list[str], ignored: dict[str, int] = ignored
            ) -> list[ImageResult]:
                """Releases (their layers fanned out together), each with the ignore
                file, baseline and --verify applied."""
                out = []
                for result in scanner.scan_many(refs):
                    report = Report([result], fail_on=gate.fail_on, reveal=reveal)
                    finish_and_warn(report, triage, reveal, warned)
                    for file, n in report.ignore_files.items():
                        ignored[file] = ignored.get(file, 0) + n
                    out.append(report.images[0])
                return out

            try:
                timeline = _one_repository(
                    text, source_options, patterns, last, scan_releases, reveal, quiet
                )
            except Stop as stop:
                if from_file is None:
                    fail(stop.message, stop.code)
                timeline = Timeline(
                    repository=text,
                    patterns=patterns,
                    releases=[],
                    list_problems=[ScanProblem(text, None, None, stop.message)],
                    reveal=reveal,
                )
            timeline.ignore_files = ignored
            timelines.append(timeline)
    warn_notes(scanner)
    if from_file is None:
        deliver(timelines[0], gate, fmt, output, quiet)
    deliver(TimelineSet(timelines), gate, fmt, output, quiet)


def _one_repository(
    text: str,
    options: ScanOptions,
    patterns: tuple[str, ...],
    last: int | None,
    scan_releases: ScanReleases,
    reveal: bool,
    quiet: bool,
) -> Timeline:
    """One repository's timeline (:class:`Stop` when it cannot be built at all)."""
    # the registry client (requests, oras) is imported by the command that talks to one
    from scanner.registry.client import Endpoint, RegistryClient
    from scanner.sources.registry import RegistrySource

    try:
        name = repository_name(text)
        ref = parse_reference(name)
        credential = resolve_credential(
            ref.registry, username=options.source.username, password=options.source.password
        )
        endpoint = Endpoint.for_registry(
            ref.registry,
            insecure=options.source.insecure,
            timeout=options.source.timeout,
            deadline=options.source.deadline,
        )
    except LayerleakError as exc:
        raise Stop(str(exc), error_exit_code(exc, EXIT_INCOMPLETE)) from None
    list_problems: list[str] = []
    client = RegistryClient(endpoint, credential)
    try:
        tags = list_tags(client, ref.repository, problems=list_problems)
    except LayerleakError as exc:
        message = f"cannot list the tags of {name}: {exc}"
        raise Stop(message, error_exit_code(exc, EXIT_INCOMPLETE)) from None
    finally:
        client.close()
    if not tags:
        raise Stop(f"{name} has no tags: check the repository name", EXIT_INCOMPLETE)

    def load(ref_text: str) -> Image:
        with RegistrySource(ref_text, options.source) as source:
            return source.load()

    timeline = build_timeline(
        name,
        tags,
        patterns,
        load,
        lambda one: scan_releases([one])[0],
        reveal=reveal,
        last=last,
        notify=None if quiet else say,
        scan_many=scan_releases,
    )
    timeline.list_problems[:0] = [ScanProblem(name, None, None, m) for m in list_problems]
    if not timeline.releases and not timeline.list_problems:
        raise Stop(
            f"no tag of {name} matches {', '.join(patterns)} ({len(tags)} tag(s), e.g. "
            f"{', '.join(tags[:3])})",
            EXIT_USAGE,
        )
    return timeline

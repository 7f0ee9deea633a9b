"""``layerleak timeline REPOSITORY``: each finding's first and last release."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from scanner.commands import (
    emit,
    fail,
    finish_and_warn,
    gate_options,
    make_gate,
    make_scanner,
    options_from_cli,
    output_options,
    pick_format,
    scan_options,
    triage_and_options,
    triage_options,
    warn_notes,
)
from scanner.commands.batch import read_refs
from scanner.errors import LayerleakError, UsageError
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE
from scanner.image import Image
from scanner.reference import parse_reference
from scanner.registry.client import Endpoint, RegistryClient
from scanner.registry.credentials import resolve_credential
from scanner.results import ImageResult, Report, ScanProblem
from scanner.scan import ScanOptions
from scanner.sources.registry import RegistrySource
from scanner.timeline import (
    TIMELINE_FORMATS,
    Timeline,
    build_timeline,
    list_tags,
    render,
    render_many,
    repository_name,
    summary_line,
)

EPILOG = """\b
Exit codes: 0 the newest release has nothing at or above --fail-on (older releases
are history: see the report); 1 the newest release has a finding that reaches it;
2 usage error; 3 the tags could not be listed or a release could not be fully scanned.
"""


@click.command("timeline", epilog=EPILOG)
@click.argument("repository", required=False)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also build the timelines of the repositories listed in this file, one per line "
    "(- for standard input): one shared scan, layers shared across repositories once.",
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
@output_options(TIMELINE_FORMATS)
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
        try:
            repositories += [r for r in read_refs(from_file) if r not in repositories]
        except LayerleakError as exc:
            fail(str(exc), EXIT_USAGE)
    if not repositories:
        raise click.UsageError("give a REPOSITORY (or --from-file)")
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    options = options_from_cli(scan_args, gate.fail_on)
    notify = None if quiet else lambda m: click.echo(m, err=True)
    scan_opts = options
    triage, options, reveal = triage_and_options(scan_args, options)
    warned: set[str] = set()
    timelines: list[Timeline] = []
    with make_scanner(options) as scanner:

        def scan_releases(refs: list[str]) -> list[ImageResult]:
            """Every release at once, then the ignore file, baseline and --verify."""
            out = []
            for result in scanner.scan_many(refs):
                report = Report([result], fail_on=gate.fail_on, reveal=reveal)
                finish_and_warn(report, triage, reveal, warned)
                out.append(report.images[0])
            return out

        for text in repositories:
            timeline = _one_repository(
                text,
                scan_opts,
                patterns,
                last,
                scan_releases,
                reveal,
                notify,
                many=len(repositories) > 1,
            )
            timelines.append(timeline)
    warn_notes(scanner)
    fmt_name, color = pick_format(fmt, output)
    if len(timelines) == 1:
        emit(render(timelines[0], fmt_name, gate, color), output)
    else:
        emit(render_many(timelines, fmt_name, gate, color), output)
    for timeline in timelines:
        for problem in timeline.all_problems():
            click.echo(f"layerleak: error: {problem.image}: {problem.message}", err=True)
        if not quiet:
            click.echo(summary_line(timeline, gate), err=True)
    codes = [t.exit_code(gate) for t in timelines]
    sys.exit(3 if 3 in codes else max(codes))


def _one_repository(
    text: str,
    options: ScanOptions,
    patterns: tuple[str, ...],
    last: int | None,
    scan_releases: Callable[[list[str]], list[ImageResult]],
    reveal: bool,
    notify: Callable[[str], None] | None,
    many: bool,
) -> Timeline:
    """One repository's timeline; with several, a repository that cannot be read is a
    problem of its timeline (exit 3) instead of the end of the run."""

    def stop(message: str, code: int) -> Timeline:
        if not many:
            fail(message, code)
        return Timeline(
            repository=text,
            patterns=patterns,
            releases=[],
            exposures=[],
            problems=[ScanProblem(text, None, None, message)],
            skipped=[],
            reveal=reveal,
        )

    try:
        name = repository_name(text)
        ref = parse_reference(name)
        credential = resolve_credential(
            ref.registry, username=options.source.username, password=options.source.password
        )
    except UsageError as exc:
        return stop(str(exc), EXIT_USAGE)
    except LayerleakError as exc:
        return stop(str(exc), EXIT_INCOMPLETE)
    list_problems: list[str] = []
    try:
        endpoint = Endpoint.for_registry(
            ref.registry,
            insecure=options.source.insecure,
            timeout=options.source.timeout,
            deadline=options.source.deadline,
        )
    except UsageError as exc:
        return stop(str(exc), EXIT_USAGE)
    client = RegistryClient(endpoint, credential)
    try:
        tags = list_tags(client, ref.repository, problems=list_problems)
    except LayerleakError as exc:
        return stop(f"cannot list the tags of {name}: {exc}", EXIT_INCOMPLETE)
    finally:
        client.close()
    if not tags:
        return stop(f"{name} has no tags: check the repository name", EXIT_INCOMPLETE)

    def load(text: str) -> Image:
        with RegistrySource(text, options.source) as source:
            return source.load()

    timeline = build_timeline(
        name,
        tags,
        patterns,
        load,
        lambda ref: scan_releases([ref])[0],
        reveal=reveal,
        last=last,
        notify=notify,
        scan_many=scan_releases,
    )
    timeline.problems[:0] = [ScanProblem(name, None, None, m) for m in list_problems]
    if not timeline.releases and not timeline.problems:
        return stop(
            f"no tag of {name} matches {', '.join(patterns)} ({len(tags)} tag(s), e.g. "
            f"{', '.join(tags[:3])})",
            EXIT_USAGE,
        )
    return timeline

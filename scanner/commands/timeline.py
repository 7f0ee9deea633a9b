"""``layerleak timeline REPOSITORY``: each finding's first and last release."""

from __future__ import annotations

import sys
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
)
from scanner.errors import LayerleakError, UsageError
from scanner.gate import EXIT_INCOMPLETE, EXIT_USAGE
from scanner.image import Image
from scanner.reference import parse_reference
from scanner.registry.client import Endpoint, RegistryClient
from scanner.registry.credentials import resolve_credential
from scanner.results import ImageResult, Report, ScanProblem
from scanner.sources.registry import RegistrySource
from scanner.timeline import (
    TIMELINE_FORMATS,
    build_timeline,
    list_tags,
    render,
    repository_name,
    summary_line,
)

EPILOG = """\b
Exit codes: 0 the newest release has nothing at or above --fail-on (older releases
are history: see the report); 1 the newest release has a finding that reaches it;
2 usage error; 3 the tags could not be listed or a release could not be fully scanned.
"""


@click.command("timeline", epilog=EPILOG)
@click.argument("repository")
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
    repository: str,
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
    gate = make_gate(fail_on, fail_on_category, exit_zero)
    options = options_from_cli(scan_args, gate.fail_on)
    try:
        name = repository_name(repository)
        ref = parse_reference(name)
        credential = resolve_credential(
            ref.registry, username=options.source.username, password=options.source.password
        )
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
    except LayerleakError as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    list_problems: list[str] = []
    try:
        endpoint = Endpoint.for_registry(
            ref.registry,
            insecure=options.source.insecure,
            timeout=options.source.timeout,
            deadline=options.source.deadline,
        )
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
    client = RegistryClient(endpoint, credential)
    try:
        tags = list_tags(client, ref.repository, problems=list_problems)
    except LayerleakError as exc:
        fail(f"cannot list the tags of {name}: {exc}", EXIT_INCOMPLETE)
    finally:
        client.close()
    if not tags:
        fail(f"{name} has no tags: check the repository name", EXIT_INCOMPLETE)

    def load(text: str) -> Image:
        with RegistrySource(text, options.source) as source:
            return source.load()

    triage, options, reveal = triage_and_options(scan_args, options)
    warned: set[str] = set()

    def scan_release(ref: str) -> ImageResult:
        """One release, with the ignore file, baseline and --verify applied."""
        report = Report([scanner.scan(ref)], fail_on=gate.fail_on, reveal=reveal)
        finish_and_warn(report, triage, reveal, warned)
        return report.images[0]

    with make_scanner(options) as scanner:
        timeline = build_timeline(
            name,
            tags,
            patterns,
            load,
            scan_release,
            reveal=reveal,
            last=last,
            notify=None if quiet else lambda m: click.echo(m, err=True),
        )
    timeline.problems[:0] = [ScanProblem(name, None, None, m) for m in list_problems]
    if not timeline.releases and not timeline.problems:
        fail(
            f"no tag of {name} matches {', '.join(patterns)} ({len(tags)} tag(s), e.g. "
            f"{', '.join(tags[:3])})",
            EXIT_USAGE,
        )
    fmt_name, color = pick_format(fmt, output)
    emit(render(timeline, fmt_name, gate, color), output)
    for problem in timeline.all_problems():
        click.echo(f"layerleak: error: {problem.image}: {problem.message}", err=True)
    if not quiet:
        click.echo(summary_line(timeline, gate), err=True)
    sys.exit(timeline.exit_code(gate))
